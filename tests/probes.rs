//! Probes, end to end: the real graceinit binary, real apps and probes (`sh` scripts),
//! real signals, real time, real HTTP and TCP on loopback (DESIGN.md "Hooks and
//! probes"; Kubernetes' startup, liveness and readiness semantics).
//!
//! Probes record each run in files of the test's scratch directory and decide their
//! result from files the test creates or removes, so each test steers a probe from
//! passing to failing at a moment it chooses. graceinit runs with `-v` to show the
//! lifecycle's `the app is ready` / `the app is not ready` lines next to its events.
//! Every test holds `serial()`: periods of 100-300 ms must not be disturbed by another
//! test on a 2-core machine.

mod common;
#[allow(
    dead_code,
    reason = "shared with tests/lifecycle.rs, which uses the rest"
)]
mod lifecycle_support;

use std::time::Duration;

use common::{children, lines, serial, state, wait_until};
use lifecycle_support::{
    Graceinit, RecordingServer, Scenario, assert_lines, closed_port, hook_lines, lines_with,
    process_exists, run, wait_gone,
};

const WAIT: Duration = Duration::from_secs(20);

/// Asserts that `needles` appear in `haystack` in this order (each at its first
/// occurrence after the previous one).
fn assert_in_order(haystack: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        let at = haystack[from..].find(needle).unwrap_or_else(|| {
            panic!("{needle:?} not found after the earlier lines {needles:?} in:\n{haystack}")
        });
        from += at + needle.len();
    }
}

/// Waits until the file `name` of `s` has at least `n` lines.
fn wait_for_lines(s: &Scenario, name: &str, n: usize) {
    wait_until(WAIT, &format!("{n} lines in {name}"), || {
        lines(s.join(name)).len() >= n
    });
}

fn count(s: &Scenario, name: &str) -> usize {
    lines(s.join(name)).len()
}

/// `sh -c SCRIPT` as a TOML array.
fn sh(script: &str) -> String {
    format!("[\"sh\", \"-c\", {script:?}]")
}

// 1. The startup probe gates the others: liveness and readiness do not run, and the app is
// not ready, until the startup probe has passed.
#[test]
fn startup_probe_gates_liveness_readiness_and_ready() {
    let _serial = serial();
    let s = Scenario::new("probe-startup");
    let config = s.config(&format!(
        r#"
[probes.startup]
exec = {startup}
period = "100ms"
failure_threshold = 1000

[probes.liveness]
exec = {liveness}
period = "100ms"

[probes.readiness]
exec = {readiness}
period = "100ms"
"#,
        startup = sh(&format!(
            "echo run >> {runs}; test -f {started}",
            runs = s.file("startup_runs"),
            started = s.file("started")
        )),
        liveness = sh(&format!("echo run >> {}", s.file("liveness_runs"))),
        readiness = sh(&format!("echo run >> {}", s.file("readiness_runs"))),
    ));
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(0));

    // The startup probe fails a few times: nothing else runs, the app is not ready.
    wait_for_lines(&s, "startup_runs", 5);
    assert_eq!(count(&s, "liveness_runs"), 0, "liveness waits for startup");
    assert_eq!(
        count(&s, "readiness_runs"),
        0,
        "readiness waits for startup"
    );
    assert!(
        !graceinit.stderr().contains("the app is ready"),
        "not ready before the startup probe passed:\n{}",
        graceinit.stderr()
    );

    std::fs::write(s.join("started"), "").expect("create the startup file");
    graceinit.wait_for_stderr("the app is ready", WAIT);
    let at_ready = count(&s, "startup_runs");
    wait_for_lines(&s, "liveness_runs", 3);
    wait_for_lines(&s, "readiness_runs", 3);
    // The startup probe has stopped: at most a run that was in flight.
    assert!(
        count(&s, "startup_runs") <= at_ready + 1,
        "the startup probe stops once it has passed"
    );

    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "the app exits 0 on SIGTERM");
    assert_lines(&stderr, "the app is ready", 1, "ready once");
    assert_lines(&stderr, "Unhealthy", 0, "no probe failed for good");
}

