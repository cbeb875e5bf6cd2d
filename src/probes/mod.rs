//! Probes: Kubernetes' startup, liveness and readiness checks of the app, run by
//! graceinit on the same actions as hooks. A probe task runs one check every period and
//! sends each result to the supervisor; the lifecycle applies the thresholds, and starts
//! and stops the tasks (startup first; the others once it has passed; none while the app
//! is being stopped).
//!
//! Each check is cut at the probe's `timeout`, which counts as a failure (Kubernetes:
//! "Probe timed out"); an exec probe's whole process group is killed then and its status
//! collected by the one reaper. An exec probe's output is captured and shown by the
//! rules of [`output`]. Between checks the task waits on a periodic timerfd ([`ticker`]):
//! a probe costs one wake-up per period.

mod output;
mod ticker;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Probe;
use crate::hooks::Runner;
use crate::logging::{self, HookSource};
use output::{LINES_PER_MINUTE, OutputFilter, Shown};
use ticker::Ticker;

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

/// Runs `probe` after `first` (what is left of its initial delay), then once every period (see [`ticker`]),
/// handing each result to `report`, until the task is aborted (which kills an exec
/// probe's process group).
pub fn spawn(
    kind: ProbeKind,
    probe: Probe,
    first: Duration,
    runner: Arc<Runner>,
    report: impl Fn(Result<(), String>) + Send + Sync + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut output = OutputFilter::default();
        let mut ticker = Ticker::new(first, probe.period);
        loop {
            ticker.tick().await;
            let (result, captured) = runner
                .check(&probe.action, probe.timeout, LINES_PER_MINUTE)
                .await;
            // Before the result: the log shows what the probe said, then what follows.
            show(kind, output.admit(&result, captured, Instant::now()));
            report(result);
        }
    })
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
