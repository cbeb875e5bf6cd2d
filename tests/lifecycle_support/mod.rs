//! Helpers for `tests/lifecycle.rs`: a [`Scenario`] (a scratch directory with a config
//! and an `sh` app that records its SIGTERM), a recording HTTP server on loopback, and a
//! handle on a running graceinit (output captured, every wait bounded, everything it
//! started killed if a test fails midway). The scratch directory, `wait_until` and the
//! /proc walk come from `tests/common`.
//!
//! Times that must be compared across processes are wall-clock nanoseconds since the
//! epoch: the server stamps requests with `SystemTime`, the shell scripts with
//! `date +%s%N`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::{Deref, Range};
use std::path::Path;
use std::process::ChildStdin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{Launch, Running, TempDir, ns_pid, send_signal, wait_until};

/// How long a test waits for graceinit to exit once it has been told to.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Wall-clock nanoseconds since the epoch, comparable with `date +%s%N`.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos() as i128
}

/// Nanoseconds as seconds, for messages and comparisons.
pub fn secs(ns: i128) -> f64 {
    ns as f64 / 1e9
}

/// One request the recording server received.
#[derive(Clone, Debug)]
pub struct Request {
    /// Wall-clock nanoseconds when the whole request had arrived.
    pub at_ns: i128,
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that records every request and answers 200 with an
/// empty body. It lives until the test process ends.
pub struct RecordingServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl RecordingServer {
    pub fn start() -> RecordingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let recorded = recorded.clone();
                thread::spawn(move || serve(stream, &recorded));
            }
        });
        RecordingServer { port, requests }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn serve(stream: TcpStream, recorded: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    recorded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Request {
            at_ns: now_ns(),
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    let mut stream = stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
}

/// A loopback port nothing listens on: bound, then released.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Whether a process (zombies included) with this pid exists: `kill -0`.
pub fn process_exists(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// How graceinit ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub code: i32,
    /// When the test saw the exit (polled every millisecond).
    pub at: Instant,
}

/// How a test runs graceinit.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// A plain child of the test, so a child subreaper.
    Subreaper,
    /// PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`), as in a
    /// container. Pids that the scripts write are then the namespace's, not the test's.
    Pid1,
}

/// A running graceinit with stdout and stderr captured, either a plain child of the test
/// (so a child subreaper) or PID 1 of a new PID namespace. Dropping it before it exits
/// (a failed test) kills it and everything under it.
pub struct Graceinit {
    running: Running,
    exit: Option<Exit>,
}

