//! The lifecycle, end to end: the real graceinit binary, real apps (`sh` scripts), real
//! signals, real time, and a real HTTP server on loopback standing in for a service
//! registry. Config file, hooks, and the drain with its deadlines (DESIGN.md "The
//! lifecycle", "Hooks and probes", "Configuration"), plus every shipped example.
//!
//! graceinit runs as a plain child of the test (not PID 1, so a child subreaper); the
//! central drain tests (`_as_pid1`) run again with graceinit as PID 1 of a new PID
//! namespace, as in a container, where every orphan and leftover is its own. Times
//! compared across processes are wall-clock nanoseconds: the server's `SystemTime`
//! stamps and the scripts' `date +%s%N`. Tests that run graceinit hold `serial()`, so
//! the deadlines they measure are not disturbed by each other on a 2-core machine.
//! Most tests are a `Scenario`: a config, an `sh` app that records its SIGTERM in
//! `events`, and graceinit started on both.

mod common;
mod lifecycle_support;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use common::{GRACEINIT, Launch, TempDir, children, comm, require_tool, serial, wait_until};
use lifecycle_support::{
    Graceinit, Mode, RecordingServer, Scenario, assert_between, assert_lines, closed_port,
    crate_dir, hook_lines, lines_with, now_ns, process_exists, run, secs, wait_gone,
};

const SECOND: i128 = 1_000_000_000;

fn position(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not found in:\n{haystack}"))
}

// 1. The whole drain, in order: deregister, wait, stop the app, post_stop, exit.
#[test]
fn drain_runs_pre_stop_hooks_in_order_then_stops_the_app_then_post_stop_as_subreaper() {
    whole_drain(Mode::Subreaper);
}

#[test]
fn drain_runs_pre_stop_hooks_in_order_then_stops_the_app_then_post_stop_as_pid1() {
    whole_drain(Mode::Pid1);
}

fn whole_drain(mode: Mode) {
    let _serial = serial();
    let s = Scenario::new("order");
    let registry = RecordingServer::start();
    let config = s.config(&format!(
        r#"
[[hooks.pre_stop]]
http = {{ method = "PUT", url = "{url}", expect_status = [200] }}
timeout = "5s"

[[hooks.pre_stop]]
sleep = "1s"

[[hooks.post_stop]]
exec = ["sh", "-c", "echo \"post_stop $(date +%s%N)\" >> {events}"]
"#,
        url = registry.url("/eureka/apps/WEB/web-0/status?value=OUT_OF_SERVICE"),
        events = s.file("events"),
    ));
    let mut graceinit = s.start_as(mode, &["--config", &config], &s.app_recording_term(0));

    let sigterm_at = graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "the app exited 0 on SIGTERM");

    let requests = registry.requests();
    assert_eq!(
        requests.len(),
        1,
        "exactly one deregister call: {requests:?}"
    );
    let deregister = &requests[0];
    assert_eq!(deregister.method, "PUT");
    assert_eq!(
        deregister.target,
        "/eureka/apps/WEB/web-0/status?value=OUT_OF_SERVICE"
    );

    let events = s.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["app_term", "post_stop"],
        "the app got TERM once, then post_stop ran once"
    );
    let (term_at, post_stop_at) = (events[0].1, events[1].1);

    assert!(
        deregister.at_ns >= sigterm_at,
        "the deregister call came after the SIGTERM"
    );
    assert_between(
        term_at - deregister.at_ns,
        SECOND * 95 / 100..SECOND * 3 / 2,
        "the app got TERM after the deregister call; the 1s pre_stop sleep lies between",
    );
    assert!(
        post_stop_at >= term_at,
        "post_stop ran after the app got TERM"
    );
    assert!(
        position(&stderr, "DrainStarted") < position(&stderr, "DrainFinished"),
        "DrainStarted is logged before DrainFinished:\n{stderr}"
    );
}

// 2. A hanging pre_stop hook is cut at its own timeout, and its whole process group dies.
#[test]
fn hanging_pre_stop_hook_is_killed_at_its_timeout() {
    let _serial = serial();
    let s = Scenario::new("hang");
    // The hook is a shell with a child; both hang.
    let config = s.config(&format!(
        r#"
[[hooks.pre_stop]]
exec = ["sh", "-c", "echo $$ > {hook}; sleep 1000 & echo $! > {child}; wait"]
timeout = "1s"
"#,
        hook = s.file("hook.pid"),
        child = s.file("child.pid"),
    ));
    // The app takes 1s to stop after its TERM, so the hook's fate can be checked while
    // graceinit still runs (afterwards its leftover cleanup would hide a survivor).
    let app = s.app_on_term("sleep 1; exit 0");
    let mut graceinit = s.start(&["--config", &config], &app);

    let sigterm_at = graceinit.drain();
    let (hook_pid, child_pid) = s.hook_pids("the hook to start", Duration::from_secs(1));
    s.wait_for_term(Duration::from_secs(5));
    wait_gone(
        "the hook's processes to be gone",
        &[hook_pid, child_pid],
        Duration::from_millis(500),
    );
    assert!(graceinit.running(), "the app is still stopping");
    let (_, stderr) = graceinit.finish(0, "");

    assert_between(
        s.term_once() - sigterm_at,
        SECOND * 95 / 100..SECOND * 3 / 2,
        "the app got TERM after the trigger; the hook's timeout is 1s",
    );
    let failures = lines_with(&stderr, "FailedPreStopHook");
    assert_eq!(failures.len(), 1, "one FailedPreStopHook event:\n{stderr}");
    assert!(
        failures[0].contains("pre_stop#1") && failures[0].contains("timed out"),
        "the event names the hook and the timeout: {}",
        failures[0]
    );
    assert!(
        !process_exists(hook_pid) && !process_exists(child_pid),
        "and they stay gone"
    );
}

