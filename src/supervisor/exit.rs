//! After the app exits: end what it left behind, run post_stop hooks, and decide
//! graceinit's exit code.
//!
//! Signals still arrive here. SIGCHLD reaps; a drain signal (the kubelet's SIGTERM,
//! which knows nothing of the app's own exit) fixes `kill_at` as it would have at any
//! other phase, and graceinit exits by then with the app's status.

use std::future::Future;
use std::time::Duration;

use libc::c_int;
use nix::unistd::Pid;
use tokio::time::{Instant, sleep_until};

use super::drain::{Cause, Shutdown};
use super::hook_phases::{Message, run_in_order};
use super::{Phase, Supervisor, sleep_until_some};
use crate::config::HookPhase;
use crate::events::Reason;
use crate::exit_code;
use crate::logging;
use crate::reaper::{Children, ExitStatus};
use crate::signals::signal_name;
use crate::sys;

/// How long leftovers get after the first SIGKILL before graceinit stops waiting for
/// them (only a process stuck in uninterruptible sleep survives SIGKILL that long).
const AFTER_SIGKILL: Duration = Duration::from_secs(5);

/// Between two rounds of SIGKILL for leftovers that are not PID 1's: each round kills
/// what a scan of /proc found; what those forked meanwhile is found by the next.
const KILL_ROUND: Duration = Duration::from_millis(50);

/// How long hook output and log lines still in flight may take to reach stderr before
/// graceinit exits (never past `kill_at` after a drain).
const OUTPUT_AT_EXIT: Duration = Duration::from_secs(1);

impl Supervisor {
    /// After the app exits: stop its hooks, end what it left behind, run post_stop hooks,
    /// and decide the exit code.
    pub(super) async fn finish(&mut self, status: ExitStatus) -> i32 {
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
        for task in self
            .tasks
            .drain(..)
            .chain(self.shutdown.as_mut().and_then(|s| s.pre_stop.take()))
        {
            task.abort();
        }
        self.abort_on_ready();
        self.handle_reports();
        self.kill_leftovers().await;

        let post_stop = self.settings.hooks.post_stop.clone();
        if !post_stop.is_empty() {
            let runner = self.runner.clone();
            let sender = self.sender.clone();
            let deadline = self.exit_deadline();
            let ran = self
                .while_reaping(async move {
                    run_in_order(&runner, &post_stop, deadline, |hook, report| {
                        let _ = sender.send(Message::Report(
                            HookPhase::PostStop,
                            hook.on_failure,
                            report,
                        ));
                    })
                    .await
                })
                .await;
            if ran.is_none() {
                tracing::warn!(
                    "post_stop hooks still running at the drain's SIGKILL time: cut short"
                );
            }
            self.handle_reports();
            self.kill_leftovers().await;
        }
        let output_by = self
            .exit_deadline()
            .map_or(Instant::now() + OUTPUT_AT_EXIT, |kill_at| {
                kill_at.min(Instant::now() + OUTPUT_AT_EXIT)
            });
        let runner = self.runner.clone();
        self.while_reaping(async move {
            runner.finish_output(output_by).await;
            // The wait for the log writer blocks: on a thread of its own, not the loop.
            let flushed = tokio::task::spawn_blocking(move || logging::flush(output_by.into_std()));
            let _ = flushed.await;
        })
        .await;

        match self.shutdown.as_ref().map(|s| s.cause) {
            Some(Cause::FailedPostStart) => exit_code::FAILURE,
            _ => exit_code::for_app(status, &self.settings.remap_exit),
        }
    }

    /// Hook reports already sent (a pre_stop failure racing the app's exit, post_stop
    /// reports).
    fn handle_reports(&mut self) {
        while let Ok(message) = self.messages.try_recv() {
            if let Message::Report(phase, on_failure, report) = message {
                self.on_report(phase, on_failure, report);
            }
        }
    }

    /// The SIGKILL time of a drain, which graceinit must not outlive: Kubernetes kills
    /// the container then.
    fn exit_deadline(&self) -> Option<Instant> {
        match &self.shutdown {
            Some(Shutdown {
                cause: Cause::DrainSignal(_),
                deadlines,
                ..
            }) => Some(deadlines.kill_at),
            _ => self.late_kill_at,
        }
    }

