//! Probes: Kubernetes' startup, liveness and readiness checks of the app, run by
//! graceinit on the same actions as hooks. A probe task runs one check every period and
//! sends each result to the supervisor; the lifecycle applies the thresholds.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::config::Probe;
use crate::hooks::Runner;

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

/// Runs `probe` after its initial delay, then once every period (counted from the start
/// of the previous run, as the kubelet does), handing each result to `report`, until the
/// task is aborted.
pub fn spawn(
    kind: ProbeKind,
    probe: Probe,
    runner: Arc<Runner>,
    report: impl Fn(Result<(), String>) + Send + Sync + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = Instant::now() + probe.initial_delay;
        loop {
            sleep_until(next).await;
            let started = Instant::now();
            report(
                runner
                    .check(kind.name(), &probe.action, probe.timeout)
                    .await,
            );
            next = started + probe.period;
        }
    })
}
