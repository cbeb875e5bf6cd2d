//! Real systems under graceinit, as in production (issue 12): Debian's nginx as the
//! app, stopped gracefully with SIGQUIT while a request is in flight, and Debian's etcd
//! as the service registry that graceinit's hooks register in and deregister from
//! through etcd's v3 JSON gateway, with the config shipped as examples/etcd.toml.
//!
//! Everything is on loopback: nginx on a free port with a config in a TempDir, an
//! upstream run by the test that holds its answer until the test releases it (so the
//! request is in flight for as long as the test needs, with no timing guess), etcd on
//! free ports with its data dir in a TempDir. A missing nginx, etcd or curl fails the
//! tests (`require_tool`), it never skips them.

mod common;
// Shared with tests/lifecycle.rs, which uses all of it; this file, a part.
#[allow(dead_code)]
mod lifecycle_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{Launch, Running, TempDir, children, comm, require_tool, serial, wait_until};
use lifecycle_support::{Graceinit, Mode, crate_dir};

/// A loopback port nothing listens on (bound, then released for the server to take).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (so the answer is neither chunked nor kept
/// alive: its body is everything up to the close). Returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no end of head in the answer to {method} {path}: {:?}",
                String::from_utf8_lossy(&answer)
            )
        });
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in the answer to {method} {path}: {head:?}"));
    Ok((status, answer[end + 4..].to_vec()))
}

/// Standard base64 with padding: the encoding of bytes fields in etcd's JSON gateway.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_the_reference_vectors() {
    // RFC 4648, section 10.
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
    }
}

// ---------------------------------------------------------------------------------------
// nginx

/// The body the upstream sends for /slow: 4 MiB that are not all alike, so that a lost
/// or reordered piece shows.
fn slow_body() -> Vec<u8> {
    (0..4 * 1024 * 1024u32)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// An upstream on loopback that takes one request, reports it on the returned channel,
/// and answers (200 with [`slow_body`]) only once `release` is sent.
fn held_upstream() -> (u16, mpsc::Receiver<String>, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let _ = arrived_tx.send(String::from_utf8_lossy(&head).into_owned());
        if release_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            return;
        }
        let body = slow_body();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(&body);
    });
    (port, arrived, release)
}

/// nginx's config: 2 workers on 127.0.0.1:`port`, `/fast` answered by nginx itself,
/// `/slow` proxied (unbuffered) to the upstream. Every path nginx writes is in `dir`.
fn nginx_conf(dir: &TempDir, port: u16, upstream: u16) -> String {
    let d = dir.path().display();
    dir.write(
        "nginx.conf",
        &format!(
            r#"worker_processes 2;
pid {d}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /fast {{ return 200 "fast\n"; }}
        location = /slow {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
}}
"#
        ),
    )
}

