//! Probes: Kubernetes' startup, liveness and readiness checks of the app, run by
//! graceinit on the same actions as hooks. A probe task runs one check every period and
//! sends each result to the supervisor; the lifecycle applies the thresholds, and starts
//! and stops the tasks (startup first; the others once it has passed; none while the app
//! is being stopped).
//!
//! Each check is cut at the probe's `timeout`, which counts as a failure (Kubernetes:
//! "Probe timed out"); an exec probe's whole process group is killed then and its status
//! collected by the one reaper. An exec probe's output is captured and shown by the
//! rules of [`output`]. Between checks the task sleeps on a single timer: a probe costs
//! one wake-up per period.

mod output;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::config::Probe;
use crate::hooks::Runner;
use crate::logging::{self, HookSource};
use output::{LINES_PER_MINUTE, OutputFilter, Shown};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }

    /// As Kubernetes' events write it: "Liveness probe failed: ...".
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// Runs `probe` after its initial delay, then once every period, handing each result to
/// `report`, until the task is aborted (which kills an exec probe's process group).
///
/// The kubelet's prober ticks every period (a Go ticker) and runs one check per tick,
/// never two at once: a check that overruns its period is followed at once by the next,
/// ticks missed meanwhile are dropped, and the schedule keeps its phase.
pub fn spawn(
    kind: ProbeKind,
    probe: Probe,
    runner: Arc<Runner>,
    report: impl Fn(Result<(), String>) + Send + Sync + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut output = OutputFilter::default();
        let mut tick = Instant::now() + probe.initial_delay;
        loop {
            sleep_until(tick).await;
            let (result, captured) = runner
                .check(&probe.action, probe.timeout, LINES_PER_MINUTE)
                .await;
            let now = Instant::now();
            // Before the result: the log shows what the probe said, then what follows.
            show(kind, output.admit(&result, captured, now));
            report(result);
            tick = next_tick(tick, probe.period, now);
        }
    })
}

/// The tick after `tick`, or, when the check ended (`now`) past it, the last tick missed:
/// due at once, as the ticker's one buffered tick.
fn next_tick(tick: Instant, period: std::time::Duration, now: Instant) -> Instant {
    let next = tick + period;
    if next >= now {
        return next;
    }
    let missed = (now - next).as_nanos() / period.as_nanos();
    next + period * u32::try_from(missed).unwrap_or(u32::MAX)
}

/// Logs what [`OutputFilter`] lets through, as hook lines are: `[readiness#1] line`.
fn show(kind: ProbeKind, shown: Shown) {
    let label = format!("[{}#1]", kind.name());
    if let Some(dropped) = shown.dropped_before {
        tracing::warn!(
            probe = kind.name(),
            dropped,
            "{label} {dropped} probe lines dropped in the last minute (at most {LINES_PER_MINUTE} a minute are shown)"
        );
    }
    for line in &shown.lines {
        let source = HookSource {
            phase: kind.name(),
            index: 1,
            stream: line.stream,
        };
        logging::hook_line(&source, &line.text, line.cut);
    }
    if let Some(left) = shown.limit_reached {
        tracing::warn!(
            probe = kind.name(),
            "{label} more than {LINES_PER_MINUTE} probe lines within a minute: the rest are dropped for {}s",
            left.as_secs().max(1)
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_schedule_keeps_its_phase_and_drops_missed_ticks() {
        let start = Instant::now();
        let period = Duration::from_secs(10);
        let at = |ms: u64| start + Duration::from_millis(ms);
        // A check that ends within its period: the next tick, one period on.
        assert_eq!(next_tick(at(0), period, at(300)), at(10_000));
        assert_eq!(next_tick(at(0), period, at(10_000)), at(10_000));
        // A check that took 25 s: the tick of 20 s is due at once, 10 s was dropped, and
        // the next after it is 30 s.
        let due = next_tick(at(0), period, at(25_000));
        assert_eq!(due, at(20_000));
        assert_eq!(next_tick(due, period, at(25_001)), at(30_000));
    }
}
