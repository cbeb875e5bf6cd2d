//! `graceinit status`: what the running supervisor knows, asked over its control socket.
//! `--json` prints the JSON of `/status` (one line); without it, the same for a person.
//! Exit 0; 1 when no supervisor answers; 2 for a usage error.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::cli::StatusArgs;
use crate::commands::output;
use crate::control::{self, Request};
use crate::exit_code;

/// The events a person is shown: the last few (`--json` has all the supervisor keeps).
const EVENTS_SHOWN: usize = 10;
/// The supervisor answers a status at once; this only bounds a wedged one.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

pub fn run(args: &StatusArgs) -> i32 {
    let located = match control::locate(args.socket.socket.as_deref()) {
        Ok(located) => located,
        Err(e) => {
            let _ = output::stderr_line(&format!("graceinit status: {e}"));
            return exit_code::USAGE;
        }
    };
    let mut answer = match control::ask(&located, Request::Status, Some(ANSWER_LIMIT)) {
        Ok(answer) => answer,
        Err(failure) => {
            let _ = output::stderr_line(&format!("graceinit status: {failure}"));
            return exit_code::FAILURE;
        }
    };
    let status = answer.remove("status").unwrap_or(Value::Null);
    let text = if args.json {
        format!("{status}\n")
    } else {
        readable(&status, SystemTime::now())
    };
    match output::stdout(&text) {
        Ok(()) => 0,
        Err(_) => exit_code::FAILURE,
    }
}

/// The drain's report of the app's connections, in one line.
fn connections(traffic: &Value) -> String {
    let failed = traffic["unavailable"] == Value::Bool(true);
    let Some(open_at_trigger) = traffic["open_at_trigger"].as_u64() else {
        return if failed {
            "connections: not seen (the TCP sockets could not be sampled)".into()
        } else {
            "connections: not sampled yet".into()
        };
    };
    let mut line = format!(
        "connections: {open_at_trigger} open at the trigger, {} arrived after it",
        traffic["arrivals"]
    );
    if let Some(after) = traffic["last_arrival_after_trigger_seconds"].as_f64() {
        let _ = write!(line, " (the last {after:.3}s after the trigger)");
    }
    let _ = write!(
        line,
        ", {} after the stop signal; open now {}",
        traffic["arrivals_after_stop_signal"], traffic["open"]
    );
    for (key, when) in [
        ("open_at_stop_signal", "at the stop signal"),
        ("open_at_kill", "at SIGKILL"),
    ] {
        if let Some(open) = traffic[key].as_u64() {
            let _ = write!(line, ", {when} {open}");
        }
    }
    if failed {
        line.push_str(" (some samples failed: the counts may be short)");
    }
    line
}

/// The status for a person, one fact a line, sections indented.
fn readable(status: &Value, now: SystemTime) -> String {
    let mut out = String::new();
    let text = |value: &Value| value.as_str().unwrap_or("?").to_string();
    let _ = writeln!(out, "graceinit {}", text(&status["version"]));
    let _ = writeln!(out, "phase:   {}", text(&status["phase"]));
    let ready = match (&status["ready"], &status["not_ready"]) {
        (Value::Bool(true), _) => "yes".to_string(),
        (_, Value::String(why)) => format!("no ({why})"),
        _ => "no".to_string(),
    };
    let _ = writeln!(out, "ready:   {ready}");
    if let Value::String(cause) = &status["stopping_for"] {
        let _ = writeln!(out, "stopping for: {cause}");
    }

    let app = &status["app"];
    let mut line = format!("app:     {}", text(&app["argv0"]));
    match &app["pid"] {
        Value::Number(pid) => {
            let _ = write!(line, ", pid {pid}");
        }
        _ => line.push_str(", not running"),
    }
    if let Value::String(at) = &app["started_at"] {
        let _ = write!(line, ", started {at}{}", ago(at, now));
    }
    let _ = write!(line, ", restarts {}", app["restarts"]);
    if let Some(exit) = app["last_exit"]["text"].as_str() {
        let _ = write!(line, ", last exit: {exit}");
    }
    let _ = writeln!(out, "{line}");

    let hooks = status["hooks"].as_array().map_or(&[][..], Vec::as_slice);
    if hooks.is_empty() {
        let _ = writeln!(out, "hooks:   none");
    } else {
        let _ = writeln!(out, "hooks:");
        for hook in hooks {
            let label = format!("{}#{}", text(&hook["phase"]), hook["index"]);
            let mut line = format!(
                "  {label:<14} {:<6} runs {}, failures {}",
                text(&hook["kind"]),
                hook["runs"],
                hook["failures"]
            );
            if let Value::Object(last) = &hook["last"] {
                let took = last
                    .get("took_seconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                let message = last.get("message").map_or("?".into(), text);
                let _ = write!(line, ", last: {message} ({took:.2}s)");
            }
            let _ = writeln!(out, "{line}");
        }
    }

    let probes = status["probes"].as_array().map_or(&[][..], Vec::as_slice);
    if probes.is_empty() {
        let _ = writeln!(out, "probes:  none");
    } else {
        let _ = writeln!(out, "probes:");
        for probe in probes {
            let mut line = format!(
                "  {:<10} {:<9} successes {}, failures {} ({} in a row)",
                text(&probe["probe"]),
                text(&probe["health"]),
                probe["successes"],
                probe["failures"],
                probe["consecutive_failures"]
            );
            if let Value::String(error) = &probe["last_error"] {
                let _ = write!(line, ", last error: {error}");
            }
            let _ = writeln!(out, "{line}");
        }
    }

    let drain = &status["drain"];
    if drain.is_object() {
        let _ = writeln!(
            out,
            "drain:   triggered by {} at {}, stage {}",
            text(&drain["trigger"]),
            text(&drain["started_at"]),
            text(&drain["stage"])
        );
        let seconds = |key: &str| drain[key].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "         stop_by {} (in {:.1}s), kill_at {} (in {:.1}s)",
            text(&drain["stop_by"]),
            seconds("stop_by_in_seconds"),
            text(&drain["kill_at"]),
            seconds("kill_at_in_seconds")
        );
        let _ = writeln!(out, "         {}", connections(&drain["traffic"]));
    } else {
        let _ = writeln!(out, "drain:   none");
    }

    let events = status["events"].as_array().map_or(&[][..], Vec::as_slice);
    let shown = &events[events.len().saturating_sub(EVENTS_SHOWN)..];
    if shown.is_empty() {
        let _ = writeln!(out, "events:  none");
    } else {
        let _ = writeln!(out, "events (the last {}):", shown.len());
        for event in shown {
            let _ = writeln!(
                out,
                "  {}  {:<19} {}",
                text(&event["at"]),
                text(&event["reason"]),
                text(&event["message"])
            );
        }
    }
    out
}

