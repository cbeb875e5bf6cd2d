//! Attack round 2 on issue 13: the drain's traffic report (DrainFinished, /status
//! drain.traffic, /metrics graceinit_drain_*) and wait_quiet's count of connections that
//! come and go unseen. Real processes, real signals, real TCP, each test in a network
//! namespace of its own ([`Netns`]: the namespace's count of passive opens is the
//! test's alone). The first tests are breaks (each failed against the code it was
//! written for, and is kept as a regression test now that it is fixed); the rest are
//! promises that held when attacked.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::quiet::{arrivals, drain_finished, traffic};
use common::{Launch, Running, TempDir, serial, wait_until};

const WAIT: Duration = Duration::from_secs(10);
/// Sampling period (100 ms) plus the stop signal, the app's exit and the test's polling.
const SLACK: Duration = Duration::from_millis(900);
const PYTHON: &str = "/usr/bin/python3";

/// The app: answers `ok` to each read, until the client closes (then it closes too).
fn app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || serve(listener));
    address
}

fn serve(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        thread::spawn(move || {
            let mut buffer = [0; 64];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 || stream.write_all(b"ok").is_err() {
                    break;
                }
            }
        });
    }
}

/// graceinit (`-v`) with `config` (a TOML file's text) and the app `argv`, started.
fn launch(tag: &str, config: &str, argv: &[&str]) -> (Running, TempDir) {
    let dir = TempDir::new(tag);
    let path = dir.write("graceinit.toml", config);
    let mut args = vec!["-v", "--config", &path, "--"];
    args.extend_from_slice(argv);
    let running = Launch::direct(args).start();
    (running, dir)
}

fn wait_ready(running: &Running) {
    wait_until(WAIT, "the app to be ready", || {
        running.stderr_so_far().contains("the app is ready")
    });
}

/// One request on a kept-alive connection.
fn ping(stream: &mut TcpStream) {
    stream.write_all(b"ping").unwrap();
    let mut answer = [0; 2];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"ok");
}

