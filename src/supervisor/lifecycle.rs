//! The lifecycle as one piece of plain data, changed in one place: [`Lifecycle::on`]
//! takes an input (a signal, the app's exit, a hook phase's result, a probe's result, a
//! timer, a drain request) and the time, and returns the actions to take. No I/O happens
//! here: the supervisor's loop feeds the inputs and its executor carries out the actions,
//! so every transition can be tested without a process.
//!
//! ```text
//!            StartApp
//!  starting ──(post_start ok, startup probe ok)──> running ──(drain trigger)──> draining
//!     │  └─(post_start fails, startup probe fails)    │ └─(liveness probe fails)   │
//!     │       stop the app (a Stop, no drain)         │     pre_stop, stop the app │
//!     └──────────────────(the app exits)──────────> stopping <────────────────────┘
//!                                leftovers: SIGTERM, SIGKILL, all reaped; post_stop
//!                          restart policy, no drain ──> backoff ──> starting
//!                                          otherwise ──> exited (flush the log, exit)
//! ```
//!
//! Two records say why the app is being stopped. A [`Stop`] belongs to one run of the
//! app: graceinit decided to stop it (a drain, a failed post_start hook, a failed probe),
//! with pre_stop hooks, a stop signal by `stop_by` and SIGKILL at `kill_at`. The
//! [`DrainInfo`] belongs to graceinit: once a drain is triggered there is no restart and
//! graceinit exits by its `kill_at`. A drain usually starts a Stop; one that comes while a
//! Stop is under way joins it.
//!
//! Where things are decided: a drain signal in `on_drain_signal`, the deadlines in
//! `begin_drain` and `begin_stop` (arithmetic in `deadlines`), the stop signal in
//! `send_stop_signal`, SIGKILL in `kill_app`, a restart in `after_exit`, readiness in
//! `update_ready`.

use std::sync::Arc;
use std::time::Duration;

use libc::c_int;
use nix::unistd::Pid;
use tokio::time::Instant;
use tracing::Level;

use super::deadlines::{Backoff, Deadlines, Escalation, escalation};
use super::report::TrafficReport;
use super::snapshot::{self, Snapshot};
use crate::config::{
    Action as HookAction, Hook, HookPhase, OnFailure, Probe, RestartPolicy, Settings,
};
use crate::events::{Event, EventLog, Reason};
use crate::exit_code;
use crate::hooks::{Outcome, Report};
use crate::probes::ProbeKind;
use crate::reaper::{Children, ExitStatus};
use crate::signals::{SignalTarget, signal_name};
use crate::traffic::Observed;

/// After the first SIGKILL to leftovers, how long graceinit waits for them (only a
/// process stuck in uninterruptible sleep survives SIGKILL that long).
pub const AFTER_SIGKILL: Duration = Duration::from_secs(5);

/// Between two rounds of SIGKILL for leftovers that are not PID 1's: each round kills
/// what a scan of /proc found; what those forked meanwhile is found by the next.
pub const KILL_ROUND: Duration = Duration::from_millis(50);

/// How long hook output and log lines still in flight may take to reach stderr before
/// graceinit exits (never past the drain's `kill_at`, but see `LAST_LINES`).
pub const OUTPUT_AT_EXIT: Duration = Duration::from_secs(1);

/// The time the last lines always get, even at or past `kill_at`: the `Killing` event of
/// an app SIGKILLed at kill_at is written by the log thread, which a loaded machine may
/// not have run yet when the app's exit is reaped.
pub const LAST_LINES: Duration = Duration::from_millis(100);

/// Everything the lifecycle reacts to.
#[derive(Debug)]
pub enum Input {
    /// A signal read from the signalfd (SIGCHLD included).
    Signal(c_int),
    /// The reaper has collected every child that had exited; `Children` says whether any
    /// is left.
    Reaped(Children),
    AppStarted(Pid),
    /// The app could not be started; the code is the shell's (127, 126).
    AppNotStarted(i32),
    AppExited(Pid, ExitStatus),
    /// One hook of a phase's run has finished.
    HookDone {
        phase: HookPhase,
        run: u64,
        index: usize,
        on_failure: OnFailure,
        report: Report,
    },
    /// A phase's run is over; `ok` unless a hook with `on_failure = "fail"` failed.
    PhaseDone {
        phase: HookPhase,
        run: u64,
        ok: bool,
    },
    /// One run of a probe (of the probe task `run`): Ok, or why it failed.
    ProbeResult {
        kind: ProbeKind,
        run: u64,
        result: Result<(), String>,
    },
    /// A round of signals to the app's leftovers has gone out.
    LeftoversSignalled,
    /// The output still in flight has reached stderr.
    OutputFlushed,
    /// `graceinit drain` or `/prestop`: start or join the drain; the answer goes to
    /// `waiter`.
    DrainRequested(u64),
    /// A time given by `wake_at` has come.
    Timer,
    /// What a sample of the app's TCP traffic showed during the drain (sent on a change
    /// only), or why none could be taken; `last` after the app's exit.
    Traffic {
        seen: Result<Observed, String>,
        last: bool,
    },
}

/// What the executor does for the lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    StartApp,
    /// Forward `sig` to the app as `sent` (after rewriting).
    Forward {
        sig: c_int,
        sent: c_int,
        to: Target,
    },
    /// SIGKILL to the app and its process group.
    KillApp(Pid),
    /// Stop graceinit itself (dumb-init's answer to SIGTSTP when not PID 1).
    StopSelf,
    /// Collect every child that has exited; answered with `Input::Reaped`.
    Reap,
    /// Run a phase's hooks in order on a task of their own, none started past `deadline`
    /// and each cut at it.
    RunHooks {
        phase: HookPhase,
        run: u64,
        deadline: Option<Instant>,
    },
    /// Stop a phase's hooks now (their process groups are killed).
    AbortHooks(HookPhase),
    /// Sample the app's TCP traffic every `traffic::PERIOD` for the drain's report,
    /// answered with `Input::Traffic`, until `FinishWatchingTraffic`: one last sample
    /// now (`last`), then no more.
    WatchTraffic,
    FinishWatchingTraffic,
    /// Run a probe every period, the first time after `first`, until stopped; its results
    /// carry `run`.
    StartProbe {
        kind: ProbeKind,
        run: u64,
        first: Duration,
    },
    StopProbe(ProbeKind),
    /// `sig` to whatever the app left behind (`app` is its process group); answered with
    /// `Input::LeftoversSignalled`.
    SignalLeftovers {
        sig: c_int,
        app: Pid,
    },
    /// Let output in flight reach stderr by `by`; answered with `Input::OutputFlushed`.
    FlushOutput {
        by: Instant,
    },
    /// Tell the drain's requesters how the pre_stop hooks went.
    AnswerDrain {
        waiters: Vec<u64>,
        outcome: Result<String, String>,
    },
    /// Log a lifecycle event (it is also kept for `/status`).
    Announce(Event),
    Log(Level, String),
    Exit(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Group(Pid),
    Process(Pid),
}

/// What started the drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Signal(c_int),
    /// `graceinit drain` or `/prestop`.
    Request,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Signal(sig) => write!(f, "{} received", signal_name(*sig)),
            Trigger::Request => f.write_str("drain requested"),
        }
    }
}

/// Why graceinit stops the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    Drain(Trigger),
    /// Kubernetes: "If a PostStart hook fails, it kills the Container."
    FailedPostStart,
    /// A liveness or startup probe reached its failure threshold.
    Unhealthy(ProbeKind),
}