/// Whether /proc has `pid` at all (a zombie counts: it is still there).
fn in_proc(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

// nginx under graceinit with examples/nginx.toml (stop_signal SIGQUIT, signal_target
// child, a 5 s pre_stop sleep): SIGTERM to graceinit starts the drain; nginx serves on
// during the pre_stop sleep, then gets SIGQUIT, closes its listener and lets the request
// in flight finish: 200, the whole 4 MiB. Its master and both workers are gone (reaped,
// no zombie) and graceinit exits 0, nginx's status, without a SIGKILL.
#[test]
fn nginx_finishes_a_request_in_flight_on_sigquit_as_subreaper() {
    nginx_graceful_stop(Mode::Subreaper);
}

#[test]
fn nginx_finishes_a_request_in_flight_on_sigquit_as_pid1() {
    nginx_graceful_stop(Mode::Pid1);
}

fn nginx_graceful_stop(mode: Mode) {
    require_tool("nginx", "nginx-light");
    let _serial = serial();
    let dir = TempDir::new("graceinit-real-nginx");
    let (upstream, arrived, release) = held_upstream();
    let port = free_port();
    let conf = nginx_conf(&dir, port, upstream);
    let example = crate_dir().join("examples/nginx.toml");
    let prefix = format!("{}/", dir.path().display());
    let mut graceinit = Graceinit::start_as(
        mode,
        &[
            "--config",
            example.to_str().expect("UTF-8 path"),
            "--",
            "nginx",
            "-p",
            &prefix,
            "-c",
            &conf,
            "-e",
            "stderr",
            "-g",
            "daemon off; master_process on;",
        ],
        &[],
    );

    // The master is graceinit's child; its two workers are the master's.
    let graceinit_pid = graceinit.pid();
    let mut master = 0;
    wait_until(
        Duration::from_secs(10),
        "graceinit to start nginx",
        || match children(graceinit_pid)
            .into_iter()
            .find(|&pid| comm(pid).as_deref() == Some("nginx"))
        {
            Some(pid) => {
                master = pid;
                true
            }
            None => false,
        },
    );
    let mut workers = Vec::new();
    wait_until(Duration::from_secs(10), "nginx's 2 workers", || {
        workers = children(master)
            .into_iter()
            .filter(|&pid| comm(pid).as_deref() == Some("nginx"))
            .collect();
        workers.len() == 2
    });
    wait_until(Duration::from_secs(10), "nginx to answer /fast", || {
        matches!(http(port, "GET", "/fast", ""), Ok((200, _)))
    });

    // The long request: in flight (at the upstream, which holds it) before the drain.
    let client = thread::spawn(move || http(port, "GET", "/slow", ""));
    let head = arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the request for /slow reached the upstream through nginx");
    assert!(head.starts_with("GET /slow "), "{head}");

    graceinit.drain();
    graceinit.wait_for_stderr("DrainStarted", Duration::from_secs(10));
    // The pre_stop sleep (5 s): nginx has not been told anything yet and still serves.
    let during_pre_stop = http(port, "GET", "/fast", "").expect("nginx still accepts");
    assert_eq!(
        during_pre_stop,
        (200, b"fast\n".to_vec()),
        "a new request during the pre_stop sleep"
    );
    assert!(
        !graceinit.stderr().contains("SIGQUIT) received"),
        "nginx got its stop signal only after the pre_stop sleep:\n{}",
        graceinit.stderr()
    );

    // Then SIGQUIT: nginx closes its listener (new connections are refused) but keeps
    // the request in flight, which is still waiting for the upstream.
    wait_until(
        Duration::from_secs(15),
        "nginx to stop listening after its SIGQUIT",
        || matches!(TcpStream::connect(("127.0.0.1", port)), Err(e) if e.kind() == ErrorKind::ConnectionRefused),
    );
    assert!(
        !client.is_finished(),
        "the request in flight is still open once nginx stopped listening"
    );
    assert!(graceinit.running(), "graceinit waits for nginx");
    release.send(()).expect("the upstream is waiting");
    let (status, body) = client
        .join()
        .expect("the client thread")
        .expect("the request in flight is answered");
    assert_eq!(status, 200, "the request in flight");
    let expected = slow_body();
    assert_eq!(body.len(), expected.len(), "the whole body arrived");
    assert!(body == expected, "the body arrived intact");

    let (_, stderr) = graceinit.finish(0, "nginx's exit status after a graceful stop");
    // nginx says which signal it got and from whom: SIGQUIT (graceful), not SIGTERM
    // (fast: it would have cut the request), once, from graceinit (PID 1 in its
    // namespace, else its host pid).
    let sender = match mode {
        Mode::Pid1 => 1,
        Mode::Subreaper => graceinit_pid,
    };
    assert_eq!(
        stderr
            .matches(&format!("signal 3 (SIGQUIT) received from {sender},"))
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("(SIGQUIT) received").count(), 1, "{stderr}");
    assert!(!stderr.contains("(SIGTERM) received"), "{stderr}");
    assert!(stderr.contains("gracefully shutting down"), "{stderr}");
    assert!(
        !stderr.contains("Killing"),
        "no SIGKILL was needed:\n{stderr}"
    );
    for pid in std::iter::once(master).chain(workers.iter().copied()) {
        assert!(
            !in_proc(pid),
            "nginx process {pid} is gone from /proc (reaped, not a zombie): {:?}",
            common::state(pid)
        );
    }
}

// ---------------------------------------------------------------------------------------
// etcd

/// An etcd (Debian's etcd-server) on free loopback ports, its data in a TempDir. Killed
/// with everything else when the test ends.
struct Etcd {
    port: u16,
    _process: Running,
    _dir: TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        require_tool("etcd", "etcd-server");
        let dir = TempDir::new("graceinit-real-etcd");
        let port = free_port();
        let peer = format!("http://127.0.0.1:{}", free_port());
        let client = format!("http://127.0.0.1:{port}");
        let process = Launch::program(
            "etcd",
            [
                "--name",
                "graceinit-test",
                "--data-dir",
                &dir.file("data"),
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("graceinit-test={peer}"),
                "--logger",
                "zap",
            ],
        )
        .start();
        let etcd = Etcd {
            port,
            _process: process,
            _dir: dir,
        };
        wait_until(
            Duration::from_secs(30),
            "etcd to answer on loopback",
            || {
                matches!(
                    etcd.post("/v3/kv/range", r#"{"key": "AA=="}"#),
                    Ok((200, _))
                )
            },
        );
        etcd
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn post(&self, path: &str, body: &str) -> std::io::Result<(u16, serde_json::Value)> {
        let (status, body) = http(self.port, "POST", path, body)?;
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "etcd answered {path} with {status} and no JSON ({e}): {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        Ok((status, json))
    }

    /// `POST /v3/kv/range` for one key: its key-values (none, or the one).
    fn range(&self, key_b64: &str) -> Vec<serde_json::Value> {
        let (status, answer) = self
            .post("/v3/kv/range", &format!(r#"{{"key": "{key_b64}"}}"#))
            .expect("etcd answers /v3/kv/range");
        assert_eq!(status, 200, "{answer}");
        kvs(&answer)
    }

    /// `POST /v3/lease/timetolive`: (TTL left, granted TTL); TTL -1 once revoked.
    fn lease(&self, id: &str) -> (i64, i64) {
        let (status, answer) = self
            .post("/v3/lease/timetolive", &format!(r#"{{"ID": "{id}"}}"#))
            .expect("etcd answers /v3/lease/timetolive");
        assert_eq!(status, 200, "{answer}");
        let number = |field: &str| -> i64 {
            answer[field]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| answer[field].as_i64())
                .unwrap_or(0)
        };
        (number("TTL"), number("grantedTTL"))
    }
}

/// The key-values of a /v3/kv/range answer (etcd leaves out `kvs` when there are none),
/// after checking that it is one (it has etcd's header).
fn kvs(answer: &serde_json::Value) -> Vec<serde_json::Value> {
    assert!(
        answer["header"]["revision"].is_string(),
        "not an answer of etcd's range: {answer}"
    );
    answer["kvs"].as_array().cloned().unwrap_or_default()
}

const LEASE_ID: &str = "7340033";

// examples/etcd.toml, as shipped, against a real etcd: on_ready grants a lease and puts
// the instance's key on it; the key is there (with its value and lease) while the app
// runs; on SIGTERM the pre_stop revoke removes it, and the app's own TERM trap, querying
// etcd the instant it gets its stop signal, finds it already gone. graceinit exits 0
// (the app's status), and the lease is revoked, not left to expire.
#[test]
fn etcd_registration_is_gone_before_the_app_gets_its_stop_signal() {
    require_tool("curl", "curl");
    let _serial = serial();
    let etcd = Etcd::start();
    let dir = TempDir::new("graceinit-real-etcd-app");
    let key = base64(b"/services/web/web-0");
    let value = base64(b"10.0.0.7:8080");
    // On SIGTERM the app asks etcd for its own key (curl's output: etcd's JSON), then
    // records the TERM and exits 0.
    let app = format!(
        "trap 'curl -sS -X POST -H \"Content-Type: application/json\" \
         -d \"{{\\\"key\\\": \\\"$ETCD_KEY\\\"}}\" \"$ETCD_URL/v3/kv/range\" > {at_term}; \
         echo term >> {terms}; exit 0' TERM; touch {ready}; \
         while :; do sleep 0.05 & wait $!; done",
        at_term = dir.file("at-term.json"),
        terms = dir.file("terms"),
        ready = dir.file("ready"),
    );
    let example = crate_dir().join("examples/etcd.toml");
    let url = etcd.url();
    let mut graceinit = Graceinit::start_as(
        Mode::Subreaper,
        &[
            "--config",
            example.to_str().expect("UTF-8 path"),
            "--",
            "sh",
            "-c",
            &app,
        ],
        &[
            ("ETCD_URL", url.as_str()),
            ("ETCD_LEASE_ID", LEASE_ID),
            ("ETCD_KEY", key.as_str()),
            ("ETCD_VALUE", value.as_str()),
            ("HOSTNAME", "web-0"),
        ],
    );
    wait_until(Duration::from_secs(10), "the app to be ready", || {
        dir.join("ready").exists()
    });

    // Registered by on_ready: the key, its value, on the lease the config names.
    let mut found = Vec::new();
    wait_until(
        Duration::from_secs(10),
        "on_ready to register the instance in etcd",
        || {
            found = etcd.range(&key);
            !found.is_empty()
        },
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["key"], key.as_str(), "{found:?}");
    assert_eq!(found[0]["value"], value.as_str(), "{found:?}");
    assert_eq!(found[0]["lease"], LEASE_ID, "{found:?}");
    let (ttl, granted) = etcd.lease(LEASE_ID);
    assert_eq!(granted, 60, "the lease's TTL as granted");
    assert!((1..=60).contains(&ttl), "the lease is alive: TTL {ttl}");
    assert!(graceinit.running(), "graceinit runs");

    graceinit.drain();
    let (_, stderr) = graceinit.finish(0, "the app's status after its TERM trap");

    // What the app saw the instant it got SIGTERM: etcd already without the key.
    assert_eq!(dir.read("terms"), "term\n", "the app got TERM once");
    let at_term: serde_json::Value = serde_json::from_str(&dir.read("at-term.json"))
        .unwrap_or_else(|e| {
            panic!(
                "the app's query of etcd is JSON ({e}): {:?}\n{stderr}",
                dir.read("at-term.json")
            )
        });
    assert_eq!(
        kvs(&at_term),
        Vec::<serde_json::Value>::new(),
        "the key was gone before the app's stop signal"
    );
    assert!(etcd.range(&key).is_empty(), "the key stays gone");
    assert_eq!(etcd.lease(LEASE_ID).0, -1, "the lease was revoked");
    // A failed hook is a warning (`hook failed: on_ready#1: ...`, `FailedPreStopHook`).
    for failure in ["hook failed", "FailedPreStopHook", "WARN"] {
        assert!(
            !stderr.contains(failure),
            "no hook failed ({failure}):\n{stderr}"
        );
    }
}