/// `setsockopt(fd, level, name, value)` for an int or struct option.
fn set_option<T>(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: T) {
    // SAFETY: a valid fd and a pointer to a value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

// ---------------------------------------------------------------------------------------
// Breaks (all fixed; each comment says what was found)

/// Was a break (fixed): an app that exits at once on its stop signal (most do, with no
/// pre_stop hook) can be gone before the drain's first sample: the DrainFinished event
/// then said "not seen (the TCP sockets could not be sampled)" - false, nothing failed
/// (found: 5 rounds of 5, the app gone 0.3-1 ms after the trigger). Now a sample taken
/// after the exit is never the trigger's, and the report says the app was gone first.
#[test]
fn the_report_sees_what_is_open_when_the_app_exits_at_once() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app();
    let mut wrong = Vec::new();
    for round in 0..5 {
        let (running, _dir) = launch("b7-at-once", "", &["sleep", "1000"]);
        wait_ready(&running);
        let idle: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        running.signal(libc::SIGTERM);
        let finished = running.wait(WAIT);
        drop(idle);
        finished.assert_code(143);
        let line = drain_finished(&finished);
        // The first sample comes before the app's exit, or it does not and the report
        // says so; it never says a sample failed, nor gives a wrong count.
        if !line.contains(
            "; connections: 2 open at the trigger, 0 arrived after it, 2 open at the stop signal reason=",
        ) && !line.contains(
            "; connections: not seen (the app exited before the first sample) reason=",
        ) {
            wrong.push(format!("round {round}: {line}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The app (Python): on SIGTERM it says `stopping`, serves `count` more connections (one
/// request each, then it closes), and exits 0.
const SERVES_THEN_EXITS: &str = r#"
import os, signal, socket, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
listener = socket.create_server(("127.0.0.1", 8080))
print("listening", flush=True)
signal.sigwait([signal.SIGTERM])
print("stopping", flush=True)
for _ in range(int(sys.argv[1])):
    conn, _ = listener.accept()
    with conn:
        conn.recv(64)
        conn.sendall(b"bye")
os._exit(0)
"#;

/// Connections that reach the app after its stop signal are what the report is for
/// ("arrivals after the stop signal mean the quiet window was too short"), but the
/// sampling stops at the app's exit without a last look: three requests served between
/// the stop signal and an exit right after them are not in the report (found: "0 arrived
/// after it", no "after the stop signal").
#[test]
fn arrivals_just_before_the_app_exits_are_in_the_report() {
    let _serial = serial();
    let _netns = Netns::enter();
    let dir = TempDir::new("b7-last-look");
    let script = dir.write("app.py", SERVES_THEN_EXITS);
    let (running, _config) = launch(
        "b7-last-look",
        "[[hooks.pre_stop]]\nsleep = \"300ms\"\n",
        &[PYTHON, &script, "3"],
    );
    wait_until(WAIT, "the app to listen", || {
        running.stdout_so_far().contains("listening")
    });
    wait_ready(&running);
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the app's stop signal", || {
        running.stdout_so_far().contains("stopping")
    });
    for _ in 0..3 {
        let mut stream = TcpStream::connect("127.0.0.1:8080").unwrap();
        stream.write_all(b"req").unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"bye");
    }
    let finished = running.wait(WAIT);
    finished.assert_code(0);
    let line = drain_finished(&finished);
    assert!(
        line.contains("connections: 0 open at the trigger, 3 arrived after it (the last "),
        "{line}"
    );
    assert!(
        line.contains(", 3 after the stop signal, 0 open at the stop signal reason="),
        "{line}"
    );
}

/// The app (Python): once it has its stop signal it says `stopping`, serves one
/// connection (a request, an answer) until its client closes, and exits 0.
const LINGERS_AFTER_STOP: &str = r#"
import signal, socket, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
listener = socket.create_server(("127.0.0.1", 8080))
print("listening", flush=True)
signal.sigwait([signal.SIGTERM])
print("stopping", flush=True)
conn, _ = listener.accept()
with conn:
    conn.recv(64)
    conn.sendall(b"ok")
    conn.recv(64)
sys.exit(0)
"#;

/// A drain that comes while graceinit stops the app for a failed liveness probe, after
/// the app's stop signal: every arrival of the drain reaches an app that has its stop
/// signal, yet the report counts none after it (found: /status arrivals 1,
/// arrivals_after_stop_signal 0; DrainFinished without "after the stop signal" nor "open
/// at the stop signal"). The drain's stop_signal_at (and the report's stop_signal_sent)
/// are set only in send_stop_signal; begin_drain, joining a stop already past its stop
/// signal, sets neither.
#[test]
fn a_drain_during_a_liveness_stop_counts_arrivals_after_the_stop_signal() {
    let _serial = serial();
    let _netns = Netns::enter();
    let dir = TempDir::new("b7-liveness");
    let script = dir.write("app.py", LINGERS_AFTER_STOP);
    let (running, _config) = launch(
        "b7-liveness",
        "[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [probes.liveness]\nexec = [\"false\"]\ninitial_delay = \"1s\"\nperiod = \"1s\"\nfailure_threshold = 1\n",
        &[PYTHON, &script],
    );
    let endpoint = common::endpoints::served_at(&running);
    wait_until(WAIT, "the liveness stop", || {
        running.stdout_so_far().contains("stopping")
    });
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the drain's first sample", || {
        traffic(endpoint)["open_at_trigger"] == 0
    });
    let mut stream = TcpStream::connect("127.0.0.1:8080").unwrap();
    ping(&mut stream);
    wait_until(WAIT, "the arrival in /status", || {
        traffic(endpoint)["arrivals"] == 1
    });
    let report = traffic(endpoint);
    drop(stream);
    let finished = running.wait(WAIT);
    assert_eq!(
        report["arrivals_after_stop_signal"], 1,
        "{report}\n{}",
        finished.stderr
    );
    let line = drain_finished(&finished);
    assert!(line.contains(", 1 after the stop signal"), "{line}");
}

