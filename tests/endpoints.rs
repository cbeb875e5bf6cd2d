//! The health endpoints (DESIGN.md "Endpoints"), end to end: the real graceinit binary
//! serving real HTTP on loopback (`--listen 127.0.0.1:0`, the port read from its log
//! line), real apps (`sh` scripts), real signals. The client here is a few lines over
//! `TcpStream`, so that the tests control every byte (slow and half-open clients); the
//! metrics are parsed by Prometheus' own Python parser (Debian's
//! python3-prometheus-client).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::endpoints::{parse_metrics, sample, served_at};
use common::{Finished, Launch, Running, TempDir, serial, wait_until};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// A client

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Header names lowercased.
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str).trim_end()
    }
}

/// Sends `method path` with `headers` on a new connection (`Connection: close`) and
/// reads the whole answer (within 10 s).
fn request(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = connect(address);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("cannot send {method} {path}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("cannot read the answer to {method} {path}: {e}"));
    parse_reply(&raw).unwrap_or_else(|| {
        panic!(
            "no whole answer to {method} {path}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn get(address: SocketAddr, path: &str) -> Reply {
    request(address, "GET", path, &[])
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    stream
}

/// A whole answer (status line, headers, body of Content-Length bytes) at the start of
/// `raw`, if it is all there.
fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let body = rest.as_bytes().get(..length)?;
    Some(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// Sends a keep-alive GET on `stream` and reads one answer.
fn get_on(stream: &mut TcpStream, path: &str) -> std::io::Result<Reply> {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(reply) = parse_reply(&raw) {
            return Ok(reply);
        }
        match stream.read(&mut chunk)? {
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed mid-answer",
                ));
            }
            n => raw.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the server closed `stream` (a read ends with EOF or a reset) within 5 s.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

// ---------------------------------------------------------------------------------------
// graceinit

/// A scratch directory with a config, and graceinit started on it.
struct Served {
    dir: TempDir,
    graceinit: Option<Running>,
    address: SocketAddr,
}

impl Served {
    /// `graceinit -v --config DIR/graceinit.toml ARGS... -- sh -c APP`, waiting until it
    /// serves (the log line) and the app has started.
    fn start(tag: &str, config: &str, args: &[&str], app: &str) -> Served {
        let dir = TempDir::new(&format!("graceinit-endpoints-{tag}"));
        let config = dir.write("graceinit.toml", &config.replace("{dir}", &dir.file("")));
        let app = app.replace("{dir}", &dir.file(""));
        let mut command = vec!["-v", "--config", config.as_str()];
        command.extend_from_slice(args);
        command.extend_from_slice(&["--", "sh", "-c", app.as_str()]);
        let running = Launch::direct(&command)
            .env_remove("GRACEINIT_LISTEN")
            .start();
        let address = served_at(&running);
        wait_until(Duration::from_secs(10), "the app's Started event", || {
            running.stderr_so_far().contains("Started:")
        });
        Served {
            dir,
            graceinit: Some(running),
            address,
        }
    }

    /// Listening on 127.0.0.1, port 0.
    fn local(tag: &str, config: &str, app: &str) -> Served {
        Served::start(tag, config, &["--listen", "127.0.0.1:0"], app)
    }

    fn running(&self) -> &Running {
        self.graceinit.as_ref().expect("still running")
    }

    fn stderr(&self) -> String {
        self.running().stderr_so_far()
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    fn lines(&self, name: &str) -> Vec<String> {
        common::lines(self.path(name))
    }

    fn get(&self, path: &str) -> Reply {
        get(self.address, path)
    }

    fn status(&self) -> Value {
        let reply = self.get("/status");
        assert_eq!(reply.status, 200, "{reply:?}");
        serde_json::from_str(&reply.body)
            .unwrap_or_else(|e| panic!("/status is not JSON ({e}): {}", reply.body))
    }

    fn signal(&self, sig: i32) {
        self.running().signal(sig);
    }

    fn finish(&mut self, timeout: Duration) -> Finished {
        self.graceinit.take().expect("still running").wait(timeout)
    }
}

/// An app that appends `term` to DIR/events on SIGTERM and exits 0; `sleep & wait` lets
/// the trap run at once.
const APP: &str =
    "trap 'echo term >> {dir}/events; exit 0' TERM; while :; do sleep 0.05 & wait $!; done";

/// Runs graceinit with ARGS (expected to stop at once) and returns how it ended.
fn run(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let launch = env.iter().fold(
        Launch::direct(args).env_remove("GRACEINIT_LISTEN"),
        |launch, (name, value)| launch.env(name, value),
    );
    launch.run(Duration::from_secs(10))
}

// ---------------------------------------------------------------------------------------
// The paths

#[test]
fn every_path_answers_with_its_status_code() {
    let _serial = serial();
    let mut s = Served::local("paths", "", APP);
    wait_until(Duration::from_secs(5), "/readyz 200", || {
        s.get("/readyz").status == 200
    });
    for path in ["/livez", "/readyz", "/startupz"] {
        let reply = s.get(path);
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"), "{path}");
        assert_eq!(reply.header("content-type"), "text/plain; charset=utf-8");
    }
    let status = s.get("/status");
    assert_eq!(status.status, 200);
    assert_eq!(status.header("content-type"), "application/json");
    let metrics = s.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // /prestop is off unless `prestop = true`, whatever the method.
    assert_eq!(s.get("/prestop").status, 404);
    assert_eq!(request(s.address, "POST", "/prestop", &[]).status, 404);
    for path in ["/", "/nope", "/readyz/app", "/livez/", "/metricsx"] {
        let reply = s.get(path);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (404, "404 page not found\n"),
            "{path}"
        );
    }
    for method in ["POST", "PUT", "DELETE"] {
        let reply = request(s.address, method, "/readyz", &[]);
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), "GET, HEAD");
    }
    // HEAD: the GET's status and length, no body.
    let mut stream = connect(s.address);
    stream
        .write_all(b"HEAD /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n"), "no body after HEAD: {raw:?}");

    // A head over 16 KiB is refused (431), a malformed one too (400); neither stops
    // the server.
    let big = "x".repeat(20 * 1024);
    assert_eq!(
        request(s.address, "GET", "/readyz", &[("X-Big", &big)]).status,
        431
    );
    let mut stream = connect(s.address);
    stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw:?}");
    assert_eq!(s.get("/livez").status, 200);

    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(10)).assert_code(0);
}