/// The world of the liveness tests: a liveness probe that fails while the file `sick`
/// exists (recording each run in `liveness_runs` and each failure in `liveness_fails`),
/// and a pre_stop hook that records itself in `pre_stop` and removes `sick` (so that a
/// restarted app is healthy again).
fn liveness_config(s: &Scenario, app: &str) -> String {
    s.config(&format!(
        r#"
[app]
{app}

[[hooks.pre_stop]]
exec = {pre_stop}

[probes.liveness]
exec = {liveness}
period = "200ms"
failure_threshold = 3
"#,
        pre_stop = sh(&format!(
            "echo pre_stop >> {log}; rm -f {sick}",
            log = s.file("pre_stop"),
            sick = s.file("sick")
        )),
        liveness = sh(&format!(
            "echo run >> {runs}; if [ -f {sick} ]; then echo fail >> {fails}; exit 1; fi",
            runs = s.file("liveness_runs"),
            sick = s.file("sick"),
            fails = s.file("liveness_fails"),
        )),
    ))
}

// 2. failure_threshold failures of liveness in a row: the Unhealthy event, pre_stop once,
// the app's stop signal; with restart = "on-failure" the app is restarted after the
// back-off (the first restart is immediate, as the kubelet's), and the probe runs again.
#[test]
fn liveness_failure_stops_the_app_and_on_failure_restarts_it() {
    let _serial = serial();
    let s = Scenario::new("probe-liveness-restart");
    let config = liveness_config(&s, "restart = \"on-failure\"");
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(0));
    wait_for_lines(&s, "liveness_runs", 2);

    std::fs::write(s.join("sick"), "").expect("create the sick file");
    graceinit.wait_for_stderr("(restart 1)", WAIT);
    let runs_at_restart = count(&s, "liveness_runs");
    let stderr = graceinit.stderr();
    assert_lines(
        &stderr,
        "Unhealthy: Liveness probe failed: \"sh\" ended with exit code 1",
        1,
        "one Unhealthy event",
    );
    assert_in_order(
        &stderr,
        &[
            "Unhealthy: Liveness probe failed",
            "sending the stop signal SIGTERM to the app",
            "BackOff: restart 1 in 0s",
            "Started: app \"sh\" is pid",
        ],
    );
    assert_eq!(
        lines(s.join("liveness_fails")).len(),
        3,
        "exactly failure_threshold failures, then the probe stopped"
    );
    assert_eq!(lines(s.join("pre_stop")), ["pre_stop"], "pre_stop ran once");
    s.term_once();

    // The restarted app's liveness probe runs again (and passes: pre_stop removed `sick`).
    wait_for_lines(&s, "liveness_runs", runs_at_restart + 3);
    assert_eq!(lines(s.join("liveness_fails")).len(), 3);

    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "the restarted app exits 0 on SIGTERM");
    assert_lines(&stderr, "Unhealthy:", 1, "no second failure");
    assert_lines(&stderr, "BackOff:", 1, "one restart");
}

// 3. With restart = "never", the liveness failure ends graceinit with the app's status.
// The app ignores its stop signal: SIGKILL at the grace period (Killing), exit 128 + 9.
#[test]
fn liveness_failure_with_restart_never_exits_with_the_apps_status() {
    let _serial = serial();
    let s = Scenario::new("probe-liveness-never");
    let config = liveness_config(
        &s,
        "restart = \"never\"\ngrace_period = \"2s\"\nstop_timeout = \"1s\"",
    );
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_ignoring_term());
    wait_for_lines(&s, "liveness_runs", 2);

    std::fs::write(s.join("sick"), "").expect("create the sick file");
    graceinit.wait_for_stderr("Unhealthy: Liveness probe failed", WAIT);
    let (_, stderr) = graceinit.finish(137, "the app was SIGKILLed at the grace period");
    assert_in_order(
        &stderr,
        &[
            "Unhealthy: Liveness probe failed: \"sh\" ended with exit code 1",
            "sending the stop signal SIGTERM to the app",
            "Killing: sending SIGKILL to the app",
        ],
    );
    assert_lines(&stderr, "BackOff", 0, "no restart");
    assert_eq!(lines(s.join("pre_stop")), ["pre_stop"], "pre_stop ran once");
    assert_eq!(lines(s.join("liveness_fails")).len(), 3);
}

