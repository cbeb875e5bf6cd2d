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
//!
//! This file has the event loop and signal forwarding; `drain.rs` the drain (deadlines
//! fixed at the trigger, escalation, stop signal, SIGKILL); `hook_phases.rs` the hook
//! phases as tasks and what their results mean; `exit.rs` what follows the app's exit
//! (leftovers, post_stop hooks, the exit code).

mod drain;
mod exit;
mod hook_phases;

use std::ffi::OsString;
use std::process::Command;
use std::sync::Arc;

use libc::c_int;
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{Instant, sleep_until};

use crate::config::{HookPhase, Settings};
use crate::events::{EventLog, Reason};
use crate::exit_code;
use crate::hooks::Runner;
use crate::reaper::{ExitStatus, Reaper};
use crate::signals::{Incoming, SignalTarget, signal_name};
use crate::sys;
use crate::sys::signals::InheritedSignals;
use drain::Shutdown;
use hook_phases::Message;

/// Runs `command` as the app under `settings` and returns graceinit's exit code.
///
/// `inherited` was captured first thing, before any thread existed; signals have been
/// blocked since then and are read from a signalfd (`Incoming`), so none is lost.
pub fn run(settings: Settings, command: Vec<OsString>, inherited: InheritedSignals) -> i32 {
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
    let reaper = Arc::new(Reaper::new(inherited, settings.warn_on_reap));
    runtime.block_on(async move {
        // Signals have been blocked since start-up: whatever arrived before is read now.
        let signals = match Incoming::open() {
            Ok(signals) => signals,
            Err(e) => {
                tracing::error!("cannot open a signalfd: {e}");
                return exit_code::FAILURE;
            }
        };
        match Supervisor::start(settings, command, reaper, pid1, take_terminal, signals).await {
            // Exit here: nothing is left to do (the log was flushed by `finish`, within
            // the drain's deadline), and dropping the runtime would only cost time.
            Ok(code) => std::process::exit(code),
            Err(code) => code,
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Draining,
}

struct Supervisor {
    settings: Arc<Settings>,
    reaper: Arc<Reaper>,
    runner: Arc<Runner>,
    events: EventLog,
    signals: Incoming,
    pid1: bool,
    app: Pid,
    phase: Phase,
    shutdown: Option<Shutdown>,
    messages: mpsc::UnboundedReceiver<Message>,
    sender: mpsc::UnboundedSender<Message>,
    tasks: Vec<JoinHandle<()>>,
    /// The on_ready hooks while they run: a drain waits for them before deregistering.
    on_ready: Option<JoinHandle<()>>,
    /// Aborts the on_ready hooks, wherever their task handle went: a registration must
    /// never land after the app was told to stop.
    on_ready_abort: Option<AbortHandle>,
    /// SIGKILL time fixed by a drain signal that came after the app exited by itself.
    late_kill_at: Option<Instant>,
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
        signals: Incoming,
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
            messages,
            sender,
            tasks: Vec::new(),
            on_ready: None,
            on_ready_abort: None,
            late_kill_at: None,
        };
        supervisor.events.record(
            Reason::Started,
            format!("app {:?} is pid {}", command[0], spawned.pid),
        );
        let post_start = supervisor.settings.hooks.post_start.clone();
        let task = supervisor.spawn_hooks(HookPhase::PostStart, post_start);
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
            // Checked by hand too: while signals keep arriving the loop never parks, and
            // tokio's timers only fire when it does.
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                self.on_deadline();
                continue;
            }
            tokio::select! {
                // The app's exit first: a storm of SIGCHLD from orphans must not delay it.
                biased;
                status = &mut app_exit => {
                    // The sender lives in the reaper's table until the app is reaped.
                    return status.unwrap_or(ExitStatus::Exited(exit_code::FAILURE));
                }
                // Deadlines and hook reports before signals: a storm of signals from
                // outside must not delay the drain's SIGKILL.
                _ = sleep_until_some(deadline) => self.on_deadline(),
                Some(message) = self.messages.recv() => self.on_message(message),
                Some(sig) = self.signals.next() => self.on_signal(sig),
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
}

pub(super) async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
