//! Hook phases as tasks: each phase's hooks run in order on a task of their own and
//! report back to the supervisor over a channel; the supervisor decides what a result
//! means for the lifecycle (Kubernetes' rules for postStart and preStop).

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::drain::{Cause, Deadlines, Shutdown, Stage};
use super::{Phase, Supervisor};
use crate::config::{Hook, HookPhase, OnFailure};
use crate::events::Reason;
use crate::hooks::{Report, Runner};

/// What hook tasks tell the supervisor.
pub(super) enum Message {
    Report(HookPhase, OnFailure, Report),
    /// A phase's hooks are done; `ok` unless one with `on_failure = "fail"` failed.
    PhaseDone(HookPhase, bool),
}

impl Supervisor {
    pub(super) fn on_message(&mut self, message: Message) {
        match message {
            Message::Report(phase, on_failure, report) => self.on_report(phase, on_failure, report),
            Message::PhaseDone(HookPhase::PostStart, true) if self.phase == Phase::Starting => {
                self.phase = Phase::Running;
                tracing::info!("the app is ready");
                let on_ready = self.settings.hooks.on_ready.clone();
                if !on_ready.is_empty() {
                    let task = self.spawn_hooks(HookPhase::OnReady, on_ready);
                    self.on_ready_abort = Some(task.abort_handle());
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

    pub(super) fn on_report(&mut self, phase: HookPhase, on_failure: OnFailure, report: Report) {
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

    /// Runs `hooks` in order on a task of their own, with no deadline (post_start,
    /// on_ready); each report, then the phase's end, comes back as a message.
    pub(super) fn spawn_hooks(&self, phase: HookPhase, hooks: Vec<Hook>) -> JoinHandle<()> {
        self.spawn_hooks_after(None, phase, hooks, None)
    }

    /// Like `spawn_hooks`, but first lets `before` finish (until `deadline`, then it is
    /// aborted): a registration still in flight completes before the deregistration.
    pub(super) fn spawn_hooks_after(
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
}

/// Runs `hooks` in order, handing each report to `report`, and stops early when one with
/// `on_failure = "fail"` fails (returning false) or when `deadline` has passed: a hook
/// with no time left is not started at all.
pub(super) async fn run_in_order(
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
