//! The drain triggered the three ways a pod can be stopped — the kubelet's SIGTERM alone,
//! a preStop `exec: ["/graceinit", "drain"]` then SIGTERM, a preStop `httpGet` on
//! `/prestop` then SIGTERM — and all three at once: the pre_stop hook (a deregistration,
//! recorded by a real HTTP server) runs exactly once, before the app's stop signal, and
//! the stop signal goes out once, on the SIGTERM.

mod common;
// Shared with tests/lifecycle.rs, which uses all of it; this file, a part.
#[allow(dead_code)]
mod lifecycle_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{GRACEINIT, serial, wait_until};
use lifecycle_support::{Graceinit, RecordingServer, Scenario};

const WAIT: Duration = Duration::from_secs(10);
const LOG_LINE: &str = "serving the health endpoints on http://";

struct Setup {
    scenario: Scenario,
    server: RecordingServer,
    graceinit: Graceinit,
    socket: String,
    address: SocketAddr,
}

/// graceinit with endpoints on a free loopback port, a control socket, and two pre_stop
/// hooks: the deregistration, then 600 ms for load balancers (so that triggers overlap).
fn start(tag: &str) -> Setup {
    let scenario = Scenario::new(tag);
    let server = RecordingServer::start();
    let socket = scenario.file("control.sock");
    let config = scenario.config(&format!(
        r#"
[app]
grace_period = "20s"
stop_timeout = "5s"

[http]
listen = "127.0.0.1:0"
prestop = true

[[hooks.pre_stop]]
http = {{ method = "DELETE", url = "{url}" }}

[[hooks.pre_stop]]
sleep = "600ms"
"#,
        url = server.url("/registry/web-1"),
    ));
    // Records every TERM; exits 0 a little after the last, so a second one would show.
    let app = scenario.app_recording_every_term(6);
    let graceinit = scenario.start(&["-v", "--config", &config, "--socket", &socket], &app);
    let mut address = None;
    wait_until(WAIT, "the endpoints' log line", || {
        address = graceinit.stderr().lines().find_map(|line| {
            let rest = &line[line.find(LOG_LINE)? + LOG_LINE.len()..];
            rest.split_whitespace().next()?.parse().ok()
        });
        address.is_some()
    });
    Setup {
        scenario,
        server,
        graceinit,
        socket,
        address: address.expect("found"),
    }
}

impl Setup {
    fn deregistrations(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.target == "/registry/web-1")
            .count()
    }

    /// The wall-clock times the app got TERM.
    fn terms(&self) -> Vec<i128> {
        std::fs::read_to_string(self.scenario.join("events"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.strip_prefix("app_term ")?.parse().ok())
            .collect()
    }

    /// `graceinit drain` as a preStop exec hook runs it: (exit code, stderr).
    fn drain_command(&self) -> (i32, String) {
        let out = Command::new(GRACEINIT)
            .args(["drain", "--socket", &self.socket])
            .output()
            .expect("run graceinit drain");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `GET /prestop` as an httpGet preStop hook sends it: (status, body).
    fn prestop(&self) -> (u16, String) {
        let mut stream = TcpStream::connect_timeout(&self.address, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("a read timeout");
        stream
            .write_all(b"GET /prestop HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read the answer");
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    /// SIGTERM, graceinit exits 0, and the app got exactly one TERM, after the one
    /// deregistration.
    fn sigterm_and_finish(&mut self) {
        self.graceinit.drain();
        let (_, stderr) = self.graceinit.finish(0, "graceinit exits with the app's 0");
        assert_eq!(self.deregistrations(), 1, "one deregistration:\n{stderr}");
        let terms = self.terms();
        assert_eq!(terms.len(), 1, "one stop signal:\n{stderr}");
        let deregistered = self.server.requests()[0].at_ns;
        assert!(
            deregistered < terms[0],
            "the deregistration came before the app's stop signal"
        );
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.contains("DrainStarted: "))
                .count(),
            1,
            "one drain:\n{stderr}"
        );
    }
}

#[test]
fn sigterm_alone_runs_pre_stop_once_then_stops_the_app() {
    let _serial = serial();
    let mut setup = start("trigger-sigterm");
    setup.sigterm_and_finish();
}

#[test]
fn graceinit_drain_then_sigterm_runs_pre_stop_once() {
    let _serial = serial();
    let mut setup = start("trigger-exec");
    let (code, stderr) = setup.drain_command();
    assert_eq!(code, 0, "graceinit drain: {stderr}");
    // Done when it returns: deregistered, and the app not stopped before the kubelet's
    // SIGTERM.
    assert_eq!(setup.deregistrations(), 1);
    assert!(setup.terms().is_empty(), "no stop signal before SIGTERM");
    setup.sigterm_and_finish();
}

#[test]
fn prestop_then_sigterm_runs_pre_stop_once() {
    let _serial = serial();
    let mut setup = start("trigger-http");
    let (status, body) = setup.prestop();
    assert_eq!((status, body.as_str()), (200, "2 pre_stop hook(s) done\n"));
    assert_eq!(setup.deregistrations(), 1);
    assert!(setup.terms().is_empty(), "no stop signal before SIGTERM");
    setup.sigterm_and_finish();
}

#[test]
fn all_three_at_once_run_pre_stop_once() {
    let _serial = serial();
    let mut setup = start("trigger-all");
    thread::scope(|scope| {
        let exec = scope.spawn(|| setup.drain_command());
        let http = scope.spawn(|| setup.prestop());
        // The kubelet's SIGTERM while both wait for the hooks: it joins the drain, and the
        // stop signal waits for the hooks.
        wait_until(WAIT, "the deregistration", || setup.deregistrations() == 1);
        setup.graceinit.signal(libc::SIGTERM);
        let (code, stderr) = exec.join().expect("the drain client");
        assert_eq!(code, 0, "graceinit drain: {stderr}");
        let (status, body) = http.join().expect("the /prestop client");
        assert_eq!((status, body.as_str()), (200, "2 pre_stop hook(s) done\n"));
    });
    let (_, stderr) = setup
        .graceinit
        .finish(0, "graceinit exits with the app's 0");
    assert_eq!(setup.deregistrations(), 1, "one deregistration:\n{stderr}");
    assert_eq!(setup.terms().len(), 1, "one stop signal:\n{stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("DrainStarted: "))
            .count(),
        1,
        "{stderr}"
    );
}