// 4. A startup probe that fails failure_threshold times: the same as a liveness failure
// (Kubernetes kills the container), and liveness and readiness never run.
#[test]
fn startup_failure_after_failure_threshold_periods_stops_the_app() {
    let _serial = serial();
    let s = Scenario::new("probe-startup-fails");
    let config = s.config(&format!(
        r#"
[[hooks.pre_stop]]
exec = {pre_stop}

[probes.startup]
exec = {startup}
period = "200ms"
failure_threshold = 3

[probes.liveness]
exec = {liveness}
period = "100ms"

[probes.readiness]
exec = {readiness}
period = "100ms"
"#,
        pre_stop = sh(&format!("echo pre_stop >> {}", s.file("pre_stop"))),
        startup = sh(&format!("echo run >> {}; exit 1", s.file("startup_runs"))),
        liveness = sh(&format!("echo run >> {}", s.file("liveness_runs"))),
        readiness = sh(&format!("echo run >> {}", s.file("readiness_runs"))),
    ));
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(3));
    let (_, stderr) = graceinit.finish(3, "the app exits 3 on its stop signal");
    assert_lines(
        &stderr,
        "Unhealthy: Startup probe failed: \"sh\" ended with exit code 1",
        1,
        "one Unhealthy event",
    );
    assert_in_order(
        &stderr,
        &[
            "Unhealthy: Startup probe failed",
            "sending the stop signal SIGTERM to the app",
            "the app exited (exit code 3)",
        ],
    );
    assert_eq!(count(&s, "startup_runs"), 3, "failure_threshold runs");
    assert_eq!(lines(s.join("pre_stop")), ["pre_stop"], "pre_stop ran once");
    s.term_once();
    assert_eq!(count(&s, "liveness_runs"), 0);
    assert_eq!(count(&s, "readiness_runs"), 0);
    assert_lines(&stderr, "the app is ready", 0, "never ready");
}

// 5. success_threshold = 2: two passes in a row make the app ready, a failure in between
// starts the count again. Runs 1 and 3 fail, 2, 4 and 5 pass; each run prints its number,
// which graceinit shows when the result changed (runs 1 to 4, not 5).
#[test]
fn readiness_success_threshold_counts_consecutive_passes() {
    let _serial = serial();
    let s = Scenario::new("probe-success-threshold");
    let config = s.config(&format!(
        r#"
[probes.readiness]
exec = {readiness}
period = "200ms"
success_threshold = 2
"#,
        readiness = sh(&format!(
            "n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}; echo run $n; \
             case $n in 1|3) exit 1;; esac",
            count = s.file("count")
        )),
    ));
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(0));
    graceinit.wait_for_stderr("the app is ready", WAIT);
    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    assert_in_order(
        &stderr,
        &[
            "[readiness#1] run 1",
            "[readiness#1] run 2",
            "[readiness#1] run 3",
            "[readiness#1] run 4",
            "the app is ready",
        ],
    );
    assert_lines(&stderr, "the app is ready", 1, "ready once");
    assert_lines(&stderr, "[readiness#1] run 5", 0, "run 5 passed like run 4");
}