/// graceinit's own endpoint is not the app's traffic, even in bursts over its
/// 64-connection cap, with clients that reset their connection (SO_LINGER 0) at once:
/// every open the kernel counts is one graceinit accepts, but not at the same instant.
/// diag::sample reads PassiveOpens before the dump and graceinit's accepts after it:
/// connections made during the baseline's dump are taken off for good, and connections
/// queued on graceinit's listener at a later sample are not yet accepted; either way a
/// later sample shows own connections as unseen arrivals (found, over 8 runs: wait_quiet
/// arrivals=2..24, the report 1..30, with quiet 1s and some 30 bursts of 200 in 2 s). Both the resets and
/// the plain requests do it (each alone fails too).
#[test]
fn bursts_to_graceinit_s_own_endpoint_are_not_arrivals() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app();
    let (running, _dir) = launch(
        "b7-burst",
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [[hooks.pre_stop]]\nwait_quiet = {{ ports = [{}], quiet = \"2s\", max = \"20s\" }}\n",
            address.port()
        ),
        &["sleep", "1000"],
    );
    let endpoint = common::endpoints::served_at(&running);
    wait_ready(&running);
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the wait to run", || {
        running.stderr_so_far().contains("action=wait_quiet")
    });
    let started = Instant::now();
    let mut bursts = 0;
    while started.elapsed() < Duration::from_millis(3000) {
        let clients: Vec<_> = (0..200)
            .map(|i| {
                thread::spawn(move || {
                    let Ok(mut stream) = TcpStream::connect(endpoint) else {
                        return;
                    };
                    if i % 2 == 0 {
                        let linger = libc::linger {
                            l_onoff: 1,
                            l_linger: 0,
                        };
                        set_option(&stream, libc::SOL_SOCKET, libc::SO_LINGER, linger);
                        return; // reset at once, accepted or not
                    }
                    let _ = stream.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
                    let mut answer = Vec::new();
                    let _ = stream.read_to_end(&mut answer);
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        bursts += 1;
    }
    let finished = running.wait(Duration::from_secs(30));
    finished.assert_code(143);
    let line = drain_finished(&finished);
    assert!(
        arrivals(&finished) == 0 && line.contains(", 0 arrived after it, "),
        "{bursts} bursts of 200\n{}",
        finished.stderr
    );
    assert_eq!(finished.stderr_lines_with("wait_quiet over: quiet"), 1);
}

/// One sample of the drain's report fails (no file descriptor left for the netlink
/// socket: RLIMIT_NOFILE lowered under graceinit for a moment, as a connection flood
/// would), and the report stops sampling for good ("a failed sample ends it"), yet its
/// summary shows no sign of it: three connections made once the limit is back are not
/// in the DrainFinished event, which says "0 arrived after it" as if it had watched.
/// Either sampling goes on after a failure, or the summary says it stopped.
#[test]
fn a_report_that_stopped_sampling_does_not_say_nothing_arrived() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app();
    let (running, _dir) = launch(
        "b7-sample-fails",
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[[hooks.pre_stop]]\nsleep = \"3s\"\n",
        &["sleep", "1000"],
    );
    let endpoint = common::endpoints::served_at(&running);
    wait_ready(&running);
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the drain's first sample", || {
        traffic(endpoint)["open_at_trigger"] == 0
    });
    let pid = running.graceinit_pid();
    let mut before = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs for the duration of the calls.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut before) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    // No new descriptor at all (0-2 are taken): the next sample's netlink socket fails.
    let lowered = libc::rlimit {
        rlim_cur: 3,
        rlim_max: before.rlim_max,
    };
    // SAFETY: as above.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lowered, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    wait_until(WAIT, "a failed sample", || {
        running
            .stderr_so_far()
            .contains("the drain's report cannot see the app's connections")
    });
    // SAFETY: as above.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &before, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    for _ in 0..3 {
        let mut stream = TcpStream::connect(address).unwrap();
        ping(&mut stream);
    }
    let finished = running.wait(WAIT);
    finished.assert_code(143);
    let line = drain_finished(&finished);
    assert!(
        line.contains(", 3 arrived after it") || line.contains("sampl"),
        "{line}"
    );
}