impl std::fmt::Display for StopCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopCause::Drain(trigger) => write!(f, "the drain ({trigger})"),
            StopCause::FailedPostStart => f.write_str("a failed post_start hook"),
            StopCause::Unhealthy(kind) => write!(f, "its {} probe failing", kind.name()),
        }
    }
}

/// Where a Stop is, before its stop signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopStage {
    /// on_ready hooks still run: a registration in flight completes (until `stop_by`)
    /// before the pre_stop hooks deregister.
    WaitingForOnReady,
    PreStop,
    /// The pre_stop hooks are done after a drain request: the stop signal goes out on the
    /// kubelet's SIGTERM, or at `stop_by`.
    AwaitingSignal,
    /// The stop signal is out.
    Past,
}

/// graceinit stopping one run of the app: pre_stop hooks, the stop signal by `stop_by`,
/// SIGKILL at `kill_at`.
#[derive(Clone, Debug)]
pub(super) struct Stop {
    pub cause: StopCause,
    pub deadlines: Deadlines,
    pub stage: StopStage,
    /// A drain signal has come, or no signal is awaited (the stop was graceinit's own
    /// decision): the stop signal goes out as soon as the pre_stop hooks are done.
    signalled: bool,
    /// Drain signals other than SIGTERM since the drain's trigger.
    presses: u32,
    waiters: Vec<u64>,
    /// How the pre_stop hooks went, once they are over.
    outcome: Option<Result<String, String>>,
    /// The first failure of a pre_stop hook with `on_failure = "fail"`.
    failure: Option<String>,
    /// When the app got its stop signal.
    signal_sent_at: Option<Instant>,
}

/// graceinit is draining: no more restarts, and graceinit is gone by `kill_at`.
#[derive(Clone, Debug)]
pub(super) struct DrainInfo {
    pub trigger: Trigger,
    pub deadlines: Deadlines,
    pub stop_signal_at: Option<Instant>,
    pub killed_at: Option<Instant>,
    /// When the app exited.
    pub finished_at: Option<Instant>,
    /// How the pre_stop hooks went (kept once the Stop is over, for late requesters).
    outcome: Option<Result<String, String>>,
    pub traffic: TrafficReport,
    /// The traffic is being sampled; and, once the app has exited, the DrainFinished
    /// event waits for the last sample (or graceinit's exit).
    watching: bool,
    finished_event: Option<ExitStatus>,
}

/// How the app's last run ended, and what that means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ending {
    pub status: ExitStatus,
    /// graceinit's exit code if it ends here.
    pub code: i32,
    /// A failure for `restart = "on-failure"`.
    pub failed: bool,
    pub ran_for: Duration,
}

/// Ending what the app left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Leftovers {
    /// Waiting for the reaper to say whether anything is left.
    Checking,
    /// SIGTERM to them; `until` (or the drain's kill_at) they have to go.
    Term { until: Instant, signalling: bool },
    /// Rounds of SIGKILL until they are gone or `give_up`.
    Kill {
        started: Instant,
        give_up: Instant,
        /// When the next round goes out (None while one is going out).
        next_round: Option<Instant>,
    },
    /// All reaped, but a round of signals is still going out (a scan of /proc on a
    /// thread of its own): nothing new starts before it is over, or the round would
    /// signal the restarted app or a post_stop hook as a leftover.
    Reaped,
}

/// What follows once the leftovers are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Then {
    PostStop,
    Finish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// StartApp is out; the app's pid (or its failure to start) comes next.
    Starting,
    /// The app runs.
    Up,
    /// The stop signal is out; SIGKILL at `kill_at`.
    Stopping {
        kill_at: Instant,
        killed: bool,
    },
    /// The app has exited: ending what it left behind.
    Ending {
        ending: Ending,
        leftovers: Leftovers,
        then: Then,
    },
    /// post_stop hooks run.
    PostStop {
        ending: Ending,
    },
    /// Waiting to start the app again.
    BackOff {
        ending: Ending,
        until: Instant,
    },
    /// Letting the output in flight reach stderr, then exit with `code`; first, until
    /// `report_until` at the most, waiting for the drain's last traffic sample, so that
    /// DrainFinished has what arrived just before the app's exit.
    Flushing {
        code: i32,
        by: Instant,
        report_until: Option<Instant>,
    },
    Exited,
}

/// The app as the lifecycle knows it.
#[derive(Clone, Debug, Default)]
pub(super) struct App {
    pub pid: Option<Pid>,
    /// The last pid, kept after the exit: its process group is where leftovers are.
    pub last_pid: Option<Pid>,
    pub started_at: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    /// This run's post_start hooks are done.
    pub post_start_done: bool,
    /// This run's on_ready hooks have been started.
    on_ready_started: bool,
}

/// One hook's record, for `/status` and `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRecord {
    pub phase: HookPhase,
    pub index: usize,
    pub kind: &'static str,
    pub runs: u32,
    pub failures: u32,
    /// How the last run went, and how long it took.
    pub last: Option<(Outcome, Duration)>,
}

/// A probe's verdict after its thresholds (Kubernetes' prober results).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No verdict yet: not ready, but not a failure either.
    Unknown,
    Healthy,
    Unhealthy,
}

/// One configured probe's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRecord {
    pub kind: ProbeKind,
    pub health: Health,
    /// The probe task now running, if any.
    pub run: Option<u64>,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    pub successes: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    success_threshold: u32,
    failure_threshold: u32,
}

pub struct Lifecycle {
    pub(super) settings: Arc<Settings>,
    pub(super) command_name: String,
    pid1: bool,
    pub(super) stage: Stage,
    pub(super) app: App,
    pub(super) ready: bool,
    /// The current run of each phase (PostStart, OnReady, PreStop, PostStop), if any.
    runs: [Option<u64>; 4],
    /// The last run id given to a hook phase or a probe task.
    last_run: u64,
    pub(super) stop: Option<Stop>,
    pub(super) drain: Option<DrainInfo>,
    pub(super) probes: Vec<ProbeRecord>,
    backoff: Backoff,
    pub(super) events: EventLog,
    events_recorded: u64,
    pub(super) hooks: Vec<HookRecord>,
    revision: u64,
    /// post_stop waits for the drain's last traffic sample until then at the most.
    post_stop_after_report: Option<Instant>,
    out: Vec<Action>,
}

fn action_kind(action: &HookAction) -> &'static str {
    match action {
        HookAction::Exec { .. } => "exec",
        HookAction::Http(_) => "http",
        HookAction::Tcp(_) => "tcp",
        HookAction::Sleep(_) => "sleep",
        HookAction::WaitQuiet(_) => "wait_quiet",
    }
}

/// Where a phase's run is kept, in arrays of four.
pub(super) fn slot(phase: HookPhase) -> usize {
    match phase {
        HookPhase::PostStart => 0,
        HookPhase::OnReady => 1,
        HookPhase::PreStop => 2,
        HookPhase::PostStop => 3,
    }
}