#[test]
fn readyz_is_503_with_the_reason_while_post_start_runs_then_200() {
    let _serial = serial();
    let config = r#"
[[hooks.post_start]]
exec = ["sh", "-c", "while [ ! -e {dir}/go ]; do sleep 0.02; done"]
"#;
    let mut s = Served::local("post-start", config, APP);
    let reason = "post_start failed: post_start hooks have not finished";
    let reply = s.get("/readyz");
    assert_eq!((reply.status, reply.body.as_str()), (503, reason));
    let reply = s.get("/startupz");
    assert_eq!((reply.status, reply.body.as_str()), (503, reason));
    // Alive all the same: the kubelet must not restart an app that is starting.
    let reply = s.get("/livez");
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));

    let reply = s.get("/readyz?verbose");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            503,
            "[+]app ok\n[-]post_start failed: post_start hooks have not finished\n[+]draining ok\nreadyz check failed\n"
        )
    );
    let reply = s.get("/readyz?verbose&exclude=post_start");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            200,
            "[+]app ok\n[+]post_start excluded: ok\n[+]draining ok\nreadyz check passed\n"
        )
    );
    let reply = s.get("/readyz?exclude=post_start");
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    let reply = s.get("/livez?verbose");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "[+]supervisor ok\nlivez check passed\n")
    );
    // An exclude that names no check passes nothing, and says so without echoing it.
    let reply = s.get("/startupz?verbose&exclude=secret%2Dvalue");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            503,
            "[-]post_start failed: post_start hooks have not finished\nwarn: some health checks cannot be excluded: no matches (the checks are post_start)\nstartupz check failed\n"
        )
    );

    std::fs::write(s.path("go"), "").unwrap();
    wait_until(
        Duration::from_secs(5),
        "/readyz 200 once post_start is done",
        || s.get("/readyz").status == 200,
    );
    assert_eq!(s.get("/readyz").body, "ok");
    assert_eq!(s.get("/startupz").status, 200);
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(10)).assert_code(0);
}