/// An HTTP app on `listener`: answers each request head `200 ok` on a kept-alive
/// connection, until the client closes.
fn serve_http(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        thread::spawn(move || {
            let mut head = Vec::new();
            let mut buffer = [0; 1024];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buffer[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    head.clear();
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(answer).is_err() {
                        break;
                    }
                }
            }
        });
    }
}

/// graceinit's own hooks are not the app's traffic ("not counted: graceinit's own
/// connections ... its probes' and hooks' connections"), but the drain's report counts
/// an `http` pre_stop hook that calls the app (a deregistration endpoint, say) as an
/// arrival: graceinit's client closes first (no pooled connection), the app's side is
/// gone before the next sample, and the namespace's open is taken for an unseen one
/// (found: "2 arrived after it" for the two hooks, while wait_quiet, which starts
/// after them, counts 0).
#[test]
fn the_drain_report_does_not_count_graceinit_s_own_hook_requests() {
    let _serial = serial();
    let _netns = Netns::enter();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || serve_http(listener));
    let port = address.port();
    let (running, _dir) = launch(
        "b7-own-hook",
        &format!(
            "[[hooks.pre_stop]]\nhttp = {{ url = \"http://127.0.0.1:{port}/deregister\" }}\n\n\
             [[hooks.pre_stop]]\nhttp = {{ url = \"http://127.0.0.1:{port}/flush\" }}\n\n\
             [[hooks.pre_stop]]\nwait_quiet = {{ ports = [{port}], quiet = \"1s\", max = \"10s\" }}\n"
        ),
        &["sleep", "1000"],
    );
    wait_ready(&running);
    running.signal(libc::SIGTERM);
    let finished = running.wait(WAIT);
    finished.assert_code(143);
    assert_eq!(
        finished.stderr_lines_with("outcome=succeeded"),
        3,
        "{}",
        finished.stderr
    );
    assert_eq!(arrivals(&finished), 0, "{}", finished.stderr);
    let line = drain_finished(&finished);
    assert!(
        line.contains("; connections: 0 open at the trigger, 0 arrived after it, 0 open at the stop signal reason="),
        "{line}"
    );
}

/// The status line and the time of `GET path`.
fn timed_get(address: SocketAddr, path: &str) -> (String, Duration, String) {
    let asked = Instant::now();
    let mut stream = TcpStream::connect_timeout(&address, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let took = asked.elapsed();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, took, body.to_string())
}