    /// SIGTERM to every process left, SIGKILL after `kill_leftovers_after`, and wait
    /// until all are reaped: PID 1 exiting would SIGKILL them anyway, without a chance
    /// to finish (tini #180, dumb-init #212).
    async fn kill_leftovers(&mut self) {
        if self.reaper.reap() == Children::None {
            return;
        }
        let past_kill_at = self
            .exit_deadline()
            .is_some_and(|kill_at| Instant::now() >= kill_at);
        // Past the drain's SIGKILL time there is no time left for a SIGTERM round.
        if !past_kill_at {
            let term_deadline = Instant::now() + self.settings.kill_leftovers_after;
            tracing::info!("the app is gone: sending SIGTERM to the processes it left");
            self.signal_leftovers(libc::SIGTERM).await;
            if self.all_reaped_by(term_deadline).await {
                return;
            }
            tracing::warn!("processes left by the app outlived SIGTERM: sending SIGKILL");
        }
        let started = Instant::now();
        // Never past the drain's SIGKILL time (but one round at least).
        let give_up = self
            .exit_deadline()
            .map_or(Instant::now() + AFTER_SIGKILL, |kill_at| {
                kill_at.clamp(Instant::now() + KILL_ROUND, Instant::now() + AFTER_SIGKILL)
            });
        loop {
            self.signal_leftovers(libc::SIGKILL).await;
            let round = (Instant::now() + KILL_ROUND).min(give_up);
            if self.all_reaped_by(round).await {
                return;
            }
            if Instant::now() >= give_up {
                tracing::warn!(
                    "processes survived SIGKILL for {:?} (uninterruptible sleep?); exiting anyway",
                    started.elapsed()
                );
                return;
            }
        }
    }

    /// As PID 1, `kill(-1)` reaches everyone. As a subreaper, the app's group and every
    /// descendant found in /proc, read on a thread of its own (the loop never blocks).
    async fn signal_leftovers(&self, sig: c_int) {
        if self.pid1 {
            let _ = sys::process::signal_everyone(sig);
            return;
        }
        let app = self.app;
        let scan = tokio::task::spawn_blocking(move || {
            let _ = sys::process::signal_group(app, sig);
            let me = Pid::from_raw(std::process::id() as i32);
            for pid in sys::proc::descendants(me) {
                let _ = sys::process::signal_process(pid, sig);
            }
        });
        // Awaited, so that one scan runs at a time (on a crowded host one takes a good
        // part of a second, and rounds must not pile up on the blocking pool).
        let _ = scan.await;
    }

    /// Reaps until no child is left (true) or `deadline`, or the drain's SIGKILL time,
    /// has come (false).
    async fn all_reaped_by(&mut self, deadline: Instant) -> bool {
        loop {
            if self.reaper.reap() == Children::None {
                return true;
            }
            let until = self.exit_deadline().map_or(deadline, |d| d.min(deadline));
            if Instant::now() >= until {
                return self.reaper.reap() == Children::None;
            }
            tokio::select! {
                // Any signal, SIGCHLD included, means: look again.
                Some(sig) = self.signals.next() => self.on_signal_after_exit(sig),
                _ = sleep_until(until) => return self.reaper.reap() == Children::None,
            }
        }
    }

    /// Runs `work` while still reaping on SIGCHLD, which exec hooks need to learn their
    /// status. None when the drain's SIGKILL time came first (`work` is dropped, which
    /// kills the process group of a hook that was running).
    async fn while_reaping<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        loop {
            let exit_deadline = self.exit_deadline();
            if exit_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return None;
            }
            tokio::select! {
                result = &mut work => return Some(result),
                Some(sig) = self.signals.next() => self.on_signal_after_exit(sig),
                _ = sleep_until_some(exit_deadline) => return None,
            }
        }
    }

    fn on_signal_after_exit(&mut self, sig: c_int) {
        if sig == libc::SIGCHLD {
            self.reaper.reap();
        } else if self.settings.drain_signals.contains(&sig) && self.exit_deadline().is_none() {
            self.fix_late_kill_at(sig, "after the app exited");
        } else {
            tracing::info!(
                "{} after the app exited: nothing to forward it to",
                signal_name(sig)
            );
        }
    }
}
