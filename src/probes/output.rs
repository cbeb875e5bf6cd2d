//! What of an exec probe's output reaches the log.
//!
//! A hook runs a few times in a container's life and every line it prints is relayed. A
//! probe runs every period for as long as the container lives: relaying each run would
//! bury the log under a healthy probe's "OK" every second. Two rules, per probe:
//!
//! - A run's output is shown only when its result differs from the previous run's (the
//!   first run of a probe, after each start of the app, counts as a change): a steady
//!   probe is quiet, and each change of health shows what the probe said about it.
//! - At most [`LINES_PER_MINUTE`] lines are shown in a minute (a window that opens with
//!   the first line shown), so that even a probe flapping every period cannot flood the
//!   log. The first line dropped in a window is announced at once; how many were dropped
//!   is told when the window is over, with the first run after it (journald's rate
//!   limit reports its "Suppressed N messages" the same way, and no timer of its own
//!   wakes graceinit for it).
//!
//! Lines of unchanged runs are not counted as dropped: not showing them is the rule, not
//! a loss.

use std::time::Duration;

use tokio::time::Instant;

use crate::hooks::{Captured, CapturedLine};

/// The most lines of one probe's output shown in a minute.
pub const LINES_PER_MINUTE: usize = 20;

const WINDOW: Duration = Duration::from_secs(60);

/// One probe's memory of what it has shown.
#[derive(Debug, Default)]
pub struct OutputFilter {
    previous: Option<Result<(), String>>,
    /// When the current window opened (with its first line shown), if one is open.
    window_start: Option<Instant>,
    shown: usize,
    dropped: usize,
}

/// What to log for one run, in this order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shown {
    /// Lines dropped in the window that has just closed.
    pub dropped_before: Option<usize>,
    pub lines: Vec<CapturedLine>,
    /// This run reached the limit: lines are dropped for this long.
    pub limit_reached: Option<Duration>,
}

impl OutputFilter {
    /// Decides what of a run's `captured` output (its result `result`, ended at `now`)
    /// is shown.
    pub fn admit(
        &mut self,
        result: &Result<(), String>,
        captured: Captured,
        now: Instant,
    ) -> Shown {
        let mut shown = Shown::default();
        if let Some(start) = self.window_start {
            if now >= start + WINDOW {
                shown.dropped_before = (self.dropped > 0).then_some(self.dropped);
                self.window_start = None;
                self.shown = 0;
                self.dropped = 0;
            }
        }
        let changed = self.previous.as_ref() != Some(result);
        self.previous = Some(result.clone());
        let total = captured.lines.len() + captured.overflow;
        if !changed || total == 0 {
            return shown;
        }
        let start = *self.window_start.get_or_insert(now);
        let room = LINES_PER_MINUTE - self.shown;
        let mut lines = captured.lines;
        lines.truncate(room);
        self.shown += lines.len();
        let dropped = total - lines.len();
        if dropped > 0 {
            if self.dropped == 0 {
                shown.limit_reached = Some((start + WINDOW).saturating_duration_since(now));
            }
            self.dropped += dropped;
        }
        shown.lines = lines;
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Stream;

    fn output(lines: &[&str]) -> Captured {
        let mut captured = Captured::with_room(LINES_PER_MINUTE);
        for line in lines {
            captured.lines.push(CapturedLine {
                stream: Stream::Stdout,
                text: line.as_bytes().to_vec(),
                cut: false,
            });
        }
        captured
    }

    fn texts(shown: &Shown) -> Vec<String> {
        shown
            .lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect()
    }

    const FAILED: fn() -> Result<(), String> = || Err("exit status 1".into());

    #[test]
    fn only_runs_whose_result_changed_are_shown() {
        let mut filter = OutputFilter::default();
        let now = Instant::now();
        let first = filter.admit(&Ok(()), output(&["ok 1"]), now);
        assert_eq!(texts(&first), ["ok 1"]);
        assert_eq!(
            texts(&filter.admit(&Ok(()), output(&["ok 2"]), now)),
            Vec::<String>::new()
        );
        assert_eq!(
            texts(&filter.admit(&FAILED(), output(&["bad 3"]), now)),
            ["bad 3"]
        );
        assert_eq!(
            texts(&filter.admit(&FAILED(), output(&["bad 4"]), now)),
            Vec::<String>::new()
        );
        // Another reason is another result.
        let timed_out = Err("timed out after 1s".to_string());
        assert_eq!(
            texts(&filter.admit(&timed_out, output(&["slow 5"]), now)),
            ["slow 5"]
        );
        assert_eq!(
            texts(&filter.admit(&Ok(()), output(&["ok 6"]), now)),
            ["ok 6"]
        );
        // A fresh filter (the probe restarted with the app) shows its first run.
        let mut fresh = OutputFilter::default();
        assert_eq!(texts(&fresh.admit(&Ok(()), output(&["ok"]), now)), ["ok"]);
    }

    #[test]
    fn at_most_lines_per_minute_are_shown_and_the_drop_is_counted() {
        let mut filter = OutputFilter::default();
        let start = Instant::now();
        let eight: Vec<String> = (0..8).map(|i| format!("line {i}")).collect();
        let eight: Vec<&str> = eight.iter().map(String::as_str).collect();
        let flap = |i: u32| {
            if i.is_multiple_of(2) {
                Ok(())
            } else {
                FAILED()
            }
        };
        // Runs every second, flapping, 8 lines each: 8 + 8 + 4 shown, then none.
        let mut shown = Vec::new();
        for i in 0..10u32 {
            let at = start + Duration::from_secs(i.into());
            shown.push(filter.admit(&flap(i), output(&eight), at));
        }
        let counts: Vec<usize> = shown.iter().map(|s| s.lines.len()).collect();
        assert_eq!(counts, [8, 8, 4, 0, 0, 0, 0, 0, 0, 0]);
        // The limit is announced once, with the time left in the window.
        let announced: Vec<Option<Duration>> = shown.iter().map(|s| s.limit_reached).collect();
        let mut expected = vec![None; 10];
        expected[2] = Some(Duration::from_secs(58));
        assert_eq!(announced, expected);
        assert!(shown.iter().all(|s| s.dropped_before.is_none()));
        // An unchanged run within the window: nothing, and its lines are not counted.
        let unchanged = filter.admit(&flap(9), output(&eight), start + Duration::from_secs(30));
        assert_eq!(unchanged, Shown::default());
        // The first run after the window (changed or not) tells the count: 4 + 7 * 8.
        let after = filter.admit(&flap(9), output(&eight), start + Duration::from_secs(60));
        assert_eq!(after.dropped_before, Some(60));
        assert!(after.lines.is_empty());
        // And the next window starts with a full budget.
        let next = filter.admit(&flap(10), output(&eight), start + Duration::from_secs(61));
        assert_eq!((next.lines.len(), next.dropped_before), (8, None));
    }

    #[test]
    fn lines_beyond_the_capture_count_as_dropped() {
        let mut filter = OutputFilter::default();
        let mut captured = output(&["a", "b"]);
        captured.overflow = 5;
        let now = Instant::now();
        let shown = filter.admit(&Ok(()), captured, now);
        assert_eq!(texts(&shown), ["a", "b"]);
        assert_eq!(shown.limit_reached, Some(WINDOW));
        let later = filter.admit(&FAILED(), output(&[]), now + WINDOW);
        assert_eq!(later.dropped_before, Some(5));
    }
}