impl Graceinit {
    /// `graceinit ARGS...` as a plain child, with the test's environment plus `env`.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Graceinit {
        Graceinit::spawn_as(Mode::Subreaper, args, env)
    }

    /// `graceinit ARGS...` run as `mode` says, with the test's environment plus `env`.
    pub fn spawn_as(mode: Mode, args: &[&str], env: &[(&str, &str)]) -> Graceinit {
        let launch = match mode {
            Mode::Subreaper => Launch::direct(args),
            Mode::Pid1 => Launch::pid1(args),
        };
        Graceinit::launch(
            env.iter()
                .fold(launch, |launch, (name, value)| launch.env(name, value)),
        )
    }

    /// Any [`Launch`] (e.g. `script` running graceinit on a terminal).
    pub fn launch(launch: Launch) -> Graceinit {
        Graceinit {
            running: launch.start(),
            exit: None,
        }
    }

    /// Starts graceinit and waits until it has started the app (its "Started" event):
    /// its signal handlers are installed by then. The event shows with a config file or
    /// `-v`: a run with neither prints nothing.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Graceinit {
        Graceinit::start_as(Mode::Subreaper, args, env)
    }

    /// [`Graceinit::start`], run as `mode` says.
    pub fn start_as(mode: Mode, args: &[&str], env: &[(&str, &str)]) -> Graceinit {
        let graceinit = Graceinit::spawn_as(mode, args, env);
        graceinit.wait_for_stderr("Started:", Duration::from_secs(10));
        if let Mode::Pid1 = mode {
            let pid = graceinit.running.graceinit_pid();
            assert_eq!(ns_pid(pid), 1, "graceinit (host pid {pid}) is PID 1");
        }
        graceinit
    }

    /// graceinit's host pid (unshare's child when it is PID 1 of a namespace).
    pub fn pid(&self) -> i32 {
        self.running.graceinit_pid()
    }

    pub fn stderr(&self) -> String {
        self.running.stderr_so_far()
    }

    /// The write end of its stdin (launched with [`Launch::stdin_piped`]).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.running.take_stdin()
    }

    pub fn stdout(&self) -> String {
        self.running.stdout_so_far()
    }

    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) {
        self.wait_for(needle, "stderr", Graceinit::stderr, timeout);
    }

    pub fn wait_for_stdout(&self, needle: &str, timeout: Duration) {
        self.wait_for(needle, "stdout", Graceinit::stdout, timeout);
    }

    fn wait_for(&self, needle: &str, name: &str, read: fn(&Self) -> String, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !read(self).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {needle:?} on {name}:\n{}\n(the other stream:\n{})",
                read(self),
                if name == "stderr" {
                    self.stdout()
                } else {
                    self.stderr()
                },
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `sig` to graceinit (its host pid); returns the wall-clock time just before
    /// sending.
    pub fn signal(&self, sig: libc::c_int) -> i128 {
        let pid = self.running.graceinit_pid();
        let at = now_ns();
        send_signal(pid, sig);
        at
    }

    /// Whether graceinit is still running (reaps it if it has exited).
    pub fn running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    fn poll_exit(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            if let Some(status) = self.running.try_exit() {
                let at = Instant::now();
                let code = status.code().unwrap_or_else(|| {
                    panic!("graceinit itself was killed: {status:?}\n{}", self.stderr())
                });
                self.exit = Some(Exit { code, at });
            }
        }
        self.exit
    }

    /// Waits (polling every millisecond) until graceinit exits, then until its output
    /// pipes are closed (bounded: a process that escaped could hold them open).
    pub fn wait(&mut self, timeout: Duration) -> Exit {
        let deadline = Instant::now() + timeout;
        let exit = loop {
            if let Some(exit) = self.poll_exit() {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "graceinit did not exit within {timeout:?}; stderr so far:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(1));
        };
        let pipes_closed = Instant::now() + Duration::from_secs(5);
        while !self.running.outputs_closed() && Instant::now() < pipes_closed {
            thread::sleep(Duration::from_millis(5));
        }
        exit
    }

    /// Starts the drain: SIGTERM to graceinit. Returns the wall-clock time just before.
    pub fn drain(&self) -> i128 {
        self.signal(libc::SIGTERM)
    }

    /// Waits (up to [`EXIT_TIMEOUT`]) until graceinit exits, asserts its exit code
    /// (the message is `why`, then the stderr), and returns the exit and the stderr.
    pub fn finish(&mut self, code: i32, why: &str) -> (Exit, String) {
        let exit = self.wait(EXIT_TIMEOUT);
        let stderr = self.stderr();
        let why = if why.is_empty() {
            String::new()
        } else {
            format!("{why}; ")
        };
        assert_eq!(exit.code, code, "{why}stderr:\n{stderr}");
        (exit, stderr)
    }
}

/// Runs `graceinit ARGS...` to completion (bounded) and returns (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> (i32, String, String) {
    let mut graceinit = Graceinit::spawn(args, env);
    let exit = graceinit.wait(timeout);
    (exit.code, graceinit.stdout(), graceinit.stderr())
}

