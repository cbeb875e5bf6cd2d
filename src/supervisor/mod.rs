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
mod report;
mod snapshot;

pub use lifecycle::{Health, HookRecord, StopCause, Trigger};
pub use report::TrafficReport;
pub use snapshot::{Check, Phase, Snapshot, time_left, wall_clock};

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

use crate::config::Settings;
use crate::control::SocketFile;
use crate::exit_code;
use crate::reaper::Reaper;
use crate::signals::{Incoming, signal_name};
use crate::sys;
use crate::sys::signals::InheritedSignals;
use executor::Executor;
use lifecycle::{Action, Input, Lifecycle};

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
        let (request_sender, requests) = mpsc::unbounded_channel();
        let (published, snapshot) = watch::channel(Snapshot::initial());
        let handle = Handle {
            snapshot,
            requests: request_sender,
        };
        // Before the app starts: a listener that cannot be had is an error now, not an
        // app running without the health endpoints its pod relies on.
        let socket_file = match start_servers(&settings, pid1, handle) {
            Ok(socket_file) => socket_file,
            Err(e) => {
                tracing::error!("{e}");
                return exit_code::FAILURE;
            }
        };
        let mut inbox = Inbox {
            now: VecDeque::new(),
            receiver,
            signals,
            requests,
            waiters: HashMap::new(),
            last_waiter: 0,
        };
        let name = format!("{:?}", command[0]);
        let mut lifecycle = Lifecycle::new(settings.clone(), name, pid1);
        let mut executor = Executor::new(settings, reaper, command, pid1, take_terminal, sender);
        let code = supervise(&mut lifecycle, &mut executor, &mut inbox, &published).await;
        if let Some(socket_file) = socket_file {
            socket_file.remove();
        }
        // Exit here: the log was flushed by the lifecycle's last step (within the drain's
        // deadline), and dropping the runtime would only cost time.
        std::process::exit(code)
    })
}

/// The endpoints and the control socket, each off unless configured (the socket is on by
/// default as PID 1), serving from `handle` on tasks of their own. Returns the socket's
/// file, to remove at exit.
fn start_servers(
    settings: &Settings,
    pid1: bool,
    handle: Handle,
) -> Result<Option<SocketFile>, String> {
    if let Some(address) = crate::http::start(settings, handle.clone())? {
        tracing::info!("serving the health endpoints on http://{address}");
    }
    let socket_file = crate::control::start(settings, pid1, handle)?;
    if let Some(socket_file) = &socket_file {
        tracing::debug!(
            "serving the control socket at {}",
            socket_file.path().display()
        );
    }
    Ok(socket_file)
}

/// What the endpoints and the control socket hold: the lifecycle's snapshot, and a way
/// to ask for the drain.
#[derive(Clone)]
pub struct Handle {
    snapshot: watch::Receiver<Snapshot>,
    requests: mpsc::UnboundedSender<Request>,
}

/// What the endpoints and the control socket may ask of the supervisor.
pub enum Request {
    /// Start or join the drain; answered when its pre_stop hooks are done.
    Drain(oneshot::Sender<Result<String, String>>),
}

impl Handle {
    /// What the supervisor knows now.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// `read` of what the supervisor knows now, without a copy (the snapshot is locked
    /// for the supervisor's next change meanwhile: keep `read` short).
    pub fn with_snapshot<R>(&self, read: impl FnOnce(&Snapshot) -> R) -> R {
        read(&self.snapshot.borrow())
    }

    /// Starts the drain (or joins the one under way) and waits until its pre_stop hooks
    /// are done: Ok with a summary, or Err with the failure.
    pub async fn drain(&self) -> Result<String, String> {
        let (answer, answered) = oneshot::channel();
        if self.requests.send(Request::Drain(answer)).is_err() {
            return Err("graceinit is exiting".into());
        }
        answered
            .await
            .unwrap_or_else(|_| Err("graceinit is exiting".into()))
    }
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
            match action {
                Action::Exit(code) => return code,
                Action::AnswerDrain { waiters, outcome } => inbox.answer(waiters, outcome),
                action => {
                    if let Some(input) = executor.execute(action) {
                        inbox.now.push_back(input);
                    }
                }
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
    /// Drain requests from the endpoints and the control socket.
    requests: mpsc::UnboundedReceiver<Request>,
    /// Requesters waiting for the drain's pre_stop hooks, by the number the lifecycle
    /// knows them by.
    waiters: HashMap<u64, oneshot::Sender<Result<String, String>>>,
    last_waiter: u64,
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
            Some(Request::Drain(answer)) = self.requests.recv() => {
                // Requesters that hung up meanwhile (a /prestop client gone) are forgotten
                // here, so that many of them cost no memory.
                self.waiters.retain(|_, waiting| !waiting.is_closed());
                self.last_waiter += 1;
                self.waiters.insert(self.last_waiter, answer);
                Input::DrainRequested(self.last_waiter)
            }
        }
    }

    fn answer(&mut self, waiters: Vec<u64>, outcome: Result<String, String>) {
        for waiter in waiters {
            if let Some(answer) = self.waiters.remove(&waiter) {
                // The requester may have gone (a client that hung up).
                let _ = answer.send(outcome.clone());
            }
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
