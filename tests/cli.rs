//! Precedence of settings: flag > environment variable > config file > default.

mod common;

use std::time::Duration;

use common::{Launch, TempDir};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn remap_exit_comes_from_flag_then_env_then_file() {
    let dir = TempDir::new("precedence");
    let config = dir.file("graceinit.toml");
    std::fs::write(&config, "[signals]\nremap_exit = { 3 = 5 }\n").unwrap();
    let app = ["--", "sh", "-c", "exit 3"];

    let file_only = Launch::direct(["--config", config.as_str()].iter().chain(&app)).run(WAIT);
    file_only.assert_code(5);

    let env_over_file = Launch::direct(["--config", config.as_str()].iter().chain(&app))
        .env("GRACEINIT_REMAP_EXIT", "3:4")
        .run(WAIT);
    env_over_file.assert_code(4);

    let flag_over_env = Launch::direct(
        ["--config", config.as_str(), "-e", "3:6"]
            .iter()
            .chain(&app),
    )
    .env("GRACEINIT_REMAP_EXIT", "3:4")
    .run(WAIT);
    flag_over_env.assert_code(6);

    let config_from_env = Launch::direct(app)
        .env("GRACEINIT_CONFIG", &config)
        .run(WAIT);
    config_from_env.assert_code(5);
}

#[test]
fn list_valued_environment_variables_take_commas() {
    let done = Launch::direct(["--", "sh", "-c", "exit 7"])
        .env("GRACEINIT_REMAP_EXIT", "3:4,7:8")
        .run(WAIT);
    done.assert_code(8);
}

#[test]
fn a_bad_environment_value_is_a_usage_error_naming_the_variable() {
    let done = Launch::direct(["--", "true"])
        .env("GRACEINIT_STOP_SIGNAL", "SIGNOPE")
        .run(WAIT);
    done.assert_code(2);
    assert!(
        done.stderr.starts_with(
            "error: invalid value 'SIGNOPE' for '--stop-signal <SIG>' \
             (from the environment variable GRACEINIT_STOP_SIGNAL): unknown signal `SIGNOPE`"
        ),
        "{}",
        done.stderr
    );

    // One bad element of a comma-separated list.
    let done = Launch::direct(["--", "true"])
        .env("GRACEINIT_REWRITE", "TERM:INT,SOON:LATER")
        .run(WAIT);
    done.assert_code(2);
    assert!(
        done.stderr.starts_with(
            "error: invalid value 'SOON:LATER' for '--rewrite <FROM:TO>' \
             (from the environment variable GRACEINIT_REWRITE)"
        ),
        "{}",
        done.stderr
    );

    // A bad flag value is the flag's fault, whatever the environment holds.
    let done = Launch::direct(["--grace-period", "soon", "--", "true"])
        .env("GRACEINIT_GRACE_PERIOD", "soon")
        .run(WAIT);
    done.assert_code(2);
    assert!(
        done.stderr.starts_with(
            "error: invalid value 'soon' for '--grace-period <D>': `soon` is not a duration"
        ),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("GRACEINIT_"), "{}", done.stderr);
}

#[test]
fn a_command_line_contradiction_is_a_usage_error() {
    let done = Launch::direct(["--stop-timeout", "50s", "--", "true"]).run(WAIT);
    done.assert_code(2);
    assert!(
        done.stderr.contains(
            "<command line>: stop_timeout (50s) is longer than grace_period (30s, the default)"
        ),
        "{}",
        done.stderr
    );
}

/// With a config file (even an empty one) the lifecycle events show; without one a
/// normal run prints nothing (tests/hardening_lifecycle.rs).
#[test]
fn json_logs_are_one_object_per_line_with_the_event_reason() {
    let dir = TempDir::new("json-logs");
    let empty = dir.write("empty.toml", "");
    let done = Launch::direct([
        "--log-format",
        "json",
        "--config",
        empty.as_str(),
        "--",
        "sh",
        "-c",
        "exit 3",
    ])
    .run(WAIT);
    done.assert_code(3);
    let events: Vec<serde_json::Value> = done
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(events.len(), 1, "{}", done.stderr);
    assert_eq!(events[0]["fields"]["reason"], "Started");
    assert_eq!(events[0]["level"], "INFO");
    assert!(
        events[0]["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Started: app \"sh\"")
    );
}

#[test]
fn the_default_level_shows_events_and_warnings_only() {
    let dir = TempDir::new("default-level");
    let empty = dir.write("empty.toml", "");
    let quiet = Launch::direct(["--config", empty.as_str(), "--", "true"]).run(WAIT);
    quiet.assert_code(0);
    assert_eq!(quiet.stderr.lines().count(), 1, "{}", quiet.stderr);
    assert!(quiet.stderr.contains("Started: app"), "{}", quiet.stderr);
    let verbose = Launch::direct(["-vv", "--", "true"]).run(WAIT);
    verbose.assert_code(0);
    assert!(verbose.stderr.contains("DEBUG"), "{}", verbose.stderr);
    assert!(
        verbose.stderr.contains("the app exited (exit code 0)"),
        "{}",
        verbose.stderr
    );
}
