//! Third round of attacks on graceinit's promises (issue 9 follow-up), away from signals:
//! hooks against misbehaving loopback servers, secrets in `${VAR}`s, JSON logs, `probe`
//! and the subreaper's /proc scan. Each test is a failure found with the real binary,
//! kept as a regression test.
//!
//! - A config error about an http hook's URL quotes the URL "expanded" after
//!   redaction; but a password with a `/` in it (base64 has them) ends the authority
//!   early, so the redaction sees no password and prints it in clear.
//! - A query value with a `#` in it: the redaction masks the query but prints the
//!   "fragment" (the rest of the secret) as it is, in FailedPreStopHook at the default
//!   level.
//! - `--log-format json` with a bad config: the error is plain text over several lines.
//! - `graceinit probe --timeout 1s` against a host whose name lookup hangs takes the
//!   resolver's full time (10 s here): the runtime waits for the blocking lookup when
//!   it is dropped.
//! - Not PID 1, with thousands of unrelated processes on the host, the leftover scans
//!   after the drain's SIGKILL (one per signal, each reading every /proc/PID/stat)
//!   push graceinit's exit well past `kill_at`.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Crowd, GRACEINIT, Launch, TempDir, require_tool, serial};

/// The margin the README's timing promises are asserted with.
const MARGIN: Duration = Duration::from_millis(500);

/// Bound for what must happen at once (a process exiting, a line appearing).
const PROMPTLY: Duration = Duration::from_secs(5);

/// A config whose only http hook has the password in `${PASS}` and a query value in
/// `${TOKEN}`; the URL starts at line 5, column 16.
const SECRET_URL_CONFIG: &str = r#"[app]
grace_period = "3s"
stop_timeout = "1s"
[[hooks.pre_stop]]
http = { url = "http://user:${PASS}@127.0.0.1:9/x?t=${TOKEN}", headers = { Authorization = "Bearer ${TOKEN}" } }
timeout = "1s"
"#;

/// A base64 password: the `/` in it ends the URL's authority for the parser, which then
/// finds no valid port ("user:s3cr") and rejects the URL.
const PASSWORD: &str = "s3cr/etPW+x==";

fn assert_no_password(what: &str, output: &str) {
    for piece in ["s3cr", "etPW"] {
        assert!(
            !output.contains(piece),
            "{what} shows a piece of the password ({piece:?}):\n{output}"
        );
    }
}

/// `graceinit check` of a URL whose expanded form does not parse: the error names the
/// position and never shows the password. Today it prints
/// "(expanded: `http://user:s3cr/etPW+x==@127.0.0.1:9/x?t=***`)".
#[test]
fn a_config_error_never_shows_an_expanded_password_in_check() {
    let dir = TempDir::new("b3-secret-check");
    let config = dir.write("s.toml", SECRET_URL_CONFIG);
    let finished = Launch::direct(["check", config.as_str()])
        .env("PASS", PASSWORD)
        .env("TOKEN", "tok")
        .run(PROMPTLY);
    finished.assert_code(2);
    assert!(
        finished.stderr.contains("s.toml:5:16:"),
        "the error names no position:\n{}",
        finished.stderr
    );
    assert_no_password("check's stdout", &finished.stdout);
    assert_no_password("check's stderr", &finished.stderr);
}

/// The same config error at start-up (it lands in the container log).
#[test]
fn a_config_error_never_shows_an_expanded_password_at_start_up() {
    let dir = TempDir::new("b3-secret-run");
    let config = dir.write("s.toml", SECRET_URL_CONFIG);
    let finished = Launch::direct(["-vv", "--config", config.as_str(), "--", "true"])
        .env("PASS", PASSWORD)
        .env("TOKEN", "tok")
        .run(PROMPTLY);
    finished.assert_code(2);
    assert!(
        finished.stderr.contains("s.toml:5:16:"),
        "the error names no position:\n{}",
        finished.stderr
    );
    assert_no_password("graceinit's stderr", &finished.stderr);
}

/// A query value with a `#` in it (`?token=${TOKEN}`, TOKEN = "tok#en-secret-tail"):
/// FailedPreStopHook, at the default level and at -vv, never shows the part after the
/// `#`. Today: "GET http://127.0.0.1:9/deregister?token=***#en-secret-tail: ...".
#[test]
fn a_query_value_with_a_hash_is_never_printed() {
    let _serial = serial();
    // A port nothing listens on: the hook fails at once (connection refused).
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let dir = TempDir::new("b3-hash");
    let config = dir.write(
        "f.toml",
        &format!(
            "[app]\ngrace_period = \"3s\"\nstop_timeout = \"1s\"\n\
             [[hooks.pre_stop]]\nhttp = {{ url = \"http://127.0.0.1:{closed_port}/deregister?token=${{TOKEN}}\" }}\ntimeout = \"1s\"\n"
        ),
    );
    for verbosity in [None, Some("-vv")] {
        let mut args: Vec<&str> = verbosity.into_iter().collect();
        args.extend(["--config", config.as_str(), "--", "sleep", "30"]);
        let running = Launch::direct(&args)
            .env("TOKEN", "tok#en-secret-tail")
            .start();
        running.wait_for_app("sleep");
        running.signal(libc::SIGTERM);
        let finished = running.wait(PROMPTLY);
        finished.assert_code(143);
        assert_eq!(
            finished.stderr_lines_with("FailedPreStopHook"),
            1,
            "no FailedPreStopHook event ({verbosity:?}):\n{}",
            finished.stderr
        );
        for piece in ["#en", "secret-tail"] {
            assert!(
                !finished.stderr.contains(piece),
                "a piece of the token ({piece:?}) is shown ({verbosity:?}):\n{}",
                finished.stderr
            );
        }
    }
}

