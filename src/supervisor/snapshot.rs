//! What the supervisor knows, as one value published on every change of the lifecycle
//! (a `tokio::sync::watch`): the endpoints and the control socket read only this, never
//! the lifecycle itself.

use tokio::time::Instant;

use super::lifecycle::{DrainStage, HookRecord, Lifecycle, Stage, Trigger};
use crate::events::Event;
use crate::reaper::ExitStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The app runs; its post_start hooks have not finished.
    Starting,
    Running,
    /// A drain is under way and the app still runs.
    Draining,
    /// The app has exited (or is being stopped after a failed post_start): leftovers,
    /// post_stop hooks.
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub phase: Phase,
    pub ready: bool,
    /// Why not ready, in a few words (None when ready).
    pub not_ready: Option<&'static str>,
    pub app: AppStatus,
    pub hooks: Vec<HookRecord>,
    pub drain: Option<DrainStatus>,
    /// The last events, oldest first.
    pub events: Vec<Event>,
}

impl Snapshot {
    /// Before the lifecycle exists.
    pub fn initial() -> Snapshot {
        Snapshot {
            phase: Phase::Starting,
            ready: false,
            not_ready: Some("starting"),
            app: AppStatus {
                pid: None,
                started_at: None,
                restarts: 0,
                last_exit: None,
            },
            hooks: Vec::new(),
            drain: None,
            events: Vec::new(),
        }
    }
}

pub(super) fn of(lifecycle: &Lifecycle) -> Snapshot {
    let phase = match (lifecycle.stage, &lifecycle.drain) {
        (Stage::Starting | Stage::Up | Stage::Stopping { .. }, Some(_)) => Phase::Draining,
        (Stage::Starting, None) => Phase::Starting,
        (Stage::Up, None) if !lifecycle.started => Phase::Starting,
        (Stage::Up, None) => Phase::Running,
        (Stage::Stopping { .. } | Stage::Ending { .. } | Stage::PostStop { .. }, _) => {
            Phase::Stopping
        }
        (Stage::BackOff { .. }, _) => Phase::BackOff,
        (Stage::Flushing { .. } | Stage::Exited, _) => Phase::Exited,
    };
    let not_ready = match phase {
        _ if lifecycle.ready => None,
        Phase::Starting => Some("starting: post_start hooks running"),
        Phase::Draining => Some("draining"),
        Phase::Running => Some("not ready"),
        Phase::Stopping | Phase::Exited => Some("the app is not running"),
        Phase::BackOff => Some("the app is waiting to restart"),
    };
    let drain = lifecycle.drain.as_ref().map(|drain| DrainStatus {
        trigger: drain.trigger,
        started_at: drain.deadlines.started_at,
        stop_by: drain.deadlines.stop_by,
        kill_at: drain.deadlines.kill_at,
        stage: match (drain.stage, lifecycle.stage) {
            (DrainStage::WaitingForOnReady, _) => "waiting_for_on_ready",
            (DrainStage::PreStop, _) => "pre_stop",
            (DrainStage::AwaitingSignal, _) => "awaiting_signal",
            (DrainStage::Past, Stage::Stopping { killed: false, .. }) => "stopping",
            (DrainStage::Past, Stage::Stopping { killed: true, .. }) => "killed",
            (DrainStage::Past, _) => "done",
        },
    });
    Snapshot {
        phase,
        ready: lifecycle.ready,
        not_ready,
        app: AppStatus {
            pid: lifecycle.app.pid.map(|pid| pid.as_raw()),
            started_at: lifecycle.app.started_at,
            restarts: lifecycle.app.restarts,
            last_exit: lifecycle.app.last_exit,
        },
        hooks: lifecycle.hooks.clone(),
        drain,
        events: lifecycle.events.recent().cloned().collect(),
    }
}