// 6. Readiness failing, then passing again: not ready, then ready; on_ready ran once (the
// first time this run of the app became ready).
#[test]
fn readiness_failing_then_passing_again() {
    let _serial = serial();
    let s = Scenario::new("probe-readiness-flip");
    let config = s.config(&format!(
        r#"
[[hooks.on_ready]]
exec = {on_ready}

[probes.readiness]
exec = {readiness}
period = "100ms"
failure_threshold = 2
"#,
        on_ready = sh(&format!("echo on_ready >> {}", s.file("on_ready"))),
        readiness = sh(&format!("test -f {}", s.file("ok"))),
    ));
    std::fs::write(s.join("ok"), "").expect("create ok");
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(0));
    graceinit.wait_for_stderr("the app is ready", WAIT);
    wait_for_lines(&s, "on_ready", 1);

    std::fs::remove_file(s.join("ok")).expect("remove ok");
    graceinit.wait_for_stderr("the app is not ready", WAIT);
    std::fs::write(s.join("ok"), "").expect("create ok again");
    wait_until(WAIT, "ready a second time", || {
        lines_with(&graceinit.stderr(), "the app is ready").len() == 2
    });
    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    assert_in_order(
        &stderr,
        &[
            "the app is ready",
            "Unhealthy: Readiness probe failed: \"sh\" ended with exit code 1",
            "the app is not ready",
            "the app is ready",
            "DrainStarted",
        ],
    );
    assert_lines(&stderr, "the app is ready", 2, "");
    // (The drain makes the app not ready without that line: DrainStarted says it.)
    assert_lines(&stderr, "the app is not ready", 1, "");
    assert_eq!(lines(s.join("on_ready")), ["on_ready"], "on_ready ran once");
}

// 7. An exec probe that hangs is killed at its timeout, with its whole process group, and
// every process of it is reaped: no zombie is left.
#[test]
fn hanging_exec_probe_is_killed_at_its_timeout_and_reaped() {
    let _serial = serial();
    let s = Scenario::new("probe-hang");
    let config = s.config(&format!(
        r#"
[probes.readiness]
exec = {readiness}
timeout = "300ms"
period = "500ms"
failure_threshold = 3
"#,
        // A shell that leaves a child behind and becomes a sleep: both hang.
        readiness = sh(&format!(
            "sleep 30 & echo $$ $! >> {pids}; exec sleep 30",
            pids = s.file("pids")
        )),
    ));
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(0));
    graceinit.wait_for_stderr(
        "Unhealthy: Readiness probe failed: timed out after 300ms",
        WAIT,
    );
    wait_for_lines(&s, "pids", 4);
    let pids: Vec<i32> = lines(s.join("pids"))
        .iter()
        .take(3)
        .flat_map(|line| {
            line.split_whitespace()
                .map(|p| p.parse::<i32>().expect("a pid"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(pids.len(), 6);
    // Gone means reaped: a zombie still exists for kill(pid, 0).
    wait_gone("the first three runs' processes to be reaped", &pids, WAIT);
    let zombies: Vec<i32> = children(graceinit.pid())
        .into_iter()
        .filter(|&pid| state(pid) == Some('Z'))
        .collect();
    // A run killed this very instant may not be reaped yet: allow it a moment.
    wait_until(WAIT, "no zombie child of graceinit", || {
        zombies.iter().all(|&pid| !process_exists(pid))
    });
    graceinit.drain();
    graceinit.finish(0, "");
    assert_lines(&graceinit.stderr(), "the app is ready", 0, "never ready");
}

// 8. Probes stop at the drain: a probe that appends a line every period appends none
// after the drain has started, though the drain lasts many periods (its pre_stop hook
// counts the lines twice, 0.6 s apart, from 0.5 s after the trigger).
#[test]
fn probes_stop_during_the_drain() {
    let _serial = serial();
    let s = Scenario::new("probe-drain");
    let config = s.config(&format!(
        r#"
[[hooks.pre_stop]]
exec = {pre_stop}

[probes.liveness]
exec = {liveness}
period = "100ms"

[probes.readiness]
exec = {readiness}
period = "100ms"
"#,
        pre_stop = sh(&format!(
            "sleep 0.5; a=$(wc -l < {runs}); sleep 0.6; b=$(wc -l < {runs}); echo $a $b > {counts}",
            runs = s.file("runs"),
            counts = s.file("counts")
        )),
        liveness = sh(&format!("echo liveness >> {}", s.file("runs"))),
        readiness = sh(&format!("echo readiness >> {}", s.file("runs"))),
    ));
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(0));
    graceinit.wait_for_stderr("the app is ready", WAIT);
    wait_for_lines(&s, "runs", 6);
    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    let counts: Vec<usize> = s
        .read("counts")
        .split_whitespace()
        .map(|n| n.parse().expect("a count"))
        .collect();
    assert_eq!(counts.len(), 2, "the pre_stop hook counted twice");
    assert_eq!(
        counts[0], counts[1],
        "no probe ran between 0.5 s and 1.1 s into the drain"
    );
    assert_eq!(count(&s, "runs"), counts[1], "nor after");
    assert_lines(&stderr, "DrainStarted", 1, "");
}

// 9a. Exec probe output: a steady probe shows its output once (its first run), and again
// each time its result changes.
#[test]
fn exec_probe_output_is_shown_when_the_result_changes() {
    let _serial = serial();
    let s = Scenario::new("probe-output");
    let config = s.config(&format!(
        r#"
[probes.readiness]
exec = {readiness}
period = "100ms"
failure_threshold = 1
"#,
        readiness = sh(&format!(
            "echo run >> {runs}; echo out; echo err >&2; test ! -f {bad}",
            runs = s.file("runs"),
            bad = s.file("bad")
        )),
    ));
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));
    wait_for_lines(&s, "runs", 10);
    let shown = |g: &Graceinit| {
        (
            hook_lines(&g.stderr(), "readiness#1")
                .iter()
                .filter(|l| *l == "out")
                .count(),
            hook_lines(&g.stderr(), "readiness#1")
                .iter()
                .filter(|l| *l == "err")
                .count(),
        )
    };
    assert_eq!(shown(&graceinit), (1, 1), "ten passing runs: shown once");

    std::fs::write(s.join("bad"), "").expect("create bad");
    graceinit.wait_for_stderr("Unhealthy: Readiness probe failed", WAIT);
    let at = count(&s, "runs");
    wait_for_lines(&s, "runs", at + 5);
    assert_eq!(shown(&graceinit), (2, 2), "the first failing run: shown");

    std::fs::remove_file(s.join("bad")).expect("remove bad");
    wait_until(WAIT, "the passing run's output", || {
        shown(&graceinit) == (3, 3)
    });
    let at = count(&s, "runs");
    wait_for_lines(&s, "runs", at + 5);
    assert_eq!(shown(&graceinit), (3, 3), "passing again: shown once");
    graceinit.drain();
    graceinit.finish(0, "");
}

