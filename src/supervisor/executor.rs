//! Carries out the lifecycle's actions: the only place the supervisor starts processes,
//! sends signals, runs hook phases and flushes the log. What an action learns at once
//! (the app's pid, what a reap found) comes back as an input; what takes time (a hook
//! phase, a scan of /proc, the flush) reports into the inbox when done.

use std::collections::HashMap;
use std::ffi::OsString;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Level;

use super::lifecycle::{Action, Input, Target, probe_of, slot};
use crate::config::{Hook, HookPhase, OnFailure, Settings};
use crate::events;
use crate::exit_code;
use crate::hooks::{Report, Runner};
use crate::logging;
use crate::probes::{self, ProbeKind};
use crate::reaper::Reaper;
use crate::signals::signal_name;
use crate::sys;
use crate::traffic;

pub(super) struct Executor {
    settings: Arc<Settings>,
    reaper: Arc<Reaper>,
    runner: Arc<Runner>,
    command: Vec<OsString>,
    pid1: bool,
    take_terminal: bool,
    inbox: UnboundedSender<Input>,
    /// The running phase task of PostStart, OnReady, PreStop, PostStop.
    hook_runs: [Option<AbortHandle>; 4],
    /// The running task of each probe.
    probe_runs: HashMap<ProbeKind, AbortHandle>,
    /// The drain's traffic sampler, and how to tell it to take its last sample.
    traffic_watch: Option<(AbortHandle, oneshot::Sender<()>)>,
}

impl Executor {
    pub fn new(
        settings: Arc<Settings>,
        reaper: Arc<Reaper>,
        command: Vec<OsString>,
        pid1: bool,
        take_terminal: bool,
        inbox: UnboundedSender<Input>,
    ) -> Self {
        Executor {
            settings,
            runner: Arc::new(Runner::new(reaper.clone())),
            reaper,
            command,
            pid1,
            take_terminal,
            inbox,
            hook_runs: Default::default(),
            probe_runs: HashMap::new(),
            traffic_watch: None,
        }
    }

