//! Shared helpers for integration tests that run the real `graceinit` binary.
//!
//! - [`Launch`] builds a command line: graceinit run directly (it becomes a child
//!   subreaper) or as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc
//!   --kill-child`), or any other program ([`Launch::program`]).
//! - [`Running`] is a started process whose stdout and stderr are collected in the
//!   background; it finds graceinit's host pid, sends signals and waits with a deadline.
//!   Dropping it (a failed test) SIGKILLs the whole process tree, so nothing outlives a
//!   test.
//! - [`TempDir`], [`helper`] (C programs from `tests/helpers/`, compiled once with `cc`),
//!   [`wait_until`] and small `/proc` readers.
//!
//! Every wait here is bounded and panics with what it was waiting for.

#![allow(dead_code)]

pub mod endpoints;
pub mod netns;
pub mod podman;
pub mod quiet;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The binary under test: this build's graceinit, or another build of it named by
/// `GRACEINIT_TEST_BINARY` (ci/aarch64.sh: the static aarch64 binary). Like
/// [`RUNNER`], read when the tests are compiled (cargo rebuilds them when either
/// variable changes), so that this stays a constant.
pub const GRACEINIT: &str = match option_env!("GRACEINIT_TEST_BINARY") {
    Some(binary) => binary,
    None => env!("CARGO_BIN_EXE_graceinit"),
};

/// The program that runs [`GRACEINIT`] when the host cannot (`GRACEINIT_TEST_RUNNER`,
/// e.g. `qemu-aarch64-static`, without relying on binfmt_misc): every launch becomes
/// `[unshare ...] RUNNER GRACEINIT ARGS...`. graceinit's children are host programs,
/// which qemu-user execs natively.
pub const RUNNER: Option<&str> = option_env!("GRACEINIT_TEST_RUNNER");

/// Whether graceinit runs under [`RUNNER`] (an emulator): the few behaviours that
/// qemu-user cannot give are asserted as such where a test depends on them.
pub fn under_emulation() -> bool {
    RUNNER.is_some()
}

/// graceinit as a shell command, for scripts that start it themselves:
/// `exec {graceinit_shell} -- ...` (the paths have no quotes or spaces).
pub fn graceinit_shell() -> String {
    match RUNNER {
        Some(runner) => format!("{runner} {GRACEINIT}"),
        None => GRACEINIT.to_string(),
    }
}

/// The /proc comm of a running graceinit: the first 15 bytes of the file name that
/// was exec'd (the runner's, under emulation).
fn graceinit_comm() -> String {
    let program = Path::new(RUNNER.unwrap_or(GRACEINIT));
    let name = program.file_name().unwrap_or(program.as_os_str());
    name.to_string_lossy().chars().take(15).collect()
}

/// Environment variables graceinit reads; cleared so the test machine's own cannot leak in.
const GRACEINIT_ENV: &[&str] = &[
    "GRACEINIT_CONFIG",
    "GRACEINIT_SIGNAL_TARGET",
    "GRACEINIT_STOP_SIGNAL",
    "GRACEINIT_STOP_TIMEOUT",
    "GRACEINIT_GRACE_PERIOD",
    "GRACEINIT_LOG_FORMAT",
    "GRACEINIT_REWRITE",
    "GRACEINIT_REMAP_EXIT",
    "GRACEINIT_PDEATHSIG",
    "GRACEINIT_WARN_ON_REAP",
    "GRACEINIT_SOCKET",
];

/// Serializes the timing-sensitive tests of one test binary (each test file is its own
/// binary, so each has its own lock). Survives a poisoned lock: a failed test must not
/// fail the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Temporary directories

/// A fresh directory under cargo's per-target temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The same, as a string for shell scripts (the paths have no quotes or spaces).
    pub fn file(&self, name: &str) -> String {
        self.join(name)
            .to_str()
            .expect("temp paths are UTF-8")
            .to_string()
    }

    /// Writes a file in the directory; returns its path as [`TempDir::file`] does.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.join(name);
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        self.file(name)
    }

    /// A file's contents, or "" if it does not exist (yet).
    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.join(name)).unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------
// Helper programs

/// The path of helper `name`, compiled from `tests/helpers/<name>.c` with `cc` on first
/// use (once per test binary; concurrent test binaries each build their own copy and
/// rename it into place atomically).
pub fn helper(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(format!("{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helpers");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let target = dir.join(name);
    let partial = dir.join(format!(".{name}.{}", std::process::id()));
    let output = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&partial)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `cc` to build the test helper {name} (install gcc): {e}")
        });
    assert!(
        output.status.success(),
        "cc failed to build {}: {}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    fs::rename(&partial, &target)
        .unwrap_or_else(|e| panic!("cannot move the helper into {}: {e}", target.display()));
    built.insert(name.to_string(), target.clone());
    target
}

