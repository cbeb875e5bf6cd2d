//! The `wait_quiet` pre_stop action against real TCP on loopback: an app listening (a
//! server in this test process, which shares graceinit's network namespace), clients
//! that keep it busy or not, and graceinit's drain timed from its SIGTERM to its exit
//! (the app, `sleep`, dies at once on the stop signal that follows the action). Each
//! test runs in a network namespace of its own ([`Netns`]): the namespace's count of
//! passive opens, which graceinit reads, is the test's alone.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::quiet::{arrivals, assert_between, fetch, took, traffic};
use common::{Finished, Launch, TempDir, serial, wait_until};

const WAIT: Duration = Duration::from_secs(10);
/// Sampling period (100 ms) plus the stop signal, the app's exit and the test's polling.
const SLACK: Duration = Duration::from_millis(900);

/// The app: answers `ok` to each read; closes first when `close_first` (as an HTTP
/// server with `Connection: close` does, leaving its side in TIME_WAIT).
fn app(close_first: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut buffer = [0; 64];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 || stream.write_all(b"ok").is_err() || close_first {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// graceinit with one pre_stop `wait_quiet` (its keys as given), the app `sleep`, ready.
fn start(tag: &str, wait_quiet: &str) -> (common::Running, TempDir) {
    let dir = TempDir::new(tag);
    let config = dir.write(
        "graceinit.toml",
        &format!("[[hooks.pre_stop]]\nwait_quiet = {{ {wait_quiet} }}\n"),
    );
    let running = Launch::direct(["-v", "--config", &config, "--", "sleep", "1000"]).start();
    wait_until(WAIT, "the app to be ready", || {
        running.stderr_so_far().contains("the app is ready")
    });
    (running, dir)
}

/// Runs `client` on its own thread until `stop`; it returns when it last sent.
fn client(
    stop: Arc<AtomicBool>,
    mut once: impl FnMut() + Send + 'static,
) -> thread::JoinHandle<Instant> {
    thread::spawn(move || {
        let mut last = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            once();
            last = Instant::now();
            thread::sleep(Duration::from_millis(150)); // the client's pace, not a wait
        }
        last
    })
}

/// A client that opens a new connection for each request.
fn new_connections(address: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<Instant> {
    client(stop, move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(b"ping").unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"ok");
    })
}

/// A client that sends each request on one kept-alive connection.
fn keep_alive(address: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<Instant> {
    let mut stream = TcpStream::connect(address).unwrap();
    client(stop, move || {
        stream.write_all(b"ping").unwrap();
        let mut answer = [0; 2];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"ok");
    })
}

/// Starts a client thread that runs until its flag is set.
type StartClient = Box<dyn FnOnce(Arc<AtomicBool>) -> thread::JoinHandle<Instant>>;

/// SIGTERMs graceinit, lets `busy` run for `for_how_long` (None: no client), and returns
/// how graceinit finished, the time from SIGTERM to its exit, and from the client's
/// last request to the exit.
fn drain(
    running: common::Running,
    busy: Option<(Duration, StartClient)>,
) -> (Finished, Duration, Option<Duration>) {
    let trigger = Instant::now();
    running.signal(libc::SIGTERM);
    let mut last = None;
    if let Some((how_long, start_client)) = busy {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = start_client(stop.clone());
        thread::sleep(how_long); // the client's run, not a wait for graceinit
        stop.store(true, Ordering::SeqCst);
        last = Some(handle.join().unwrap());
    }
    let finished = running.wait(Duration::from_secs(40));
    let exited = Instant::now();
    (finished, exited - trigger, last.map(|l| exited - l))
}

