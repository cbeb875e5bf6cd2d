//! Fifth round of attacks (issue 11): the health endpoints, the control socket,
//! `graceinit drain` and the probes, with the real binary. Each test names the promise it
//! checks and what happened.
//!
//! Breaks found:
//! - A probe (or hook) URL written `http:/user:PASS@host/x?token=T` (one slash, or
//!   `http:\\`, as the WHATWG URL parser behind reqwest reads them: `http://...`) passes
//!   the config check and is requested, but the redaction looks for `://` and shows it
//!   whole: its password and query value in the log, the `Unhealthy` event and /status.
//! - A client that pipelines requests and never reads the answers stalls hyper's write:
//!   no timeout applies to a connection stalled there (the 10 s head timeout only runs
//!   while a head is read, the 10 s answer deadline only while an answer is computed),
//!   so it holds its slot for ever. 64 such connections (a few KiB each) shut the
//!   endpoints for good: every new client, the kubelet's probes included, is closed at
//!   once.
//! - The control socket serves a `drain` client until the pre_stop hooks are done without
//!   ever noticing that the client is gone: 16 `graceinit drain` clients that died (the
//!   kubelet kills a preStop hook at its timeout) hold every place, and `graceinit
//!   status` and `graceinit drain` are refused ("busy", or "Broken pipe" when the
//!   refusal closes the socket before the client's request is out) for the whole pre_stop.
//! - /livez answers 503 through the whole restart back-off after a liveness failure
//!   (the probe's last verdict is kept while it does not run): a kubelet probing /livez
//!   kills the container during graceinit's own back-off, though graceinit supervises.
//!
//! Passing checks kept (new ground): /metrics parses with Prometheus' parser in the
//! back-off with the exact restart count and /readyz says why; all triggers at once
//! (`graceinit drain` SIGKILLed mid-wait, `/prestop`, SIGTERM) run pre_stop once, and the
//! stop signal waits for the pre_stop hooks.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::endpoints::{parse_metrics, sample, served_at};
use common::{Launch, Running, TempDir, lines, serial, wait_for_line, wait_until};
use serde_json::Value;

const PROMPTLY: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// A client and graceinit

/// One HTTP answer: status and body.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
}

/// `GET path` on a new connection (`Connection: close`); Err when the server closed or
/// reset the connection without an answer.
fn try_get(address: SocketAddr, path: &str) -> Result<Reply, String> {
    let mut stream = TcpStream::connect_timeout(&address, PROMPTLY)
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(PROMPTLY))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no answer: {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    Ok(Reply {
        status,
        body: body.to_string(),
    })
}