/// One answer of the poller: when, whether the marker existed before the request, the
/// status and the body.
type Poll = (Instant, bool, u16, String);

#[test]
fn sigterm_makes_readyz_503_at_once_before_the_pre_stop_hook_runs() {
    let _serial = serial();
    // The first pre_stop hook leaves a marker; the second keeps the drain going for a
    // second of polls.
    let config = r#"
[[hooks.pre_stop]]
exec = ["touch", "{dir}/marker"]

[[hooks.pre_stop]]
sleep = "1s"
"#;
    let mut s = Served::local("sigterm", config, APP);
    wait_until(Duration::from_secs(5), "/readyz 200", || {
        s.get("/readyz").status == 200
    });
    // A poller on one keep-alive connection: each answer with whether the marker
    // existed before the request was sent, until graceinit is gone.
    let polls: Arc<Mutex<Vec<Poll>>> = Arc::default();
    let poller = {
        let polls = polls.clone();
        let marker = s.path("marker");
        let address = s.address;
        thread::spawn(move || {
            let mut stream = connect(address);
            loop {
                let marker_before = marker.exists();
                let Ok(reply) = get_on(&mut stream, "/readyz") else {
                    break;
                };
                let mut polls = polls.lock().unwrap();
                polls.push((Instant::now(), marker_before, reply.status, reply.body));
                if polls.len() > 200_000 {
                    break;
                }
            }
        })
    };
    wait_until(Duration::from_secs(5), "the poller's first answer", || {
        !polls.lock().unwrap().is_empty()
    });
    let sigterm_at = Instant::now();
    s.signal(libc::SIGTERM);
    wait_until(Duration::from_secs(5), "DrainStarted in the log", || {
        s.stderr().contains("DrainStarted")
    });
    // Asked after the DrainStarted line: 503, while the pre_stop hooks run.
    let reply = s.get("/readyz");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "draining failed: the drain has started")
    );
    let finished = s.finish(Duration::from_secs(10));
    finished.assert_code(0);
    poller.join().expect("the poller");

    let polls = polls.lock().unwrap();
    let first_503 = polls
        .iter()
        .position(|(_, _, status, _)| *status == 503)
        .unwrap_or_else(|| panic!("no 503 among {} answers", polls.len()));
    assert!(first_503 > 0, "200s before the SIGTERM");
    let (at, marker_before, _, body) = &polls[first_503];
    assert_eq!(body, "draining failed: the drain has started");
    assert!(
        *at - sigterm_at < Duration::from_millis(500),
        "the first 503 came {:?} after SIGTERM",
        *at - sigterm_at
    );
    assert!(
        !marker_before,
        "/readyz still answered 200 after the pre_stop hook had run"
    );
    // Never 200 again once 503, and never 200 for a request sent after the hook ran.
    let late_200 = polls[first_503..]
        .iter()
        .filter(|(_, _, status, _)| *status != 503)
        .count();
    assert_eq!(late_200, 0, "a non-503 answer after the first 503");
    assert!(
        polls.iter().any(|(_, marker_before, _, _)| *marker_before),
        "the poller also asked while the pre_stop hooks ran"
    );
    assert_eq!(s.lines("events"), ["term"]);
}

// ---------------------------------------------------------------------------------------
// /status and /metrics