/// With `--log-format json` on the command line, a config error is one JSON object per
/// line like everything else graceinit writes (a log pipeline parsing JSON must not
/// choke on the one line that says why the container will not start). Today it is the
/// plain text error with its quoted source line and caret, over four lines.
#[test]
fn with_log_format_json_a_config_error_is_json() {
    let dir = TempDir::new("b3-json-error");
    let config = dir.write("bad.toml", "[app]\nstop_timout = \"1s\"\n");
    let missing = dir.file("missing.toml");
    for path in [config.as_str(), missing.as_str()] {
        let finished =
            Launch::direct(["--log-format", "json", "--config", path, "--", "true"]).run(PROMPTLY);
        finished.assert_code(2);
        assert!(
            !finished.stderr.trim().is_empty(),
            "no error printed for {path}"
        );
        for line in finished.stderr.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "not a JSON line ({e}): {line:?}\nall of stderr:\n{}",
                    finished.stderr
                )
            });
            assert!(value.is_object(), "not a JSON object: {line}");
        }
    }
}

/// `graceinit probe --timeout 1s` ends within its timeout (+ margin) even when the name
/// lookup hangs: a resolv.conf (bind-mounted in a mount namespace) whose nameserver is a
/// loopback UDP socket that never answers. Today the probe prints "no answer within
/// 1s" at 1 s, then waits for the blocked getaddrinfo thread while dropping its
/// runtime: 10 s (timeout:5 attempts:2).
#[test]
fn probe_timeout_bounds_a_hanging_name_lookup() {
    let _serial = serial();
    require_tool("unshare", "util-linux");
    require_tool("mount", "mount");
    // Held open, never read: queries are accepted and never answered.
    let nameserver = UdpSocket::bind("127.0.0.153:53")
        .unwrap_or_else(|e| panic!("cannot bind the silent nameserver 127.0.0.153:53: {e}"));
    let dir = TempDir::new("b3-dns");
    let resolv = dir.write(
        "resolv.conf",
        "nameserver 127.0.0.153\noptions timeout:5 attempts:2\n",
    );
    for url in [
        "http://graceinit-test.invalid:80/health",
        "tcp://graceinit-test.invalid:80",
    ] {
        let script = format!(
            "mount --bind {resolv} /etc/resolv.conf || exit 99; exec {GRACEINIT} probe --timeout 1s {url}"
        );
        let finished =
            Launch::program("unshare", ["-m", "sh", "-c", &script]).run(Duration::from_secs(20));
        finished.assert_code(1);
        assert!(
            finished.stderr.contains("no answer within 1s"),
            "{url}: unexpected report:\n{}",
            finished.stderr
        );
        assert!(
            finished.elapsed <= Duration::from_secs(1) + MARGIN,
            "{url}: probe --timeout 1s took {:?}",
            finished.elapsed
        );
    }
    drop(nameserver);
}

/// Not PID 1, on a host with 12000 unrelated processes: an app that ignores SIGTERM
/// and leaves a leftover in a session of its own (also ignoring SIGTERM). The drain
/// SIGKILLs the app at kill_at = SIGTERM + 2 s, and graceinit must exit by then (+
/// margin) with 137: the leftover scan must not take it past the kubelet's SIGKILL.
/// Today each scan reads all 12000 /proc/PID/stat files (about 0.3 s here) and the
/// scans after kill_at (SIGTERM round, SIGKILL round) are awaited in full: graceinit
/// exits 0.6-0.8 s after kill_at.
#[test]
fn the_leftover_scan_does_not_push_the_exit_past_kill_at_on_a_crowded_host() {
    let _serial = serial();
    let crowd = Crowd::new(12_000);
    let dir = TempDir::new("b3-crowd");
    let config = dir.write(
        "c.toml",
        "[app]\ngrace_period = \"2s\"\nstop_timeout = \"1s\"\n",
    );
    let app = "trap '' TERM; setsid sh -c 'trap \"\" TERM; exec sleep 600' & echo ready; while :; do sleep 0.05; done";
    let running = Launch::direct(["--config", config.as_str(), "--", "sh", "-c", app]).start();
    common::wait_until(PROMPTLY, "the app's `ready`", || {
        running.stdout_so_far().lines().any(|l| l == "ready")
    });
    let graceinit = running.graceinit_pid();
    let leftover = common::descendants(graceinit)
        .into_iter()
        .find(|&pid| common::comm(pid).as_deref() == Some("sleep"));
    let sigterm_at = Instant::now();
    running.signal(libc::SIGTERM);
    let finished = running.wait(Duration::from_secs(15));
    let took = sigterm_at.elapsed();
    finished.assert_code(137);
    assert!(
        took <= Duration::from_secs(2) + MARGIN,
        "graceinit exited {took:?} after SIGTERM (kill_at is at 2s)\n{}",
        finished.stderr
    );
    if let Some(pid) = leftover {
        common::wait_until(
            PROMPTLY,
            "the leftover to be gone",
            || !matches!(common::state(pid), Some(s) if s != 'Z'),
        );
    }
    drop(crowd);
}