/// 3000 idle connections to the app (6000 TCP sockets in the namespace; each sample,
/// wait_quiet's and the report's, lists them all) while /readyz and /metrics are polled
/// one request at a time, and /livez by a second client, as a kubelet and a scraper
/// do, through an app that ignores
/// SIGTERM. Held: /readyz answers 503 at once all through the drain, /metrics stays valid
/// Prometheus text, SIGKILL comes at kill_at and graceinit exits then, the report has
/// the 3000 open at the trigger, the stop signal and SIGKILL. Broken: the polls are
/// counted as the app's arrivals (found: wait_quiet arrivals=8..22, the report 83, for
/// no connection to the app at all). The passive opens are read before the long
/// dump of the sockets, graceinit's own accepts after it: the baseline sample pairs
/// them with the polls made during its dump taken off, and a later sample with fewer
/// polls during its dump shows the difference as connections that came unseen.
#[test]
fn polls_of_graceinit_s_endpoint_while_thousands_of_sockets_are_sampled_are_not_arrivals() {
    let _serial = serial();
    let _netns = Netns::enter();
    const CONNECTIONS: usize = 3000;
    raise_nofile(2 * CONNECTIONS);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        (0..CONNECTIONS)
            .map(|_| listener.accept().unwrap().0)
            .collect::<Vec<_>>()
    });
    let clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    let served = server.join().unwrap();
    let (running, _dir) = launch(
        "b7-thousands",
        &format!(
            "[app]\ngrace_period = \"4s\"\nstop_timeout = \"1500ms\"\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\n\
             [[hooks.pre_stop]]\nwait_quiet = {{ ports = [{}], quiet = \"1s\", max = \"10s\" }}\n",
            address.port()
        ),
        &["sh", "-c", "trap '' TERM; sleep 1000"],
    );
    let endpoint = common::endpoints::served_at(&running);
    wait_ready(&running);
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        thread::spawn(move || {
            let (mut slowest, mut polls, mut scrapes) = (Duration::ZERO, 0, Vec::new());
            let mut last_scrape = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let Ok(mut stream) = TcpStream::connect(endpoint) else {
                    break; // graceinit has exited
                };
                let asked = Instant::now();
                let mut raw = String::new();
                if stream.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").is_err()
                    || stream.read_to_string(&mut raw).is_err()
                    || raw.is_empty()
                {
                    break;
                }
                slowest = slowest.max(asked.elapsed());
                assert!(raw.starts_with("HTTP/1.0 503"), "{raw}");
                polls += 1;
                if last_scrape.elapsed() >= Duration::from_millis(250) {
                    last_scrape = Instant::now();
                    let (status, _, body) = timed_get(endpoint, "/metrics");
                    assert!(status.ends_with("200 OK"), "{status}");
                    scrapes.push(body);
                }
            }
            (slowest, polls, scrapes)
        })
    };
    // A second client, as a kubelet's readiness and liveness probes come side by side.
    let prober = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok(mut stream) = TcpStream::connect(endpoint) else {
                    break; // graceinit has exited
                };
                let mut raw = String::new();
                let _ = stream.write_all(b"GET /livez HTTP/1.0\r\n\r\n");
                let _ = stream.read_to_string(&mut raw);
            }
        })
    };
    let trigger = Instant::now();
    running.signal(libc::SIGTERM);
    let finished = running.wait(Duration::from_secs(20));
    let exited = trigger.elapsed();
    stop.store(true, Ordering::SeqCst);
    prober.join().unwrap();
    let (slowest, polls, scrapes) = poller.join().unwrap();
    drop((clients, served));
    finished.assert_code(137);
    let four = Duration::from_secs(4);
    assert!(
        exited >= four && exited <= four + SLACK,
        "exited {exited:?} after the SIGTERM\n{}",
        finished.stderr
    );
    assert!(
        slowest < Duration::from_millis(200),
        "/readyz took {slowest:?} ({polls} polls)"
    );
    assert!(polls > 100, "{polls} polls");
    // Every scrape is valid; each one after the first sample has the 3000 at the trigger.
    let scraped: Vec<_> = scrapes
        .iter()
        .map(|scrape| {
            let samples = common::endpoints::parse_metrics(scrape);
            let sample = |name: &str, labels: &[(&str, &str)]| {
                common::endpoints::sample(&samples, name, labels)
            };
            (
                sample("graceinit_drain_connections", &[("at", "trigger")]),
                sample("graceinit_drain_arrivals", &[("after", "trigger")]),
            )
        })
        .collect();
    let sampled: Vec<_> = scraped.iter().filter(|(open, _)| open.is_some()).collect();
    assert!(sampled.len() >= 5, "{scraped:?}");
    assert!(
        sampled.iter().all(|(open, _)| *open == Some(3000.0)),
        "{scraped:?}"
    );
    let line = drain_finished(&finished);
    assert!(
        line.contains("; connections: 3000 open at the trigger, "),
        "{line}"
    );
    assert!(
        line.contains(", 3000 open at the stop signal, 3000 open at SIGKILL reason="),
        "{line}"
    );
    // The break: no connection reached the app.
    let over = finished
        .stderr
        .lines()
        .find(|l| l.contains("wait_quiet over"))
        .unwrap_or_else(|| panic!("{}", finished.stderr));
    let report_arrivals = scrapes.iter().map(|scrape| {
        let samples = common::endpoints::parse_metrics(scrape);
        common::endpoints::sample(
            &samples,
            "graceinit_drain_arrivals",
            &[("after", "trigger")],
        )
    });
    let report_arrivals: Vec<_> = report_arrivals.collect();
    assert!(
        over.contains("wait_quiet over: quiet arrivals=0 open=3000 ")
            && line.contains("; connections: 3000 open at the trigger, 0 arrived after it, ")
            && report_arrivals.iter().all(|a| *a == Some(0.0)),
        "{over}\n{line}\n/metrics arrivals as scraped: {report_arrivals:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Promises that held

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (enough for `fds`).
fn raise_nofile(fds: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(limit.rlim_max as usize > fds + 500, "{}", limit.rlim_max);
}

/// Held: connections made right after the trigger (once graceinit has logged
/// DrainStarted), with 3000 idle connections in the namespace to slow the first sample
/// (the report's baseline), are arrivals after it, each once.
#[test]
fn connections_right_after_the_trigger_are_arrivals_however_long_the_first_sample_takes() {
    let _serial = serial();
    let _netns = Netns::enter();
    const CONNECTIONS: usize = 3000;
    raise_nofile(2 * CONNECTIONS);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let held: Vec<_> = (0..CONNECTIONS)
            .map(|_| listener.accept().unwrap().0)
            .collect();
        (listener, held)
    });
    let clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    let (listener, served) = server.join().unwrap();
    thread::spawn(move || serve(listener));
    let (running, _dir) = launch(
        "b7-first-sample",
        "[[hooks.pre_stop]]\nsleep = \"2s\"\n",
        &["sleep", "1000"],
    );
    wait_ready(&running);
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the drain", || {
        running.stderr_so_far().contains("DrainStarted")
    });
    for _ in 0..5 {
        let mut stream = TcpStream::connect(address).unwrap();
        ping(&mut stream);
    }
    let finished = running.wait(WAIT);
    drop((clients, served));
    finished.assert_code(143);
    let line = drain_finished(&finished);
    // A connection made while the first sample lists the 3000 may be in it (open at the
    // trigger) as well as an arrival; never neither.
    let open: usize = line
        .split("; connections: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((3000..=3005).contains(&open), "{line}");
    assert!(
        line.contains(" open at the trigger, 5 arrived after it (the last "),
        "{line}"
    );
}