// 3. An unreachable registry does not stop the drain.
#[test]
fn unreachable_registry_is_reported_and_the_drain_goes_on() {
    let _serial = serial();
    let s = Scenario::new("unreachable");
    let port = closed_port();
    let config = s.config(&format!(
        r#"
[[hooks.pre_stop]]
http = {{ method = "PUT", url = "http://127.0.0.1:{port}/v1/agent/service/deregister/web-0" }}
timeout = "5s"
"#
    ));
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(7));

    let sigterm_at = graceinit.drain();
    let (_, stderr) = graceinit.finish(7, "graceinit exits with the app's code");

    let failures = lines_with(&stderr, "FailedPreStopHook");
    assert_eq!(failures.len(), 1, "one FailedPreStopHook event:\n{stderr}");
    assert!(failures[0].contains("pre_stop#1"), "{}", failures[0]);

    let after = s.term_once() - sigterm_at;
    assert!(
        after < SECOND / 2,
        "a refused connection fails at once, so the app gets TERM right away, not {:.3}s later",
        secs(after)
    );
}

// 4. An app that ignores SIGTERM is SIGKILLed at T0 + grace_period (promised within 100ms).
//    No config file: `-v` shows the Started line that `Scenario::start` waits for.
#[test]
fn app_ignoring_sigterm_is_killed_at_the_grace_period_as_subreaper() {
    kill_at_grace_period(Mode::Subreaper);
}

#[test]
fn app_ignoring_sigterm_is_killed_at_the_grace_period_as_pid1() {
    kill_at_grace_period(Mode::Pid1);
}

fn kill_at_grace_period(mode: Mode) {
    let _serial = serial();
    let s = Scenario::new("ignore-term");
    let mut graceinit = s.start_as(
        mode,
        &["-v", "--grace-period", "3s", "--stop-timeout", "2s"],
        &s.app_ignoring_term(),
    );

    let sent = Instant::now();
    graceinit.drain();
    let (exit, stderr) = graceinit.finish(137, "the app died of SIGKILL");
    let took = exit.at - sent;
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_millis(3400),
        "graceinit exited {took:?} after SIGTERM; SIGKILL is due at 3s (grace_period)\n{stderr}"
    );
    assert_lines(&stderr, "Killing", 1, "one Killing event");
}

// 5. A failing post_start hook kills the app; with on_failure = "ignore" it does not.
#[test]
fn failing_post_start_hook_kills_the_app_unless_ignored_as_subreaper() {
    failing_post_start(Mode::Subreaper);
}

#[test]
fn failing_post_start_hook_kills_the_app_unless_ignored_as_pid1() {
    failing_post_start(Mode::Pid1);
}

fn failing_post_start(mode: Mode) {
    let _serial = serial();
    let dir = TempDir::new("post-start");
    let failing = dir.write(
        "failing.toml",
        &format!(
            r#"
[[hooks.post_start]]
exec = ["sh", "-c", "date +%s%N > {failed}; exit 3"]
"#,
            failed = dir.file("failed"),
        ),
    );
    let mut graceinit = Graceinit::spawn_as(
        mode,
        &[
            "--config",
            &failing,
            "--stop-timeout",
            "2s",
            "--",
            "sleep",
            "1000",
        ],
        &[],
    );
    let (exit, stderr) = graceinit.finish(1, "a failed post_start hook makes graceinit exit 1");
    let exited_at = now_ns() - exit.at.elapsed().as_nanos() as i128;
    let failed_at: i128 = dir
        .read("failed")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the hook ran; stderr:\n{stderr}"));
    assert_between(
        exited_at - failed_at,
        0..SECOND / 2,
        "graceinit exited after the hook failed; the app is stopped at once (it dies of SIGTERM), not after a grace period",
    );
    let failures = lines_with(&stderr, "FailedPostStartHook");
    assert_eq!(
        failures.len(),
        1,
        "one FailedPostStartHook event:\n{stderr}"
    );
    assert!(failures[0].contains("post_start#1"), "{}", failures[0]);

    let ignored = dir.write(
        "ignored.toml",
        r#"
[[hooks.post_start]]
exec = ["sh", "-c", "echo hook ran; exit 3"]
on_failure = "ignore"

[[hooks.on_ready]]
exec = ["echo", "ready"]
"#,
    );
    let mut graceinit = Graceinit::start_as(
        mode,
        &[
            "--config",
            &ignored,
            "--stop-timeout",
            "2s",
            "--",
            "sleep",
            "1000",
        ],
        &[],
    );
    // on_ready hooks run once the post_start phase has succeeded: the ignored failure
    // did not fail it.
    graceinit.wait_for_stderr("[on_ready#1] ready", Duration::from_secs(10));
    assert!(
        graceinit.running(),
        "with on_failure = \"ignore\" the app keeps running:\n{}",
        graceinit.stderr()
    );
    assert_lines(
        &graceinit.stderr(),
        "[post_start#1] hook ran",
        1,
        "the ignored hook ran",
    );
    graceinit.drain();
    let (_, stderr) = graceinit.finish(143, "the app (sleep) died of the test's SIGTERM");
    assert!(
        !stderr.contains("FailedPostStartHook"),
        "an ignored failure is no event:\n{stderr}"
    );
}

