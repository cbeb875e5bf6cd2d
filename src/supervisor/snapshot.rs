//! What the supervisor knows, as one value published on every change of the lifecycle
//! (a `tokio::sync::watch`): the endpoints and the control socket read only this, never
//! the lifecycle itself. It holds no secret: no env value, header, body, token or URL.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::lifecycle::{
    Health, HookRecord, Lifecycle, ProbeRecord, Stage, StopCause, StopStage, Trigger,
};
use super::report::TrafficReport;
use crate::events::Event;
use crate::probes::ProbeKind;
use crate::reaper::ExitStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The app runs; its post_start hooks or startup probe have not passed yet.
    Starting,
    Running,
    /// A drain is under way and the app still runs.
    Draining,
    /// graceinit is stopping the app (not a drain: a failed post_start hook or probe),
    /// or the app has exited: leftovers, post_stop hooks.
    Stopping,
    /// Waiting to restart the app.
    BackOff,
    Exited,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Stopping => "stopping",
            Phase::BackOff => "backoff",
            Phase::Exited => "exited",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppStatus {
    /// argv[0] as events show it (quoted).
    pub name: String,
    pub pid: Option<i32>,
    pub started_at: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainStatus {
    pub trigger: Trigger,
    pub started_at: Instant,
    pub stop_by: Instant,
    pub kill_at: Instant,
    /// "waiting_for_on_ready", "pre_stop", "awaiting_signal", "stopping", "killed", "done".
    pub stage: &'static str,
    pub stop_signal_at: Option<Instant>,
    pub killed_at: Option<Instant>,
    /// When the app exited.
    pub finished_at: Option<Instant>,
    pub traffic: TrafficReport,
}

/// One health check as `/livez`, `/readyz` and `/startupz` list it with `?verbose`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    /// Why it fails; None when it passes.
    pub failure: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub phase: Phase,
    pub ready: bool,
    /// post_start hooks done and the startup probe passed, for the app's current run.
    pub started: bool,
    pub post_start_done: bool,
    pub app: AppStatus,
    pub hooks: Vec<HookRecord>,
    pub probes: Vec<ProbeRecord>,
    pub drain: Option<DrainStatus>,
    /// Why graceinit is stopping the app, if it is.
    pub stopping_for: Option<StopCause>,
    /// The last events, oldest first.
    pub events: Vec<Event>,
}

impl Snapshot {
    /// Before the lifecycle exists.
    pub fn initial() -> Snapshot {
        Snapshot {
            phase: Phase::Starting,
            ready: false,
            started: false,
            post_start_done: false,
            app: AppStatus {
                name: String::new(),
                pid: None,
                started_at: None,
                restarts: 0,
                last_exit: None,
            },
            hooks: Vec::new(),
            probes: Vec::new(),
            drain: None,
            stopping_for: None,
            events: Vec::new(),
        }
    }

    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbeRecord> {
        self.probes.iter().find(|p| p.kind == kind)
    }

    /// `/startupz`: post_start, then the startup probe.
    pub fn startup_checks(&self) -> Vec<Check> {
        let mut checks = vec![self.post_start_check()];
        checks.extend(self.probe_check(ProbeKind::Startup));
        checks
    }

    /// `/livez`: graceinit supervises an app, and its liveness probe is not failing.
    pub fn liveness_checks(&self) -> Vec<Check> {
        let supervising = match self.phase {
            Phase::Exited => Some("graceinit is exiting".to_string()),
            _ => None,
        };
        let mut checks = vec![Check {
            name: "supervisor",
            failure: supervising,
        }];
        if let Some(probe) = self.probe(ProbeKind::Liveness) {
            checks.push(Check {
                name: "liveness",
                // Unknown is alive, as for the kubelet: only failures count, and only
                // while the probe runs. Once it has failed, graceinit stops and restarts
                // the app itself (or exits): a /livez failing meanwhile would have the
                // kubelet kill the container under graceinit's restart policy.
                failure: (probe.run.is_some() && probe.health == Health::Unhealthy)
                    .then(|| failed(probe)),
            });
        }
        checks
    }