#[test]
fn with_no_traffic_the_drain_goes_on_after_quiet() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app(false);
    let (running, _dir) = start(
        "wq-idle",
        &format!("ports = [{}], quiet = \"1s\"", address.port()),
    );
    let (finished, drained, _) = drain(running, None);
    finished.assert_code(143);
    assert_between(
        "SIGTERM to exit",
        drained,
        Duration::from_secs(1),
        Duration::from_secs(1) + SLACK,
        &finished,
    );
    assert_eq!(arrivals(&finished), 0);
    assert_eq!(finished.stderr_lines_with("wait_quiet over: quiet"), 1);
}

#[test]
fn a_client_opening_connections_keeps_it_waiting_until_quiet_after_it_stops() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app(true);
    let (running, _dir) = start(
        "wq-new",
        &format!("ports = [{}], quiet = \"1s\"", address.port()),
    );
    let client_runs = Duration::from_millis(2500);
    let (finished, drained, after_last) = drain(
        running,
        Some((
            client_runs,
            Box::new(move |stop| new_connections(address, stop)),
        )),
    );
    finished.assert_code(143);
    // Busy until the client stopped (not done `quiet` after the SIGTERM).
    assert!(
        drained >= client_runs,
        "drained after {drained:?}\n{}",
        finished.stderr
    );
    assert_between(
        "last request to exit",
        after_last.unwrap(),
        Duration::from_secs(1),
        Duration::from_secs(1) + SLACK,
        &finished,
    );
    // About 16 connections in 2.5 s; each seen at least in TIME_WAIT.
    assert!(arrivals(&finished) >= 10, "{}", finished.stderr);
    assert_eq!(finished.stderr_lines_with("wait_quiet over: quiet"), 1);
}

#[test]
fn requests_on_one_kept_alive_connection_keep_it_waiting() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app(false);
    let (running, _dir) = start(
        "wq-keepalive",
        &format!("ports = [{}], quiet = \"1s\"", address.port()),
    );
    let client_runs = Duration::from_millis(2500);
    let (finished, drained, after_last) = drain(
        running,
        Some((client_runs, Box::new(move |stop| keep_alive(address, stop)))),
    );
    finished.assert_code(143);
    // Busy until the client stopped (not done `quiet` after the SIGTERM).
    assert!(
        drained >= client_runs,
        "drained after {drained:?}\n{}",
        finished.stderr
    );
    assert_between(
        "last request to exit",
        after_last.unwrap(),
        Duration::from_secs(1),
        Duration::from_secs(1) + SLACK,
        &finished,
    );
    assert!(arrivals(&finished) >= 10, "{}", finished.stderr);
}

#[test]
fn max_cuts_a_wait_that_never_gets_quiet() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app(false);
    let (running, _dir) = start(
        "wq-max",
        &format!(
            "ports = [{}], quiet = \"1s\", max = \"1500ms\"",
            address.port()
        ),
    );
    let client_runs = Duration::from_millis(3500);
    let (finished, drained, _) = drain(
        running,
        Some((client_runs, Box::new(move |stop| keep_alive(address, stop)))),
    );
    finished.assert_code(143);
    assert!(arrivals(&finished) >= 5, "{}", finished.stderr);
    // The exit comes while the client still runs: timed from the SIGTERM by the log.
    assert_eq!(
        finished.stderr_lines_with("wait_quiet over: its max or the drain deadline came first"),
        1,
        "{}",
        finished.stderr
    );
    assert_eq!(
        finished.stderr_lines_with("hook finished hook=pre_stop#1 outcome=succeeded"),
        1,
        "{}",
        finished.stderr
    );
    assert!(drained < client_runs + SLACK, "{drained:?}");
    let took = took(&finished);
    assert_between(
        "the action",
        took,
        Duration::from_millis(1500),
        Duration::from_millis(1500) + SLACK,
        &finished,
    );
}

