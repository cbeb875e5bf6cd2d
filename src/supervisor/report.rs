//! The drain's report of the app's traffic: what the sampler of [`crate::traffic`] saw from
//! the trigger to the app's exit, so that a user can tell from evidence whether the quiet
//! window was long enough (arrivals after the stop signal were lost or cut short, or
//! nearly). Plain data, updated by the lifecycle; no I/O.

use std::fmt::Write as _;

use tokio::time::Instant;

use crate::traffic::Observed;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficReport {
    /// Connections open to the watched listeners at the trigger (the first sample); None
    /// until it is taken, or if it could not be.
    pub open_at_trigger: Option<usize>,
    /// Connections open at the last sample.
    pub open: usize,
    /// New connections, and requests on open ones, after readiness went false.
    pub arrivals: u64,
    pub last_arrival_at: Option<Instant>,
    /// Of the arrivals, those after the app's stop signal.
    pub arrivals_after_stop_signal: u64,
    /// Open at the stop signal: the last sample before it (or the first after, if none
    /// was taken before).
    pub open_at_stop_signal: Option<usize>,
    /// Open at SIGKILL, likewise.
    pub open_at_kill: Option<usize>,
    /// A sample failed: the report may be short (or, without a first sample, empty).
    pub unavailable: bool,
}

impl TrafficReport {
    /// One sample's news. `stop_signal_sent` and `killed` say how far the drain is.
    pub fn observed(&mut self, seen: Observed, now: Instant, stop_signal_sent: bool, killed: bool) {
        if self.open_at_trigger.is_none() {
            // The baseline: what is open at the trigger did not arrive after it.
            self.open_at_trigger = Some(seen.open);
        } else if seen.arrivals > 0 {
            self.arrivals += seen.arrivals as u64;
            self.last_arrival_at = Some(now);
            if stop_signal_sent {
                self.arrivals_after_stop_signal += seen.arrivals as u64;
            }
        }
        self.open = seen.open;
        if stop_signal_sent {
            self.open_at_stop_signal.get_or_insert(seen.open);
        }
        if killed {
            self.open_at_kill.get_or_insert(seen.open);
        }
    }

    pub fn stop_signal_sent(&mut self) {
        if self.sampled() {
            self.open_at_stop_signal = Some(self.open);
        }
    }

    pub fn killed(&mut self) {
        if self.sampled() {
            self.open_at_kill = Some(self.open);
        }
    }

    pub fn sampled(&self) -> bool {
        self.open_at_trigger.is_some()
    }

    /// For the DrainFinished event: "connections: 3 open at the trigger, 41 arrived after
    /// it (the last 2.104s after the trigger), 0 open at the stop signal".
    pub fn summary(&self, trigger: Instant) -> String {
        let Some(open_at_trigger) = self.open_at_trigger else {
            return if self.unavailable {
                "connections: not seen (the TCP sockets could not be sampled)".into()
            } else {
                "connections: not seen (the app exited before the first sample)".into()
            };
        };
        let mut out = format!(
            "connections: {open_at_trigger} open at the trigger, {} arrived after it",
            self.arrivals
        );
        if let Some(last) = self.last_arrival_at {
            let _ = write!(out, " (the last {:.3?} after the trigger)", last - trigger);
        }
        if self.arrivals_after_stop_signal > 0 {
            let _ = write!(
                out,
                ", {} after the stop signal",
                self.arrivals_after_stop_signal
            );
        }
        if let Some(open) = self.open_at_stop_signal {
            let _ = write!(out, ", {open} open at the stop signal");
        }
        if let Some(open) = self.open_at_kill {
            let _ = write!(out, ", {open} open at SIGKILL");
        }
        if self.unavailable {
            out.push_str(" (some samples failed: the counts may be short)");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn seen(arrivals: usize, open: usize) -> Observed {
        Observed {
            arrivals,
            open,
            taken_at: Instant::now(),
        }
    }

    #[test]
    fn the_first_sample_is_the_baseline_and_later_arrivals_count_with_their_time() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut report = TrafficReport::default();
        assert!(!report.sampled());
        report.observed(seen(0, 3), t0 + ms(5), false, false);
        report.observed(seen(2, 5), t0 + ms(105), false, false);
        report.observed(seen(0, 4), t0 + ms(205), false, false);
        report.observed(seen(1, 4), t0 + ms(305), false, false);
        report.stop_signal_sent();
        report.observed(seen(1, 1), t0 + ms(405), true, false);
        report.observed(seen(0, 0), t0 + ms(505), true, false);
        assert_eq!(
            report,
            TrafficReport {
                open_at_trigger: Some(3),
                open: 0,
                arrivals: 4,
                last_arrival_at: Some(t0 + ms(405)),
                arrivals_after_stop_signal: 1,
                open_at_stop_signal: Some(4),
                open_at_kill: None,
                unavailable: false,
            }
        );
        assert_eq!(
            report.summary(t0),
            "connections: 3 open at the trigger, 4 arrived after it (the last 405.000ms after \
             the trigger), 1 after the stop signal, 4 open at the stop signal"
        );
    }

    #[test]
    fn a_stop_signal_or_kill_before_any_sample_takes_the_first_sample_after_it() {
        let t0 = Instant::now();
        let mut report = TrafficReport::default();
        report.stop_signal_sent();
        report.killed();
        assert_eq!(report.open_at_stop_signal, None);
        report.observed(seen(0, 2), t0, true, true);
        assert_eq!(report.open_at_trigger, Some(2));
        assert_eq!(report.open_at_stop_signal, Some(2));
        assert_eq!(report.open_at_kill, Some(2));
        // Later samples do not move them.
        report.observed(seen(1, 7), t0, true, true);
        assert_eq!(report.open_at_stop_signal, Some(2));
        assert_eq!(report.open_at_kill, Some(2));
        assert_eq!(report.arrivals_after_stop_signal, 1);
        assert_eq!(
            report.summary(t0),
            "connections: 2 open at the trigger, 1 arrived after it (the last 0.000ns after \
             the trigger), 1 after the stop signal, 2 open at the stop signal, 2 open at SIGKILL"
        );
    }

    #[test]
    fn without_a_sample_the_summary_says_so() {
        let report = TrafficReport {
            unavailable: true,
            ..TrafficReport::default()
        };
        assert_eq!(
            report.summary(Instant::now()),
            "connections: not seen (the TCP sockets could not be sampled)"
        );
    }
}