// 6. Hook output reaches stderr complete and in order, even when the hook is killed.
#[test]
fn hook_output_is_complete_and_in_order_even_when_the_hook_is_killed() {
    let _serial = serial();
    let s = Scenario::new("output");
    let config = s.config(
        r#"
[[hooks.post_start]]
exec = ["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf 'no newline'"]

[[hooks.pre_stop]]
exec = ["sh", "-c", "i=1; while [ $i -le 500 ]; do echo \"line $i\"; i=$((i + 1)); done; exec sleep 1000"]
timeout = "1s"

[[hooks.post_stop]]
exec = ["sh", "-c", "printf 'line %s\\n' $(seq 1 20000); kill -KILL 0"]
"#,
    );
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));
    graceinit.wait_for_stderr("[post_start#1] no newline", Duration::from_secs(10));

    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");

    // stdout and stderr are relayed separately: the order is kept within each stream.
    let lines = hook_lines(&stderr, "post_start#1");
    let (errs, outs): (Vec<&str>, Vec<&str>) = lines
        .iter()
        .map(String::as_str)
        .partition(|l| l.starts_with("err"));
    assert_eq!(
        outs,
        ["out1", "out2", "no newline"],
        "stdout in order: {lines:?}"
    );
    assert_eq!(errs, ["err1", "err2"], "stderr in order: {lines:?}");
    let expected: Vec<String> = (1..=500).map(|n| format!("line {n}")).collect();
    let got = hook_lines(&stderr, "pre_stop#1");
    assert_eq!(
        got.len(),
        500,
        "each of the 500 lines once, although the hook was SIGKILLed"
    );
    assert_eq!(got, expected, "all 500 lines, in order");
    // 20000 lines overflow the pipe: the last 64 KiB are still unread when the hook dies.
    let expected: Vec<String> = (1..=20000).map(|n| format!("line {n}")).collect();
    let got = hook_lines(&stderr, "post_stop#1");
    assert!(
        got == expected,
        "all 20000 lines once, in order, from a hook SIGKILLed right after writing them; got {} lines",
        got.len()
    );
    let failures = lines_with(&stderr, "FailedPreStopHook");
    assert!(
        failures.len() == 1 && failures[0].contains("timed out"),
        "the hook was cut at its timeout:\n{stderr}"
    );
}

/// Runs `graceinit --config <file> -- true` on `contents` and returns (path, stderr)
/// after asserting exit code 2.
fn config_error(dir: &TempDir, name: &str, contents: &str) -> (String, String) {
    let path = dir.write(name, contents);
    let (code, _, stderr) = run(
        &["--config", &path, "--", "true"],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(code, 2, "a config error is exit 2; stderr:\n{stderr}");
    (path, stderr)
}

/// The first line of `stderr` that names `path` ("" if none).
fn line_naming<'a>(stderr: &'a str, path: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.contains(&format!("{path}:")))
        .unwrap_or_default()
}

// 7. Config errors name file:line:column.
#[test]
fn config_errors_name_file_line_and_column() {
    let dir = TempDir::new("config-errors");

    // (a) A misspelt key, with the nearest known key suggested.
    let (path, stderr) = config_error(
        &dir,
        "unknown-key.toml",
        "[app]\nstop_signal = \"SIGTERM\"\nstop_timout = \"10s\"\n",
    );
    assert!(stderr.contains(&format!("{path}:3:1: ")), "{stderr}");
    assert!(stderr.contains("did you mean `stop_timeout`"), "{stderr}");
    let (code, _, check_stderr) = run(&["check", &path], &[], Duration::from_secs(10));
    assert_eq!(code, 2, "`check` rejects it too: {check_stderr}");
    assert!(
        check_stderr.contains(&format!("{path}:3:1: ")),
        "{check_stderr}"
    );

    // (b) A bad duration: the position of the value.
    let (path, stderr) = config_error(
        &dir,
        "bad-duration.toml",
        "[app]\nstop_timeout = \"10 parsecs\"\n",
    );
    let line = line_naming(&stderr, &path);
    assert!(line.contains(&format!("{path}:2:16: ")), "{stderr}");
    assert!(line.contains("duration"), "{stderr}");

    // (c) A hook with two actions: the hook's own position.
    let (path, stderr) = config_error(
        &dir,
        "two-actions.toml",
        "[app]\nstop_timeout = \"5s\"\n\n[[hooks.pre_stop]]\nsleep = \"1s\"\nexec = [\"true\"]\n",
    );
    let line = line_naming(&stderr, &path);
    assert!(line.contains(&format!("{path}:4:1: ")), "{stderr}");
    assert!(line.contains("one action"), "{stderr}");

    // (d) A TOML syntax error.
    let (path, stderr) = config_error(
        &dir,
        "syntax.toml",
        "[app]\ngrace_period = \"30s\"\nstop_timeout = = \"5s\"\n",
    );
    assert!(stderr.contains(&format!("{path}:3:16: ")), "{stderr}");
}

// 8. `check` does the drain's arithmetic.
#[test]
fn check_prints_the_drain_budget() {
    let dir = TempDir::new("budget");
    let too_long = dir.write(
        "too-long.toml",
        "[app]\nstop_timeout = \"15s\"\ngrace_period = \"30s\"\n\n[[hooks.pre_stop]]\nsleep = \"20s\"\n",
    );
    let (code, stdout, stderr) = run(&["check", &too_long], &[], Duration::from_secs(10));
    assert_eq!(
        code, 0,
        "a config that does not fit is still valid: {stderr}"
    );
    assert!(
        stderr.contains("warning: the drain does not fit"),
        "{stderr}"
    );
    assert!(stdout.contains("DOES NOT FIT by 5s"), "{stdout}");

    let fits = dir.write(
        "fits.toml",
        "[app]\nstop_timeout = \"15s\"\ngrace_period = \"30s\"\n\n[[hooks.pre_stop]]\nsleep = \"10s\"\n",
    );
    let (code, stdout, stderr) = run(&["check", &fits], &[], Duration::from_secs(10));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("fits, with 5s to spare"), "{stdout}");
    assert!(!stderr.contains("does not fit"), "{stderr}");
}