/// Panics with a clear reason when a tool the tests need is missing: these tests fail
/// loudly rather than skip.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not on PATH: these tests need it (Debian package `{package}`)"
    );
}

// ---------------------------------------------------------------------------------------
// Launching

/// How to start the process under test.
pub struct Launch {
    command: Command,
    /// Started through `unshare`: graceinit is the unshare process's child.
    in_namespace: bool,
    stdin_piped: bool,
}

impl Launch {
    /// `graceinit ARGS...`, run directly (not PID 1, so it becomes a child subreaper).
    pub fn direct<I, S>(args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = match RUNNER {
            Some(runner) => {
                let mut command = Command::new(runner);
                command.arg(GRACEINIT);
                command
            }
            None => Command::new(GRACEINIT),
        };
        command.args(args);
        Launch::new(command, false)
    }

    /// `unshare --pid --fork --mount-proc --kill-child graceinit ARGS...`: graceinit is
    /// PID 1 of a new PID namespace and sees only its own processes in /proc, with a
    /// tmpfs of its own on /run. unshare
    /// passes graceinit's exit code through (graceinit itself never dies of a signal as
    /// PID 1); `--kill-child` SIGKILLs the namespace if unshare is killed.
    pub fn pid1<I, S>(args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        require_tool("unshare", "util-linux");
        let mut command = Command::new("unshare");
        command.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
        // A /run of its own, as a container has: as PID 1 graceinit serves its control
        // socket at /run/graceinit.sock by default, and tests running side by side must
        // not meet at the host's. `exec` keeps the pid: graceinit is still PID 1.
        command.args([
            "sh",
            "-c",
            "mount -t tmpfs -o mode=755 graceinit-run /run && exec \"$@\"",
            "sh",
        ]);
        if let Some(runner) = RUNNER {
            command.arg(runner);
        }
        command.arg(GRACEINIT).args(args);
        Launch::new(command, true)
    }

    /// Any other program (e.g. `script`, or a helper that runs graceinit itself).
    pub fn program<I, S>(program: impl AsRef<OsStr>, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command.args(args);
        Launch::new(command, false)
    }

    fn new(mut command: Command, in_namespace: bool) -> Launch {
        for var in GRACEINIT_ENV {
            command.env_remove(var);
        }
        Launch {
            command,
            in_namespace,
            stdin_piped: false,
        }
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Launch {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Launch {
        self.command.env_remove(key);
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Launch {
        self.command.current_dir(dir);
        self
    }

    /// Give the process a pipe as stdin ([`Running::stdin`]) instead of /dev/null.
    pub fn stdin_piped(mut self) -> Launch {
        self.stdin_piped = true;
        self
    }

    pub fn start(mut self) -> Running {
        self.command
            .stdin(if self.stdin_piped {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: a terminal's Ctrl-C for `cargo test` does not hit it twice.
            .process_group(0);
        let mut child = self
            .command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.command));
        let stdout = Output::collect(child.stdout.take().expect("stdout is piped"));
        let stderr = Output::collect(child.stderr.take().expect("stderr is piped"));
        let stdin = child.stdin.take();
        Running {
            child,
            in_namespace: self.in_namespace,
            stdin,
            stdout,
            stderr,
            started: Instant::now(),
            done: false,
        }
    }

    /// Starts, waits at most `timeout`, and returns how it ended.
    pub fn run(self, timeout: Duration) -> Finished {
        self.start().wait(timeout)
    }
}

/// A pipe drained by a thread, readable so far at any time.
struct Output {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Output {
    fn collect(mut pipe: impl Read + Send + 'static) -> Output {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let reader = thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]),
                }
            }
        });
        Output {
            bytes,
            reader: Some(reader),
        }
    }