/// " (12s ago)" for an RFC 3339 time in the past; nothing when it cannot be read.
fn ago(at: &str, now: SystemTime) -> String {
    let Ok(then) = humantime::parse_rfc3339(at) else {
        return String::new();
    };
    match now.duration_since(then) {
        Ok(since) => {
            let seconds = Duration::from_secs(since.as_secs());
            format!(" ({} ago)", humantime::format_duration(seconds))
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_draining_status_reads_as_lines() {
        let status = json!({
            "version": "0.1.0",
            "phase": "draining",
            "ready": false,
            "not_ready": "draining: the drain has started",
            "app": {"argv0": "\"app\"", "pid": 7, "started_at": "2025-01-01T00:00:00.000Z",
                    "restarts": 0, "last_exit": null},
            "hooks": [{"phase": "pre_stop", "index": 1, "kind": "exec", "runs": 1, "failures": 0,
                       "last": null}],
            "probes": [{"probe": "readiness", "health": "healthy", "successes": 4, "failures": 1,
                        "consecutive_failures": 0, "last_error": "connection refused"}],
            "drain": {"trigger": "request", "started_at": "2025-01-01T00:01:00.000Z",
                      "stage": "pre_stop", "stop_by": "2025-01-01T00:01:20.000Z",
                      "kill_at": "2025-01-01T00:01:30.000Z", "stop_by_in_seconds": 19.04,
                      "kill_at_in_seconds": 29.04,
                      "traffic": {"unavailable": false, "open_at_trigger": 3, "open": 2,
                                  "arrivals": 41, "last_arrival_at": "2025-01-01T00:01:00.800Z",
                                  "last_arrival_after_trigger_seconds": 0.8,
                                  "arrivals_after_stop_signal": 0,
                                  "open_at_stop_signal": null, "open_at_kill": null}},
            "stopping_for": "drain",
            "events": [{"at": "2025-01-01T00:00:00.000Z", "reason": "Started",
                        "message": "app \"app\" is pid 7"}],
        });
        let now = humantime::parse_rfc3339("2025-01-01T00:01:01Z").unwrap();
        assert_eq!(
            readable(&status, now),
            "graceinit 0.1.0\n\
             phase:   draining\n\
             ready:   no (draining: the drain has started)\n\
             stopping for: drain\n\
             app:     \"app\", pid 7, started 2025-01-01T00:00:00.000Z (1m 1s ago), restarts 0\n\
             hooks:\n  pre_stop#1     exec   runs 1, failures 0\n\
             probes:\n  readiness  healthy   successes 4, failures 1 (0 in a row), last error: connection refused\n\
             drain:   triggered by request at 2025-01-01T00:01:00.000Z, stage pre_stop\n\
             \x20        stop_by 2025-01-01T00:01:20.000Z (in 19.0s), kill_at 2025-01-01T00:01:30.000Z (in 29.0s)\n\
             \x20        connections: 3 open at the trigger, 41 arrived after it (the last 0.800s after the trigger), 0 after the stop signal; open now 2\n\
             events (the last 1):\n  2025-01-01T00:00:00.000Z  Started             app \"app\" is pid 7\n"
        );
    }
}
