//! The drain's arithmetic and the restart back-off: plain functions of time, no state.
//!
//! Kubernetes counts the grace period from the start of the preStop hook, and SIGKILLs
//! at its end. So the drain's deadlines are fixed once, at the trigger T0: `kill_at = T0 +
//! grace_period`, and the pre-stop hooks are cut at `stop_by = kill_at - stop_timeout`,
//! which guarantees the app `stop_timeout` between its stop signal and SIGKILL however
//! long the hooks wanted.

use std::time::Duration;

use libc::c_int;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub started_at: Instant,
    /// The latest moment the stop signal is sent.
    pub stop_by: Instant,
    /// SIGKILL for the app; graceinit itself is gone by then too.
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
pub fn escalation(signal: c_int, presses: u32) -> Escalation {
    match (signal, presses) {
        (libc::SIGTERM, _) | (_, 0) => Escalation::Ignore,
        (_, 1) => Escalation::StopNow,
        _ => Escalation::KillNow,
    }
}

/// Kubernetes' restart back-off (the kubelet's `flowcontrol.Backoff` for crashed
/// containers): the first restart at once, then `base`, doubling up to `cap`; the
/// sequence starts over once the app has run for twice the cap (10 min with the
/// kubelet's 5 min cap) before it exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            next: Duration::ZERO,
        }
    }

    /// The delay before the next start of an app that ran for `ran_for`.
    pub fn delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.cap.saturating_mul(2) {
            self.next = Duration::ZERO;
        }
        let delay = self.next;
        self.next = if delay.is_zero() {
            self.base.min(self.cap)
        } else {
            delay.saturating_mul(2).min(self.cap)
        };
        delay
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

    #[test]
    fn backoff_is_kubernetes_immediate_then_doubling_to_the_cap() {
        let secs = Duration::from_secs;
        let mut backoff = Backoff::new(secs(10), secs(300));
        let delays: Vec<u64> = (0..8).map(|_| backoff.delay(secs(1)).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn backoff_starts_over_after_twice_the_cap_of_running() {
        let secs = Duration::from_secs;
        let mut backoff = Backoff::new(secs(10), secs(300));
        for _ in 0..4 {
            backoff.delay(secs(1));
        }
        // Just short of 10 minutes: still backing off.
        assert_eq!(backoff.delay(secs(599)), secs(80));
        assert_eq!(backoff.delay(secs(600)), Duration::ZERO);
        assert_eq!(backoff.delay(secs(1)), secs(10));
    }

    #[test]
    fn a_base_above_the_cap_is_the_cap() {
        let secs = Duration::from_secs;
        let mut backoff = Backoff::new(secs(10), secs(4));
        assert_eq!(backoff.delay(secs(0)), Duration::ZERO);
        assert_eq!(backoff.delay(secs(0)), secs(4));
        assert_eq!(backoff.delay(secs(0)), secs(4));
    }
}