#[test]
fn an_ignored_peer_does_not_count() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app(false);
    let (running, _dir) = start(
        "wq-ignore",
        &format!(
            "ports = [{}], quiet = \"1s\", ignore = [\"127.0.0.0/8\"]",
            address.port()
        ),
    );
    let client_runs = Duration::from_millis(2500);
    let (finished, _, _) = drain(
        running,
        Some((client_runs, Box::new(move |stop| keep_alive(address, stop)))),
    );
    finished.assert_code(143);
    assert_eq!(arrivals(&finished), 0, "{}", finished.stderr);
    assert_eq!(finished.stderr_lines_with("wait_quiet over: quiet"), 1);
    assert_between(
        "the action",
        took(&finished),
        Duration::from_secs(1),
        Duration::from_secs(1) + SLACK,
        &finished,
    );
}

#[test]
fn an_idle_kept_alive_connection_is_open_for_until_idle_but_not_an_arrival() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app(false);
    let keys = |idle: bool| {
        format!(
            "ports = [{}], quiet = \"1s\", until_idle = {idle}, max = \"5s\"",
            address.port()
        )
    };
    // Without until_idle: quiet after 1 s, the idle connection notwithstanding.
    let (running, _dir) = start("wq-idle-open", &keys(false));
    let idle = TcpStream::connect(address).unwrap();
    let (finished, _, _) = drain(running, None);
    assert_eq!(arrivals(&finished), 0, "{}", finished.stderr);
    let one = Duration::from_secs(1);
    assert_between("the action", took(&finished), one, one + SLACK, &finished);
    drop(idle);

    // With until_idle: it waits for the connection to close (1.8 s after the SIGTERM).
    let (running, _dir) = start("wq-until-idle", &keys(true));
    let idle = TcpStream::connect(address).unwrap();
    let closes_after = Duration::from_millis(1800);
    let (finished, _, _) = drain(
        running,
        Some((
            closes_after,
            Box::new(move |stop| {
                thread::spawn(move || {
                    wait_until(WAIT, "the end of the client's run", || {
                        stop.load(Ordering::SeqCst)
                    });
                    drop(idle);
                    Instant::now()
                })
            }),
        )),
    );
    assert_eq!(arrivals(&finished), 0, "{}", finished.stderr);
    assert_eq!(finished.stderr_lines_with("wait_quiet over: quiet"), 1);
    assert_between(
        "the action",
        took(&finished),
        closes_after,
        closes_after + SLACK,
        &finished,
    );
}

#[test]
fn stop_by_cuts_a_wait_that_never_gets_quiet() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app(false);
    let dir = TempDir::new("wq-stop-by");
    // grace_period 3s - stop_timeout 2s: the stop signal by 1s after the SIGTERM.
    let config = dir.write(
        "graceinit.toml",
        &format!(
            "[app]\ngrace_period = \"3s\"\nstop_timeout = \"2s\"\n\n\
             [[hooks.pre_stop]]\nwait_quiet = {{ ports = [{}], quiet = \"1s\", max = \"30s\" }}\n",
            address.port()
        ),
    );
    let running = Launch::direct(["-v", "--config", &config, "--", "sleep", "1000"]).start();
    wait_until(WAIT, "the app to be ready", || {
        running.stderr_so_far().contains("the app is ready")
    });
    let client_runs = Duration::from_millis(3000);
    let (finished, drained, _) = drain(
        running,
        Some((client_runs, Box::new(move |stop| keep_alive(address, stop)))),
    );
    finished.assert_code(143);
    assert_eq!(
        finished.stderr_lines_with("wait_quiet over: its max or the drain deadline came first"),
        1,
        "{}",
        finished.stderr
    );
    let one = Duration::from_secs(1);
    assert_between("the action", took(&finished), one, one + SLACK, &finished);
    // graceinit exited while the client still ran: it did not wait for it.
    assert!(drained < client_runs + SLACK, "{drained:?}");
}

