//! The supervisor: one loop reads one inbox (signals, the app's exit from the reaper,
//! hook results, the lifecycle's timer, and next drain requests), hands each input to the
//! lifecycle, and has the executor carry out the actions that come back.
//!
//! - `lifecycle.rs`: the state machine, plain data; every decision (the drain, the stop
//!   signal, SIGKILL, a restart) is taken there, with no I/O.
//! - `deadlines.rs`: the drain's arithmetic and the restart back-off.
//! - `executor.rs`: the actions' side effects (processes, signals, hook tasks, the log).
//! - `snapshot.rs`: what the lifecycle publishes on every change, for the endpoints.
//!
//! While idle the loop sleeps in `epoll_wait` with no timer armed: the lifecycle asks for
//! a wake-up only while a drain, a back-off or the end of the app is under way.

mod deadlines;
mod executor;
mod lifecycle;
mod snapshot;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::config::Settings;
use crate::exit_code;
use crate::reaper::Reaper;
use crate::signals::{Incoming, signal_name};
use crate::sys;
use crate::sys::signals::InheritedSignals;
use executor::Executor;
use lifecycle::{Action, Input, Lifecycle};
use snapshot::Snapshot;

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

    let runtime = match crate::runtime::event_loop() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the event loop: {e}");
            return exit_code::FAILURE;
        }
    };
    let settings = Arc::new(settings);
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
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut inbox = Inbox {
            now: VecDeque::new(),
            receiver,
            signals,
        };
        let name = format!("{:?}", command[0]);
        let mut lifecycle = Lifecycle::new(settings.clone(), name, pid1);
        let mut executor = Executor::new(settings, reaper, command, pid1, take_terminal, sender);
        let (published, _) = watch::channel(Snapshot::initial());
        let code = supervise(&mut lifecycle, &mut executor, &mut inbox, &published).await;
        // Exit here: the log was flushed by the lifecycle's last step (within the drain's
        // deadline), and dropping the runtime would only cost time.
        std::process::exit(code)
    })
}

/// The loop, until the lifecycle says exit.
async fn supervise(
    lifecycle: &mut Lifecycle,
    executor: &mut Executor,
    inbox: &mut Inbox,
    published: &watch::Sender<Snapshot>,
) -> i32 {
    let mut actions: VecDeque<Action> = lifecycle.start().into();
    let mut revision = None;
    loop {
        while let Some(action) = actions.pop_front() {
            if let Action::Exit(code) = action {
                return code;
            }
            if let Some(input) = executor.execute(action) {
                inbox.now.push_back(input);
            }
        }
        if revision != Some(lifecycle.revision()) {
            revision = Some(lifecycle.revision());
            let snapshot = lifecycle.snapshot();
            tracing::debug!(
                phase = snapshot.phase.name(),
                ready = snapshot.ready,
                "lifecycle"
            );
            published.send_replace(snapshot);
        }
        let input = inbox.next(lifecycle.wake_at()).await;
        actions.extend(lifecycle.on(input, Instant::now()));
    }
}

/// Every input of the lifecycle, from wherever it comes.
struct Inbox {
    /// What the executor learnt at once; first, in order.
    now: VecDeque<Input>,
    /// The app's exit (sent by the reaper), hook results, leftovers signalled, output
    /// flushed.
    receiver: mpsc::UnboundedReceiver<Input>,
    signals: Incoming,
}

impl Inbox {
    async fn next(&mut self, wake_at: Option<Instant>) -> Input {
        if let Some(input) = self.now.pop_front() {
            return input;
        }
        // Checked by hand too: while signals keep arriving the loop never parks, and
        // tokio's timers only fire when it does.
        if wake_at.is_some_and(|at| Instant::now() >= at) {
            return Input::Timer;
        }
        tokio::select! {
            // The app's exit and hook results first, then the lifecycle's deadlines: a
            // storm of signals from outside must delay neither.
            biased;
            Some(input) = self.receiver.recv() => input,
            _ = sleep_until_some(wake_at) => Input::Timer,
            Some(sig) = self.signals.next() => Input::Signal(sig),
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