    fn so_far(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Whether every writer has closed the pipe (so [`Output::so_far`] is all of it).
    fn closed(&self) -> bool {
        self.reader.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Everything, once the writers are gone; bounded, since a leftover process holding
    /// the pipe open must not hang the test.
    fn finish(&mut self, deadline: Instant) -> String {
        if let Some(reader) = self.reader.take() {
            while !reader.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
        }
        self.so_far()
    }
}

/// A started process under test.
pub struct Running {
    child: Child,
    in_namespace: bool,
    stdin: Option<ChildStdin>,
    stdout: Output,
    stderr: Output,
    started: Instant,
    done: bool,
}

/// How a process under test ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// From start to exit, as seen by the test (within a few milliseconds).
    pub elapsed: Duration,
}

impl Finished {
    /// The exit code; panics (showing the output) when the process died of a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!(
                "the process died of signal {:?} instead of exiting\nstdout:\n{}\nstderr:\n{}",
                self.status.signal(),
                self.stdout,
                self.stderr
            )
        })
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn assert_code(&self, expected: i32) {
        assert_eq!(
            self.code(),
            expected,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// How many stderr lines contain `needle`.
    pub fn stderr_lines_with(&self, needle: &str) -> usize {
        self.stderr
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }
}

impl Running {
    /// The pid of the process started (unshare's, in a namespace).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// graceinit's host pid: the process itself, or unshare's child (waited for, up to
    /// 5 s, until it has exec'd graceinit).
    pub fn graceinit_pid(&self) -> i32 {
        if !self.in_namespace {
            return self.pid();
        }
        let unshare = self.pid();
        let mut found = 0;
        wait_until(
            Duration::from_secs(5),
            "unshare's child to become graceinit",
            || match children(unshare).first() {
                Some(&pid) if comm(pid) == Some(graceinit_comm()) => {
                    found = pid;
                    true
                }
                _ => false,
            },
        );
        found
    }

    /// Waits (up to 5 s) until graceinit has a child that has exec'd a program whose
    /// /proc comm is `comm` (the first 15 bytes of its file name), and returns its host
    /// pid. graceinit installs its signal handlers before it starts the app, so after
    /// this a signal sent to graceinit is handled, never lost (as PID 1, a signal without
    /// a handler would be dropped by the kernel).
    pub fn wait_for_app(&self, comm_name: &str) -> i32 {
        let graceinit = self.graceinit_pid();
        let mut app = 0;
        wait_until(
            Duration::from_secs(5),
            &format!("graceinit to start `{comm_name}`"),
            || match children(graceinit)
                .into_iter()
                .find(|&pid| comm(pid).as_deref() == Some(comm_name))
            {
                Some(pid) => {
                    app = pid;
                    true
                }
                None => false,
            },
        );
        app
    }

    /// Sends `sig` to graceinit.
    pub fn signal(&self, sig: i32) {
        send_signal(self.graceinit_pid(), sig);
    }

    /// The pipe to the process's stdin, if [`Launch::stdin_piped`].
    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.stdin
            .as_mut()
            .expect("started with Launch::stdin_piped()")
    }

    /// Takes the pipe to the process's stdin, if [`Launch::stdin_piped`].
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin
            .take()
            .expect("started with Launch::stdin_piped()")
    }

    /// The exit status if the process has exited (reaping it), without waiting. Once it
    /// has, dropping `self` no longer kills anything.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self
            .child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for the process: {e}"));
        if status.is_some() {
            self.done = true;
        }
        status
    }

    /// Whether the process and everything it started have closed stdout and stderr.
    pub fn outputs_closed(&self) -> bool {
        self.stdout.closed() && self.stderr.closed()
    }

    pub fn stdout_so_far(&self) -> String {
        self.stdout.so_far()
    }

    pub fn stderr_so_far(&self) -> String {
        self.stderr.so_far()
    }

    /// Waits at most `timeout` for the process to exit. On timeout, kills the whole tree
    /// and panics with the output so far.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        drop(self.stdin.take());
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    self.kill_tree();
                    panic!(
                        "still running after {timeout:?}: killed\nstdout:\n{}\nstderr:\n{}",
                        self.stdout.so_far(),
                        self.stderr.so_far()
                    );
                }
                Err(e) => panic!("cannot wait for the process: {e}"),
            }
        };
        let elapsed = self.started.elapsed();
        self.done = true;
        let drain_deadline = Instant::now() + Duration::from_secs(2);
        Finished {
            status,
            stdout: self.stdout.finish(drain_deadline),
            stderr: self.stderr.finish(drain_deadline),
            elapsed,
        }
    }

    /// SIGKILLs every descendant, then the process itself, and reaps it.
    fn kill_tree(&mut self) {
        let root = self.pid();
        for pid in descendants(root).into_iter().rev() {
            send_signal(pid, libc::SIGKILL);
        }
        send_signal(root, libc::SIGKILL);
        let _ = self.child.wait();
        self.done = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            self.kill_tree();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Waiting, signals and /proc

/// Polls `condition` every 5 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// `kill(pid, sig)`; a process already gone is not an error.
pub fn send_signal(pid: i32, sig: i32) {
    assert!(pid > 0, "refusing to signal pid {pid}");
    // SAFETY: kill(2) has no memory-safety preconditions.
    let result = unsafe { libc::kill(pid, sig) };
    let error = std::io::Error::last_os_error();
    assert!(
        result == 0 || error.raw_os_error() == Some(libc::ESRCH),
        "kill({pid}, {sig}) failed: {error}"
    );
}

/// The signal number of a name such as "TERM" or "USR1".
pub fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        other => panic!("signal_number: add {other}"),
    }
}