    /// `/readyz`: the app runs, has started, passes its readiness probe, and no drain is
    /// under way. Answered 503 from the instant a drain is triggered.
    pub fn readiness_checks(&self) -> Vec<Check> {
        let app = match self.phase {
            Phase::BackOff => Some("the app is waiting to restart".to_string()),
            Phase::Stopping if self.app.pid.is_none() => Some("the app is not running".into()),
            Phase::Exited => Some("the app is not running".into()),
            _ => None,
        };
        let mut checks = vec![Check {
            name: "app",
            failure: app,
        }];
        checks.extend(self.startup_checks());
        checks.extend(self.probe_check(ProbeKind::Readiness));
        checks.push(Check {
            name: "draining",
            failure: match (&self.drain, self.stopping_for) {
                (Some(_), _) => Some("the drain has started".into()),
                (None, Some(cause)) => Some(format!("the app is being stopped for {cause}")),
                (None, None) => None,
            },
        });
        checks
    }

    fn post_start_check(&self) -> Check {
        Check {
            name: "post_start",
            failure: (!self.post_start_done).then(|| "post_start hooks have not finished".into()),
        }
    }

    fn probe_check(&self, kind: ProbeKind) -> Option<Check> {
        let probe = self.probe(kind)?;
        Some(Check {
            name: kind.name(),
            failure: match probe.health {
                Health::Healthy => None,
                Health::Unknown if probe.run.is_none() => Some("not running".into()),
                Health::Unknown => Some("no result yet".into()),
                Health::Unhealthy => Some(failed(probe)),
            },
        })
    }
}

fn failed(probe: &ProbeRecord) -> String {
    match &probe.last_error {
        Some(error) => format!("{} failures in a row: {error}", probe.consecutive_failures),
        None => "failing".into(),
    }
}

/// The wall-clock time of `at`, for showing it (the lifecycle keeps monotonic times).
pub fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at <= now {
        SystemTime::now() - (now - at)
    } else {
        SystemTime::now() + (at - now)
    }
}

/// How long from now until `at` (zero once past).
pub fn time_left(at: Instant) -> Duration {
    at.saturating_duration_since(Instant::now())
}

pub(super) fn of(lifecycle: &Lifecycle) -> Snapshot {
    let stopping = lifecycle.stop.as_ref();
    let phase = match (lifecycle.stage, &lifecycle.drain) {
        (Stage::Starting | Stage::Up | Stage::Stopping { .. }, Some(_)) => Phase::Draining,
        (Stage::Starting, None) => Phase::Starting,
        (Stage::Up, None) if stopping.is_some() => Phase::Stopping,
        (Stage::Up, None) if !lifecycle.started() => Phase::Starting,
        (Stage::Up, None) => Phase::Running,
        (Stage::Stopping { .. } | Stage::Ending { .. } | Stage::PostStop { .. }, _) => {
            Phase::Stopping
        }
        (Stage::BackOff { .. }, _) => Phase::BackOff,
        (Stage::Flushing { .. } | Stage::Exited, _) => Phase::Exited,
    };
    let drain = lifecycle.drain.as_ref().map(|drain| DrainStatus {
        trigger: drain.trigger,
        started_at: drain.deadlines.started_at,
        stop_by: drain.deadlines.stop_by,
        kill_at: drain.deadlines.kill_at,
        stage: match (stopping.map(|s| s.stage), lifecycle.stage) {
            (Some(StopStage::WaitingForOnReady), _) => "waiting_for_on_ready",
            (Some(StopStage::PreStop), _) => "pre_stop",
            (Some(StopStage::AwaitingSignal), _) => "awaiting_signal",
            (_, Stage::Stopping { killed: false, .. }) => "stopping",
            (_, Stage::Stopping { killed: true, .. }) => "killed",
            _ => "done",
        },
        stop_signal_at: drain.stop_signal_at,
        killed_at: drain.killed_at,
        finished_at: drain.finished_at,
        traffic: drain.traffic,
    });
    Snapshot {
        phase,
        ready: lifecycle.ready,
        started: lifecycle.started() && lifecycle.app.pid.is_some(),
        post_start_done: lifecycle.app.post_start_done,
        app: AppStatus {
            name: lifecycle.command_name.clone(),
            pid: lifecycle.app.pid.map(|pid| pid.as_raw()),
            started_at: lifecycle.app.started_at,
            restarts: lifecycle.app.restarts,
            last_exit: lifecycle.app.last_exit,
        },
        hooks: lifecycle.hooks.clone(),
        probes: lifecycle.probes.clone(),
        drain,
        stopping_for: stopping.map(|s| s.cause),
        events: lifecycle.events.recent().cloned().collect(),
    }
}