#[test]
fn status_is_the_snapshot_as_json() {
    let _serial = serial();
    let config = r#"
[[hooks.post_start]]
exec = ["true"]

[probes.readiness]
exec = ["true"]
period = "1h"
"#;
    let mut s = Served::local("status", config, APP);
    wait_until(Duration::from_secs(5), "ready", || {
        s.status()["ready"] == true
    });
    let app_pid = s.running().wait_for_app("sh");
    let json = s.status();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["phase"], "running");
    assert_eq!(json["ready"], true);
    assert_eq!(json["not_ready"], Value::Null);
    assert_eq!(json["started"], true);
    assert_eq!(json["app"]["argv0"], "\"sh\"");
    assert_eq!(json["app"]["pid"], app_pid);
    assert_eq!(json["app"]["restarts"], 0);
    assert_eq!(json["hooks"].as_array().unwrap().len(), 1);
    assert_eq!(json["hooks"][0]["phase"], "post_start");
    assert_eq!(json["hooks"][0]["runs"], 1);
    assert_eq!(json["hooks"][0]["last"]["ok"], true);
    assert_eq!(json["probes"][0]["probe"], "readiness");
    assert_eq!(json["probes"][0]["health"], "healthy");
    assert_eq!(json["probes"][0]["successes"], 1);
    assert_eq!(json["drain"], Value::Null);
    let reasons: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.first(), Some(&"Started"));
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(10)).assert_code(0);
}

/// A system value from `getconf` (libc-bin).
fn getconf(name: &str) -> f64 {
    let output = Command::new("getconf")
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("cannot run getconf: {e}"));
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("getconf {name}: {e}"))
}