// 9. The drain runs once, however many SIGTERMs arrive.
#[test]
fn repeated_sigterm_drains_once_as_subreaper() {
    drain_once(Mode::Subreaper);
}

#[test]
fn repeated_sigterm_drains_once_as_pid1() {
    drain_once(Mode::Pid1);
}

fn drain_once(mode: Mode) {
    let _serial = serial();
    let s = Scenario::new("once");
    let registry = RecordingServer::start();
    let config = s.config(&format!(
        r#"
[[hooks.pre_stop]]
http = {{ method = "PUT", url = "{url}" }}

[[hooks.pre_stop]]
sleep = "1s"
"#,
        url = registry.url("/eureka/apps/WEB/web-0/status?value=OUT_OF_SERVICE"),
    ));
    // Exits 1s after the last TERM, so a duplicate sent later by graceinit would be seen.
    let mut graceinit = s.start_as(
        mode,
        &["--config", &config],
        &s.app_recording_every_term(20),
    );

    let first_sigterm_at = graceinit.drain();
    // Again once the drain has started, and again during the pre_stop sleep.
    graceinit.wait_for_stderr("DrainStarted", Duration::from_secs(5));
    graceinit.drain();
    wait_until(Duration::from_secs(5), "the deregister call", || {
        !registry.requests().is_empty()
    });
    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    assert_eq!(
        registry.requests().len(),
        1,
        "one deregister call: {:?}",
        registry.requests()
    );
    assert_between(
        s.term_once() - first_sigterm_at,
        SECOND * 95 / 100..SECOND * 3 / 2,
        "the app got TERM after the first SIGTERM; the repeated SIGTERMs neither cut the 1s pre_stop sleep short nor restarted it",
    );
    assert_lines(&stderr, "DrainStarted", 1, "one drain");
}

// 10. Another drain signal during the drain skips ahead; once more kills.
#[test]
fn second_drain_signal_skips_the_hooks_and_a_third_kills() {
    let _serial = serial();
    let s = Scenario::new("escalation");
    let config = s.config(
        r#"
[app]
stop_timeout = "5s"
grace_period = "60s"

[signals]
drain = ["SIGTERM", "SIGINT"]

[[hooks.pre_stop]]
sleep = "30s"
"#,
    );

    // SIGTERM starts the drain; SIGINT skips the 30s sleep and stops the app now.
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));
    graceinit.drain();
    graceinit.wait_for_stderr("DrainStarted", Duration::from_secs(5));
    // Not synchronisation: a window in which a wrong stop signal would show.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.read("events"),
        "",
        "the app is not stopped during the pre_stop sleep"
    );
    let sigint_at = graceinit.signal(libc::SIGINT);
    graceinit.finish(0, "");
    assert_between(
        s.term_once() - sigint_at,
        0..SECOND / 2,
        "the app got its stop signal after the SIGINT; it should be at once",
    );

    // With an app that ignores its stop signal: SIGTERM, SIGINT (stop), SIGINT (kill).
    let s = Scenario::new("escalation-kill");
    let mut graceinit = s.start(&["--config", &config], &s.app_ignoring_term());
    graceinit.drain();
    graceinit.wait_for_stderr("DrainStarted", Duration::from_secs(5));
    graceinit.signal(libc::SIGINT);
    graceinit.wait_for_stderr(
        "skipping the remaining pre_stop hooks",
        Duration::from_secs(5),
    );
    let second_sigint = Instant::now();
    graceinit.signal(libc::SIGINT);
    let (exit, stderr) = graceinit.finish(137, "the third drain signal SIGKILLs the app");
    assert!(
        exit.at - second_sigint < Duration::from_millis(500),
        "SIGKILL followed the second SIGINT at once, not at a deadline: {:?}",
        exit.at - second_sigint
    );
    assert_lines(&stderr, "Killing", 1, "one Killing event");
}

// 11. on_ready hooks run after every post_start hook has succeeded.
#[test]
fn on_ready_runs_after_post_start() {
    let _serial = serial();
    let dir = TempDir::new("on-ready");
    let config = dir.write(
        "graceinit.toml",
        &format!(
            r#"
[[hooks.post_start]]
exec = ["sh", "-c", "sleep 0.3; echo a >> {order}"]

[[hooks.on_ready]]
exec = ["sh", "-c", "echo b >> {order}"]
"#,
            order = dir.file("order"),
        ),
    );
    let mut graceinit = Graceinit::start(&["--config", &config, "--", "sleep", "1000"], &[]);
    wait_until(Duration::from_secs(10), "the on_ready hook", || {
        dir.read("order").lines().count() >= 2
    });
    assert_eq!(dir.read("order"), "a\nb\n");

    graceinit.drain();
    graceinit.finish(143, "");
    assert_eq!(dir.read("order"), "a\nb\n", "each hook ran once");
}

// 12. ${VAR} and ${VAR:-default} expand in urls, headers and bodies.
#[test]
fn variables_expand_in_http_hooks() {
    let _serial = serial();
    let dir = TempDir::new("expand");
    let registry = RecordingServer::start();
    let config = dir.write(
        "graceinit.toml",
        &format!(
            r#"
[[hooks.pre_stop]]
http = {{ method = "PUT", url = "http://127.0.0.1:{port}/v1/agent/service/deregister/${{TEST_INSTANCE}}", headers = {{ "X-Token" = "${{TOKEN:-none}}", "X-Set" = "${{TEST_SET_TOKEN:-none}}" }}, body = '{{"id": "${{TEST_INSTANCE}}"}}' }}
"#,
            port = registry.port,
        ),
    );
    let launch = Launch::direct(["--config", &config, "--", "sleep", "1000"])
        .env("TEST_INSTANCE", "web-42")
        .env("TEST_SET_TOKEN", "s3cret")
        .env_remove("TOKEN");
    let mut graceinit = Graceinit::launch(launch);
    graceinit.wait_for_stderr("Started:", Duration::from_secs(10));
    graceinit.drain();
    graceinit.finish(143, "");

    let requests = registry.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.target, "/v1/agent/service/deregister/web-42");
    assert_eq!(request.header("X-Token"), Some("none"), "{request:?}");
    assert_eq!(request.header("X-Set"), Some("s3cret"), "{request:?}");
    assert_eq!(request.body, r#"{"id": "web-42"}"#);
}

