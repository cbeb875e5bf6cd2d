//! After the app exits: end what it left behind, run post_stop hooks, and decide
//! graceinit's exit code.

use std::future::Future;

use futures_util::StreamExt;
use libc::c_int;
use nix::unistd::Pid;
use tokio::time::{Instant, sleep_until};

use super::drain::{Cause, Shutdown};
use super::hook_phases::{Message, run_in_order};
use super::{Phase, Supervisor};
use crate::config::HookPhase;
use crate::events::Reason;
use crate::exit_code;
use crate::reaper::{Children, ExitStatus};
use crate::signals::signal_name;
use crate::sys;

/// How long leftovers get after SIGKILL before graceinit stops waiting for them (only a
/// process stuck in uninterruptible sleep survives SIGKILL that long).
const AFTER_SIGKILL: std::time::Duration = std::time::Duration::from_secs(5);

/// How long hook output still in flight may take to reach stderr before graceinit exits.
const OUTPUT_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(1);

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
    pub(super) async fn kill_leftovers(&mut self) {
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

    pub(super) fn signal_leftovers(&self, sig: c_int) {
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

    pub(super) async fn all_reaped_by(&mut self, deadline: Instant) -> bool {
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
    pub(super) async fn while_reaping<T>(&mut self, work: impl Future<Output = T>) -> T {
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