/// Lines of `text` that start with `[label] `, without the prefix.
pub fn hook_lines(text: &str, label: &str) -> Vec<String> {
    let prefix = format!("[{label}] ");
    text.lines()
        .filter_map(|line| line.trim_end_matches('\r').strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// The lines of a file written by the scripts: "name nanoseconds" per line.
pub fn stamped_lines(text: &str) -> Vec<(String, i128)> {
    text.lines()
        .map(|line| {
            let (name, ns) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a `name nanoseconds` line: {line:?}"));
            let ns = ns
                .parse()
                .unwrap_or_else(|_| panic!("not nanoseconds: {line:?}"));
            (name.to_string(), ns)
        })
        .collect()
}

/// The crate's root, where examples/ lives.
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One lifecycle test's world: a scratch directory (its files are reachable through
/// `Deref`) in which the config is `graceinit.toml`, the app touches `ready` once it
/// can take signals and records each SIGTERM as an `app_term <ns>` line in `events`.
pub struct Scenario {
    dir: TempDir,
}

impl Deref for Scenario {
    type Target = TempDir;

    fn deref(&self) -> &TempDir {
        &self.dir
    }
}

impl Scenario {
    pub fn new(tag: &str) -> Scenario {
        Scenario {
            dir: TempDir::new(&format!("graceinit-lifecycle-{tag}")),
        }
    }

    /// Writes `graceinit.toml`; returns its path.
    pub fn config(&self, text: &str) -> String {
        self.write("graceinit.toml", text)
    }

    /// An app that on SIGTERM appends `app_term <ns>` to `events`, then runs `then`
    /// (e.g. `exit 0`, or `sleep 1; exit 3` to stay alive a while). It touches `ready`
    /// once its trap is in place. `sleep & wait` lets the trap run at once instead of
    /// after the current sleep.
    pub fn app_on_term(&self, then: &str) -> String {
        format!(
            "trap 'echo \"app_term $(date +%s%N)\" >> {events}; {then}' TERM; touch {ready}; \
             while :; do sleep 0.05 & wait $!; done",
            events = self.file("events"),
            ready = self.file("ready"),
        )
    }

    /// [`Scenario::app_on_term`] exiting with `code` at once.
    pub fn app_recording_term(&self, code: i32) -> String {
        self.app_on_term(&format!("exit {code}"))
    }

    /// An app that records every TERM and exits 0 `ticks` × 50 ms after the last one, so
    /// that a duplicate sent later by graceinit would still be seen.
    pub fn app_recording_every_term(&self, ticks: u32) -> String {
        format!(
            "n=0; trap 'echo \"app_term $(date +%s%N)\" >> {events}; n=1' TERM; touch {ready}; \
             while :; do sleep 0.05 & wait $!; if [ $n -gt 0 ]; then n=$((n + 1)); [ $n -gt {ticks} ] && exit 0; fi; done",
            events = self.file("events"),
            ready = self.file("ready"),
        )
    }

    /// An app on which SIGTERM has no effect at all: the shell ignores it, and its
    /// `sleep` children inherit the ignored disposition.
    pub fn app_ignoring_term(&self) -> String {
        format!(
            "trap '' TERM; touch {}; while :; do sleep 0.1; done",
            self.file("ready")
        )
    }

    /// Starts `graceinit ARGS... -- sh -c APP` and waits until the app is ready.
    pub fn start(&self, args: &[&str], app: &str) -> Graceinit {
        self.start_as(Mode::Subreaper, args, app)
    }

    /// [`Scenario::start`], run as `mode` says.
    pub fn start_as(&self, mode: Mode, args: &[&str], app: &str) -> Graceinit {
        let command: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--", "sh", "-c", app])
            .collect();
        let graceinit = Graceinit::start_as(mode, &command, &[]);
        wait_until(Duration::from_secs(10), "the app to be ready", || {
            self.join("ready").exists()
        });
        graceinit
    }

    /// The `name nanoseconds` lines of `events`.
    pub fn events(&self) -> Vec<(String, i128)> {
        stamped_lines(&self.read("events"))
    }

    /// When the app got its TERM, asserting it got exactly one.
    pub fn term_once(&self) -> i128 {
        let events = self.events();
        assert_eq!(events.len(), 1, "the app got TERM exactly once: {events:?}");
        events[0].1
    }

    /// Waits until the app has recorded a TERM.
    pub fn wait_for_term(&self, timeout: Duration) {
        wait_until(timeout, "the app's TERM", || {
            !self.read("events").is_empty()
        });
    }

    /// Waits until the file `name` holds a whole line (a script wrote it).
    pub fn wait_for_line(&self, name: &str, what: &str, timeout: Duration) {
        wait_until(timeout, what, || self.read(name).ends_with('\n'));
    }

    /// The number in the file `name`.
    pub fn number<T: FromStr>(&self, name: &str) -> T {
        let text = self.read(name);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} holds no number: {text:?}"))
    }

    /// For a hook that runs `echo $$ > hook.pid; sleep N & echo $! > child.pid; ...`:
    /// waits until it has started, and returns (the hook's pid, its child's pid).
    pub fn hook_pids(&self, what: &str, timeout: Duration) -> (i32, i32) {
        self.wait_for_line("child.pid", what, timeout);
        (self.number("hook.pid"), self.number("child.pid"))
    }
}

/// Waits until none of `pids` exists any more.
pub fn wait_gone(what: &str, pids: &[i32], timeout: Duration) {
    wait_until(timeout, what, || {
        pids.iter().all(|&pid| !process_exists(pid))
    });
}

/// The lines of `text` that contain `needle`.
pub fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

/// Asserts that exactly `count` lines of `stderr` contain `needle`.
pub fn assert_lines(stderr: &str, needle: &str, count: usize, why: &str) {
    assert_eq!(
        lines_with(stderr, needle).len(),
        count,
        "{why}: expected {count} line(s) with {needle:?} in stderr:\n{stderr}"
    );
}

/// Asserts that a delay of `ns` nanoseconds lies in `expected`; `what` says what
/// happened how long after what.
pub fn assert_between(ns: i128, expected: Range<i128>, what: &str) {
    assert!(
        expected.contains(&ns),
        "{what}: {:.3}s, expected from {:.3}s to under {:.3}s",
        secs(ns),
        secs(expected.start),
        secs(expected.end)
    );
}