/// The environment a pod gives the examples' `${VAR}`s that have no default.
const POD_ENV: &[(&str, &str)] = &[
    ("HOSTNAME", "web-0"),
    ("APP_NAME", "WEB"),
    ("POD_IP", "10.0.0.7"),
];

// Every shipped example is valid and its drain fits.
#[test]
fn every_example_passes_check() {
    let examples = crate_dir().join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&examples)
        .expect("examples/ exists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    for expected in [
        "consul.toml",
        "eureka.toml",
        "hello.toml",
        "nginx.toml",
        "web-app.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "examples/{expected} exists: {names:?}"
        );
    }
    for name in &names {
        let path = examples.join(name);
        let (code, stdout, stderr) = run(
            &["check", path.to_str().unwrap()],
            POD_ENV,
            Duration::from_secs(10),
        );
        assert_eq!(code, 0, "examples/{name}: {stderr}");
        assert!(stdout.contains(": ok"), "examples/{name}:\n{stdout}");
        assert!(stdout.contains("fits, with"), "examples/{name}:\n{stdout}");
        assert!(
            !stdout.contains("DOES NOT FIT"),
            "examples/{name}:\n{stdout}"
        );
        assert!(
            !stderr.contains("warning"),
            "examples/{name} checks without warnings:\n{stderr}"
        );
    }
}

