//! The drain.
//!
//! Kubernetes counts the grace period from the start of the preStop hook, and SIGKILLs
//! at its end. So the deadlines are fixed once, at the trigger T0: `kill_at = T0 +
//! grace_period`, and the pre-stop hooks are cut at `stop_by = kill_at - stop_timeout`,
//! which guarantees the app `stop_timeout` between its stop signal and SIGKILL however
//! long the hooks wanted. The rest of this file is the drain as the supervisor runs it:
//! triggered once, escalated by further drain signals, moved on by its deadlines.

use std::time::Duration;

use libc::c_int;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Phase, Supervisor};
use crate::config::HookPhase;
use crate::events::Reason;
use crate::signals::signal_name;
use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub started_at: Instant,
    /// The latest moment the stop signal is sent.
    pub stop_by: Instant,
    /// SIGKILL for the app.
    pub kill_at: Instant,
}

impl Deadlines {
    pub fn from_trigger(
        started_at: Instant,
        grace_period: Duration,
        stop_timeout: Duration,
    ) -> Self {
        let kill_at = started_at + grace_period;
        // Config validation keeps stop_timeout <= grace_period; saturate all the same.
        let stop_by = kill_at
            .checked_sub(stop_timeout)
            .unwrap_or(started_at)
            .max(started_at);
        Deadlines {
            started_at,
            stop_by,
            kill_at,
        }
    }
}

/// Where the drain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// pre_stop hooks are running.
    PreStop,
    /// The stop signal has been sent; waiting for the app until `kill_at`.
    Stopping,
    /// SIGKILL has been sent.
    Killed,
}

/// What the drain does on a drain signal that arrives after the trigger.
///
/// A repeated SIGTERM changes nothing (kubelets and runtimes may deliver it more than
/// once). Any other drain signal is a person pressing Ctrl-C again: the first one after
/// the trigger skips the remaining pre_stop hooks, the next sends SIGKILL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escalation {
    Ignore,
    StopNow,
    KillNow,
}

/// `presses` counts the non-SIGTERM drain signals since the trigger, this one included.
pub fn escalation(signal: libc::c_int, presses: u32) -> Escalation {
    match (signal, presses) {
        (libc::SIGTERM, _) | (_, 0) => Escalation::Ignore,
        (_, 1) => Escalation::StopNow,
        _ => Escalation::KillNow,
    }
}

/// Why the app is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cause {
    DrainSignal(c_int),
    FailedPostStart,
}

pub(super) struct Shutdown {
    pub(super) cause: Cause,
    pub(super) deadlines: Deadlines,
    pub(super) stage: Stage,
    pub(super) pre_stop: Option<JoinHandle<()>>,
    /// Drain signals other than SIGTERM received since the trigger.
    pub(super) presses: u32,
}

impl Supervisor {
    pub(super) fn on_drain_signal(&mut self, sig: c_int) {
        let Some(shutdown) = &mut self.shutdown else {
            self.begin_drain(sig);
            return;
        };
        if shutdown.cause == Cause::FailedPostStart && self.late_kill_at.is_none() {
            // The app is already being stopped; the SIGKILL comes no later than the
            // drain's would.
            let kill_at =
                self.fix_late_kill_at(sig, "while the app stops after a failed post_start hook");
            if let Some(shutdown) = &mut self.shutdown {
                shutdown.deadlines.kill_at = shutdown.deadlines.kill_at.min(kill_at);
            }
            return;
        }
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

    /// The drain, started once: phase draining (not ready), pre_stop hooks in order, the stop signal
    /// at `stop_by` at the latest, SIGKILL at `kill_at`.
    pub(super) fn begin_drain(&mut self, sig: c_int) {
        let deadlines = Deadlines::from_trigger(
            Instant::now(),
            self.settings.grace_period,
            self.settings.stop_timeout,
        );
        self.phase = Phase::Draining;
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
    pub(super) fn send_stop_signal(&mut self, skip_hooks: bool) {
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
        self.abort_on_ready();
        let stop_signal = self.settings.stop_signal;
        tracing::info!(
            "sending the stop signal {} to the app",
            signal_name(stop_signal)
        );
        self.forward(stop_signal);
    }

    /// A drain trigger at a phase where the app is already stopping or gone (a failed
    /// post_start, the app's own exit): no hook runs and no stop signal goes out, but
    /// kill_at is fixed all the same, since the kubelet's SIGKILL comes at the grace
    /// period's end, and graceinit exits by then.
    pub(super) fn fix_late_kill_at(&mut self, sig: c_int, when: &str) -> Instant {
        let kill_at = Instant::now() + self.settings.grace_period;
        self.late_kill_at = Some(kill_at);
        self.events.record(
            Reason::DrainStarted,
            format!(
                "{} received {when}: exiting within {:?} (the grace period)",
                signal_name(sig),
                self.settings.grace_period
            ),
        );
        kill_at
    }

    /// Stops on_ready hooks still running (a registration racing the stop) or still
    /// awaited by the pre_stop task.
    pub(super) fn abort_on_ready(&mut self) {
        self.on_ready = None;
        if let Some(on_ready) = self.on_ready_abort.take() {
            if !on_ready.is_finished() {
                tracing::warn!("on_ready hooks still running when the app is stopped: aborted");
                on_ready.abort();
            }
        }
    }

    pub(super) fn kill_app(&mut self) {
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

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let shutdown = self.shutdown.as_ref()?;
        match shutdown.stage {
            Stage::PreStop => Some(shutdown.deadlines.stop_by),
            Stage::Stopping => Some(shutdown.deadlines.kill_at),
            Stage::Killed => None,
        }
    }

    pub(super) fn on_deadline(&mut self) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_always_gets_stop_timeout() {
        let t0 = Instant::now();
        let d = Deadlines::from_trigger(t0, Duration::from_secs(30), Duration::from_secs(10));
        assert_eq!(d.kill_at - t0, Duration::from_secs(30));
        assert_eq!(d.stop_by - t0, Duration::from_secs(20));
        assert_eq!(d.kill_at - d.stop_by, Duration::from_secs(10));
    }

    #[test]
    fn stop_timeout_equal_to_grace_leaves_no_hook_time() {
        let t0 = Instant::now();
        let d = Deadlines::from_trigger(t0, Duration::from_secs(5), Duration::from_secs(5));
        assert_eq!(d.stop_by, t0);
        let d = Deadlines::from_trigger(t0, Duration::from_secs(5), Duration::from_secs(9));
        assert_eq!(d.stop_by, t0);
    }

    #[test]
    fn repeated_sigterm_is_ignored_other_drain_signals_escalate_by_count() {
        assert_eq!(escalation(libc::SIGTERM, 1), Escalation::Ignore);
        assert_eq!(escalation(libc::SIGTERM, 5), Escalation::Ignore);
        // Ctrl-C three times: the first started the drain, the second stops, the third kills.
        assert_eq!(escalation(libc::SIGINT, 1), Escalation::StopNow);
        assert_eq!(escalation(libc::SIGINT, 2), Escalation::KillNow);
        assert_eq!(escalation(libc::SIGQUIT, 3), Escalation::KillNow);
    }
}
