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
#[allow(dead_code, reason = "read by /status (DESIGN: Endpoints)")]
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

    #[allow(dead_code, reason = "read by /status (DESIGN: Endpoints)")]
    pub fn recent(&self) -> impl Iterator<Item = &Event> {
        self.kept.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_hundred_in_order() {
        let mut log = EventLog::default();
        for i in 0..150 {
            log.record(Reason::Started, format!("event {i}"));
        }
        let kept: Vec<&str> = log.recent().map(|e| e.message.as_str()).collect();
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0], "event 50");
        assert_eq!(kept[99], "event 149");
        assert!(log.recent().all(|e| e.reason == Reason::Started));
    }
}