#[test]
fn the_drain_reports_connections_in_its_event_status_and_metrics() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app(false);
    let dir = TempDir::new("wq-report");
    let config = dir.write(
        "graceinit.toml",
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [[hooks.pre_stop]]\nwait_quiet = {{ ports = [{}], quiet = \"2s\" }}\n",
            address.port()
        ),
    );
    let running = Launch::direct(["-v", "--config", &config, "--", "sleep", "1000"]).start();
    let endpoint = common::endpoints::served_at(&running);
    wait_until(WAIT, "the app to be ready", || {
        running.stderr_so_far().contains("the app is ready")
    });
    // Two idle kept-alive connections before the drain.
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the first sample", || {
        traffic(endpoint)["open_at_trigger"] == 2
    });
    // Three new connections, one at a time, each seen before the next (no bytes sent:
    // each is one arrival, whenever the samples fall).
    let mut new = Vec::new();
    for seen in 1..=3 {
        new.push(TcpStream::connect(address).unwrap());
        wait_until(WAIT, "the arrival in /status", || {
            traffic(endpoint)["arrivals"] == seen
        });
    }
    let report = traffic(endpoint);
    assert_eq!(report["open"], 5, "{report}");
    assert_eq!(report["arrivals_after_stop_signal"], 0, "{report}");
    assert_eq!(report["open_at_stop_signal"], serde_json::Value::Null);
    let metrics = common::endpoints::parse_metrics(&fetch(endpoint, "/metrics"));
    let sample =
        |name: &str, labels: &[(&str, &str)]| common::endpoints::sample(&metrics, name, labels);
    assert_eq!(
        sample("graceinit_drain_connections", &[("at", "trigger")]),
        Some(2.0)
    );
    assert_eq!(
        sample("graceinit_drain_connections", &[("at", "now")]),
        Some(5.0)
    );
    assert_eq!(
        sample("graceinit_drain_arrivals", &[("after", "trigger")]),
        Some(3.0)
    );
    assert_eq!(
        sample("graceinit_drain_arrivals", &[("after", "stop_signal")]),
        Some(0.0)
    );
    assert!(sample("graceinit_drain_last_arrival_seconds", &[]).unwrap() > 0.0);
    // The three go; quiet 2 s after the last arrival, the stop signal finds the two idle.
    drop(new);
    let finished = running.wait(Duration::from_secs(20));
    finished.assert_code(143);
    drop(idle);
    let line = finished
        .stderr
        .lines()
        .find(|l| l.contains("DrainFinished"))
        .unwrap_or_else(|| panic!("no DrainFinished event:\n{}", finished.stderr));
    assert!(
        line.contains("connections: 2 open at the trigger, 3 arrived after it (the last "),
        "{line}"
    );
    assert!(
        line.contains(", 2 open at the stop signal reason="),
        "{line}"
    );
}

/// The app of the namespace tests: listens on 127.0.0.1:8080 and answers each read; a
/// thread polls `POLL_PORT` with a new HTTP/1.0 request every 100 ms (graceinit's own
/// /readyz, as the kubelet does, or the app itself).
const NAMESPACE_APP: &str = r#"
import os, socket, threading, time
def serve(conn):
    with conn:
        while conn.recv(64):
            conn.sendall(b"ok")
def poll(port):
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
                s.recv(4096)
        except OSError:
            pass
        time.sleep(0.1)
