//! Lifecycle events with Kubernetes' reasons. The lifecycle records them as plain data
//! (the last 100 are kept for `/status`); the supervisor's executor logs each one.

use std::collections::VecDeque;
use std::fmt;

use tokio::time::Instant;

/// Kubernetes' event reasons (kubelet's `events.go`), plus the drain's own two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Started,
    FailedPostStartHook,
    FailedPreStopHook,
    Killing,
    Unhealthy,
    BackOff,
    DrainStarted,
    DrainFinished,
}

impl Reason {
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Reason::FailedPostStartHook
                | Reason::FailedPreStopHook
                | Reason::Killing
                | Reason::Unhealthy
                | Reason::BackOff
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: Instant,
    pub reason: Reason,
    pub message: String,
}

/// The log target that stays visible at the default (quiet) level.
pub const TARGET: &str = "graceinit::event";

const KEPT: usize = 100;

#[derive(Clone, Debug, Default)]
pub struct EventLog {
    kept: VecDeque<Event>,
}

impl EventLog {
    /// Keeps `event`, forgetting the oldest beyond the last 100.
    pub fn keep(&mut self, event: Event) {
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(event);
    }

    pub fn recent(&self) -> impl Iterator<Item = &Event> {
        self.kept.iter()
    }
}

/// Writes `event` to the log, at warning level for Kubernetes' warning reasons.
pub fn log(event: &Event) {
    let Event {
        reason, message, ..
    } = event;
    if reason.is_warning() {
        tracing::warn!(target: TARGET, reason = %reason, "{reason}: {message}");
    } else {
        tracing::info!(target: TARGET, reason = %reason, "{reason}: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_hundred_in_order() {
        let mut log = EventLog::default();
        for i in 0..150 {
            log.keep(Event {
                at: Instant::now(),
                reason: Reason::Started,
                message: format!("event {i}"),
            });
        }
        let kept: Vec<&str> = log.recent().map(|e| e.message.as_str()).collect();
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0], "event 50");
        assert_eq!(kept[99], "event 149");
        assert!(log.recent().all(|e| e.reason == Reason::Started));
    }
}
