//! The drain's deadlines, fixed once at the trigger.
//!
//! Kubernetes counts the grace period from the start of the preStop hook, and SIGKILLs
//! at its end. So: `kill_at = T0 + grace_period`, and the pre-stop hooks are cut at
//! `stop_by = kill_at - stop_timeout`, which guarantees the app `stop_timeout` between
//! its stop signal and SIGKILL however long the hooks wanted.

use std::time::Duration;

use tokio::time::Instant;

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