// The pod's terminationGracePeriodSeconds covers the ConfigMap's grace_period.
#[test]
fn pod_example_grace_period_fits_the_termination_grace_period() {
    let yaml = std::fs::read_to_string(crate_dir().join("examples/k8s/pod.yaml"))
        .expect("examples/k8s/pod.yaml");
    // The ConfigMap's `graceinit.toml: |` block: the lines indented deeper than its key.
    let mut lines = yaml
        .lines()
        .skip_while(|l| l.trim() != "graceinit.toml: |")
        .skip(1);
    let mut block = Vec::new();
    for line in lines.by_ref() {
        if !line.is_empty() && !line.starts_with("    ") {
            break;
        }
        block.push(line.strip_prefix("    ").unwrap_or(line));
    }
    assert!(
        !block.is_empty(),
        "pod.yaml has a ConfigMap with graceinit.toml"
    );
    let dir = TempDir::new("pod");
    let config = dir.write("graceinit.toml", &(block.join("\n") + "\n"));
    let (code, stdout, stderr) = run(&["check", &config], POD_ENV, Duration::from_secs(10));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("fits, with"), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");

    let needed: f64 = stdout
        .split("terminationGracePeriodSeconds must be at least ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!("check prints the needed terminationGracePeriodSeconds:\n{stdout}")
        });
    let declared: f64 = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
        .and_then(|rest| rest.split('#').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("the pod sets terminationGracePeriodSeconds");
    assert!(
        needed <= declared,
        "terminationGracePeriodSeconds {declared} must be at least the config's grace_period ({needed}s)"
    );
    assert!(
        yaml.contains("GRACEINIT_CONFIG"),
        "the pod points graceinit at the mounted config"
    );
    assert!(
        yaml.contains(r#"["/graceinit", "sleep", "#),
        "the alternative preStop uses `graceinit sleep`"
    );
}

/// The lines of the hello demo's lifecycle, in the order they must appear.
const HELLO_LIFECYCLE: &[&str] = &[
    "Started:",
    "[post_start#1] the app is starting",
    "[on_ready#1] post_start hooks are done",
    "DrainStarted",
    "[pre_stop#1] deregistering (pretend)",
    "[pre_stop#1] done: the app may stop now",
    "hello: got SIGTERM",
    "DrainFinished",
    "[post_stop#1] the app has exited",
];

/// The drain as a terminal shows it, graceinit's lines and the app's interleaved. The
/// app writes to the terminal directly while graceinit's lines go through its log
/// writer thread, so only orders that causality fixes are checked: graceinit's own
/// lines in order, and the app's SIGTERM after the deregistration started and before
/// graceinit saw the app exit.
fn assert_drain_shown(output: &str, before: &str, after: &str) {
    let graceinit_lines: Vec<&str> = HELLO_LIFECYCLE[3..]
        .iter()
        .copied()
        .filter(|l| !l.starts_with("hello:"))
        .collect();
    assert_in_order(
        output,
        &[&[before][..], &graceinit_lines, &[after]].concat(),
    );
    assert_in_order(
        output,
        &[
            "[pre_stop#1] deregistering",
            "hello: got SIGTERM",
            "DrainFinished",
        ],
    );
}

fn assert_in_order(output: &str, expected: &[&str]) {
    let mut from = 0;
    for needle in expected {
        match output[from..].find(needle) {
            Some(i) => from += i + needle.len(),
            None => panic!("{needle:?} missing or out of order in:\n{output}"),
        }
    }
}

// The README's demo: SIGINT to graceinit (Ctrl-C without a terminal) shows the lifecycle.
#[test]
fn hello_example_shows_the_whole_lifecycle_on_sigint() {
    let _serial = serial();
    let hello = crate_dir().join("examples/hello.toml");
    let mut graceinit = Graceinit::start(&["--config", hello.to_str().unwrap()], &[]);
    graceinit.wait_for_stderr("[on_ready#1]", Duration::from_secs(10));
    graceinit.signal(libc::SIGINT);
    let exit = graceinit.wait(Duration::from_secs(15));
    let output = graceinit.stderr() + &graceinit.stdout();
    assert_eq!(exit.code, 0, "{output}");
    // The app writes to stdout, graceinit and the hooks to stderr: check each stream.
    let graceinit_lines: Vec<&str> = HELLO_LIFECYCLE
        .iter()
        .copied()
        .filter(|l| !l.starts_with("hello:"))
        .collect();
    assert_in_order(&graceinit.stderr(), &graceinit_lines);
    assert!(
        graceinit.stdout().contains("hello: got SIGTERM"),
        "{output}"
    );
}

// The README's demo on a real terminal: Ctrl-C typed into a pty (util-linux `script`).
// `exec` makes graceinit the session leader, as in `docker run -it`: were the shell left
// between `script` and graceinit (a shell that does not exec its last command), the
// shell would own the foreground group and die of the Ctrl-C itself.
#[test]
fn hello_example_shows_the_whole_lifecycle_on_ctrl_c_in_a_terminal() {
    let _serial = serial();
    require_tool("script", "bsdutils");
    let hello = crate_dir().join("examples/hello.toml");
    let launch = Launch::program(
        "script",
        [
            "-qec",
            &format!("exec {GRACEINIT} --config {}", hello.display()),
            "/dev/null",
        ],
    )
    .env("SHELL", "/bin/sh")
    .stdin_piped();
    let mut script = Graceinit::launch(launch);
    let mut terminal = script.take_stdin();
    script.wait_for_stdout("[on_ready#1]", Duration::from_secs(10));
    type_into(&mut terminal, "\x03");
    let exit = script.wait(Duration::from_secs(15));
    drop(terminal);
    let output = script.stdout();
    assert_eq!(exit.code, 0, "{output}");
    assert_drain_shown(&output, "hello: Ctrl-C", "");
}

// The README's first command typed into an interactive shell: the shell runs graceinit
// as a foreground job and keeps the terminal, so the app cannot take it and Ctrl-C
// reaches graceinit itself, which drains because hello.toml lists SIGINT.
#[test]
fn hello_example_drains_on_ctrl_c_typed_in_an_interactive_shell() {
    let _serial = serial();
    require_tool("script", "bsdutils");
    require_tool("bash", "bash");
    let hello = crate_dir().join("examples/hello.toml");
    let launch = Launch::program(
        "script",
        ["-qec", "bash --norc --noprofile +o history -i", "/dev/null"],
    )
    .env("SHELL", "/bin/sh")
    .stdin_piped();
    let mut script = Graceinit::launch(launch);
    let mut terminal = script.take_stdin();
    type_into(
        &mut terminal,
        &format!("{GRACEINIT} --config {}\n", hello.display()),
    );
    script.wait_for_stdout("[on_ready#1]", Duration::from_secs(10));
    type_into(&mut terminal, "\x03");
    script.wait_for_stdout("[post_stop#1]", Duration::from_secs(15));
    type_into(&mut terminal, "echo \"graceinit exited $?\"; exit\n");
    let exit = script.wait(Duration::from_secs(15));
    drop(terminal);
    let output = script.stdout();
    assert_eq!(exit.code, 0, "{output}");
    assert_drain_shown(&output, "", "graceinit exited 0");
    assert!(
        !output.contains("hello: Ctrl-C"),
        "the app does not own the shell's terminal, so Ctrl-C is graceinit's:\n{output}"
    );
}

/// Writes `keys` to a terminal's input (the pipe to `script`).
fn type_into(terminal: &mut impl Write, keys: &str) {
    terminal
        .write_all(keys.as_bytes())
        .and_then(|()| terminal.flush())
        .unwrap_or_else(|e| panic!("type {keys:?}: {e}"));
}

// 13. A drain waits for an on_ready hook still running (a registration in flight)
//     before the pre_stop hooks (the deregistration) start.
#[test]
fn drain_waits_for_a_running_on_ready_hook_before_pre_stop() {
    let _serial = serial();
    let s = Scenario::new("on-ready-in-flight");
    let config = s.config(&format!(
        r#"
[[hooks.on_ready]]
exec = ["sh", "-c", "date +%s%N > {started}; sleep 1.5; echo register >> {log}"]

[[hooks.pre_stop]]
exec = ["sh", "-c", "echo deregister >> {log}"]
"#,
        started = s.file("on_ready.started"),
        log = s.file("log"),
    ));
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));
    s.wait_for_line(
        "on_ready.started",
        "the on_ready hook to start",
        Duration::from_secs(5),
    );
    let on_ready_started: i128 = s.number("on_ready.started");
    assert_eq!(s.read("log"), "", "the on_ready hook is still sleeping");

    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    assert_eq!(
        s.read("log"),
        "register\nderegister\n",
        "the registration in flight finished before the deregistration; stderr:\n{stderr}"
    );
    assert_between(
        s.term_once() - on_ready_started,
        SECOND * 3 / 2..SECOND * 2,
        "the app got TERM after the on_ready hook started; it sleeps 1.5s, then the pre_stop hook runs at once",
    );
    assert!(
        !stderr.contains("FailedPreStopHook") && !stderr.contains("aborted"),
        "{stderr}"
    );
}