#[test]
fn metrics_parse_with_prometheus_and_hold_the_exact_counts() {
    let _serial = serial();
    // One period each (1h): exactly one result per probe. The liveness probe fails
    // once, under its threshold of 3.
    let config = r#"
[app]
stop_timeout = "5s"

[[hooks.post_start]]
exec = ["true"]

[[hooks.post_start]]
exec = ["false"]
on_failure = "ignore"

[[hooks.on_ready]]
exec = ["true"]

[[hooks.pre_stop]]
sleep = "1s"

[probes.readiness]
exec = ["true"]
period = "1h"

[probes.liveness]
exec = ["false"]
period = "1h"
"#;
    // On SIGTERM the app notes it, then takes 2 s to exit.
    let app =
        "trap 'touch {dir}/term; sleep 2; exit 0' TERM; while :; do sleep 0.05 & wait $!; done";
    let mut s = Served::local("metrics", config, app);
    wait_until(
        Duration::from_secs(10),
        "on_ready run and both probes run",
        || {
            let json = s.status();
            json["ready"] == true
                && json["hooks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["phase"] == "on_ready" && h["runs"] == 1)
                && json["probes"].as_array().unwrap().iter().all(|p| {
                    p["successes"].as_u64().unwrap() + p["failures"].as_u64().unwrap() == 1
                })
        },
    );
    let samples = parse_metrics(&s.get("/metrics").body);
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&samples, name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in {samples:?}"))
    };
    for (phase, on) in [
        ("starting", 0.0),
        ("running", 1.0),
        ("draining", 0.0),
        ("stopping", 0.0),
        ("backoff", 0.0),
        ("exited", 0.0),
    ] {
        assert_eq!(value("graceinit_phase", &[("phase", phase)]), on, "{phase}");
    }
    assert_eq!(value("graceinit_ready", &[]), 1.0);
    assert_eq!(value("graceinit_started", &[]), 1.0);
    assert_eq!(value("graceinit_app_restarts_total", &[]), 0.0);
    for (phase, runs, failures) in [
        ("post_start", 2.0, 1.0),
        ("on_ready", 1.0, 0.0),
        ("pre_stop", 0.0, 0.0),
        ("post_stop", 0.0, 0.0),
    ] {
        assert_eq!(
            value("graceinit_hook_runs_total", &[("phase", phase)]),
            runs,
            "{phase}"
        );
        assert_eq!(
            value("graceinit_hook_failures_total", &[("phase", phase)]),
            failures,
            "{phase}"
        );
    }
    for (probe, result, count) in [
        ("readiness", "success", 1.0),
        ("readiness", "failure", 0.0),
        ("liveness", "success", 0.0),
        ("liveness", "failure", 1.0),
    ] {
        assert_eq!(
            value(
                "graceinit_probe_results_total",
                &[("probe", probe), ("result", result)]
            ),
            count,
            "{probe} {result}"
        );
    }
    assert_eq!(
        sample(
            &samples,
            "graceinit_probe_results_total",
            &[("probe", "startup"), ("result", "success")]
        ),
        None,
        "no startup probe configured"
    );
    assert_eq!(
        sample(&samples, "graceinit_drain_duration_seconds", &[]),
        None
    );

    // The process gauges, as graceinit's own /proc entries say.
    let pid = s.running().graceinit_pid();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let started_ticks: f64 = common::parse_stat(&stat).unwrap()[19].parse().unwrap();
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ticks = getconf("CLK_TCK");
    let start = value("process_start_time_seconds", &[]);
    assert!(
        (start - (boot + started_ticks / ticks)).abs() < 1e-6,
        "process_start_time_seconds {start}"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= now && start > now - 60.0,
        "started {start}, now {now}"
    );
    let rss = value("process_resident_memory_bytes", &[]);
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
    let page = getconf("PAGESIZE");
    let resident = statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * page;
    assert!(
        (rss - resident).abs() <= 1024.0 * 1024.0,
        "process_resident_memory_bytes {rss}, /proc says {resident}"
    );

    // The drain: during the pre_stop sleep, then once the stop signal is out.
    s.signal(libc::SIGTERM);
    wait_until(Duration::from_secs(5), "the draining phase", || {
        s.status()["phase"] == "draining"
    });
    let samples = parse_metrics(&s.get("/metrics").body);
    assert_eq!(
        sample(&samples, "graceinit_phase", &[("phase", "draining")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&samples, "graceinit_phase", &[("phase", "running")]),
        Some(0.0)
    );
    assert_eq!(sample(&samples, "graceinit_ready", &[]), Some(0.0));
    let so_far = sample(&samples, "graceinit_drain_duration_seconds", &[]).expect("a drain");
    assert!((0.0..1.0).contains(&so_far), "drain so far {so_far}");
    assert_eq!(
        sample(
            &samples,
            "graceinit_drain_stage_seconds",
            &[("stage", "stop_signal")]
        ),
        None
    );

    wait_until(Duration::from_secs(5), "the app's TERM", || {
        s.path("term").exists()
    });
    let samples = parse_metrics(&s.get("/metrics").body);
    assert_eq!(
        sample(
            &samples,
            "graceinit_hook_runs_total",
            &[("phase", "pre_stop")]
        ),
        Some(1.0)
    );
    let stop_signal = sample(
        &samples,
        "graceinit_drain_stage_seconds",
        &[("stage", "stop_signal")],
    )
    .expect("the stop signal's time");
    assert!(
        (1.0..1.5).contains(&stop_signal),
        "the stop signal {stop_signal}s after the trigger, after the 1s pre_stop sleep"
    );
    assert_eq!(
        sample(
            &samples,
            "graceinit_drain_stage_seconds",
            &[("stage", "sigkill")]
        ),
        None
    );
    assert_eq!(
        sample(
            &samples,
            "graceinit_drain_stage_seconds",
            &[("stage", "app_exit")]
        ),
        None
    );
    let duration = sample(&samples, "graceinit_drain_duration_seconds", &[]).unwrap();
    assert!(duration >= stop_signal, "{duration} < {stop_signal}");
    s.finish(Duration::from_secs(10)).assert_code(0);
}

#[test]
fn status_and_metrics_show_no_secret() {
    let _serial = serial();
    let config = r#"
[http]
token = "SECRET-TOKEN-1"

[[hooks.post_start]]
exec = ["sh", "-c", "exit 3"]
env = { API_KEY = "SECRET-ENV-2" }
on_failure = "ignore"

[[hooks.post_start]]
on_failure = "ignore"
http = { method = "POST", url = "http://user:SECRET-PASS-3@127.0.0.1:1/register?key=SECRET-QUERY-4", headers = { Authorization = "Bearer SECRET-HEADER-5" }, body = "SECRET-BODY-6" }
timeout = "1s"

[probes.readiness]
http = { url = "http://probe:SECRET-PASS-7@127.0.0.1:1/ready?token=SECRET-QUERY-8#SECRET-FRAGMENT-9" }
period = "1h"
"#;
    let mut s = Served::local("secrets", config, APP);
    wait_until(
        Duration::from_secs(10),
        "the hooks and the probe to have failed",
        || {
            let json = s.status();
            let hooks = json["hooks"].as_array().unwrap();
            hooks.len() == 2
                && hooks.iter().all(|h| h["failures"] == 1)
                && json["probes"][0]["failures"] == 1
        },
    );
    let status = s.get("/status").body;
    let metrics = s.get("/metrics").body;
    // Proof that the failures are there to leak from.
    assert!(status.contains("\"last_error\":\""), "{status}");
    for secret in [
        "SECRET-TOKEN-1",
        "SECRET-ENV-2",
        "SECRET-PASS-3",
        "SECRET-QUERY-4",
        "SECRET-HEADER-5",
        "SECRET-BODY-6",
        "SECRET-PASS-7",
        "SECRET-QUERY-8",
        "SECRET-FRAGMENT-9",
    ] {
        assert!(!status.contains(secret), "/status shows {secret}: {status}");
        assert!(
            !metrics.contains(secret),
            "/metrics shows {secret}: {metrics}"
        );
    }
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(10)).assert_code(0);
}