/// The host pids of `pid`'s children (all threads'), in the kernel's order.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            found.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    found
}

/// The pid of a process as its innermost PID namespace sees it: the last field of
/// `NSpid:` in /proc/PID/status (1 for graceinit as a container's init).
pub fn ns_pid(pid: i32) -> i32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .and_then(|pids| pids.split_whitespace().last())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no NSpid in /proc/{pid}/status:\n{status}"))
}

/// Every descendant of `pid`, parents before children.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(next) = queue.pop() {
        for child in children(next) {
            found.push(child);
            queue.push(child);
        }
    }
    found
}

/// /proc/PID/comm without its newline.
pub fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

/// The fields of /proc/PID/stat after the command name: index 0 is the state (field 3
/// in proc(5)), 1 ppid, 2 pgrp, 3 session, 4 tty_nr, 5 tpgid, 11 utime, 12 stime.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// [`stat_fields`] of a /proc/PID/stat line read elsewhere (e.g. printed by the app).
pub fn parse_stat(text: &str) -> Option<Vec<String>> {
    let after_name = &text[text.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// The process's state letter ('R', 'S', 'Z', ...), or None when it no longer exists.
pub fn state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// utime + stime of the whole process, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let fields = stat_fields(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
    let ticks = |i: usize| fields[i].parse::<u64>().expect("numeric stat field");
    ticks(11) + ticks(12)
}

/// Voluntary and involuntary context switches, summed over all threads: each one is a
/// wake-up.
pub fn context_switches(pid: i32) -> (u64, u64) {
    let tasks =
        fs::read_dir(format!("/proc/{pid}/task")).unwrap_or_else(|e| panic!("process {pid}: {e}"));
    let (mut voluntary, mut involuntary) = (0, 0);
    for task in tasks.flatten() {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            let value = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("voluntary_ctxt_switches:") {
                voluntary += value(line);
            } else if line.starts_with("nonvoluntary_ctxt_switches:") {
                involuntary += value(line);
            }
        }
    }
    (voluntary, involuntary)
}

/// The lines of a text file (empty when it does not exist yet).
pub fn lines(path: impl AsRef<Path>) -> Vec<String> {
    fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Waits (up to 5 s) until the file at `path` has a line equal to `line`.
pub fn wait_for_line(path: impl AsRef<Path>, line: &str) {
    let path = path.as_ref();
    wait_until(
        Duration::from_secs(5),
        &format!("`{line}` in {}", path.display()),
        || lines(path).iter().any(|l| l == line),
    );
}

/// Shell-style arguments for [`Launch`] from string slices.
pub fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// Processes unrelated to graceinit (children of a python3 that forks `count` of them,
/// each in pause()), so that a scan of /proc has a crowded host to read; all SIGKILLed with
/// their process group on drop.
pub struct Crowd {
    forker: Child,
}

impl Crowd {
    pub fn new(count: usize) -> Crowd {
        require_tool("python3", "python3");
        let script = "import os, signal, sys\n\
             for _ in range(int(sys.argv[1])):\n\
             \x20   if os.fork() == 0:\n\
             \x20       signal.pause()\n\
             \x20       os._exit(0)\n\
             print('ready', flush=True)\n\
             signal.pause()\n";
        let mut forker = Command::new("python3")
            .args(["-c", script, &count.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("cannot start python3");
        let stdout = forker.stdout.take().expect("piped");
        let crowd = Crowd { forker };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the forker's stdout");
        assert_eq!(
            line, "ready\n",
            "the forker did not start its {count} processes"
        );
        crowd
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory-safety preconditions; the group is the forker's.
        unsafe { libc::kill(-(self.forker.id() as i32), libc::SIGKILL) };
        let _ = self.forker.wait();
    }
}