// 14. An on_ready hook still running at stop_by is aborted (its processes die), and no
//     pre_stop hook starts after stop_by: the app gets its stop signal at stop_by.
#[test]
fn on_ready_hook_still_running_at_stop_by_is_aborted() {
    let _serial = serial();
    let s = Scenario::new("on-ready-aborted");
    let config = s.config(&format!(
        r#"
[app]
grace_period = "4s"
stop_timeout = "2s"

[[hooks.on_ready]]
exec = ["sh", "-c", "echo $$ > {hook}; sleep 30 & echo $! > {child}; wait; echo register >> {log}"]
timeout = "60s"

[[hooks.pre_stop]]
exec = ["sh", "-c", "echo deregister >> {log}"]
"#,
        hook = s.file("hook.pid"),
        child = s.file("child.pid"),
        log = s.file("log"),
    ));
    // The app takes 1s to stop after its TERM: the hook's fate is checked while
    // graceinit still runs (its leftover cleanup at the end would hide a survivor).
    let app = s.app_on_term("sleep 1; exit 3");
    let mut graceinit = s.start(&["--config", &config], &app);
    let (hook_pid, child_pid) = s.hook_pids("the on_ready hook to start", Duration::from_secs(5));

    let sigterm_at = graceinit.drain();
    s.wait_for_term(Duration::from_secs(6));
    wait_gone(
        "the on_ready hook's processes to be gone",
        &[hook_pid, child_pid],
        Duration::from_millis(500),
    );
    assert!(graceinit.running(), "the app is still stopping");
    let (_, stderr) = graceinit.finish(3, "graceinit exits with the app's code");

    assert_between(
        s.term_once() - sigterm_at,
        SECOND * 195 / 100..SECOND * 25 / 10,
        "the app got TERM after the trigger; stop_by is at 2s",
    );
    assert_eq!(
        s.read("log"),
        "",
        "neither the aborted registration nor a deregistration after stop_by wrote anything"
    );
    assert_lines(
        &stderr,
        "on_ready hooks still running at the stop deadline: aborted",
        1,
        "the on_ready hook is aborted once",
    );
    assert_lines(
        &stderr,
        "the drain deadline has passed: not starting pre_stop#1",
        1,
        "pre_stop#1 is skipped once",
    );
    assert!(!stderr.contains("FailedPreStopHook"), "{stderr}");
}

// 15. Escalation counts the presses of a non-SIGTERM drain signal: the first starts the
//     drain, the second (the app already has its stop signal) changes nothing, the
//     third kills.
#[test]
fn escalation_counts_presses_from_the_trigger() {
    let _serial = serial();
    let s = Scenario::new("presses");
    let config = s.config("[signals]\ndrain = [\"SIGTERM\", \"SIGINT\"]\n");
    // Records its TERM, then runs on for 5s.
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_every_term(100));

    // Press 1: the trigger. No pre_stop hooks: the app gets its stop signal at once.
    let first = graceinit.signal(libc::SIGINT);
    s.wait_for_term(Duration::from_secs(5));
    assert_between(
        s.term_once() - first,
        0..SECOND / 2,
        "the app got TERM after the trigger; it should be at once",
    );

    // Press 2: not a kill.
    graceinit.signal(libc::SIGINT);
    graceinit.wait_for_stderr("already has its stop signal", Duration::from_secs(5));
    // Not synchronisation: a window in which a wrong SIGKILL would show.
    thread::sleep(Duration::from_millis(300));
    assert!(
        graceinit.running(),
        "the second SIGINT must not kill the app:\n{}",
        graceinit.stderr()
    );
    assert_eq!(s.events().len(), 1, "still one TERM");

    // Press 3: SIGKILL.
    let third = Instant::now();
    graceinit.signal(libc::SIGINT);
    let (exit, stderr) = graceinit.finish(137, "the third SIGINT SIGKILLs the app");
    assert!(
        exit.at - third < Duration::from_millis(500),
        "SIGKILL followed the third SIGINT at once: {:?}",
        exit.at - third
    );
    assert_lines(&stderr, "Killing", 1, "one Killing event");
    assert_lines(
        &stderr,
        "already has its stop signal",
        1,
        "the second press is logged once",
    );
    assert_lines(&stderr, "DrainStarted", 1, "one drain");
    assert_eq!(s.events().len(), 1, "one TERM in all");
}

// 16. No pre_stop hook starts after stop_by; a sleep hook cut there still succeeds.
#[test]
fn no_pre_stop_hook_starts_after_stop_by() {
    let _serial = serial();
    let s = Scenario::new("past-stop-by");
    let config = s.config(&format!(
        r#"
[app]
grace_period = "3s"
stop_timeout = "2s"

[[hooks.pre_stop]]
sleep = "5s"

[[hooks.pre_stop]]
exec = ["touch", "{marker}"]
"#,
        marker = s.file("marker"),
    ));
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(4));

    let sigterm_at = graceinit.drain();
    let (_, stderr) = graceinit.finish(4, "graceinit exits with the app's code");
    assert_between(
        s.term_once() - sigterm_at,
        SECOND * 95 / 100..SECOND * 3 / 2,
        "the app got TERM after the trigger; stop_by is at 1s",
    );
    assert!(
        !s.join("marker").exists(),
        "pre_stop#2 must not run after stop_by; stderr:\n{stderr}"
    );
    assert_lines(
        &stderr,
        "the drain deadline has passed: not starting pre_stop#2",
        1,
        "pre_stop#2 is skipped once",
    );
    assert_lines(
        &stderr,
        "FailedPreStopHook",
        0,
        "a sleep cut at stop_by succeeded, and the skipped hook did not fail",
    );
}