// ---------------------------------------------------------------------------------------
// /prestop

#[test]
fn prestop_runs_the_pre_stop_hooks_once_and_answers_when_they_are_done() {
    let _serial = serial();
    let config = r#"
[http]
prestop = true

[[hooks.pre_stop]]
exec = ["sh", "-c", "echo run >> {dir}/hook_runs"]

[[hooks.pre_stop]]
sleep = "1s"
"#;
    let mut s = Served::local("prestop", config, APP);
    let asked_at = Instant::now();
    let reply = request(s.address, "POST", "/prestop", &[]);
    let took = asked_at.elapsed();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "2 pre_stop hook(s) done\n")
    );
    assert!(
        took >= Duration::from_millis(950),
        "answered after {took:?}, before the 1s pre_stop sleep was over"
    );
    assert_eq!(s.lines("hook_runs"), ["run"]);
    // The kubelet's SIGTERM comes next: the app gets its stop signal, no hook runs again.
    assert!(
        s.lines("events").is_empty(),
        "the app was stopped before SIGTERM"
    );
    assert_eq!(s.get("/readyz").status, 503);
    // A second /prestop joins the drain done: the same answer, no second run.
    let again = s.get("/prestop");
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, "2 pre_stop hook(s) done\n")
    );
    s.signal(libc::SIGTERM);
    let finished = s.finish(Duration::from_secs(10));
    finished.assert_code(0);
    assert_eq!(s.lines("hook_runs"), ["run"], "SIGTERM ran no hook again");
    assert_eq!(s.lines("events"), ["term"], "the app got its stop signal");
}

#[test]
fn prestop_off_loopback_needs_the_token() {
    let _serial = serial();
    let config = r#"
[http]
prestop = true
token = "t0ken-for-the-test"
"#;
    let mut s = Served::start("token", config, &["--listen", "0.0.0.0:0"], APP);
    assert!(s.address.ip().is_unspecified(), "{}", s.address);
    let address: SocketAddr = format!("127.0.0.1:{}", s.address.port()).parse().unwrap();
    wait_until(Duration::from_secs(5), "/readyz 200", || {
        get(address, "/readyz").status == 200
    });
    for headers in [
        vec![],
        vec![("X-Graceinit-Token", "wrong")],
        vec![("X-Graceinit-Token", "t0ken-for-the-tes")],
        vec![("X-Graceinit-Token", "t0ken-for-the-test-and-more")],
        vec![("Authorization", "Bearer t0ken-for-the-test")],
    ] {
        let reply = request(address, "POST", "/prestop", &headers);
        assert_eq!(reply.status, 401, "{headers:?}");
        assert_eq!(
            reply.body,
            "/prestop needs the X-Graceinit-Token header set to [http] token\n"
        );
    }
    assert_eq!(
        get(address, "/readyz").status,
        200,
        "a refused /prestop started nothing"
    );
    let reply = request(
        address,
        "GET",
        "/prestop",
        &[("X-Graceinit-Token", "t0ken-for-the-test")],
    );
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "no pre_stop hooks\n")
    );
    assert_eq!(get(address, "/readyz").status, 503);
    let reply = request(address, "PUT", "/prestop", &[]);
    assert_eq!((reply.status, reply.header("allow")), (405, "GET, POST"));
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(10)).assert_code(0);
    assert_eq!(s.lines("events"), ["term"]);
}