// 9b. A probe flapping every period, printing 5 lines each run: at most 20 lines a minute
// are shown, the first 20, and the limit is said once.
#[test]
fn exec_probe_output_is_limited_to_20_lines_a_minute() {
    let _serial = serial();
    let s = Scenario::new("probe-output-limit");
    let config = s.config(&format!(
        r#"
[probes.readiness]
exec = {readiness}
period = "100ms"
"#,
        readiness = sh(&format!(
            "n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}; \
             for i in 1 2 3 4 5; do echo line $n.$i; done; exit $((n % 2))",
            count = s.file("count")
        )),
    ));
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));
    wait_until(WAIT, "12 runs", || {
        s.read("count").trim().parse::<u32>().unwrap_or(0) >= 12
    });
    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    let expected: Vec<String> = (1..=4)
        .flat_map(|n| (1..=5).map(move |i| format!("line {n}.{i}")))
        .collect();
    assert_eq!(hook_lines(&stderr, "readiness#1"), expected);
    assert_lines(
        &stderr,
        "[readiness#1] more than 20 probe lines within a minute: the rest are dropped for",
        1,
        "the limit is said once",
    );
}

// 10. http, tcp and an http probe's expect_status: a tcp startup probe and an http
// liveness probe (200 is 2xx) pass; an http readiness probe expecting 204 fails on 200.
#[test]
fn http_and_tcp_probes_and_expect_status() {
    let _serial = serial();
    let s = Scenario::new("probe-http-tcp");
    let server = RecordingServer::start();
    let config = s.config(&format!(
        r#"
[probes.startup]
tcp = "127.0.0.1:{port}"
period = "100ms"

[probes.liveness]
http = {{ url = "{live}" }}
period = "100ms"

[probes.readiness]
http = {{ url = "{ready}", expect_status = [204] }}
period = "100ms"
"#,
        port = server.port,
        live = server.url("/live"),
        ready = server.url("/ready"),
    ));
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(0));
    graceinit.wait_for_stderr("Unhealthy: Readiness probe failed", WAIT);
    wait_until(WAIT, "3 liveness requests", || {
        server
            .requests()
            .iter()
            .filter(|r| r.target == "/live")
            .count()
            >= 3
    });
    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    assert_lines(
        &stderr,
        &format!(
            "Unhealthy: Readiness probe failed: GET {}: answered 200 OK",
            server.url("/ready")
        ),
        1,
        "200 is not the expected 204",
    );
    assert_lines(&stderr, "Liveness probe failed", 0, "200 passes by default");
    assert_lines(&stderr, "the app is ready", 0, "never ready");
    assert!(server.requests().iter().all(|r| r.method == "GET"));
}