fn get(address: SocketAddr, path: &str) -> Reply {
    try_get(address, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn status_json(address: SocketAddr) -> Value {
    let reply = get(address, "/status");
    assert_eq!(reply.status, 200, "{reply:?}");
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("/status: {e}: {}", reply.body))
}

/// `graceinit -v --config DIR/graceinit.toml --listen 127.0.0.1:0 EXTRA... -- sh -c APP`,
/// returned once it serves and the app has started.
fn serve(dir: &TempDir, config: &str, extra: &[&str], app: &str) -> (Running, SocketAddr) {
    let config = dir.write("graceinit.toml", config);
    let mut args = vec!["-v", "--config", &config, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", app]);
    let running = Launch::direct(&args).env_remove("GRACEINIT_LISTEN").start();
    let address = served_at(&running);
    wait_until(Duration::from_secs(10), "the app's Started event", || {
        running.stderr_so_far().contains("Started:")
    });
    (running, address)
}

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("its address").port()
}

/// An app that appends `term` to DIR/app on SIGTERM and exits 0.
fn app(dir: &TempDir) -> String {
    let file = dir.file("app");
    format!("trap 'echo term >> {file}; exit 0' TERM; echo up >> {file}; sleep 1000 & wait")
}

// ---------------------------------------------------------------------------------------
// Secrets

/// Promise: /status, /metrics and the log never show a URL's password or query value.
///
/// The readiness probe's URL is `http:/probe-user:PW-7f3a9e@127.0.0.1:PORT/health?token=Q-9c2e41`
/// and the liveness probe's `http:\\probe-user:PW-b81d05@127.0.0.1:PORT/live?key=Q-5e07aa`:
/// the URL parser reqwest uses (WHATWG's) reads both as `http://probe-user:...@127.0.0.1`,
/// so the config check passes and the probes run (and fail: the port is closed).
/// What happened: `redact_url` finds no `://` and returns them as written: the passwords
/// and the tokens are in the `Unhealthy` event, in /status (`last_error`, `events`,
/// `not_ready`) and on stderr.
#[test]
fn a_probe_url_without_two_slashes_is_shown_with_its_password_and_query() {
    let _serial = serial();
    let dir = TempDir::new("b5-redact");
    let port = closed_port();
    let config = format!(
        r#"
[probes.readiness]
http = {{ url = 'http:/probe-user:PW-7f3a9e@127.0.0.1:{port}/health?token=Q-9c2e41' }}
period = "1h"
failure_threshold = 1

[probes.liveness]
http = {{ url = 'http:\\probe-user:PW-b81d05@127.0.0.1:{port}/live?key=Q-5e07aa' }}
period = "1h"
failure_threshold = 3
"#
    );
    let app = app(&dir);
    let (graceinit, address) = serve(&dir, &config, &[], &app);
    wait_until(PROMPTLY, "both probes' first failure in /status", || {
        let status = status_json(address);
        status["probes"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["failures"] == 1))
    });
    let status = get(address, "/status").body;
    let metrics = get(address, "/metrics").body;
    graceinit.signal(libc::SIGTERM);
    let finished = graceinit.wait(Duration::from_secs(10));
    finished.assert_code(0);
    let secrets = ["PW-7f3a9e", "Q-9c2e41", "PW-b81d05", "Q-5e07aa"];
    for (what, text) in [
        ("/status", &status),
        ("/metrics", &metrics),
        ("stderr", &finished.stderr),
    ] {
        let shown: Vec<&str> = secrets
            .iter()
            .copied()
            .filter(|s| text.contains(s))
            .collect();
        assert!(
            shown.is_empty(),
            "{what} shows the secrets {shown:?} of the probes' URLs:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The endpoints under hostile clients

/// A TCP connection to `address` with a receive buffer and a segment size as small as the
/// kernel allows, set before the connect (std cannot): the server's answers then fill
/// the window after a few KiB.
fn narrow_connection(address: SocketAddr) -> TcpStream {
    let SocketAddr::V4(v4) = address else {
        panic!("an IPv4 address: {address}")
    };
    // SAFETY: a plain socket(2); the fd is owned by the TcpStream made from it below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a socket we own, not yet handed to anything else.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let set = |level: i32, option: i32, value: libc::c_int| {
        // SAFETY: setsockopt(2) reads `size_of::<c_int>()` bytes from a live c_int.
        let result = unsafe {
            libc::setsockopt(
                fd,
                level,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(result, 0, "setsockopt: {}", std::io::Error::last_os_error());
    };
    set(libc::SOL_SOCKET, libc::SO_RCVBUF, 1024);
    set(libc::IPPROTO_TCP, libc::TCP_MAXSEG, 536);
    let sockaddr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: connect(2) reads a sockaddr_in of the size given.
    let result = unsafe {
        libc::connect(
            fd,
            (&sockaddr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0, "connect: {}", std::io::Error::last_os_error());
    stream
}

/// Promise: a stalled client never delays other clients; each connection is bounded in
/// time ("10 s to send a head (idle keep-alive connections close after it too), 10 s for
/// any answer"), so the 64-connection cap can only be held as long as clients keep
/// working for it.
///
/// 64 clients each pipeline 1000 `GET /status` (33 KB) and never read; the answers fill
/// their (small) windows after a few dozen. Then the test asks /readyz on a fresh
/// connection every 100 ms for 15 s (past both 10 s limits). What happened: every fresh
/// connection is closed at once without an answer, for the whole 15 s: the stalled
/// connections are never timed out (hyper is stuck writing an answer, where neither
/// the head timeout nor the answer deadline applies), so the endpoints stay shut for as
/// long as the stalled clients like, and the kubelet's probes fail.
#[test]
fn clients_that_never_read_hold_every_connection_slot_for_ever() {
    let _serial = serial();
    let dir = TempDir::new("b5-stalled");
    let app = app(&dir);
    let (graceinit, address) = serve(&dir, "", &[], &app);
    assert_eq!(get(address, "/readyz").status, 200);
    let pipelined = "GET /status HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut stream = narrow_connection(address);
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .expect("a write timeout");
        // The kernel takes it all (the server's receive buffer); if not, what it took is
        // enough to stall the connection.
        match stream.write_all(pipelined.as_bytes()) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("cannot pipeline the requests: {e}"),
        }
        stalled.push(stream);
    }
    let began = Instant::now();
    let mut last = Err(String::new());
    while began.elapsed() < Duration::from_secs(15) {
        last = try_get(address, "/readyz");
        if last.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let served_after = began.elapsed();
    drop(stalled);
    graceinit.signal(libc::SIGTERM);
    graceinit.wait(Duration::from_secs(10)).assert_code(0);
    let reply = last.unwrap_or_else(|e| {
        panic!("no new client was answered for {served_after:?} beside 64 stalled readers: {e}")
    });
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
}

// ---------------------------------------------------------------------------------------
// The control socket

/// Promise: a hostile or dead socket client never delays other clients; `graceinit
/// status` answers while a drain runs.
///
/// The pre_stop hook takes 20 s. 16 clients each send `drain` and close at once (as a
/// `graceinit drain` that the kubelet killed at its preStop timeout, or that was
/// SIGKILLed). Then `graceinit status --json`. What happened: graceinit keeps serving the
/// 16 dead clients until the pre_stop hooks are done (it never looks at the socket while
/// it waits), so all 16 places stay taken and `graceinit status` is refused: exit 1,
/// `graceinit status: busy: 16 clients are being served`, or `...: Broken pipe (os
/// error 32)` when the refusal closes the socket before the client's request is out. A
/// `graceinit drain` is refused the same way, for up to the whole grace period.
#[test]
fn dead_drain_clients_hold_every_control_socket_place_until_pre_stop_ends() {
    let _serial = serial();
    let dir = TempDir::new("b5-control-dead");
    let socket = dir.file("ctl.sock");
    let config = dir.write(
        "graceinit.toml",
        "[app]\ngrace_period = \"40s\"\nstop_timeout = \"5s\"\n\n[[hooks.pre_stop]]\nsleep = \"20s\"\n",
    );
    let app = app(&dir);
    let graceinit = Launch::direct([
        "-vv", "--config", &config, "--socket", &socket, "--", "sh", "-c", &app,
    ])
    .start();
    wait_for_line(dir.join("app"), "up");
    for _ in 0..16 {
        let mut client = UnixStream::connect(&socket).expect("a control connection");
        client.write_all(b"drain\n").expect("the request");
    }
    // The 16 requests read (graceinit logs each at debug level): all 16 places taken.
    wait_until(PROMPTLY, "16 drain requests read", || {
        graceinit
            .stderr_so_far()
            .lines()
            .filter(|l| l.contains("control socket") && l.contains("request=\"drain\""))
            .count()
            == 16
    });
    let status = Launch::direct(["status", "--json", "--socket", &socket]).run(PROMPTLY);
    drop(graceinit);
    assert_eq!(
        status.code(),
        0,
        "`graceinit status` was refused while 16 dead drain clients hold the socket: {}",
        status.stderr
    );
    let json: Value = serde_json::from_str(status.stdout.trim()).expect("status JSON");
    assert_eq!(json["phase"], "draining");
}

// ---------------------------------------------------------------------------------------
// Probes and restarts

/// Restart always, liveness probe failing on every check, back-off 5 s after the second
/// run; the app traps nothing.
const CRASH_LOOP: &str = r#"
[app]
restart = "always"
restart_backoff = "5s"
restart_backoff_max = "5s"
grace_period = "2s"
stop_timeout = "1s"

[probes.liveness]
exec = ["false"]
period = "100ms"
failure_threshold = 1
"#;

/// Waits until /status says the back-off after restart 2 is under way.
fn wait_for_backoff(address: SocketAddr) {
    wait_until(PROMPTLY, "the back-off before restart 2", || {
        let status = status_json(address);
        status["phase"] == "backoff" && status["app"]["restarts"] == 2
    });
}

/// Promise: /livez answers 200 while graceinit supervises (kube-apiserver's sense: the
/// process is alive); a liveness failure restarts the app per the policy, with back-off.
///
/// What happened: during graceinit's back-off after a liveness failure, /livez answers
/// 503 `liveness failed: 1 failures in a row: ...`: the probe does not run then, but its
/// last verdict is kept until the restart. With `livenessProbe: httpGet /livez` (the
/// README's recipe) the kubelet kills the whole container during graceinit's own
/// back-off, which with the default 10 s..5 min back-off is every time: graceinit's
/// restart policy never gets to act.
#[test]
fn livez_is_200_during_the_back_off_after_a_liveness_failure() {
    let _serial = serial();
    let dir = TempDir::new("b5-livez-backoff");
    let (graceinit, address) = serve(&dir, CRASH_LOOP, &[], "sleep 1000");
    wait_for_backoff(address);
    let livez = get(address, "/livez?verbose");
    graceinit.signal(libc::SIGTERM);
    let finished = graceinit.wait(Duration::from_secs(10));
    // A drain during the back-off exits at once with the last status (killed by SIGTERM).
    finished.assert_code(143);
    assert_eq!(
        livez.status, 200,
        "/livez during the back-off:\n{}",
        livez.body
    );
}

/// Promise: /metrics parses with a real Prometheus parser in every phase; the back-off
/// shows in /readyz and the restart count is exact. (Passes.)
#[test]
fn metrics_parse_during_the_back_off_with_the_exact_restart_count() {
    let _serial = serial();
    let dir = TempDir::new("b5-metrics-backoff");
    let (graceinit, address) = serve(&dir, CRASH_LOOP, &[], "sleep 1000");
    wait_for_backoff(address);
    let metrics = get(address, "/metrics");
    let readyz = get(address, "/readyz");
    graceinit.signal(libc::SIGTERM);
    graceinit.wait(Duration::from_secs(10)).assert_code(143);
    assert_eq!(metrics.status, 200);
    let samples = parse_metrics(&metrics.body);
    assert_eq!(
        sample(&samples, "graceinit_phase", &[("phase", "backoff")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&samples, "graceinit_phase", &[("phase", "running")]),
        Some(0.0)
    );
    assert_eq!(sample(&samples, "graceinit_ready", &[]), Some(0.0));
    // The parser strips `_total` from a counter's samples' family, not its samples.
    assert_eq!(
        sample(&samples, "graceinit_app_restarts_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &samples,
            "graceinit_probe_results_total",
            &[("probe", "liveness"), ("result", "failure")]
        ),
        Some(2.0)
    );
    assert_eq!(
        (readyz.status, readyz.body.as_str()),
        (503, "app failed: the app is waiting to restart")
    );
}

// ---------------------------------------------------------------------------------------
// Every trigger at once

/// Promise: pre_stop runs exactly once whatever mix of triggers; a request waits for
/// SIGTERM (or stop_by) before the stop signal; /readyz is 503 from the drain's start.
/// (Passes.)
///
/// `graceinit drain` starts the drain and is SIGKILLed while the pre_stop hook (1 s)
/// runs; `/prestop` joins it; SIGTERM comes while the hook still runs. The hook ran once,
/// the app's SIGTERM comes after the hook's end, /prestop answers 200 when the hook is
/// done, and graceinit exits 0.
#[test]
fn a_killed_drain_client_prestop_and_sigterm_run_pre_stop_once() {
    let _serial = serial();
    let dir = TempDir::new("b5-mix");
    let socket = dir.file("ctl.sock");
    let hooks = dir.file("hooks");
    let config = format!(
        "[app]\ngrace_period = \"20s\"\nstop_timeout = \"5s\"\n\n[http]\nprestop = true\n\n\
         [[hooks.pre_stop]]\nexec = [\"sh\", \"-c\", \"echo start >> {hooks}; sleep 1; echo end >> {hooks}\"]\n"
    );
    let app = app(&dir);
    let (graceinit, address) = serve(&dir, &config, &["--socket", &socket], &app);
    wait_for_line(dir.join("app"), "up");
    let drain = Launch::direct(["drain", "--socket", &socket]).start();
    wait_for_line(&hooks, "start");
    assert_eq!(
        get(address, "/readyz").body,
        "draining failed: the drain has started"
    );
    // SIGKILL the client mid-wait (dropping a running process kills it).
    drop(drain);
    let prestop = std::thread::spawn(move || get(address, "/prestop"));
    graceinit.signal(libc::SIGTERM);
    let prestop = prestop.join().expect("the /prestop client");
    let finished = graceinit.wait(Duration::from_secs(10));
    finished.assert_code(0);
    assert_eq!(
        (prestop.status, prestop.body.as_str()),
        (200, "1 pre_stop hook(s) done\n")
    );
    assert_eq!(lines(&hooks), ["start", "end"], "{}", finished.stderr);
    assert_eq!(lines(dir.join("app")), ["up", "term"]);
    let hook_end = finished
        .stderr
        .find("hook finished hook=pre_stop#1")
        .expect("the hook's end in the log");
    let stop_signal = finished
        .stderr
        .find("sending the stop signal SIGTERM")
        .expect("the stop signal in the log");
    assert!(hook_end < stop_signal, "{}", finished.stderr);
    assert_eq!(finished.stderr_lines_with("DrainStarted"), 1);
}
