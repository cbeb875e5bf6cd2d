//! The supervisor: one task owns the lifecycle (phase, app, drain deadlines) and reacts
//! to events — a signal, the app's exit, a hook's report, a deadline — one at a time.
//!
//! ```text
//! starting --(post_start ok)--> running --(drain signal)--> draining --(app exits)--> stopping --> exit
//!    '--(post_start fails: stop the app, exit 1)
//! ```
//!
//! While idle it sleeps in `epoll_wait` with no timer armed: timers exist only while a
//! drain or a hook is under way.

mod drain;

use std::ffi::OsString;
use std::future::Future;
use std::process::Command;
use std::sync::Arc;

use futures_util::StreamExt;
use libc::c_int;
use nix::unistd::Pid;
use signal_hook_tokio::Signals;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::config::{Hook, HookPhase, OnFailure, Settings};
use crate::events::{EventLog, Reason};
use crate::exit_code;
use crate::hooks::{Report, Runner};
use crate::reaper::{Children, ExitStatus, Reaper};
use crate::signals::{SignalTarget, signal_name};
use crate::sys;
use drain::{Deadlines, Escalation, Stage, escalation};

/// How long leftovers get after SIGKILL before graceinit stops waiting for them (only a
/// process stuck in uninterruptible sleep survives SIGKILL that long).
const AFTER_SIGKILL: std::time::Duration = std::time::Duration::from_secs(5);

/// How long hook output still in flight may take to reach stderr before graceinit exits.
const OUTPUT_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `command` as the app under `settings` and returns graceinit's exit code.
pub fn run(settings: Settings, command: Vec<OsString>) -> i32 {
    // First, before anything installs a handler: what the app must inherit.
    let inherited = sys::signals::InheritedSignals::capture_and_unblock();
    let pid1 = sys::process::is_pid1();
    if !pid1 {
        match sys::process::become_subreaper() {
            Ok(()) => tracing::debug!(
                "not PID 1: registered as a child subreaper, orphans come to graceinit"
            ),
            Err(e) => tracing::warn!(
                "not PID 1 and cannot become a child subreaper ({e}): orphans will not be reaped"
            ),
        }
    }
    if let Some(sig) = settings.pdeathsig {
        if let Err(e) = sys::process::set_parent_death_signal(sig) {
            tracing::warn!(
                "cannot set the parent-death signal {}: {e}",
                signal_name(sig)
            );
        }
    }
    let take_terminal = sys::process::stdin_is_terminal();
    if take_terminal {
        let released = sys::process::release_controlling_terminal();
        tracing::debug!(released, "stdin is a terminal: the app's session takes it");
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the event loop: {e}");
            return exit_code::FAILURE;
        }
    };
    let caught = sys::signals::caught();
    let reaper = Arc::new(Reaper::new(inherited, settings.warn_on_reap));
    runtime.block_on(async move {
        // Handlers go in before the app starts, so no signal between the two is lost.
        let signals = match Signals::new(&caught) {
            Ok(signals) => signals,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return exit_code::FAILURE;
            }
        };
        let code = Supervisor::start(settings, command, reaper, pid1, take_terminal, signals)
            .await
            .unwrap_or_else(|code| code);
        // Exit here, with every handler still installed: unregistering them one by one
        // costs more than the whole start-up of the app, and nothing is left to do.
        std::process::exit(code)
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Draining,
}

/// Why the app is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    DrainSignal(c_int),
    FailedPostStart,
}

struct Shutdown {
    cause: Cause,
    deadlines: Deadlines,
    stage: Stage,
    pre_stop: Option<JoinHandle<()>>,
    /// Drain signals other than SIGTERM received since the trigger.
    presses: u32,
}

/// What hook tasks tell the supervisor.
enum Message {
    Report(HookPhase, OnFailure, Report),
    /// A phase's hooks are done; `ok` unless one with `on_failure = "fail"` failed.
    PhaseDone(HookPhase, bool),
}