// 17. A sleep hook always succeeds, also when its timeout cuts it.
#[test]
fn sleep_hook_cut_by_its_timeout_succeeds() {
    let _serial = serial();
    let s = Scenario::new("sleep-timeout");
    let config = s.config("[[hooks.pre_stop]]\nsleep = \"3s\"\ntimeout = \"1s\"\n");
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));

    let sigterm_at = graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "");
    assert_between(
        s.term_once() - sigterm_at,
        SECOND * 95 / 100..SECOND * 3 / 2,
        "the app got TERM after the trigger; the sleep's timeout is 1s",
    );
    assert_lines(&stderr, "FailedPreStopHook", 0, "a sleep hook never fails");
}

// 18. After a drain, post_stop hooks get what is left until kill_at, not their timeout.
#[test]
fn post_stop_hooks_are_cut_at_kill_at_after_a_drain() {
    let _serial = serial();
    let s = Scenario::new("post-stop-kill-at");
    let config = s.config(&format!(
        r#"
[app]
grace_period = "2s"
stop_timeout = "1s"

[[hooks.post_stop]]
exec = ["sh", "-c", "echo $$ > {hook}; sleep 10"]
timeout = "30s"
"#,
        hook = s.file("hook.pid"),
    ));
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(6));

    let sent = Instant::now();
    graceinit.drain();
    let (exit, stderr) = graceinit.finish(6, "graceinit exits with the app's code");
    let took = exit.at - sent;
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_millis(2500),
        "graceinit exited {took:?} after SIGTERM; the post_stop hook is cut at kill_at (2s)\n{stderr}"
    );
    let hook_pid: i32 = s
        .read("hook.pid")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the post_stop hook ran; stderr:\n{stderr}"));
    assert!(
        !process_exists(hook_pid),
        "the cut hook is gone with graceinit"
    );
    assert_eq!(s.events().len(), 1, "the app got TERM once");
}

// 19. The app and the hooks get the descriptors graceinit inherited and none of its own
//     (its signal socket, the event loop's epoll, the HTTP client's sockets, the relay
//     pipes of other hooks): each is close-on-exec. Read from /proc/PID/fd of processes
//     that sit still, since a shell listing its own descriptors races its pipelines.
#[test]
fn the_app_and_hooks_inherit_no_descriptor_of_graceinit() {
    let _serial = serial();
    let registry = RecordingServer::start();
    let dir = TempDir::new("descriptors");
    let config = dir.write(
        "graceinit.toml",
        &format!(
            r#"
[[hooks.post_start]]
http = {{ method = "PUT", url = "{url}" }}

[[hooks.post_start]]
exec = ["echo", "a hook with a relay pipe of its own"]

[[hooks.on_ready]]
exec = ["sleep", "1000"]
"#,
            url = registry.url("/register"),
        ),
    );
    // The on_ready hook starts after the post_start hooks: the HTTP client and its
    // connection exist by then, and another hook's relay pipe has come and gone.
    let mut graceinit = Graceinit::start(
        &[
            "--config",
            &config,
            // The drain aborts the on_ready hook at stop_by, 1s after the trigger.
            "--grace-period",
            "3s",
            "--stop-timeout",
            "2s",
            "--",
            "sh",
            "-c",
            "while :; do sleep 1; done",
        ],
        &[],
    );
    graceinit.wait_for_stderr("[post_start#2]", Duration::from_secs(10));
    let graceinit_pid = graceinit.pid();
    let mut app = 0;
    let mut hook = 0;
    wait_until(
        Duration::from_secs(10),
        "the app and the on_ready hook",
        || {
            for pid in children(graceinit_pid) {
                match comm(pid).as_deref() {
                    Some("sh") => app = pid,
                    Some("sleep") => hook = pid,
                    _ => {}
                }
            }
            app != 0 && hook != 0
        },
    );
    assert_eq!(registry.requests().len(), 1, "the HTTP hook ran");

    // What any child of the test gets: 0, 1, 2 and whatever the test itself inherited.
    let baseline = Launch::program("sleep", ["1000"]).start();
    // spawn returns once exec has replaced the memory, which is before the kernel closes
    // the close-on-exec descriptors; the new name is set after that.
    wait_until(
        Duration::from_secs(5),
        "the baseline to exec `sleep`",
        || comm(baseline.pid()).as_deref() == Some("sleep"),
    );
    let expected = open_descriptors(baseline.pid());
    let numbers = |fds: &[(i32, String)]| fds.iter().map(|(fd, _)| *fd).collect::<Vec<_>>();
    assert_eq!(numbers(&expected)[..3], [0, 1, 2], "{expected:?}");
    let own = open_descriptors(graceinit_pid);
    assert!(
        numbers(&own)
            .iter()
            .filter(|fd| !numbers(&expected).contains(fd))
            .count()
            >= 3,
        "graceinit holds descriptors of its own (epoll, signal socket, HTTP client): {own:?}"
    );
    for (what, pid) in [("the app", app), ("an exec hook", hook)] {
        let got = open_descriptors(pid);
        assert_eq!(
            numbers(&got),
            numbers(&expected),
            "{what}'s descriptors: {got:?}\nexpected, as any child of the test: {expected:?}"
        );
    }
    graceinit.drain();
    graceinit.finish(143, "the app's shell dies of SIGTERM");
}

/// The open descriptors of a process, in order, each with what it refers to.
fn open_descriptors(pid: i32) -> Vec<(i32, String)> {
    let dir = format!("/proc/{pid}/fd");
    let mut fds: Vec<(i32, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|entry| {
            let entry = entry.expect("a /proc/PID/fd entry");
            let fd = entry
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("a descriptor number");
            let target = std::fs::read_link(entry.path())
                .map_or_else(|e| format!("({e})"), |t| t.display().to_string());
            (fd, target)
        })
        .collect();
    fds.sort_unstable();
    fds
}