impl Lifecycle {
    /// A lifecycle about to start the app; `command_name` is how events name it.
    pub fn new(settings: Arc<Settings>, command_name: String, pid1: bool) -> Self {
        let hooks = [
            &settings.hooks.post_start,
            &settings.hooks.on_ready,
            &settings.hooks.pre_stop,
            &settings.hooks.post_stop,
        ]
        .into_iter()
        .flatten()
        .map(|hook: &Hook| HookRecord {
            phase: hook.phase,
            index: hook.index,
            kind: action_kind(&hook.action),
            runs: 0,
            failures: 0,
            last: None,
        })
        .collect();
        let probes = ProbeKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let probe = probe_of(&settings, kind)?;
                Some(ProbeRecord {
                    kind,
                    health: Health::Unknown,
                    run: None,
                    consecutive_successes: 0,
                    consecutive_failures: 0,
                    successes: 0,
                    failures: 0,
                    last_error: None,
                    success_threshold: probe.success_threshold,
                    failure_threshold: probe.failure_threshold,
                })
            })
            .collect();
        Lifecycle {
            backoff: Backoff::new(settings.restart_backoff, settings.restart_backoff_max),
            settings,
            command_name,
            pid1,
            stage: Stage::Starting,
            app: App::default(),
            ready: false,
            runs: [None; 4],
            last_run: 0,
            stop: None,
            drain: None,
            probes,
            events: EventLog::default(),
            events_recorded: 0,
            hooks,
            revision: 0,
            post_stop_after_report: None,
            out: Vec::new(),
        }
    }

    /// The first actions: start the app.
    pub fn start(&mut self) -> Vec<Action> {
        vec![Action::StartApp]
    }

    /// The one place the lifecycle changes.
    pub fn on(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let before = self.marker();
        match input {
            Input::Signal(sig) => self.on_signal(sig, now),
            Input::Reaped(children) => self.on_reaped(children, now),
            Input::AppStarted(pid) => self.on_app_started(pid, now),
            Input::AppNotStarted(code) => self.on_app_not_started(code, now),
            Input::AppExited(pid, status) => self.on_app_exited(pid, status, now),
            Input::HookDone {
                phase,
                run,
                index,
                on_failure,
                report,
            } => self.on_hook_done(phase, run, index, on_failure, report, now),
            Input::PhaseDone { phase, run, ok } => self.on_phase_done(phase, run, ok, now),
            Input::ProbeResult { kind, run, result } => {
                self.on_probe_result(kind, run, result, now)
            }
            Input::LeftoversSignalled => self.on_leftovers_signalled(now),
            Input::OutputFlushed => self.on_output_flushed(),
            Input::DrainRequested(waiter) => self.on_drain_requested(waiter, now),
            Input::Timer => self.on_timer(now),
            Input::Traffic { seen, last } => self.on_traffic(seen, last, now),
        }
        if self.marker() != before {
            self.revision += 1;
        }
        std::mem::take(&mut self.out)
    }

    /// The next time the lifecycle has something to do without an input.
    pub fn wake_at(&self) -> Option<Instant> {
        match self.stage {
            Stage::Starting | Stage::Exited => None,
            Stage::Up => self.stop.as_ref().and_then(|stop| match stop.stage {
                StopStage::WaitingForOnReady | StopStage::PreStop | StopStage::AwaitingSignal => {
                    Some(stop.deadlines.stop_by)
                }
                StopStage::Past => None,
            }),
            Stage::Stopping { kill_at, killed } => (!killed).then_some(kill_at),
            Stage::Ending { leftovers, .. } => match leftovers {
                Leftovers::Checking
                | Leftovers::Reaped
                | Leftovers::Term {
                    signalling: true, ..
                } => None,
                Leftovers::Term { until, .. } => Some(self.cut_at_kill_at(until)),
                Leftovers::Kill { next_round, .. } => next_round,
            },
            Stage::PostStop { .. } => self.post_stop_after_report.or(self.exit_deadline()),
            Stage::BackOff { until, .. } => Some(until),
            Stage::Flushing {
                by, report_until, ..
            } => Some(report_until.unwrap_or(by)),
        }
    }

    /// Changes whenever what the snapshot shows changes.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn snapshot(&self) -> Snapshot {
        snapshot::of(self)
    }

    /// The drain's SIGKILL time, which graceinit must not outlive: Kubernetes kills the
    /// container then.
    pub(super) fn exit_deadline(&self) -> Option<Instant> {
        self.drain.as_ref().map(|drain| drain.deadlines.kill_at)
    }

    /// The app's post_start hooks are done and its startup probe, if any, has passed.
    pub(super) fn started(&self) -> bool {
        self.app.post_start_done && self.health(ProbeKind::Startup) != Some(Health::Unknown)
    }

    fn cut_at_kill_at(&self, time: Instant) -> Instant {
        self.exit_deadline()
            .map_or(time, |kill_at| kill_at.min(time))
    }

    /// What the snapshot shows, in brief: a change here is a new revision.
    fn marker(&self) -> impl PartialEq + use<> {
        (
            (self.stage, self.ready, self.app.pid, self.app.restarts),
            (self.app.post_start_done, self.events_recorded),
            self.hooks.iter().map(|h| h.runs).sum::<u32>(),
            // At most one record per kind: an array, no allocation on every input.
            std::array::from_fn::<_, 3, _>(|i| {
                self.probes
                    .get(i)
                    .map(|p| (p.health, p.run, p.successes, p.failures))
            }),
            self.stop
                .as_ref()
                .map(|s| (s.stage, s.outcome.is_some(), s.signalled)),
            self.drain.as_ref().map(|d| {
                (
                    d.deadlines,
                    d.stop_signal_at,
                    d.killed_at,
                    d.finished_at,
                    d.traffic,
                )
            }),
        )
    }

    // --- signals ---

    fn on_signal(&mut self, sig: c_int, now: Instant) {
        if sig == libc::SIGCHLD {
            self.out.push(Action::Reap);
        } else if self.settings.drain_signals.contains(&sig) {
            self.on_drain_signal(sig, now);
        } else if let Some(pid) = self.app.pid {
            self.forward(sig, pid);
            if sig == libc::SIGTSTP && !self.pid1 {
                // dumb-init: stop ourselves too, so the shell that ran us sees the job
                // stop; its SIGCONT then reaches us and is forwarded.
                self.out.push(Action::StopSelf);
            }
        } else {
            self.log(
                Level::INFO,
                format!(
                    "{} while the app is not running: nothing to forward it to",
                    signal_name(sig)
                ),
            );
        }
    }

    /// `sig`, rewritten, to the app's process group or the app alone.
    fn forward(&mut self, sig: c_int, pid: Pid) {
        let Some(sent) = self.settings.rewrite.apply(sig) else {
            self.log(
                Level::DEBUG,
                format!("dropped {} (rewrite to 0)", signal_name(sig)),
            );
            return;
        };
        let to = match self.settings.signal_target {
            SignalTarget::Group => Target::Group(pid),
            SignalTarget::Child => Target::Process(pid),
        };
        self.out.push(Action::Forward { sig, sent, to });
    }

    fn on_drain_signal(&mut self, sig: c_int, now: Instant) {
        if self.drain.is_none() {
            self.begin_drain(Trigger::Signal(sig), now);
            return;
        }
        let name = signal_name(sig);
        let Some(stop) = &mut self.stop else {
            self.log(
                Level::INFO,
                format!("{name} during the drain: the app is not running"),
            );
            return;
        };
        if !stop.signalled {
            // The drain came from a request (a preStop hook); this is the kubelet's
            // SIGTERM, which it sends once the preStop hook has returned.
            stop.signalled = true;
            match stop.stage {
                StopStage::AwaitingSignal => self.send_stop_signal(now),
                StopStage::WaitingForOnReady | StopStage::PreStop => self.log(
                    Level::INFO,
                    format!(
                        "{name} during the requested drain: the stop signal goes out when the pre_stop hooks are done"
                    ),
                ),
                StopStage::Past => {}
            }
            return;
        }
        if sig != libc::SIGTERM {
            stop.presses += 1;
        }
        let before_stop_signal = stop.stage != StopStage::Past;
        match (escalation(sig, stop.presses), self.stage) {
            (Escalation::Ignore, _) => self.log(
                Level::WARN,
                format!("{name} during the drain: the drain is already under way"),
            ),
            (Escalation::StopNow, Stage::Starting | Stage::Up) if before_stop_signal => {
                self.log(
                    Level::WARN,
                    format!("{name} during the drain: skipping the remaining pre_stop hooks"),
                );
                self.abort(HookPhase::OnReady);
                self.abort(HookPhase::PreStop);
                self.settle_pre_stop(Err(format!("skipped: {name} during the drain")));
                self.send_stop_signal(now);
            }
            (Escalation::StopNow, _) => self.log(
                Level::WARN,
                format!(
                    "{name} during the drain: the app already has its stop signal; once more kills it"
                ),
            ),
            (Escalation::KillNow, _) => {
                self.log(
                    Level::WARN,
                    format!("{name} during the drain, again: killing the app now"),
                );
                self.kill_app(now);
            }
        }
    }

    // --- the drain, and stopping the app ---

    /// The drain, started once whatever triggers it: not ready at once, deadlines fixed
    /// now, pre_stop hooks in order, the stop signal by `stop_by`, SIGKILL at `kill_at`.
    fn begin_drain(&mut self, trigger: Trigger, now: Instant) {
        if self.stage == Stage::Exited {
            return;
        }
        let settings = &self.settings;
        let deadlines = Deadlines::from_trigger(now, settings.grace_period, settings.stop_timeout);
        let grace = humantime::format_duration(settings.grace_period);
        let hooks = settings.hooks.pre_stop.len();
        self.drain = Some(DrainInfo {
            trigger,
            deadlines,
            stop_signal_at: None,
            killed_at: None,
            finished_at: None,
            outcome: None,
            traffic: TrafficReport::default(),
            watching: false,
            finished_event: None,
        });
        self.ready = false;
        self.stop_probes();
        if self.app.pid.is_some() || self.stage == Stage::Starting {
            self.out.push(Action::WatchTraffic);
            if let Some(drain) = &mut self.drain {
                drain.watching = true;
            }
        }
        match &mut self.stage {
            Stage::Starting | Stage::Up | Stage::Stopping { .. } => match &mut self.stop {
                None => {
                    self.record(
                        Reason::DrainStarted,
                        format!(
                            "{trigger}: {hooks} pre_stop hook(s), stop signal by {:?}, SIGKILL at {:?}",
                            deadlines.stop_by - now,
                            deadlines.kill_at - now,
                        ),
                        now,
                    );
                    self.begin_stop(StopCause::Drain(trigger), deadlines, now);
                }
                Some(stop) => {
                    // A stop is under way (a failed post_start hook or probe): the drain
                    // joins it, its hooks do not run again, and SIGKILL comes no later
                    // than the drain's would.
                    let cause = stop.cause;
                    stop.deadlines.stop_by = stop.deadlines.stop_by.min(deadlines.stop_by);
                    stop.deadlines.kill_at = stop.deadlines.kill_at.min(deadlines.kill_at);
                    stop.signalled = true;
                    if let Stage::Stopping { kill_at, .. } = &mut self.stage {
                        *kill_at = (*kill_at).min(deadlines.kill_at);
                    }
                    // The stop signal already out: everything the drain sees comes after it.
                    if let (Some(sent), Some(drain)) = (stop.signal_sent_at, &mut self.drain) {
                        drain.stop_signal_at = Some(sent);
                        drain.traffic.stop_signal_sent();
                    }
                    let stopping_after = match cause {
                        StopCause::FailedPostStart => "after a failed post_start hook".to_string(),
                        other => format!("for {other}"),
                    };
                    self.record(
                        Reason::DrainStarted,
                        format!(
                            "{trigger} while the app stops {stopping_after}: exiting within {grace} (the grace period)"
                        ),
                        now,
                    );
                }
            },
            Stage::BackOff { ending, .. } => {
                let code = ending.code;
                self.settle_late_drain();
                self.record(
                    Reason::DrainStarted,
                    format!("{trigger} during the back-off: not restarting; exiting with {code}"),
                    now,
                );
                self.flush_and_exit(code, now);
            }
            Stage::Ending { .. } | Stage::PostStop { .. } | Stage::Flushing { .. } => {
                // kill_at is fixed all the same: the kubelet's SIGKILL comes at the grace
                // period's end, and graceinit exits by then.
                self.settle_late_drain();
                self.record(
                    Reason::DrainStarted,
                    format!(
                        "{trigger} after the app exited: exiting within {grace} (the grace period)"
                    ),
                    now,
                );
                if let Stage::Flushing {
                    by, report_until, ..
                } = &mut self.stage
                {
                    *by = (*by).min(deadlines.kill_at.max(now + LAST_LINES));
                    if let Some(until) = report_until {
                        *until = (*until).min(*by);
                    }
                }
            }
            Stage::Exited => {}
        }
    }

    /// A drain that came when the app was not running: no pre_stop hook runs.
    fn settle_late_drain(&mut self) {
        if let Some(drain) = &mut self.drain {
            drain.outcome = Some(Ok("the app was not running".into()));
        }
    }

    /// graceinit stops this run of the app: pre_stop hooks (after any on_ready hooks
    /// still running), then the stop signal.
    fn begin_stop(&mut self, cause: StopCause, deadlines: Deadlines, now: Instant) {
        self.ready = false;
        self.stop_probes();
        self.stop = Some(Stop {
            cause,
            deadlines,
            stage: StopStage::PreStop,
            signalled: !matches!(cause, StopCause::Drain(Trigger::Request)),
            presses: 0,
            waiters: Vec::new(),
            outcome: None,
            failure: None,
            signal_sent_at: None,
        });
        if cause == StopCause::FailedPostStart {
            // No pre_stop hook before the stop signal: Kubernetes' FailedPostStartHook
            // kill, which graceinit's own exit code reports.
            self.settle_pre_stop(Ok("no pre_stop hooks for a failed post_start".into()));
            self.send_stop_signal(now);
        } else if self.runs[slot(HookPhase::OnReady)].is_some() {
            self.set_stop_stage(StopStage::WaitingForOnReady);
        } else {
            self.run_pre_stop(now);
        }
    }

    fn set_stop_stage(&mut self, stage: StopStage) {
        if let Some(stop) = &mut self.stop {
            stop.stage = stage;
        }
    }

    fn run_pre_stop(&mut self, now: Instant) {
        let Some(stop) = &self.stop else { return };
        let stop_by = stop.deadlines.stop_by;
        self.set_stop_stage(StopStage::PreStop);
        if self.settings.hooks.pre_stop.is_empty() {
            self.pre_stop_finished(Ok("no pre_stop hooks".into()), now);
        } else {
            self.run_hooks(HookPhase::PreStop, Some(stop_by));
        }
    }

    /// The pre_stop hooks have run: the stop signal goes out if a drain signal has come;
    /// after a drain request it waits for the kubelet's SIGTERM (or `stop_by`).
    fn pre_stop_finished(&mut self, outcome: Result<String, String>, now: Instant) {
        self.settle_pre_stop(outcome);
        let Some(stop) = &self.stop else { return };
        if stop.stage != StopStage::PreStop {
            // The stop signal went out already (at stop_by, or pressed).
            return;
        }
        if stop.signalled {
            self.send_stop_signal(now);
        } else {
            self.set_stop_stage(StopStage::AwaitingSignal);
            self.log(
                Level::INFO,
                "pre_stop hooks done: the stop signal goes out on SIGTERM, or at the stop deadline"
                    .into(),
            );
        }
    }

    /// How the pre_stop part of the stop went, once: requesters get their answer.
    fn settle_pre_stop(&mut self, outcome: Result<String, String>) {
        let Some(stop) = &mut self.stop else { return };
        if stop.outcome.is_some() {
            return;
        }
        stop.outcome = Some(outcome.clone());
        if let Some(drain) = &mut self.drain {
            drain.outcome.get_or_insert(outcome.clone());
        }
        let waiters = std::mem::take(&mut stop.waiters);
        if !waiters.is_empty() {
            self.out.push(Action::AnswerDrain { waiters, outcome });
        }
    }

    /// The stop signal: the stop's pre-stop part is over, the app has until `kill_at`.
    fn send_stop_signal(&mut self, now: Instant) {
        let Some(stop) = &mut self.stop else { return };
        stop.stage = StopStage::Past;
        stop.signal_sent_at.get_or_insert(now);
        let kill_at = stop.deadlines.kill_at;
        let Some(pid) = self.app.pid else { return };
        if self.abort(HookPhase::OnReady) {
            self.log(
                Level::WARN,
                "on_ready hooks still running when the app is stopped: aborted".into(),
            );
        }
        self.stage = Stage::Stopping {
            kill_at,
            killed: false,
        };
        if let Some(drain) = &mut self.drain {
            if drain.stop_signal_at.is_none() {
                drain.stop_signal_at = Some(now);
                drain.traffic.stop_signal_sent();
            }
        }
        let stop_signal = self.settings.stop_signal;
        self.log(
            Level::INFO,
            format!(
                "sending the stop signal {} to the app",
                signal_name(stop_signal)
            ),
        );
        self.forward(stop_signal, pid);
    }

    fn kill_app(&mut self, now: Instant) {
        let Some(pid) = self.app.pid else { return };
        // Killed before its stop signal: the pre-stop part is over too.
        self.abort(HookPhase::OnReady);
        self.abort(HookPhase::PreStop);
        self.settle_pre_stop(Err("the app was killed".into()));
        self.set_stop_stage(StopStage::Past);
        let kill_at = match self.stage {
            Stage::Stopping { kill_at, .. } => kill_at,
            _ => now,
        };
        self.stage = Stage::Stopping {
            kill_at,
            killed: true,
        };
        if let Some(drain) = &mut self.drain {
            if drain.killed_at.is_none() {
                drain.killed_at = Some(now);
                drain.traffic.killed();
            }
        }
        self.record(
            Reason::Killing,
            format!("sending SIGKILL to the app (pid {pid}) and its process group"),
            now,
        );
        self.out.push(Action::KillApp(pid));
    }

    /// A sample for the drain's report. One taken after the app's exit counts only as
    /// the last (what arrived before the exit), never as what was open at the trigger.
    fn on_traffic(&mut self, seen: Result<Observed, String>, last: bool, now: Instant) {
        let Some(drain) = self.drain.as_mut() else {
            return;
        };
        let exited = drain.finished_at;
        match seen {
            Ok(seen) if exited.is_none_or(|exit| seen.taken_at < exit) => {
                let stop_signal_sent = drain.stop_signal_at.is_some();
                let killed = drain.killed_at.is_some();
                drain.traffic.observed(seen, now, stop_signal_sent, killed);
            }
            Ok(seen) if last && drain.traffic.sampled() => {
                // What arrived by the exit: the last arrival no later than the exit.
                let at = exited.map_or(now, |exit| exit.min(now));
                drain
                    .traffic
                    .observed(seen, at, drain.stop_signal_at.is_some(), false);
            }
            Ok(_) => {}
            Err(reason) if !drain.traffic.unavailable => {
                drain.traffic.unavailable = true;
                self.log(
                    Level::INFO,
                    format!("the drain's report cannot see the app's connections: {reason}"),
                );
            }
            Err(_) => {}
        }
        if last {
            self.report_done(now);
        }
    }

    /// The DrainFinished event, with the report, once the app has exited (at most once).
    fn record_drain_finished(&mut self, now: Instant) {
        let Some(drain) = &mut self.drain else { return };
        let (Some(status), Some(exited)) = (drain.finished_event.take(), drain.finished_at) else {
            return;
        };
        let trigger = drain.deadlines.started_at;
        let traffic = drain.traffic.summary(trigger);
        self.record(
            Reason::DrainFinished,
            format!(
                "the app exited ({status}) {:.3?} after the trigger; {traffic}",
                exited - trigger
            ),
            now,
        );
    }

    fn on_drain_requested(&mut self, waiter: u64, now: Instant) {
        if self.drain.is_none() {
            self.begin_drain(Trigger::Request, now);
        }
        let answer = match (&mut self.stop, &self.drain) {
            (Some(stop), _) if stop.outcome.is_none() => {
                stop.waiters.push(waiter);
                return;
            }
            (
                Some(Stop {
                    outcome: Some(outcome),
                    ..
                }),
                _,
            ) => outcome.clone(),
            (
                _,
                Some(DrainInfo {
                    outcome: Some(outcome),
                    ..
                }),
            ) => outcome.clone(),
            _ => Ok("the app is not running".into()),
        };
        self.out.push(Action::AnswerDrain {
            waiters: vec![waiter],
            outcome: answer,
        });
    }

    // --- the app ---

    fn start_app(&mut self) {
        self.stage = Stage::Starting;
        self.out.push(Action::StartApp);
    }

    fn on_app_started(&mut self, pid: Pid, now: Instant) {
        self.stage = Stage::Up;
        self.app.pid = Some(pid);
        self.app.last_pid = Some(pid);
        self.app.started_at = Some(now);
        self.app.post_start_done = false;
        self.app.on_ready_started = false;
        let restart = match self.app.restarts {
            0 => String::new(),
            n => format!(" (restart {n})"),
        };
        self.record(
            Reason::Started,
            format!("app {} is pid {pid}{restart}", self.command_name),
            now,
        );
        if self.stop.is_some() {
            // A drain that came while the app was being started: stop it now.
            self.send_stop_signal(now);
            return;
        }
        if self.settings.hooks.post_start.is_empty() {
            self.app.post_start_done = true;
        } else {
            self.run_hooks(HookPhase::PostStart, None);
        }
        // The startup probe runs alongside post_start, as the kubelet's does.
        self.start_probe(ProbeKind::Startup, now);
        self.on_started_maybe(now);
    }

    fn on_app_not_started(&mut self, code: i32, now: Instant) {
        if self.app.restarts == 0 {
            // A command that cannot run at all fails at once, as under tini, whatever
            // the restart policy: no retry would find it.
            self.flush_and_exit(code, now);
        } else {
            // It never ran: the back-off must not count the time since the last start
            // as running time (which would reset it).
            self.app.started_at = None;
            self.app_ended(ExitStatus::Exited(code), now);
        }
    }

    fn on_app_exited(&mut self, pid: Pid, status: ExitStatus, now: Instant) {
        if self.app.pid != Some(pid) {
            return;
        }
        self.app_ended(status, now);
    }

    /// The app is gone: its hooks and probes stop, its leftovers go, then post_stop.
    fn app_ended(&mut self, status: ExitStatus, now: Instant) {
        self.app.pid = None;
        self.app.last_exit = Some(status);
        self.ready = false;
        self.stop_probes();
        self.abort(HookPhase::PostStart);
        if self.abort(HookPhase::OnReady) {
            self.log(
                Level::WARN,
                "on_ready hooks still running when the app is stopped: aborted".into(),
            );
        }
        self.abort(HookPhase::PreStop);
        self.settle_pre_stop(Err(
            "the app exited before the pre_stop hooks were done".into()
        ));
        let stop = self.stop.take();
        match &mut self.drain {
            Some(drain) => {
                drain.finished_at = Some(now);
                drain.finished_event = Some(status);
                if drain.watching {
                    // DrainFinished once the last sample is in.
                    drain.watching = false;
                    self.out.push(Action::FinishWatchingTraffic);
                } else {
                    self.record_drain_finished(now);
                }
            }
            None => self.log(Level::INFO, format!("the app exited ({status})")),
        }
        let failed_post_start = stop.as_ref().map(|s| s.cause) == Some(StopCause::FailedPostStart);
        let stopped_unhealthy = matches!(
            stop.as_ref().map(|s| s.cause),
            Some(StopCause::Unhealthy(_))
        );
        let ending = Ending {
            status,
            // Kubernetes kills the container of a failed postStart hook: graceinit says
            // so with its own code rather than the status of the killed app.
            code: if failed_post_start {
                exit_code::FAILURE
            } else {
                exit_code::for_app(status, &self.settings.remap_exit)
            },
            failed: failed_post_start || stopped_unhealthy || !status.success(),
            ran_for: self.app.started_at.map_or(Duration::ZERO, |t| now - t),
        };
        self.end_leftovers(ending, Then::PostStop);
    }

    // --- leftovers, post_stop, restart, exit ---

    /// SIGTERM to every process left, SIGKILL after `kill_leftovers_after`, until all are
    /// reaped: PID 1 exiting would SIGKILL them anyway, without a chance to finish (tini
    /// #180, dumb-init #212), and a restarted app must not meet its predecessor's.
    fn end_leftovers(&mut self, ending: Ending, then: Then) {
        self.stage = Stage::Ending {
            ending,
            leftovers: Leftovers::Checking,
            then,
        };
        self.out.push(Action::Reap);
    }

    fn set_leftovers(&mut self, step: Leftovers) {
        if let Stage::Ending { leftovers, .. } = &mut self.stage {
            *leftovers = step;
        }
    }

    fn signal_leftovers(&mut self, sig: c_int) {
        if let Some(app) = self.app.last_pid {
            self.out.push(Action::SignalLeftovers { sig, app });
        }
    }

    fn on_reaped(&mut self, children: Children, now: Instant) {
        let Stage::Ending { leftovers, .. } = self.stage else {
            return;
        };
        match (children, leftovers) {
            (
                Children::None,
                Leftovers::Term {
                    signalling: true, ..
                }
                | Leftovers::Kill {
                    next_round: None, ..
                },
            ) => self.set_leftovers(Leftovers::Reaped),
            (Children::None, _) => self.leftovers_gone(now),
            (Children::Running, Leftovers::Checking) => {
                let past_kill_at = self.exit_deadline().is_some_and(|kill_at| now >= kill_at);
                if past_kill_at {
                    // No time is left for a SIGTERM round.
                    self.kill_leftovers(now);
                } else {
                    self.log(
                        Level::INFO,
                        "the app is gone: sending SIGTERM to the processes it left".into(),
                    );
                    self.set_leftovers(Leftovers::Term {
                        until: now + self.settings.kill_leftovers_after,
                        signalling: true,
                    });
                    self.signal_leftovers(libc::SIGTERM);
                }
            }
            (Children::Running, _) => {}
        }
    }

    fn kill_leftovers(&mut self, now: Instant) {
        // Never past the drain's SIGKILL time (but one round at least).
        let give_up = self.exit_deadline().map_or(now + AFTER_SIGKILL, |kill_at| {
            kill_at.clamp(now + KILL_ROUND, now + AFTER_SIGKILL)
        });
        self.set_leftovers(Leftovers::Kill {
            started: now,
            give_up,
            next_round: None,
        });
        self.signal_leftovers(libc::SIGKILL);
    }

    fn on_leftovers_signalled(&mut self, now: Instant) {
        let Stage::Ending { leftovers, .. } = self.stage else {
            return;
        };
        match leftovers {
            Leftovers::Term {
                until,
                signalling: true,
            } => self.set_leftovers(Leftovers::Term {
                until,
                signalling: false,
            }),
            Leftovers::Kill {
                started,
                give_up,
                next_round: None,
            } => self.set_leftovers(Leftovers::Kill {
                started,
                give_up,
                next_round: Some((now + KILL_ROUND).min(give_up)),
            }),
            Leftovers::Reaped => self.leftovers_gone(now),
            _ => {}
        }
    }

    fn leftovers_gone(&mut self, now: Instant) {
        let Stage::Ending { ending, then, .. } = self.stage else {
            return;
        };
        match then {
            Then::PostStop if !self.settings.hooks.post_stop.is_empty() => {
                if self.exit_deadline().is_some_and(|kill_at| now >= kill_at) {
                    self.log(
                        Level::WARN,
                        "the drain's SIGKILL time has passed: not running the post_stop hooks"
                            .into(),
                    );
                    self.after_exit(ending, now);
                } else {
                    self.stage = Stage::PostStop { ending };
                    // After DrainFinished, which waits for the drain's last traffic sample
                    // (a few milliseconds; LAST_LINES at the most).
                    if self
                        .drain
                        .as_ref()
                        .is_some_and(|d| d.finished_event.is_some())
                    {
                        self.post_stop_after_report = Some(self.cut_at_kill_at(now + LAST_LINES));
                    } else {
                        self.run_hooks(HookPhase::PostStop, self.exit_deadline());
                    }
                }
            }
            Then::PostStop | Then::Finish => self.after_exit(ending, now),
        }
    }

    /// Restart (the policy allows, no drain) or exit.
    fn after_exit(&mut self, ending: Ending, now: Instant) {
        let restart = self.drain.is_none()
            && match self.settings.restart {
                RestartPolicy::Never => false,
                RestartPolicy::OnFailure => ending.failed,
                RestartPolicy::Always => true,
            };
        if !restart {
            self.flush_and_exit(ending.code, now);
            return;
        }
        let delay = self.backoff.delay(ending.ran_for);
        self.app.restarts += 1;
        self.record(
            Reason::BackOff,
            format!(
                "restart {} in {} (the app ended with {})",
                self.app.restarts,
                humantime::format_duration(delay),
                ending.status
            ),
            now,
        );
        if delay.is_zero() {
            self.start_app();
        } else {
            self.stage = Stage::BackOff {
                ending,
                until: now + delay,
            };
        }
    }

    fn flush_and_exit(&mut self, code: i32, now: Instant) {
        let by = self
            .cut_at_kill_at(now + OUTPUT_AT_EXIT)
            .max(now + LAST_LINES);
        let report_pending = self
            .drain
            .as_ref()
            .is_some_and(|d| d.finished_event.is_some());
        // The last sample takes a few milliseconds: it gets LAST_LINES at the most, and
        // only when the flush has longer (not past kill_at: the last lines come first).
        let report_until = (report_pending && by > now + LAST_LINES).then(|| now + LAST_LINES);
        if report_until.is_none() {
            self.record_drain_finished(now);
        }
        self.stage = Stage::Flushing {
            code,
            by,
            report_until,
        };
        if report_until.is_none() {
            self.out.push(Action::FlushOutput { by });
        }
    }

    /// The drain's report is in (or will not come): DrainFinished, then the post_stop
    /// hooks or the flush that waited for it.
    fn report_done(&mut self, now: Instant) {
        self.record_drain_finished(now);
        if self.post_stop_after_report.take().is_some()
            && matches!(self.stage, Stage::PostStop { .. })
        {
            self.run_hooks(HookPhase::PostStop, self.exit_deadline());
        }
        if let Stage::Flushing {
            by, report_until, ..
        } = &mut self.stage
        {
            if report_until.take().is_some() {
                let by = *by;
                self.out.push(Action::FlushOutput { by });
            }
        }
    }

    fn on_output_flushed(&mut self) {
        if let Stage::Flushing { code, .. } = self.stage {
            self.exit(code);
        }
    }

    fn exit(&mut self, code: i32) {
        self.stage = Stage::Exited;
        self.out.push(Action::Exit(code));
    }

    // --- hooks ---

    fn next_run(&mut self) -> u64 {
        self.last_run += 1;
        self.last_run
    }

    fn run_hooks(&mut self, phase: HookPhase, deadline: Option<Instant>) {
        let run = self.next_run();
        self.runs[slot(phase)] = Some(run);
        self.out.push(Action::RunHooks {
            phase,
            run,
            deadline,
        });
    }

    /// Aborts the phase's run if one is under way; true if so.
    fn abort(&mut self, phase: HookPhase) -> bool {
        if self.runs[slot(phase)].take().is_some() {
            self.out.push(Action::AbortHooks(phase));
            true
        } else {
            false
        }
    }

    fn on_hook_done(
        &mut self,
        phase: HookPhase,
        run: u64,
        index: usize,
        on_failure: OnFailure,
        report: Report,
        now: Instant,
    ) {
        let succeeded = report.outcome.is_success();
        if let Some(record) = self
            .hooks
            .iter_mut()
            .find(|h| h.phase == phase && h.index == index)
        {
            record.runs += 1;
            record.failures += u32::from(!succeeded);
            record.last = Some((report.outcome.clone(), report.took));
        }
        if succeeded {
            return;
        }
        let message = format!("{}: {}", report.label, report.outcome.describe());
        match (phase, on_failure) {
            (_, OnFailure::Ignore) => {
                self.log(Level::INFO, format!("{message} (on_failure = \"ignore\")"))
            }
            (HookPhase::PostStart, _) => self.record(Reason::FailedPostStartHook, message, now),
            (HookPhase::PreStop, _) => {
                let current = self.runs[slot(phase)] == Some(run);
                if let Some(stop) = &mut self.stop {
                    if on_failure == OnFailure::Fail && current {
                        stop.failure.get_or_insert(message.clone());
                    }
                }
                self.record(Reason::FailedPreStopHook, message, now);
            }
            _ => self.log(Level::WARN, format!("hook failed: {message}")),
        }
    }

    fn on_phase_done(&mut self, phase: HookPhase, run: u64, ok: bool, now: Instant) {
        if self.runs[slot(phase)] != Some(run) {
            // An aborted run's last word.
            return;
        }
        self.runs[slot(phase)] = None;
        match phase {
            HookPhase::PostStart if ok => {
                self.app.post_start_done = true;
                self.on_started_maybe(now);
            }
            HookPhase::PostStart => self.stop_for(StopCause::FailedPostStart, now),
            HookPhase::OnReady => {
                if self
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.stage == StopStage::WaitingForOnReady)
                {
                    self.run_pre_stop(now);
                }
            }
            HookPhase::PreStop => {
                let count = self.settings.hooks.pre_stop.len();
                let outcome = match self.stop.as_mut().and_then(|s| s.failure.take()) {
                    Some(failure) if !ok => Err(failure),
                    _ if !ok => Err("a pre_stop hook failed".into()),
                    _ => Ok(format!("{count} pre_stop hook(s) done")),
                };
                self.pre_stop_finished(outcome, now);
            }
            HookPhase::PostStop => {
                if let Stage::PostStop { ending } = self.stage {
                    self.end_leftovers(ending, Then::Finish);
                }
            }
        }
    }

    /// graceinit stops this run of the app (not a drain: the restart policy applies
    /// after it), unless a stop is already under way.
    fn stop_for(&mut self, cause: StopCause, now: Instant) {
        if self.stage != Stage::Up || self.stop.is_some() {
            // Being stopped already (the drain, another failure).
            return;
        }
        let settings = &self.settings;
        let deadlines = match cause {
            // The app gets stop_timeout, as after a drain without hooks.
            StopCause::FailedPostStart => {
                Deadlines::from_trigger(now, settings.stop_timeout, settings.stop_timeout)
            }
            // The kubelet kills a container whose probe failed with the pod's grace period,
            // preStop hook included.
            _ => Deadlines::from_trigger(now, settings.grace_period, settings.stop_timeout),
        };
        self.begin_stop(cause, deadlines, now);
    }

    // --- readiness and probes ---

    /// post_start done and the startup probe passed: liveness and readiness probes
    /// start, and the app may become ready.
    fn on_started_maybe(&mut self, now: Instant) {
        if self.stage != Stage::Up || self.stop.is_some() || !self.started() {
            return;
        }
        self.stop_probe(ProbeKind::Startup);
        self.start_probe(ProbeKind::Liveness, now);
        self.start_probe(ProbeKind::Readiness, now);
        self.update_ready();
    }

    /// Ready: started, no stop under way, and the readiness probe (if any) passing. The
    /// first time in a run of the app, its on_ready hooks start.
    fn update_ready(&mut self) {
        let ready = self.stage == Stage::Up
            && self.stop.is_none()
            && self.drain.is_none()
            && self.started()
            && !matches!(
                self.health(ProbeKind::Readiness),
                Some(Health::Unknown | Health::Unhealthy)
            );
        if ready == self.ready {
            return;
        }
        self.ready = ready;
        if !ready {
            self.log(Level::INFO, "the app is not ready".into());
            return;
        }
        self.log(Level::INFO, "the app is ready".into());
        if !self.app.on_ready_started {
            self.app.on_ready_started = true;
            if !self.settings.hooks.on_ready.is_empty() {
                self.run_hooks(HookPhase::OnReady, None);
            }
        }
    }

    fn health(&self, kind: ProbeKind) -> Option<Health> {
        self.probes
            .iter()
            .find(|p| p.kind == kind)
            .map(|p| p.health)
    }

    fn probe_mut(&mut self, kind: ProbeKind) -> Option<&mut ProbeRecord> {
        self.probes.iter_mut().find(|p| p.kind == kind)
    }

    /// Starts a configured probe afresh (Kubernetes: probes restart with the container).
    /// Its initial delay counts from the app's start, as the kubelet's does, also for the
    /// probes that wait for the startup probe.
    fn start_probe(&mut self, kind: ProbeKind, now: Instant) {
        let Some(initial_delay) = probe_of(&self.settings, kind).map(|p| p.initial_delay) else {
            return;
        };
        let first = self.app.started_at.map_or(initial_delay, |at| {
            (at + initial_delay).saturating_duration_since(now)
        });
        let run = self.next_run();
        let Some(probe) = self.probe_mut(kind) else {
            return;
        };
        probe.health = Health::Unknown;
        probe.consecutive_successes = 0;
        probe.consecutive_failures = 0;
        probe.run = Some(run);
        self.out.push(Action::StartProbe { kind, run, first });
    }

    fn stop_probe(&mut self, kind: ProbeKind) {
        if let Some(probe) = self.probe_mut(kind) {
            if probe.run.take().is_some() {
                self.out.push(Action::StopProbe(kind));
            }
        }
    }

    fn stop_probes(&mut self) {
        for kind in ProbeKind::ALL {
            self.stop_probe(kind);
        }
    }

    /// Kubernetes' thresholds: `success_threshold` successes in a row make a probe
    /// healthy, `failure_threshold` failures in a row unhealthy.
    fn on_probe_result(
        &mut self,
        kind: ProbeKind,
        run: u64,
        result: Result<(), String>,
        now: Instant,
    ) {
        let Some(probe) = self.probe_mut(kind) else {
            return;
        };
        if probe.run != Some(run) {
            // A stopped probe's last word.
            return;
        }
        let before = probe.health;
        match result {
            Ok(()) => {
                probe.successes += 1;
                probe.consecutive_successes += 1;
                probe.consecutive_failures = 0;
                if probe.consecutive_successes >= probe.success_threshold {
                    probe.health = Health::Healthy;
                }
            }
            Err(reason) => {
                probe.failures += 1;
                probe.consecutive_failures += 1;
                probe.consecutive_successes = 0;
                probe.last_error = Some(reason);
                if probe.consecutive_failures >= probe.failure_threshold {
                    probe.health = Health::Unhealthy;
                }
            }
        }
        let after = probe.health;
        if after == before {
            return;
        }
        let reason = probe.last_error.clone().unwrap_or_default();
        match (kind, after) {
            (_, Health::Unhealthy) => {
                self.record(
                    Reason::Unhealthy,
                    format!("{} probe failed: {reason}", kind.title()),
                    now,
                );
                match kind {
                    ProbeKind::Readiness => self.update_ready(),
                    // Kubernetes: "the kubelet kills the container", which then restarts
                    // under its restart policy.
                    ProbeKind::Liveness | ProbeKind::Startup => {
                        self.stop_for(StopCause::Unhealthy(kind), now)
                    }
                }
            }
            (ProbeKind::Startup, Health::Healthy) => self.on_started_maybe(now),
            (ProbeKind::Readiness, _) => self.update_ready(),
            _ => {}
        }
    }

    // --- time ---

    fn on_timer(&mut self, now: Instant) {
        match self.stage {
            Stage::Up => self.on_stop_by(now),
            Stage::Stopping {
                kill_at,
                killed: false,
            } if now >= kill_at => self.kill_app(now),
            Stage::Ending { leftovers, .. } => self.on_leftovers_timer(leftovers, now),
            Stage::PostStop { .. }
                if self
                    .post_stop_after_report
                    .is_some_and(|until| now >= until) =>
            {
                self.report_done(now);
            }
            Stage::PostStop { ending }
                if self.exit_deadline().is_some_and(|kill_at| now >= kill_at) =>
            {
                self.abort(HookPhase::PostStop);
                self.log(
                    Level::WARN,
                    "post_stop hooks still running at the drain's SIGKILL time: cut short".into(),
                );
                self.end_leftovers(ending, Then::Finish);
            }
            Stage::BackOff { until, .. } if now >= until => self.start_app(),
            Stage::Flushing {
                report_until: Some(until),
                ..
            } if now >= until => self.report_done(now),
            Stage::Flushing { code, by, .. } if now >= by => self.exit(code),
            _ => {}
        }
    }

    /// The stop's stop_by: the stop signal goes out now, whatever the hooks are doing.
    fn on_stop_by(&mut self, now: Instant) {
        let Some(stop) = &self.stop else { return };
        if now < stop.deadlines.stop_by {
            return;
        }
        match stop.stage {
            StopStage::WaitingForOnReady => {
                self.abort(HookPhase::OnReady);
                self.log(
                    Level::WARN,
                    "on_ready hooks still running at the stop deadline: aborted".into(),
                );
                let skipped: Vec<String> = self
                    .settings
                    .hooks
                    .pre_stop
                    .iter()
                    .map(Hook::label)
                    .collect();
                if !skipped.is_empty() {
                    self.log(
                        Level::WARN,
                        format!(
                            "the drain deadline has passed: not starting {}",
                            skipped.join(", ")
                        ),
                    );
                }
                self.settle_pre_stop(Err(
                    "the stop deadline came before the pre_stop hooks could run".into(),
                ));
                self.send_stop_signal(now);
            }
            StopStage::PreStop => {
                self.log(
                    Level::WARN,
                    "pre_stop hooks still running at the stop deadline: sending the stop signal now"
                        .into(),
                );
                // The hooks are cut at this same deadline by their runner and still report.
                self.send_stop_signal(now);
            }
            StopStage::AwaitingSignal => {
                self.log(
                    Level::INFO,
                    "no SIGTERM by the stop deadline: sending the stop signal now".into(),
                );
                self.send_stop_signal(now);
            }
            StopStage::Past => {}
        }
    }

    fn on_leftovers_timer(&mut self, leftovers: Leftovers, now: Instant) {
        match leftovers {
            Leftovers::Term {
                until,
                signalling: false,
            } if now >= self.cut_at_kill_at(until) => {
                self.log(
                    Level::WARN,
                    "processes left by the app outlived SIGTERM: sending SIGKILL".into(),
                );
                self.kill_leftovers(now);
            }
            Leftovers::Kill {
                started,
                give_up,
                next_round: Some(round),
            } if now >= round => {
                if now >= give_up {
                    self.log(
                        Level::WARN,
                        format!(
                            "processes survived SIGKILL for {:?} (uninterruptible sleep?); exiting anyway",
                            now - started
                        ),
                    );
                    self.leftovers_gone(now);
                } else {
                    self.set_leftovers(Leftovers::Kill {
                        started,
                        give_up,
                        next_round: None,
                    });
                    self.out.push(Action::Reap);
                    self.signal_leftovers(libc::SIGKILL);
                }
            }
            _ => {}
        }
    }

    // --- the record ---

    fn record(&mut self, reason: Reason, message: String, now: Instant) {
        let event = Event {
            at: now,
            reason,
            message,
        };
        self.events.keep(event.clone());
        self.events_recorded += 1;
        self.out.push(Action::Announce(event));
    }

    fn log(&mut self, level: Level, message: String) {
        self.out.push(Action::Log(level, message));
    }
}

/// The configured probe of `kind`, if any.
pub(super) fn probe_of(settings: &Settings, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Startup => settings.probes.startup.as_ref(),
        ProbeKind::Liveness => settings.probes.liveness.as_ref(),
        ProbeKind::Readiness => settings.probes.readiness.as_ref(),
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