#[test]
fn prestop_off_loopback_without_a_token_is_a_config_error() {
    let dir = TempDir::new("graceinit-endpoints-notoken");
    let config = dir.write(
        "graceinit.toml",
        "[http]\nlisten = \"0.0.0.0:0\"\nprestop = true\n",
    );
    let finished = run(&["--config", &config, "--", "true"], &[]);
    finished.assert_code(2);
    assert!(
        finished.stderr.contains(&format!(
            "{config}:2:10: [http] prestop = true on 0.0.0.0:0, which is not a loopback address, needs a non-empty [http] token"
        )),
        "{}",
        finished.stderr
    );
    // From the command line: blamed on it. An empty token is no token.
    let config = dir.write("empty.toml", "[http]\nprestop = true\ntoken = \"\"\n");
    let finished = run(
        &["--config", &config, "--listen", "[::]:0", "--", "true"],
        &[],
    );
    finished.assert_code(2);
    assert!(
        finished
            .stderr
            .contains("<command line>: [http] prestop = true on [::]:0, which is not a loopback"),
        "{}",
        finished.stderr
    );
    // On loopback no token is needed.
    let config = dir.write(
        "loopback.toml",
        "[http]\nlisten = \"127.0.0.1:0\"\nprestop = true\n",
    );
    run(&["--config", &config, "--", "true"], &[]).assert_code(0);
}