/// Held: a known number of connections during the wait, closed each way (by the client
/// first, by the app first, reset by the client), all within a few samples: each is one
/// arrival, in wait_quiet's count and in the report's, none missed, none twice.
#[test]
fn each_connection_is_one_arrival_however_it_closes() {
    let _serial = serial();
    let _netns = Netns::enter();
    let keeps = TcpListener::bind("127.0.0.1:0").unwrap();
    let kept = keeps.local_addr().unwrap();
    thread::spawn(move || serve(keeps));
    // This one answers and closes first (its side stays in TIME_WAIT).
    let closes = TcpListener::bind("127.0.0.1:0").unwrap();
    let closing = closes.local_addr().unwrap();
    thread::spawn(move || {
        for stream in closes.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0; 64];
            if stream.read(&mut buffer).unwrap_or(0) > 0 {
                let _ = stream.write_all(b"ok");
            }
        }
    });
    let (running, _dir) = launch(
        "b7-exact",
        &format!(
            "[[hooks.pre_stop]]\nwait_quiet = {{ ports = [{}, {}], quiet = \"1s\", max = \"10s\" }}\n",
            kept.port(),
            closing.port()
        ),
        &["sleep", "1000"],
    );
    wait_ready(&running);
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the wait to run", || {
        running.stderr_so_far().contains("action=wait_quiet")
    });
    for _ in 0..30 {
        // The client closes first.
        let mut stream = TcpStream::connect(kept).unwrap();
        ping(&mut stream);
        drop(stream);
        // The app closes first.
        let mut stream = TcpStream::connect(closing).unwrap();
        stream.write_all(b"ping").unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"ok");
        // Reset by the client.
        let mut stream = TcpStream::connect(kept).unwrap();
        ping(&mut stream);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        set_option(&stream, libc::SOL_SOCKET, libc::SO_LINGER, linger);
    }
    let finished = running.wait(WAIT);
    finished.assert_code(143);
    assert_eq!(arrivals(&finished), 90, "{}", finished.stderr);
    let line = drain_finished(&finished);
    assert!(
        line.contains("; connections: 0 open at the trigger, 90 arrived after it (the last "),
        "{line}"
    );
}