listener = socket.create_server(("127.0.0.1", 8080))
threading.Thread(target=poll, args=(int(os.environ["POLL_PORT"]),), daemon=True).start()
print("listening", flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// graceinit in a network namespace of its own, watching every listener (no `ports`),
/// with the app above polling `poll_port`; SIGTERMed once the app listens.
fn drain_in_a_namespace(tag: &str, poll_port: u16) -> Finished {
    let _netns = Netns::enter();
    let dir = TempDir::new(tag);
    let app = dir.write("app.py", NAMESPACE_APP);
    let config = dir.write(
        "graceinit.toml",
        "[http]\nlisten = \"127.0.0.1:8081\"\n\n\
         [[hooks.pre_stop]]\nwait_quiet = { quiet = \"1s\", max = \"3s\" }\n",
    );
    let running = Launch::direct(["-v", "--config", &config, "--", "/usr/bin/python3", &app])
        .env("POLL_PORT", poll_port.to_string())
        .start();
    wait_until(WAIT, "the app to listen", || {
        running.stdout_so_far().contains("listening")
            && running.stderr_so_far().contains("the app is ready")
    });
    running.signal(libc::SIGTERM);
    running.wait(Duration::from_secs(20))
}

#[test]
fn requests_to_graceinits_own_endpoint_do_not_count_but_the_apps_do() {
    let _serial = serial();
    // The kubelet's probes of /readyz reach graceinit's own listener: not the app's traffic.
    let finished = drain_in_a_namespace("wq-own", 8081);
    finished.assert_code(143);
    assert_eq!(arrivals(&finished), 0, "{}", finished.stderr);
    assert_eq!(finished.stderr_lines_with("wait_quiet over: quiet"), 1);
    let one = Duration::from_secs(1);
    assert_between("the action", took(&finished), one, one + SLACK, &finished);

    // The same poller on the app's port keeps the wait going until its max: each of its
    // connections comes and goes between two samples, closed by the client first (the
    // app's side leaves no trace); the namespace's count of opens has them.
    let finished = drain_in_a_namespace("wq-own-control", 8080);
    finished.assert_code(143);
    assert!(arrivals(&finished) >= 10, "{}", finished.stderr);
    assert_eq!(
        finished.stderr_lines_with("wait_quiet over: its max or the drain deadline came first"),
        1,
        "{}",
        finished.stderr
    );
}

#[test]
fn the_shipped_example_waits_for_the_apps_clients_then_stops_it() {
    let _serial = serial();
    let _netns = Netns::enter();
    let dir = TempDir::new("wq-example");
    let app = dir.write("app.py", NAMESPACE_APP);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wait-quiet.toml");
    // Its own command is the image's; the test's app is the CMD.
    let running = Launch::direct(["-v", "--config", example, "--", "/usr/bin/python3", &app])
        .env("POLL_PORT", "8081")
        .start();
    wait_until(WAIT, "the app to listen", || {
        running.stdout_so_far().contains("listening")
            && running.stderr_so_far().contains("the app is ready")
    });
    let address: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let client_runs = Duration::from_millis(2500);
    let (finished, drained, after_last) = drain(
        running,
        Some((
            client_runs,
            // A connection per request, closed by the client once it has its answer.
            Box::new(move |stop| {
                client(stop, move || {
                    let mut stream = TcpStream::connect(address).unwrap();
                    stream.write_all(b"ping").unwrap();
                    let mut answer = [0; 2];
                    stream.read_exact(&mut answer).unwrap();
                    assert_eq!(&answer, b"ok");
                })
            }),
        )),
    );
    // 143 from the app's SIGTERM, remapped to 0 by the example.
    finished.assert_code(0);
    assert!(drained >= client_runs, "{drained:?}\n{}", finished.stderr);
    let two = Duration::from_secs(2);
    assert_between(
        "last request to exit",
        after_last.unwrap(),
        two,
        two + SLACK,
        &finished,
    );
    assert_eq!(finished.stderr_lines_with("wait_quiet over: quiet"), 1);
    let report = finished
        .stderr
        .lines()
        .find(|l| l.contains("DrainFinished"))
        .unwrap_or_else(|| panic!("no DrainFinished:\n{}", finished.stderr));
    // About 16 requests, each a connection (the first may be open at the trigger's
    // sample already); none after the stop signal.
    let arrived: usize = report
        .split(" arrived after it")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no arrivals in {report}"));
    assert!(arrived >= 10, "{report}");
    assert!(!report.contains("after the stop signal"), "{report}");
    assert!(report.contains(", 0 open at the stop signal"), "{report}");
}