#[test]
fn a_listen_address_that_is_not_ip_and_port_is_a_config_error() {
    for (listen, _) in [("localhost:8080", ()), ("127.0.0.1", ()), ("8080", ())] {
        let finished = run(&["--listen", listen, "--", "true"], &[]);
        finished.assert_code(2);
        assert!(
            finished.stderr.contains(&format!(
                "<command line>: `listen` must be an IP address and a port, like 127.0.0.1:8080 or [::]:8080, not `{listen}`"
            )),
            "{}",
            finished.stderr
        );
    }
    let finished = run(&["--", "true"], &[("GRACEINIT_LISTEN", "nope")]);
    finished.assert_code(2);
    assert!(
        finished.stderr.contains("not `nope`"),
        "{}",
        finished.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Robustness

#[test]
fn a_client_sending_a_byte_a_second_delays_neither_others_nor_the_drain() {
    let _serial = serial();
    let mut s = Served::local("slow", "", APP);
    let stop = Arc::new(AtomicBool::new(false));
    let slow = {
        let stop = stop.clone();
        let mut stream = connect(s.address);
        thread::spawn(move || {
            for byte in b"GET /readyz HTTP/1.1\r\nHost: slow\r\n\r\n" {
                if stop.load(Ordering::Relaxed) || stream.write_all(&[*byte]).is_err() {
                    return;
                }
                // The slow client's pace is the scenario, not a synchronisation.
                thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // Several answers while the slow client is mid-head, each fast.
    let began = Instant::now();
    let mut answers = 0;
    while began.elapsed() < Duration::from_millis(2500) {
        let asked = Instant::now();
        let reply = s.get("/readyz");
        let took = asked.elapsed();
        assert_eq!(reply.status, 200);
        assert!(
            took < Duration::from_millis(500),
            "/readyz took {took:?} beside a slow client"
        );
        answers += 1;
    }
    assert!(answers > 10, "only {answers} answers");
    let sigterm_at = Instant::now();
    s.signal(libc::SIGTERM);
    let finished = s.finish(Duration::from_secs(10));
    finished.assert_code(0);
    assert!(
        sigterm_at.elapsed() < Duration::from_secs(2),
        "graceinit took {:?} to drain with a slow client connected",
        sigterm_at.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    slow.join().expect("the slow client");
}

#[test]
fn the_connection_cap_closes_the_65th_and_serves_again_once_they_close() {
    let _serial = serial();
    let mut s = Served::local("cap", "", APP);
    wait_until(Duration::from_secs(5), "/readyz 200", || {
        s.get("/readyz").status == 200
    });
    let mut held: Vec<TcpStream> = (0..100).map(|_| connect(s.address)).collect();
    // The first 64 are served; every one after them is closed at once.
    for (i, stream) in held.iter_mut().enumerate().skip(64) {
        assert!(closed_by_server(stream), "connection {i} is still open");
    }
    let mut extra = connect(s.address);
    assert!(closed_by_server(&mut extra), "a 101st connection is open");
    for (i, stream) in held.iter_mut().take(64).enumerate() {
        let reply = get_on(stream, "/readyz")
            .unwrap_or_else(|e| panic!("held connection {i} was not served: {e}"));
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    }
    for stream in &held {
        let _ = stream.shutdown(Shutdown::Both);
    }
    drop(held);
    // Slots come back as the server sees each close.
    wait_until(Duration::from_secs(5), "a new connection served", || {
        let mut stream = connect(s.address);
        get_on(&mut stream, "/readyz").is_ok_and(|reply| reply.status == 200)
    });
    let many: Vec<Reply> = (0..20).map(|_| s.get("/livez")).collect();
    assert!(many.iter().all(|r| r.status == 200));
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(10)).assert_code(0);
}

#[test]
fn ipv6_loopback_is_served() {
    let _serial = serial();
    let mut s = Served::start("ipv6", "", &["--listen", "[::1]:0"], APP);
    assert_eq!(s.address.ip().to_string(), "::1");
    assert!(
        s.stderr().contains(&format!(
            "serving the health endpoints on http://[::1]:{}",
            s.address.port()
        )),
        "{}",
        s.stderr()
    );
    wait_until(Duration::from_secs(5), "/readyz 200", || {
        s.get("/readyz").status == 200
    });
    assert_eq!(s.get("/livez").body, "ok");
    s.signal(libc::SIGTERM);
    s.finish(Duration::from_secs(10)).assert_code(0);
}

#[test]
fn the_flag_beats_the_environment_which_beats_the_file() {
    let _serial = serial();
    let dir = TempDir::new("graceinit-endpoints-precedence");
    let config = dir.write("graceinit.toml", "[http]\nlisten = \"[::1]:0\"\n");
    let cases: [(&[&str], Option<&str>, &str); 3] = [
        (&[], None, "[::1]"),
        (&[], Some("127.0.0.1:0"), "127.0.0.1"),
        (&["--listen", "[::1]:0"], Some("127.0.0.1:0"), "[::1]"),
    ];
    for (flags, env, expected) in cases {
        let mut args = vec!["-v", "--config", config.as_str()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sleep", "30"]);
        let mut launch = Launch::direct(&args).env_remove("GRACEINIT_LISTEN");
        if let Some(env) = env {
            launch = launch.env("GRACEINIT_LISTEN", env);
        }
        let running = launch.start();
        let address = served_at(&running);
        let shown = match address {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        assert_eq!(shown, expected, "flags {flags:?}, env {env:?}");
        assert_eq!(get(address, "/livez").status, 200);
        running.signal(libc::SIGTERM);
        running.wait(Duration::from_secs(10)).assert_code(143);
    }
}

#[test]
fn a_taken_port_fails_before_the_app_starts() {
    let _serial = serial();
    let dir = TempDir::new("graceinit-endpoints-taken");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let marker = dir.file("marker");
    let listen = format!("127.0.0.1:{port}");
    let finished = run(
        &[
            "--listen",
            &listen,
            "--",
            "sh",
            "-c",
            &format!("touch {marker}"),
        ],
        &[],
    );
    finished.assert_code(1);
    assert!(
        finished.stderr.contains(&format!(
            "cannot serve the health endpoints on {listen}: Address already in use"
        )),
        "{}",
        finished.stderr
    );
    assert!(!dir.join("marker").exists(), "the app ran");
    drop(taken);
}