struct Supervisor {
    settings: Arc<Settings>,
    reaper: Arc<Reaper>,
    runner: Arc<Runner>,
    events: EventLog,
    signals: Signals,
    pid1: bool,
    app: Pid,
    phase: Phase,
    shutdown: Option<Shutdown>,
    ready: bool,
    messages: mpsc::UnboundedReceiver<Message>,
    sender: mpsc::UnboundedSender<Message>,
    tasks: Vec<JoinHandle<()>>,
    /// The on_ready hooks while they run: a drain waits for them before deregistering.
    on_ready: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts the app and its post-start hooks, supervises until the app is gone, and
    /// returns the exit code.
    async fn start(
        settings: Settings,
        command: Vec<OsString>,
        reaper: Arc<Reaper>,
        pid1: bool,
        take_terminal: bool,
        signals: Signals,
    ) -> Result<i32, i32> {
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..]);
        let spawned = reaper.spawn(&mut cmd, take_terminal).map_err(|e| {
            tracing::error!("cannot run {:?}: {e}", command[0]);
            exit_code::for_spawn_error(&e)
        })?;
        let (sender, messages) = mpsc::unbounded_channel();
        let mut supervisor = Supervisor {
            settings: Arc::new(settings),
            runner: Arc::new(Runner::new(reaper.clone())),
            reaper,
            events: EventLog::default(),
            signals,
            pid1,
            app: spawned.pid,
            phase: Phase::Starting,
            shutdown: None,
            ready: false,
            messages,
            sender,
            tasks: Vec::new(),
            on_ready: None,
        };
        supervisor.events.record(
            Reason::Started,
            format!("app {:?} is pid {}", command[0], spawned.pid),
        );
        let post_start = supervisor.settings.hooks.post_start.clone();
        let task = supervisor.spawn_hooks(HookPhase::PostStart, post_start, None);
        supervisor.tasks.push(task);

        let status = supervisor.supervise(spawned.exit).await;
        Ok(supervisor.finish(status).await)
    }

    /// The event loop, until the app exits.
    async fn supervise(
        &mut self,
        mut app_exit: tokio::sync::oneshot::Receiver<ExitStatus>,
    ) -> ExitStatus {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                // The app's exit first: a storm of SIGCHLD from orphans must not delay it.
                biased;
                status = &mut app_exit => {
                    // The sender lives in the reaper's table until the app is reaped.
                    return status.unwrap_or(ExitStatus::Exited(exit_code::FAILURE));
                }
                Some(sig) = self.signals.next() => self.on_signal(sig),
                Some(message) = self.messages.recv() => self.on_message(message),
                _ = sleep_until_some(deadline) => self.on_deadline(),
            }
        }
    }

    fn on_signal(&mut self, sig: c_int) {
        if sig == libc::SIGCHLD {
            self.reaper.reap();
        } else if self.settings.drain_signals.contains(&sig) {
            self.on_drain_signal(sig);
        } else {
            self.forward(sig);
            if sig == libc::SIGTSTP && !self.pid1 {
                // dumb-init: stop ourselves too, so the shell that ran us sees the job stop;
                // its SIGCONT then reaches us and is forwarded.
                sys::process::stop_self();
            }
        }
    }

    /// Sends `sig`, rewritten, to the app's process group or the app alone.
    fn forward(&self, sig: c_int) {
        let Some(sent) = self.settings.rewrite.apply(sig) else {
            tracing::debug!("dropped {} (rewrite to 0)", signal_name(sig));
            return;
        };
        let result = match self.settings.signal_target {
            SignalTarget::Group => sys::process::signal_group(self.app, sent),
            SignalTarget::Child => sys::process::signal_process(self.app, sent),
        };
        match result {
            Ok(()) => {
                tracing::debug!(target = %self.settings.signal_target, "forwarded {} as {}", signal_name(sig), signal_name(sent))
            }
            Err(e) => tracing::warn!("cannot forward {} to the app: {e}", signal_name(sent)),
        }
    }

    fn on_drain_signal(&mut self, sig: c_int) {
        let Some(shutdown) = &mut self.shutdown else {
            self.begin_drain(sig);
            return;
        };
        if sig != libc::SIGTERM {
            shutdown.presses += 1;
        }
        match escalation(sig, shutdown.presses) {
            Escalation::Ignore => tracing::warn!(
                "{} during the drain: the drain is already under way",
                signal_name(sig)
            ),
            Escalation::StopNow if shutdown.stage == Stage::PreStop => {
                tracing::warn!(
                    "{} during the drain: skipping the remaining pre_stop hooks",
                    signal_name(sig)
                );
                self.send_stop_signal(true);
            }
            Escalation::StopNow => tracing::warn!(
                "{} during the drain: the app already has its stop signal; once more kills it",
                signal_name(sig)
            ),
            Escalation::KillNow => {
                tracing::warn!(
                    "{} during the drain, again: killing the app now",
                    signal_name(sig)
                );
                self.kill_app();
            }
        }
    }

    /// The drain, started once: readiness off, pre_stop hooks in order, the stop signal
    /// at `stop_by` at the latest, SIGKILL at `kill_at`.
    fn begin_drain(&mut self, sig: c_int) {
        let deadlines = Deadlines::from_trigger(
            Instant::now(),
            self.settings.grace_period,
            self.settings.stop_timeout,
        );
        self.phase = Phase::Draining;
        self.ready = false;
        let hooks = self.settings.hooks.pre_stop.clone();
        self.events.record(
            Reason::DrainStarted,
            format!(
                "{} received: {} pre_stop hook(s), stop signal by {:?}, SIGKILL at {:?}",
                signal_name(sig),
                hooks.len(),
                deadlines.stop_by - deadlines.started_at,
                deadlines.kill_at - deadlines.started_at,
            ),
        );
        let on_ready = self.on_ready.take().filter(|task| !task.is_finished());
        let pre_stop = (!hooks.is_empty() || on_ready.is_some()).then(|| {
            self.spawn_hooks_after(on_ready, HookPhase::PreStop, hooks, Some(deadlines.stop_by))
        });
        self.shutdown = Some(Shutdown {
            cause: Cause::DrainSignal(sig),
            deadlines,
            stage: Stage::PreStop,
            pre_stop,
            presses: 0,
        });
        if self.shutdown.as_ref().is_some_and(|s| s.pre_stop.is_none()) {
            self.send_stop_signal(false);
        }
    }

    /// Moves the drain to its stop stage; `skip_hooks` aborts pre_stop hooks still
    /// running (their process groups die with them).
    fn send_stop_signal(&mut self, skip_hooks: bool) {
        let Some(shutdown) = &mut self.shutdown else {
            return;
        };
        if shutdown.stage != Stage::PreStop {
            return;
        }
        shutdown.stage = Stage::Stopping;
        if skip_hooks {
            if let Some(task) = shutdown.pre_stop.take() {
                task.abort();
            }
        }
        let stop_signal = self.settings.stop_signal;
        tracing::info!(
            "sending the stop signal {} to the app",
            signal_name(stop_signal)
        );
        self.forward(stop_signal);
    }

    fn kill_app(&mut self) {
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.stage = Stage::Killed;
        }
        self.events.record(
            Reason::Killing,
            format!(
                "sending SIGKILL to the app (pid {}) and its process group",
                self.app
            ),
        );
        if let Err(e) = sys::process::signal_group(self.app, libc::SIGKILL) {
            tracing::warn!("cannot SIGKILL the app's process group: {e}");
        }
        let _ = sys::process::signal_process(self.app, libc::SIGKILL);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let shutdown = self.shutdown.as_ref()?;
        match shutdown.stage {
            Stage::PreStop => Some(shutdown.deadlines.stop_by),
            Stage::Stopping => Some(shutdown.deadlines.kill_at),
            Stage::Killed => None,
        }
    }

    fn on_deadline(&mut self) {
        let Some(shutdown) = &self.shutdown else {
            return;
        };
        match shutdown.stage {
            Stage::PreStop => {
                tracing::warn!(
                    "pre_stop hooks still running at the stop deadline: sending the stop signal now"
                );
                // The hooks are cut at this same deadline by their runner and still report.
                self.send_stop_signal(false);
            }
            Stage::Stopping => self.kill_app(),
            Stage::Killed => {}
        }
    }

    fn on_message(&mut self, message: Message) {
        match message {
            Message::Report(phase, on_failure, report) => self.on_report(phase, on_failure, report),
            Message::PhaseDone(HookPhase::PostStart, true) if self.phase == Phase::Starting => {
                self.phase = Phase::Running;
                self.ready = true;
                tracing::info!("the app is ready");
                let on_ready = self.settings.hooks.on_ready.clone();
                if !on_ready.is_empty() {
                    let task = self.spawn_hooks(HookPhase::OnReady, on_ready, None);
                    self.on_ready = Some(task);
                }
            }
            Message::PhaseDone(HookPhase::PostStart, false) if self.shutdown.is_none() => {
                // Kubernetes: "If a PostStart hook fails, it kills the Container."
                let now = Instant::now();
                self.shutdown = Some(Shutdown {
                    cause: Cause::FailedPostStart,
                    deadlines: Deadlines::from_trigger(
                        now,
                        self.settings.stop_timeout,
                        self.settings.stop_timeout,
                    ),
                    stage: Stage::PreStop,
                    pre_stop: None,
                    presses: 0,
                });
                self.send_stop_signal(false);
            }
            Message::PhaseDone(HookPhase::PreStop, _) => self.send_stop_signal(false),
            Message::PhaseDone(..) => {}
        }
    }

    fn on_report(&mut self, phase: HookPhase, on_failure: OnFailure, report: Report) {
        if report.outcome.is_success() {
            return;
        }
        let message = format!("{}: {}", report.label, report.outcome.describe());
        match (phase, on_failure) {
            (_, OnFailure::Ignore) => tracing::info!("{message} (on_failure = \"ignore\")"),
            (HookPhase::PostStart, _) => self.events.record(Reason::FailedPostStartHook, message),
            (HookPhase::PreStop, _) => self.events.record(Reason::FailedPreStopHook, message),
            _ => tracing::warn!("hook failed: {message}"),
        }
    }

    /// Runs `hooks` in order on a task of their own; each report, then the phase's end,
    /// comes back as a message.
    fn spawn_hooks(
        &self,
        phase: HookPhase,
        hooks: Vec<Hook>,
        deadline: Option<Instant>,
    ) -> JoinHandle<()> {
        self.spawn_hooks_after(None, phase, hooks, deadline)
    }

    /// Like `spawn_hooks`, but first lets `before` finish (until `deadline`, then it is
    /// aborted): a registration still in flight completes before the deregistration.
    fn spawn_hooks_after(
        &self,
        before: Option<JoinHandle<()>>,
        phase: HookPhase,
        hooks: Vec<Hook>,
        deadline: Option<Instant>,
    ) -> JoinHandle<()> {
        let runner = self.runner.clone();
        let sender = self.sender.clone();
        tokio::spawn(async move {
            if let Some(task) = before {
                let abort = task.abort_handle();
                let finished = match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, task).await.is_ok(),
                    None => {
                        let _ = task.await;
                        true
                    }
                };
                if !finished {
                    tracing::warn!("on_ready hooks still running at the stop deadline: aborted");
                    abort.abort();
                }
            }
            let ok = run_in_order(&runner, &hooks, deadline, |hook, report| {
                let _ = sender.send(Message::Report(phase, hook.on_failure, report));
            })
            .await;
            let _ = sender.send(Message::PhaseDone(phase, ok));
        })
    }

    /// After the app exits: stop its hooks, end what it left behind, run post_stop hooks,
    /// and decide the exit code.
    async fn finish(&mut self, status: ExitStatus) -> i32 {
        if self.phase == Phase::Draining {
            let took = self
                .shutdown
                .as_ref()
                .map_or(Default::default(), |s| s.deadlines.started_at.elapsed());
            self.events.record(
                Reason::DrainFinished,
                format!("the app exited ({status}) {took:.3?} after the trigger"),
            );
        } else {
            tracing::info!("the app exited ({status})");
        }
        // Handle the reports already sent (a pre_stop failure racing the app's exit).
        while let Ok(message) = self.messages.try_recv() {
            if let Message::Report(phase, on_failure, report) = message {
                self.on_report(phase, on_failure, report);
            }
        }
        for task in self
            .tasks
            .drain(..)
            .chain(self.on_ready.take())
            .chain(self.shutdown.as_mut().and_then(|s| s.pre_stop.take()))
        {
            task.abort();
        }
        self.kill_leftovers().await;

        let post_stop = self.settings.hooks.post_stop.clone();
        if !post_stop.is_empty() {
            // After a drain the kubelet's SIGKILL comes at the grace period's end: post_stop
            // hooks get what is left of it, not more.
            let deadline = match &self.shutdown {
                Some(Shutdown {
                    cause: Cause::DrainSignal(_),
                    deadlines,
                    ..
                }) => Some(deadlines.kill_at),
                _ => None,
            };
            let runner = self.runner.clone();
            let reports = self
                .while_reaping(async move {
                    let mut reports = Vec::new();
                    run_in_order(&runner, &post_stop, deadline, |hook, report| {
                        reports.push((hook.on_failure, report));
                    })
                    .await;
                    reports
                })
                .await;
            for (on_failure, report) in reports {
                self.on_report(HookPhase::PostStop, on_failure, report);
            }
            self.kill_leftovers().await;
        }
        let runner = self.runner.clone();
        self.while_reaping(runner.finish_output(OUTPUT_AT_EXIT))
            .await;

        match self.shutdown.as_ref().map(|s| s.cause) {
            Some(Cause::FailedPostStart) => exit_code::FAILURE,
            _ => exit_code::for_app(status, &self.settings.remap_exit),
        }
    }

    /// SIGTERM to every process left, SIGKILL after `kill_leftovers_after`, and wait
    /// until all are reaped: PID 1 exiting would SIGKILL them anyway, without a chance
    /// to finish (tini #180, dumb-init #212).
    async fn kill_leftovers(&mut self) {
        if self.reaper.reap() == Children::None {
            return;
        }
        let mut term_deadline = Instant::now() + self.settings.kill_leftovers_after;
        if let Some(shutdown) = &self.shutdown {
            term_deadline = term_deadline.min(shutdown.deadlines.kill_at.max(Instant::now()));
        }
        tracing::info!("the app is gone: sending SIGTERM to the processes it left");
        self.signal_leftovers(libc::SIGTERM);
        if self.all_reaped_by(term_deadline).await {
            return;
        }
        tracing::warn!("processes left by the app outlived SIGTERM: sending SIGKILL");
        self.signal_leftovers(libc::SIGKILL);
        if !self.all_reaped_by(Instant::now() + AFTER_SIGKILL).await {
            tracing::warn!(
                "processes survived SIGKILL for {AFTER_SIGKILL:?} (uninterruptible sleep?); exiting anyway"
            );
        }
    }

    fn signal_leftovers(&self, sig: c_int) {
        if self.pid1 {
            let _ = sys::process::signal_everyone(sig);
            return;
        }
        let _ = sys::process::signal_group(self.app, sig);
        let me = Pid::from_raw(std::process::id() as i32);
        for pid in sys::proc::descendants(me) {
            let _ = sys::process::signal_process(pid, sig);
        }
    }

    async fn all_reaped_by(&mut self, deadline: Instant) -> bool {
        loop {
            if self.reaper.reap() == Children::None {
                return true;
            }
            tokio::select! {
                // Any signal, SIGCHLD included, means: look again.
                _ = self.signals.next() => {}
                _ = sleep_until(deadline) => return self.reaper.reap() == Children::None,
            }
        }
    }

    /// Runs `work` while still reaping on SIGCHLD, which exec hooks need to learn their
    /// status. Other signals are logged: the app is gone.
    async fn while_reaping<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                Some(sig) = self.signals.next() => {
                    if sig == libc::SIGCHLD {
                        self.reaper.reap();
                    } else {
                        tracing::info!("{} after the app exited: nothing to forward it to", signal_name(sig));
                    }
                }
            }
        }
    }
}

/// Runs `hooks` in order, handing each report to `report`, and stops early when one with
/// `on_failure = "fail"` fails (returning false) or when `deadline` has passed: a hook
/// with no time left is not started at all.
async fn run_in_order(
    runner: &Runner,
    hooks: &[Hook],
    deadline: Option<Instant>,
    mut report: impl FnMut(&Hook, Report),
) -> bool {
    for (i, hook) in hooks.iter().enumerate() {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            let skipped: Vec<String> = hooks[i..].iter().map(Hook::label).collect();
            tracing::warn!(
                "the drain deadline has passed: not starting {}",
                skipped.join(", ")
            );
            return true;
        }
        let result = runner.run(hook, deadline).await;
        let failed = !result.outcome.is_success();
        report(hook, result);
        if failed && hook.on_failure == OnFailure::Fail {
            return false;
        }
    }
    true
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