// 11. A probe's URL password and query values never reach the log, even at -vv and in the
// Unhealthy event of a failing http probe.
#[test]
fn a_probe_urls_password_never_appears_in_the_log() {
    let _serial = serial();
    let s = Scenario::new("probe-secret");
    let port = closed_port();
    let config = s.config(&format!(
        r#"
[probes.readiness]
http = {{ url = "http://prober:pr0be-s3cret@127.0.0.1:{port}/health?token=qu3ry-s3cret" }}
period = "100ms"
failure_threshold = 1
"#,
    ));
    let mut graceinit = s.start(&["-vv", "--config", &config], &s.app_recording_term(0));
    graceinit.wait_for_stderr("Unhealthy: Readiness probe failed", WAIT);
    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    let event = lines_with(&stderr, "Unhealthy: Readiness probe failed");
    assert_eq!(event.len(), 1, "{stderr}");
    assert!(
        event[0].contains("GET http://prober:")
            && event[0].contains(&format!("127.0.0.1:{port}/health")),
        "the event names the request, redacted: {}",
        event[0]
    );
    for secret in ["pr0be-s3cret", "qu3ry-s3cret"] {
        assert!(!stderr.contains(secret), "{secret} leaked:\n{stderr}");
    }
}

// 12. A sleep makes no sense for a probe: a config error at the probe, exit 2.
#[test]
fn a_sleep_probe_is_a_located_config_error() {
    let s = Scenario::new("probe-sleep");
    let config = s.config("[probes.readiness]\nsleep = \"1s\"\nperiod = \"1s\"\n");
    let (code, _, stderr) = run(&["--config", &config, "--", "true"], &[], WAIT);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{config}:1:1")),
        "located at the probe's table: {stderr}"
    );
    assert!(
        stderr.contains("`sleep` is a hook action; probes take `exec`, `http` or `tcp`"),
        "{stderr}"
    );
    // `check` says the same.
    let (code, _, stderr) = run(&["check", &config], &[], WAIT);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`sleep` is a hook action"), "{stderr}");
}

// 13. Idle cost: with a readiness probe every 500 ms, graceinit wakes for the probe and
// nothing else: over 3 s (6 or 7 ticks of a tcp probe), one voluntary context switch per
// tick. (With tokio's timer wheel, a 500 ms sleep woke the loop twice: 12 or more.)
#[test]
fn an_idle_graceinit_with_a_probe_wakes_only_for_it() {
    let _serial = serial();
    let s = Scenario::new("probe-idle");
    let server = RecordingServer::start();
    let config = s.config(&format!(
        "[probes.readiness]\ntcp = \"127.0.0.1:{}\"\nperiod = \"500ms\"\n",
        server.port
    ));
    let mut graceinit = s.start(&["-v", "--config", &config], &s.app_recording_term(0));
    graceinit.wait_for_stderr("the app is ready", WAIT);
    let pid = graceinit.pid();
    let (before, _) = common::context_switches(pid);
    // A measurement window, not a synchronisation.
    std::thread::sleep(Duration::from_secs(3));
    let (after, _) = common::context_switches(pid);
    let wakeups = after - before;
    assert!(
        (5..=9).contains(&wakeups),
        "6 or 7 probe ticks in 3 s, one wake-up each: saw {wakeups}"
    );
    graceinit.drain();
    graceinit.finish(0, "");
}
