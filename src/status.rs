//! The supervisor's snapshot as JSON: what `/status` serves and `graceinit status --json`
//! prints, written once. Times are RFC 3339 (UTC); durations are seconds. Nothing here
//! can hold a secret: the snapshot has none (no env value, header, body, token, URL).

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::hooks::Outcome;
use crate::reaper::ExitStatus;
use crate::supervisor::{
    Health, Snapshot, StopCause, TrafficReport, Trigger, time_left, wall_clock,
};

pub fn to_json(snapshot: &Snapshot) -> Value {
    let not_ready = snapshot
        .readiness_checks()
        .into_iter()
        .find_map(|check| check.failure.map(|why| format!("{}: {why}", check.name)));
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "phase": snapshot.phase.name(),
        "ready": snapshot.ready,
        "not_ready": if snapshot.ready { None } else { not_ready },
        "started": snapshot.started,
        "app": {
            "argv0": snapshot.app.name,
            "pid": snapshot.app.pid,
            "started_at": snapshot.app.started_at.map(time),
            "restarts": snapshot.app.restarts,
            "last_exit": snapshot.app.last_exit.map(exit),
        },
        "hooks": snapshot.hooks.iter().map(|hook| json!({
            "phase": hook.phase.name(),
            "index": hook.index,
            "kind": hook.kind,
            "runs": hook.runs,
            "failures": hook.failures,
            "last": hook.last.as_ref().map(|(outcome, took)| json!({
                "ok": outcome.is_success(),
                "outcome": outcome_name(outcome),
                "message": outcome.describe(),
                "took_seconds": took.as_secs_f64(),
            })),
        })).collect::<Vec<_>>(),
        "probes": snapshot.probes.iter().map(|probe| json!({
            "probe": probe.kind.name(),
            "health": health_name(probe.health),
            "running": probe.run.is_some(),
            "consecutive_successes": probe.consecutive_successes,
            "consecutive_failures": probe.consecutive_failures,
            "successes": probe.successes,
            "failures": probe.failures,
            "last_error": probe.last_error,
        })).collect::<Vec<_>>(),
        "drain": snapshot.drain.as_ref().map(|drain| json!({
            "trigger": trigger_name(drain.trigger),
            "stage": drain.stage,
            "started_at": time(drain.started_at),
            "stop_by": time(drain.stop_by),
            "kill_at": time(drain.kill_at),
            "stop_by_in_seconds": time_left(drain.stop_by).as_secs_f64(),
            "kill_at_in_seconds": time_left(drain.kill_at).as_secs_f64(),
            "stop_signal_at": drain.stop_signal_at.map(time),
            "killed_at": drain.killed_at.map(time),
            "finished_at": drain.finished_at.map(time),
            "traffic": traffic(&drain.traffic, drain.started_at),
        })),
        "stopping_for": snapshot.stopping_for.map(cause_name),
        "events": snapshot.events.iter().map(|event| json!({
            "at": time(event.at),
            "reason": event.reason.to_string(),
            "message": event.message,
        })).collect::<Vec<_>>(),
    })
}

/// The drain's report of the app's connections; null until the first sample (or when the
/// sockets cannot be sampled: `unavailable`).
fn traffic(report: &TrafficReport, trigger: Instant) -> Value {
    let Some(open_at_trigger) = report.open_at_trigger else {
        return json!({ "unavailable": report.unavailable });
    };
    json!({
        "unavailable": report.unavailable,
        "open_at_trigger": open_at_trigger,
        "open": report.open,
        "arrivals": report.arrivals,
        "last_arrival_at": report.last_arrival_at.map(time),
        "last_arrival_after_trigger_seconds": report
            .last_arrival_at
            .map(|at| (at - trigger).as_secs_f64()),
        "arrivals_after_stop_signal": report.arrivals_after_stop_signal,
        "open_at_stop_signal": report.open_at_stop_signal,
        "open_at_kill": report.open_at_kill,
    })
}

fn time(at: Instant) -> String {
    humantime::format_rfc3339_millis(wall_clock(at)).to_string()
}

fn exit(status: ExitStatus) -> Value {
    let (code, signal) = match status {
        ExitStatus::Exited(code) => (Some(code), None),
        ExitStatus::Signaled(sig) => (None, Some(crate::signals::signal_name(sig))),
    };
    json!({ "code": code, "signal": signal, "status": status.code(), "text": status.to_string() })
}

pub fn trigger_name(trigger: Trigger) -> String {
    match trigger {
        Trigger::Signal(sig) => crate::signals::signal_name(sig),
        Trigger::Request => "request".into(),
    }
}

fn cause_name(cause: StopCause) -> String {
    match cause {
        StopCause::Drain(_) => "drain".into(),
        StopCause::FailedPostStart => "failed_post_start".into(),
        StopCause::Unhealthy(kind) => format!("{}_probe", kind.name()),
    }
}

pub fn health_name(health: Health) -> &'static str {
    match health {
        Health::Unknown => "unknown",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed(_) => "failed",
        Outcome::TimedOut(_) => "timed_out",
        Outcome::CutShort => "cut_short",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::Snapshot;

    #[test]
    fn the_initial_snapshot_renders_with_every_field() {
        let json = to_json(&Snapshot::initial());
        assert_eq!(json["phase"], "starting");
        assert_eq!(json["ready"], false);
        assert_eq!(json["app"]["pid"], Value::Null);
        assert_eq!(json["app"]["restarts"], 0);
        assert_eq!(json["drain"], Value::Null);
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            json["not_ready"]
                .as_str()
                .unwrap()
                .starts_with("post_start: ")
        );
        for key in ["hooks", "probes", "events"] {
            assert_eq!(json[key], json!([]), "{key}");
        }
    }
}