    /// Carries out `action` (never `Exit`, which is the loop's).
    pub fn execute(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::StartApp => return Some(self.start_app()),
            Action::Forward { sig, sent, to } => self.forward(sig, sent, to),
            Action::KillApp(pid) => {
                if let Err(e) = sys::process::signal_group(pid, libc::SIGKILL) {
                    tracing::warn!("cannot SIGKILL the app's process group: {e}");
                }
                let _ = sys::process::signal_process(pid, libc::SIGKILL);
            }
            Action::StopSelf => sys::process::stop_self(),
            Action::Reap => return Some(Input::Reaped(self.reaper.reap())),
            Action::RunHooks {
                phase,
                run,
                deadline,
            } => self.run_hooks(phase, run, deadline),
            Action::AbortHooks(phase) => {
                // The task's hook, if one runs, loses its process group as it is dropped.
                if let Some(task) = self.hook_runs[slot(phase)].take() {
                    task.abort();
                }
            }
            Action::StartProbe { kind, run, first } => self.start_probe(kind, run, first),
            Action::StopProbe(kind) => {
                if let Some(task) = self.probe_runs.remove(&kind) {
                    task.abort();
                }
            }
            Action::WatchTraffic => self.watch_traffic(),
            Action::FinishWatchingTraffic => {
                if let Some((_, finish)) = self.traffic_watch.take() {
                    let _ = finish.send(());
                }
            }
            Action::SignalLeftovers { sig, app } => return self.signal_leftovers(sig, app),
            Action::FlushOutput { by } => return self.flush_output(by),
            Action::Announce(event) => events::log(&event),
            Action::Log(level, message) => log(level, &message),
            Action::AnswerDrain { .. } | Action::Exit(_) => {
                unreachable!("the loop's own: {action:?}")
            }
        }
        None
    }

    fn start_app(&mut self) -> Input {
        let mut command = Command::new(&self.command[0]);
        command.args(&self.command[1..]);
        let inbox = self.inbox.clone();
        // The reaper hands the app's status straight to the inbox.
        let on_exit = Box::new(move |pid, status| drop(inbox.send(Input::AppExited(pid, status))));
        match self
            .reaper
            .spawn_with(&mut command, self.take_terminal, on_exit)
        {
            Ok(pid) => Input::AppStarted(pid),
            Err(e) => {
                tracing::error!("cannot run {:?}: {e}", self.command[0]);
                Input::AppNotStarted(exit_code::for_spawn_error(&e))
            }
        }
    }

    fn forward(&self, sig: libc::c_int, sent: libc::c_int, to: Target) {
        let result = match to {
            Target::Group(pid) => sys::process::signal_group(pid, sent),
            Target::Process(pid) => sys::process::signal_process(pid, sent),
        };
        match result {
            Ok(()) => tracing::debug!(
                target = %self.settings.signal_target,
                "forwarded {} as {}",
                signal_name(sig),
                signal_name(sent)
            ),
            Err(e) => tracing::warn!("cannot forward {} to the app: {e}", signal_name(sent)),
        }
    }

    /// The phase's hooks in order on a task of their own; each report, then the phase's
    /// end, comes back as an input.
    fn run_hooks(&mut self, phase: HookPhase, run: u64, deadline: Option<Instant>) {
        let hooks = match phase {
            HookPhase::PostStart => &self.settings.hooks.post_start,
            HookPhase::OnReady => &self.settings.hooks.on_ready,
            HookPhase::PreStop => &self.settings.hooks.pre_stop,
            HookPhase::PostStop => &self.settings.hooks.post_stop,
        }
        .clone();
        let runner = self.runner.clone();
        let inbox = self.inbox.clone();
        let task = tokio::spawn(async move {
            let ok = run_in_order(&runner, &hooks, deadline, |hook, report| {
                let _ = inbox.send(Input::HookDone {
                    phase,
                    run,
                    index: hook.index,
                    on_failure: hook.on_failure,
                    report,
                });
            })
            .await;
            let _ = inbox.send(Input::PhaseDone { phase, run, ok });
        });
        if let Some(earlier) = self.hook_runs[slot(phase)].replace(task.abort_handle()) {
            earlier.abort();
        }
    }

    fn start_probe(&mut self, kind: ProbeKind, run: u64, first: Duration) {
        let Some(probe) = probe_of(&self.settings, kind) else {
            return;
        };
        let inbox = self.inbox.clone();
        let task = probes::spawn(
            kind,
            probe.clone(),
            first,
            self.runner.clone(),
            move |result| {
                let _ = inbox.send(Input::ProbeResult { kind, run, result });
            },
        );
        if let Some(earlier) = self.probe_runs.insert(kind, task.abort_handle()) {
            earlier.abort();
        }
    }

    /// Samples the traffic of what the first `wait_quiet` pre_stop hook watches (or of
    /// every listener but graceinit's own) until stopped; each change, and the first
    /// sample, comes back as an input. A failed sample ends it.
    fn watch_traffic(&mut self) {
        let (ports, ignore) = self
            .settings
            .hooks
            .pre_stop
            .iter()
            .find_map(|hook| match &hook.action {
                crate::config::Action::WaitQuiet(wait) => {
                    Some((wait.ports.clone(), wait.ignore.clone()))
                }
                _ => None,
            })
            .unwrap_or_default();
        let inbox = self.inbox.clone();
        let (finish, mut finished) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut sampler = traffic::Sampler::new(&ports, &ignore);
            let mut last_open = None;
            let mut failing = false;
            loop {
                let next = Instant::now() + traffic::PERIOD;
                let seen = sampler.next().await;
                // Sent on a change only: the first sample, arrivals, a new open count,
                // a failure (or the end of one).
                let changed = match &seen {
                    Ok(seen) => seen.arrivals > 0 || last_open != Some(seen.open) || failing,
                    Err(_) => !failing,
                };
                failing = seen.is_err();
                if let Ok(seen) = &seen {
                    last_open = Some(seen.open);
                }
                if changed {
                    let _ = inbox.send(Input::Traffic { seen, last: false });
                }
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    _ = &mut finished => break,
                }
            }
            let seen = sampler.last().await;
            let _ = inbox.send(Input::Traffic { seen, last: true });
        });
        if let Some((earlier, _)) = self.traffic_watch.replace((task.abort_handle(), finish)) {
            earlier.abort();
        }
    }

    /// As PID 1, `kill(-1)` reaches everyone. As a subreaper, the app's group and every
    /// descendant found in /proc, read on a thread of its own (the loop never blocks);
    /// the lifecycle waits for one scan before it asks for the next, so that scans do not
    /// pile up on a crowded host.
    fn signal_leftovers(&self, sig: libc::c_int, app: Pid) -> Option<Input> {
        if self.pid1 {
            let _ = sys::process::signal_everyone(sig);
            return Some(Input::LeftoversSignalled);
        }
        let inbox = self.inbox.clone();
        tokio::task::spawn_blocking(move || {
            let _ = sys::process::signal_group(app, sig);
            let me = Pid::from_raw(std::process::id() as i32);
            for pid in sys::proc::descendants(me) {
                let _ = sys::process::signal_process(pid, sig);
            }
            let _ = inbox.send(Input::LeftoversSignalled);
        });
        None
    }

    /// Hook output and log lines in flight reach stderr, by `by` at the latest. With
    /// nothing in flight (a quiet run) it is done at once: no task, no thread.
    fn flush_output(&self, by: Instant) -> Option<Input> {
        if !self.runner.output_in_flight() && !logging::pending() {
            return Some(Input::OutputFlushed);
        }
        let runner = self.runner.clone();
        let inbox = self.inbox.clone();
        tokio::spawn(async move {
            runner.finish_output(by).await;
            // The wait for the log writer blocks: on a thread of its own, not the loop.
            let flushed = tokio::task::spawn_blocking(move || logging::flush(by.into_std()));
            let _ = flushed.await;
            let _ = inbox.send(Input::OutputFlushed);
        });
        None
    }
}

fn log(level: Level, message: &str) {
    match level {
        Level::ERROR => tracing::error!("{message}"),
        Level::WARN => tracing::warn!("{message}"),
        Level::INFO => tracing::info!("{message}"),
        Level::DEBUG => tracing::debug!("{message}"),
        Level::TRACE => tracing::trace!("{message}"),
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