/// Held: a listener with TCP_DEFER_ACCEPT (nginx `listen ... deferred`, HAProxy
/// `defer-accept`) keeps a new connection half-open on the app's side until its first
/// bytes (for 400 ms here, several samples), then the kernel counts the passive open:
/// still one arrival, not one for the half-open 4-tuple and one for the open.
#[test]
fn a_deferred_accept_connection_is_one_arrival_not_two() {
    let _serial = serial();
    let _netns = Netns::enter();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    set_option(
        &listener,
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        10 as libc::c_int,
    );
    let address = listener.local_addr().unwrap();
    thread::spawn(move || serve(listener));
    let (running, _dir) = launch(
        "b7-deferred",
        &format!(
            "[[hooks.pre_stop]]\nwait_quiet = {{ ports = [{}], quiet = \"1s\", max = \"10s\" }}\n",
            address.port()
        ),
        &["sleep", "1000"],
    );
    wait_ready(&running);
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the wait to run", || {
        running.stderr_so_far().contains("action=wait_quiet")
    });
    let mut stream = TcpStream::connect(address).unwrap();
    thread::sleep(Duration::from_millis(400)); // the client's think time, not a wait
    ping(&mut stream);
    let finished = running.wait(WAIT);
    drop(stream);
    finished.assert_code(143);
    assert_eq!(arrivals(&finished), 1, "{}", finished.stderr);
    let line = drain_finished(&finished);
    assert!(
        line.contains("connections: 0 open at the trigger, 1 arrived after it (the last "),
        "{line}"
    );
}

/// Held: a second drain signal during the wait (SIGINT after the SIGTERM) skips the rest
/// of the wait and sends the stop signal; a third kills the app. The report follows:
/// the two idle connections at the trigger and the stop signal, the one that came after
/// the stop signal, the three open at SIGKILL; graceinit exits with the app's 137.
#[test]
fn escalation_during_the_wait_is_reported_stage_by_stage() {
    let _serial = serial();
    let _netns = Netns::enter();
    let address = app();
    let (running, _dir) = launch(
        "b7-escalation",
        &format!(
            "[signals]\ndrain = [\"SIGTERM\", \"SIGINT\"]\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [[hooks.pre_stop]]\nwait_quiet = {{ ports = [{}], quiet = \"20s\", max = \"25s\" }}\n",
            address.port()
        ),
        &["sh", "-c", "trap '' TERM; sleep 1000"],
    );
    let endpoint = common::endpoints::served_at(&running);
    wait_ready(&running);
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    running.signal(libc::SIGTERM);
    wait_until(WAIT, "the wait and the first sample", || {
        running.stderr_so_far().contains("action=wait_quiet")
            && traffic(endpoint)["open_at_trigger"] == 2
    });
    let escalated = Instant::now();
    running.signal(libc::SIGINT);
    wait_until(WAIT, "the stop signal", || {
        running
            .stderr_so_far()
            .contains("sending the stop signal SIGTERM")
    });
    let late = TcpStream::connect(address).unwrap();
    wait_until(WAIT, "the late arrival in /status", || {
        traffic(endpoint)["arrivals_after_stop_signal"] == 1
    });
    running.signal(libc::SIGINT);
    let finished = running.wait(WAIT);
    drop((idle, late));
    finished.assert_code(137);
    assert!(
        escalated.elapsed() < Duration::from_secs(5),
        "{}",
        finished.stderr
    );
    let line = drain_finished(&finished);
    assert!(
        line.contains("; connections: 2 open at the trigger, 1 arrived after it (the last "),
        "{line}"
    );
    assert!(
        line.contains(
            ", 1 after the stop signal, 2 open at the stop signal, 3 open at SIGKILL reason="
        ),
        "{line}"
    );
}
