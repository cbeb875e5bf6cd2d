//! Lifecycle events with Kubernetes' reasons, logged as they happen and kept (the last
//! 100) for the status endpoint.

use std::collections::VecDeque;
use std::fmt;
use std::time::SystemTime;

/// Kubernetes' event reasons (kubelet's `events.go`), plus the drain's own two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Started,
    FailedPostStartHook,
    FailedPreStopHook,
    Killing,
    DrainStarted,
    DrainFinished,
}

impl Reason {
    fn is_warning(self) -> bool {
        matches!(
            self,
            Reason::FailedPostStartHook | Reason::FailedPreStopHook | Reason::Killing
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub at: SystemTime,
    pub reason: Reason,
    pub message: String,
}

/// The log target that stays visible at the default (quiet) level.
pub const TARGET: &str = "graceinit::event";

const KEPT: usize = 100;

#[derive(Default)]
pub struct EventLog {
    kept: VecDeque<Event>,
}

impl EventLog {
    pub fn record(&mut self, reason: Reason, message: impl Into<String>) {
        let message = message.into();
        if reason.is_warning() {
            tracing::warn!(target: TARGET, reason = %reason, "{reason}: {message}");
        } else {
            tracing::info!(target: TARGET, reason = %reason, "{reason}: {message}");
        }
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(Event {
            at: SystemTime::now(),
            reason,
            message,
        });
    }

    pub fn recent(&self) -> impl Iterator<Item = &Event> {
        self.kept.iter()
    }
}
