//! Regression tests for issue 9, items 1, 2, 3 and 12: the holes in the core that let
//! PID 1 hang, block on its own logs, grow with a hook's output, or lose signals.
//!
//! - Death by a real-time signal (the app, an exec hook, a leftover): graceinit exits
//!   128+N and keeps reaping, as PID 1 and not.
//! - A stalled stderr (a FIFO whose reader does not read): forwarding and the drain's
//!   deadlines go on, lines are dropped and counted, O_NONBLOCK is never set.
//! - Hook output without newlines: cut into 16 KiB pieces, graceinit's memory bounded.
//! - Signals: SIGPIPE and the fault signals sent with kill(2) are forwarded (and
//!   rewritable), signals pending at start-up start the drain.
//!
//! Every test runs the real binary against real processes; every wait is bounded, so on
//! a graceinit that hangs the test fails at that wait. Tests that measure time or move
//! hundreds of MiB hold `serial()`.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{
    GRACEINIT, Launch, Running, TempDir, args, children, comm, descendants, helper, lines,
    require_tool, send_signal, serial, state, wait_for_line, wait_until,
};

/// How long a test waits for something graceinit should do at once (an exit, a
/// forwarded signal): long enough for a loaded machine, short enough that a hang fails
/// the test quickly.
const PROMPTLY: Duration = Duration::from_secs(5);

/// How long a test waits for graceinit to exit once its deadlines have passed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The margin the tests allow on a deadline the README promises.
const MARGIN: Duration = Duration::from_millis(500);

/// The longest piece of a hook line, in bytes of text (behaviour.md, "Log output").
const PIECE: usize = 16384;

/// graceinit as PID 1 of a new PID namespace, or run directly (a child subreaper).
#[derive(Clone, Copy, Debug)]
enum Mode {
    Pid1,
    Direct,
}

fn launch(mode: Mode, list: &[&str]) -> Launch {
    match mode {
        Mode::Pid1 => Launch::pid1(args(list)),
        Mode::Direct => Launch::direct(args(list)),
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}

/// `sigdie SIGNUM now|term [READY]` (tests/helpers/sigdie.c): dies of signal SIGNUM at
/// once, or when it gets SIGTERM.
fn sigdie() -> String {
    path_str(&helper("sigdie"))
}

/// `sigrec LOG LABEL EXIT_SIG` (tests/helpers/sigrec.c): records every standard signal
/// it gets, fault signals and SIGPIPE included.
fn sigrec() -> String {
    path_str(&helper("sigrec"))
}

/// glibc's SIGRTMIN + n (34 + n; the kernel's own range starts at 32, and glibc keeps 32
/// and 33 for itself), as graceinit names it: `SIGRTMIN+n`.
fn rt(n: i32) -> i32 {
    let sig = libc::SIGRTMIN() + n;
    assert!(sig <= libc::SIGRTMAX(), "SIGRTMIN+{n} is beyond SIGRTMAX");
    sig
}

/// A sh loop that waits (up to ~5 s) for `condition`, else exits 99.
fn sh_wait_for(condition: &str) -> String {
    format!("i=0; until {condition}; do i=$((i+1)); [ $i -gt 500 ] && exit 99; sleep 0.01; done")
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    matches!(state(pid), Some(s) if s != 'Z')
}

/// Kills (on drop) whichever of these pids is still one of our helper processes, so a
/// failed test leaves nothing behind (a graceinit that died orphans its app).
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if matches!(
                comm(pid).as_deref(),
                Some("sleep" | "sh" | "sigdie" | "sigrec")
            ) {
                send_signal(pid, libc::SIGKILL);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// graceinit with a stderr of the test's choosing

/// graceinit run directly by the test, with stderr going where the test says (the common
/// `Launch` always pipes it to the test) and stdout to /dev/null. Dropping it (a failed
/// test) SIGKILLs graceinit and everything it started.
struct Custom {
    child: Child,
    done: bool,
}

impl Custom {
    fn start(list: &[&str], stderr: Stdio) -> Custom {
        let mut command = Command::new(GRACEINIT);
        command.args(list);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GRACEINIT_") {
                command.env_remove(key);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Custom { child, done: false }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits (up to 5 s) for graceinit's child whose comm is `name`; returns its pid.
    fn app(&self, name: &str) -> i32 {
        let mut app = 0;
        wait_until(
            PROMPTLY,
            &format!("graceinit to start `{name}`"),
            || match children(self.pid())
                .into_iter()
                .find(|&pid| comm(pid).as_deref() == Some(name))
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

    fn signal(&self, sig: i32) {
        send_signal(self.pid(), sig);
    }

    fn running(&mut self) -> bool {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for graceinit: {e}"))
            .is_none()
    }

    /// Waits until `deadline` for graceinit to exit: its status and when the test saw it
    /// (within 5 ms), or None if it is still running then.
    fn exit_by(&mut self, deadline: Instant) -> Option<(ExitStatus, Instant)> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.done = true;
                    return Some((status, Instant::now()));
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => return None,
                Err(e) => panic!("cannot wait for graceinit: {e}"),
            }
        }
    }
}

impl Drop for Custom {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for pid in descendants(self.pid()).into_iter().rev() {
            send_signal(pid, libc::SIGKILL);
        }
        send_signal(self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The exit code of a status; panics naming `what` when it was a death by signal.
fn exit_code(status: ExitStatus, what: &str) -> i32 {
    status.code().unwrap_or_else(|| {
        panic!(
            "{what}: graceinit died of signal {:?} instead of exiting",
            status.signal()
        )
    })
}

// ---------------------------------------------------------------------------------------
// 1. Death by a real-time signal

/// The app kills itself with `sig`: graceinit exits 128+sig (tini and dumb-init do). On
/// today's graceinit waitpid's status cannot be decoded and graceinit never exits.
fn app_killed_by(sig: i32, mode: Mode) {
    let running = launch(mode, &["--", &sigdie(), &sig.to_string(), "now"]).start();
    running.wait(PROMPTLY).assert_code(128 + sig);
}

#[test]
fn app_killed_by_sigrtmin_exits_128_plus_n_as_pid1() {
    app_killed_by(rt(0), Mode::Pid1);
}

#[test]
fn app_killed_by_sigrtmin_exits_128_plus_n_not_pid1() {
    app_killed_by(rt(0), Mode::Direct);
}

#[test]
fn app_killed_by_sigrtmin_plus_3_exits_128_plus_n_as_pid1() {
    app_killed_by(rt(3), Mode::Pid1);
}

#[test]
fn app_killed_by_sigrtmin_plus_3_exits_128_plus_n_not_pid1() {
    app_killed_by(rt(3), Mode::Direct);
}

#[test]
fn app_killed_by_sigrtmax_exits_128_plus_n_as_pid1() {
    app_killed_by(libc::SIGRTMAX(), Mode::Pid1);
}

#[test]
fn app_killed_by_sigrtmax_exits_128_plus_n_not_pid1() {
    app_killed_by(libc::SIGRTMAX(), Mode::Direct);
}

/// A pre_stop exec hook that dies of SIGRTMIN+1 is a failed hook, reported with its
/// cause, at once: not a hook that runs into its 30 s timeout (today the status is lost,
/// so the drain waits for the timeout).
fn pre_stop_hook_killed_by_realtime_signal(mode: Mode) {
    let dir = TempDir::new("rt-hook");
    let sig = rt(1);
    let config = dir.write(
        "graceinit.toml",
        &format!(
            r#"
[app]
grace_period = "60s"
stop_timeout = "10s"

[[hooks.pre_stop]]
exec = ["{sigdie}", "{sig}", "now"]
timeout = "30s"
"#,
            sigdie = sigdie(),
        ),
    );
    let running = launch(mode, &["--config", &config, "--", "sleep", "1000"]).start();
    running.wait_for_app("sleep");
    running.signal(libc::SIGTERM);
    // The hook fails at once, so the stop signal follows at once and `sleep` dies of it.
    let done = running.wait(PROMPTLY);
    done.assert_code(128 + libc::SIGTERM);
    let failures: Vec<&str> = done
        .stderr
        .lines()
        .filter(|line| line.contains("FailedPreStopHook"))
        .collect();
    assert_eq!(
        failures.len(),
        1,
        "one FailedPreStopHook event\nstderr:\n{}",
        done.stderr
    );
    assert!(
        failures[0].contains("pre_stop#1") && failures[0].contains("killed by SIGRTMIN+1"),
        "the failure names the hook and its death by SIGRTMIN+1: {}",
        failures[0]
    );
    assert!(
        !done.stderr.contains("timed out"),
        "the hook did not time out\nstderr:\n{}",
        done.stderr
    );
}

#[test]
fn pre_stop_hook_killed_by_realtime_signal_is_a_failure_not_a_timeout_as_pid1() {
    pre_stop_hook_killed_by_realtime_signal(Mode::Pid1);
}

#[test]
fn pre_stop_hook_killed_by_realtime_signal_is_a_failure_not_a_timeout_not_pid1() {
    pre_stop_hook_killed_by_realtime_signal(Mode::Direct);
}

/// Not PID 1: the app exits 3 leaving two orphans. On the leftovers' SIGTERM one dies of
/// SIGRTMIN+1, the other (`sleep 1000` ignoring SIGTERM) lives on. Reaping the first must
/// not make graceinit believe everything is reaped: the second is SIGKILLed after
/// kill_leftovers_after (2 s) and reaped, and is gone when graceinit exits. (Today the
/// undecodable status ends the reaping loop as if it were ECHILD: graceinit exits at
/// once and the sleep survives.)
#[test]
fn leftover_killed_by_realtime_signal_does_not_end_the_reaping_not_pid1() {
    let _serial = serial();
    let dir = TempDir::new("rt-leftovers");
    let dies = dir.file("dies.pid");
    let lives = dir.file("lives.pid");
    let script = format!(
        "{sigdie} {sig} term {dies} &\n\
         sh -c 'trap \"\" TERM; echo $$ > {lives}; exec sleep 1000' &\n\
         {wait}\n\
         exit 3\n",
        sigdie = sigdie(),
        sig = rt(1),
        wait = sh_wait_for(&format!("[ -s {dies} ] && [ -s {lives} ]")),
    );
    let running = Launch::direct(args(&["--", "sh", "-c", &script])).start();
    wait_until(PROMPTLY, "the app to start both orphans", || {
        lines(&dies).len() == 1 && lines(&lives).len() == 1
    });
    let pid_in = |path: &str| -> i32 {
        lines(path)[0]
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let (dies, lives) = (pid_in(&dies), pid_in(&lives));
    let _cleanup = KillOnDrop(vec![dies, lives]);
    wait_until(PROMPTLY, "the long-lived orphan to exec sleep", || {
        comm(lives).as_deref() == Some("sleep")
    });

    let done = running.wait(EXIT_TIMEOUT);
    done.assert_code(3);
    assert_eq!(
        state(dies),
        None,
        "the orphan that died of SIGRTMIN+1 was reaped"
    );
    assert_eq!(
        state(lives),
        None,
        "the orphan `sleep 1000` ({lives}, {:?}) survived graceinit\nstderr:\n{}",
        comm(lives),
        done.stderr
    );
    assert_eq!(
        done.stderr_lines_with("outlived SIGTERM: sending SIGKILL"),
        1,
        "the sleep outlived SIGTERM and got SIGKILL\nstderr:\n{}",
        done.stderr
    );
}

// ---------------------------------------------------------------------------------------
// 2. A stalled stderr

/// A FIFO as graceinit's stderr, with a "reader" that never reads: the test holds it
/// open O_RDWR (so writers never get EPIPE), and hands graceinit a write-only end.
struct StalledStderr {
    path: String,
    reader: Option<File>,
    /// The descriptor graceinit gets a duplicate of (the same open file description);
    /// closed when the reader resumes, so that it sees the end of file.
    writer: Option<File>,
}

impl StalledStderr {
    fn new(dir: &TempDir) -> StalledStderr {
        require_tool("mkfifo", "coreutils");
        let path = dir.file("stderr.fifo");
        let made = Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap_or_else(|e| panic!("cannot run mkfifo: {e}"));
        assert!(made.success(), "mkfifo {path} failed: {made}");
        // Linux opens a FIFO O_RDWR without waiting for the other side.
        let reader = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        let writer = OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {path} for writing: {e}"));
        StalledStderr {
            path,
            reader: Some(reader),
            writer: Some(writer),
        }
    }

    fn for_graceinit(&self) -> Stdio {
        Stdio::from(
            self.writer()
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot duplicate the FIFO's descriptor: {e}")),
        )
    }

    fn writer(&self) -> &File {
        self.writer
            .as_ref()
            .expect("the test's writer is still open")
    }

    /// Bytes written to the FIFO and not read.
    fn unread(&self) -> usize {
        let reader = self.reader.as_ref().expect("the reader is still stalled");
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD stores one c_int through the pointer, which points to `n`, a
        // live local; the descriptor is open for as long as `reader` is.
        let rc = unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut n) };
        assert_eq!(
            rc,
            0,
            "FIONREAD on {}: {}",
            self.path,
            std::io::Error::last_os_error()
        );
        n as usize
    }

    /// Waits until the FIFO is full (64 KiB, less part of a page): whoever writes next
    /// to it blocks.
    fn wait_full(&self) {
        wait_until(
            Duration::from_secs(10),
            "graceinit's stderr (a FIFO nobody reads) to fill up",
            || self.unread() >= 60 * 1024,
        );
    }

    /// The reader starts reading, to the end (once every writer has closed the FIFO),
    /// on a thread; the stalled O_RDWR descriptor is closed.
    fn resume(&mut self) -> Collected {
        let reader = File::open(&self.path)
            .unwrap_or_else(|e| panic!("cannot open {} for reading: {e}", self.path));
        self.reader = None;
        self.writer = None;
        Collected::start(reader, usize::MAX)
    }
}

/// A pipe read to its end on a thread: every byte counted, the first `keep` bytes kept.
struct Collected {
    bytes: Arc<Mutex<(Vec<u8>, usize)>>,
    reader: Option<JoinHandle<()>>,
}

impl Collected {
    fn start(mut pipe: impl Read + Send + 'static, keep: usize) -> Collected {
        let bytes = Arc::new(Mutex::new((Vec::new(), 0)));
        let sink = bytes.clone();
        let reader = thread::spawn(move || {
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
                        let room = keep.saturating_sub(sink.0.len()).min(n);
                        sink.0.extend_from_slice(&chunk[..room]);
                        sink.1 += n;
                    }
                }
            }
        });
        Collected {
            bytes,
            reader: Some(reader),
        }
    }

    fn so_far(&self) -> String {
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes.0).into_owned()
    }

    /// Everything, once every writer has closed the pipe (waited for up to 5 s).
    fn finish(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            wait_until(PROMPTLY, "every writer to close graceinit's stderr", || {
                reader.is_finished()
            });
        }
        self.so_far()
    }
}

/// The `flags:` of /proc/PID/fdinfo/FD (octal in the file): the open file description's
/// status flags, plus O_CLOEXEC when set on that descriptor.
fn fd_flags(pid: i32, fd: i32) -> u32 {
    let path = format!("/proc/{pid}/fdinfo/{fd}");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    text.lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .unwrap_or_else(|| panic!("no flags: in {path}:\n{text}"))
}

/// A post_start hook script printing `count` numbered lines ("flood 1", ...: several MiB)
/// then creating `flooded`.
fn flood_script(dir: &TempDir, count: usize, flooded: &str) -> String {
    dir.write(
        "flood.sh",
        &format!("seq 1 {count} | sed 's/^/flood /'\n: > {flooded}\n"),
    )
}

/// A config with that hook, grace_period 2s and stop_timeout 1s.
fn flood_config(dir: &TempDir, count: usize, flooded: &str) -> String {
    dir.write(
        "graceinit.toml",
        &format!(
            r#"
[app]
grace_period = "2s"
stop_timeout = "1s"

[[hooks.post_start]]
exec = ["sh", "{script}"]
timeout = "60s"
"#,
            script = flood_script(dir, count, flooded),
        ),
    )
}

/// While nobody reads graceinit's stderr, the drain's deadline holds: the app ignores
/// SIGTERM and is SIGKILLed at grace_period (2 s) after the SIGTERM; graceinit exits 137
/// by 2.5 s, although its stderr never gets read. (Today graceinit's only thread blocks
/// writing a hook line and never exits.)
#[test]
fn stalled_stderr_does_not_delay_the_sigkill_at_grace_period() {
    let _serial = serial();
    let dir = TempDir::new("stall-deadline");
    let stderr = StalledStderr::new(&dir);
    let config = flood_config(&dir, 500_000, &dir.file("flooded"));
    let mut graceinit = Custom::start(
        &[
            "--config",
            &config,
            "--",
            "sh",
            "-c",
            "trap '' TERM; exec sleep 1000",
        ],
        stderr.for_graceinit(),
    );
    let app = graceinit.app("sleep");
    let _cleanup = KillOnDrop(vec![app]);
    stderr.wait_full();
    assert!(graceinit.running(), "graceinit is still running");

    graceinit.signal(libc::SIGTERM);
    let sent = Instant::now();
    let grace_period = Duration::from_secs(2);
    let Some((status, at)) = graceinit.exit_by(sent + grace_period + PROMPTLY) else {
        panic!(
            "graceinit did not exit within {:?} of SIGTERM (grace_period 2s) while its \
             stderr was stalled ({} bytes unread)",
            grace_period + PROMPTLY,
            stderr.unread()
        );
    };
    assert_eq!(
        exit_code(status, "stalled stderr"),
        137,
        "the app died of SIGKILL"
    );
    let took = at - sent;
    assert!(
        took >= grace_period && took <= grace_period + MARGIN,
        "graceinit exited {took:?} after SIGTERM; SIGKILL is due at grace_period (2s)"
    );
    assert_eq!(state(app), None, "the app was reaped");
}

/// While stderr is stalled, a SIGUSR1 still reaches the app at once, then SIGTERM stops
/// it (exit 0). graceinit never sets O_NONBLOCK on the stderr it inherited: the app
/// shares that open file description, and its flags are the ones the test opened it
/// with, before and after the stall. (Today graceinit is blocked: nothing is forwarded.)
#[test]
fn stalled_stderr_does_not_stop_signal_forwarding_nor_gets_o_nonblock() {
    let _serial = serial();
    let dir = TempDir::new("stall-forward");
    let stderr = StalledStderr::new(&dir);
    let opened_with = fd_flags(std::process::id() as i32, stderr.writer().as_raw_fd())
        & !(libc::O_CLOEXEC as u32);
    let config = flood_config(&dir, 500_000, &dir.file("flooded"));
    let log = dir.file("signals.log");
    let mut graceinit = Custom::start(
        &["--config", &config, "--", &sigrec(), &log, "app", "TERM"],
        stderr.for_graceinit(),
    );
    let app = graceinit.app("sigrec");
    let _cleanup = KillOnDrop(vec![app]);
    wait_for_line(&log, "app ready");
    assert_eq!(
        fd_flags(app, 2),
        opened_with,
        "the app's stderr has the flags the test opened the FIFO with (octal {opened_with:o})"
    );

    stderr.wait_full();
    graceinit.signal(libc::SIGUSR1);
    wait_for_line(&log, "app USR1");
    assert_eq!(
        fd_flags(app, 2),
        opened_with,
        "the shared stderr description's flags are unchanged after the stall (no O_NONBLOCK)"
    );
    assert_eq!(
        fd_flags(std::process::id() as i32, stderr.writer().as_raw_fd()) & libc::O_NONBLOCK as u32,
        0,
        "O_NONBLOCK is not set on the test's own descriptor of the same description"
    );

    graceinit.signal(libc::SIGTERM);
    let Some((status, _)) = graceinit.exit_by(Instant::now() + PROMPTLY) else {
        panic!("graceinit did not exit after SIGTERM while its stderr was stalled");
    };
    assert_eq!(
        exit_code(status, "stalled stderr"),
        0,
        "the app exited 0 on SIGTERM"
    );
    assert_eq!(lines(&log), ["app ready", "app USR1", "app TERM"]);
}

/// The number in each "N log lines dropped" of `output`.
fn dropped_counts(output: &str) -> Vec<u64> {
    output
        .lines()
        .filter_map(|line| {
            let before = &line[..line.find(" log lines dropped")?];
            let number = before.rsplit(|c: char| !c.is_ascii_digit()).next()?;
            Some(
                number.parse().unwrap_or_else(|e| {
                    panic!("no count before `log lines dropped` in {line:?}: {e}")
                }),
            )
        })
        .collect()
}

/// A hook floods a stalled stderr and finishes (its lines dropped, not queued without
/// limit, and the hook is not blocked). Once the reader resumes, graceinit reports how
/// many lines it dropped: the lines that came through are the hook's, in order, each
/// once, and with the dropped ones they are all the hook printed. (Today the hook blocks
/// on its full pipe and never finishes.)
#[test]
fn stalled_stderr_drops_lines_and_reports_the_count_once_the_reader_resumes() {
    let _serial = serial();
    const LINES: usize = 300_000;
    let dir = TempDir::new("stall-resume");
    let mut stderr = StalledStderr::new(&dir);
    let flooded = dir.file("flooded");
    let config = flood_config(&dir, LINES, &flooded);
    let mut graceinit = Custom::start(
        &["--config", &config, "--", "sleep", "1000"],
        stderr.for_graceinit(),
    );
    let app = graceinit.app("sleep");
    let _cleanup = KillOnDrop(vec![app]);
    stderr.wait_full();
    wait_until(
        Duration::from_secs(20),
        "the flooding hook to finish printing while graceinit's stderr is stalled",
        || Path::new(&flooded).exists(),
    );

    let mut output = stderr.resume();
    wait_until(PROMPTLY, "the `log lines dropped` warning", || {
        output.so_far().contains(" log lines dropped")
    });
    graceinit.signal(libc::SIGTERM);
    let Some((status, _)) = graceinit.exit_by(Instant::now() + EXIT_TIMEOUT) else {
        panic!("graceinit did not exit after SIGTERM:\n{}", output.so_far());
    };
    let text = output.finish();
    assert_eq!(
        exit_code(status, "resumed stderr"),
        143,
        "the app died of SIGTERM"
    );

    let dropped = dropped_counts(&text);
    assert!(
        !dropped.is_empty() && dropped.iter().all(|&n| n > 0),
        "a `N log lines dropped` warning with N > 0: {dropped:?}"
    );
    let relayed: Vec<usize> = text
        .lines()
        .filter_map(|line| line.strip_prefix("[post_start#1] flood "))
        .map(|n| {
            n.parse()
                .unwrap_or_else(|e| panic!("flood line {n:?}: {e}"))
        })
        .collect();
    assert!(
        relayed.windows(2).all(|pair| pair[0] < pair[1]),
        "the relayed lines are in order, each once"
    );
    assert!(
        relayed.last().is_some_and(|&n| n <= LINES),
        "relayed lines are the hook's"
    );
    let dropped: u64 = dropped.iter().sum();
    assert_eq!(
        relayed.len() as u64 + dropped,
        LINES as u64,
        "relayed ({}) + dropped ({dropped}) lines = the {LINES} the hook printed",
        relayed.len()
    );
}

// ---------------------------------------------------------------------------------------
// 3. Hook output without a newline

/// A hook prints 200 MiB without a newline, then sleeps (holding its pipe open). While
/// it sleeps, graceinit's peak RSS (VmHWM) is below 64 MiB: the line is relayed in
/// pieces, not buffered. graceinit's stderr goes to a thread that only counts. (Today
/// graceinit buffers the whole line: VmHWM above 200 MiB.)
#[test]
fn hook_printing_200_mib_without_a_newline_keeps_graceinit_small() {
    let _serial = serial();
    const PRINTED: usize = 200 << 20;
    let dir = TempDir::new("no-newline");
    let printed = dir.file("printed");
    let script = dir.write(
        "print.sh",
        &format!("head -c {PRINTED} /dev/zero | tr '\\0' a\n: > {printed}\nexec sleep 1000\n"),
    );
    let config = dir.write(
        "graceinit.toml",
        &format!("[[hooks.post_start]]\nexec = [\"sh\", \"{script}\"]\ntimeout = \"60s\"\n"),
    );
    let mut graceinit = Custom::start(
        &["--config", &config, "--", "sleep", "1000"],
        Stdio::piped(),
    );
    let mut output = Collected::start(
        graceinit.child.stderr.take().expect("stderr is piped"),
        64 * 1024,
    );
    let app = graceinit.app("sleep");
    let _cleanup = KillOnDrop(vec![app]);
    wait_until(Duration::from_secs(30), "the hook to print 200 MiB", || {
        Path::new(&printed).exists()
    });

    let status = fs::read_to_string(format!("/proc/{}/status", graceinit.pid()))
        .unwrap_or_else(|e| panic!("graceinit's /proc status: {e}"));
    let peak_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in graceinit's status:\n{status}"));
    assert!(
        peak_kib < 64 * 1024,
        "graceinit's VmHWM is {} MiB after a hook printed 200 MiB without a newline",
        peak_kib / 1024
    );

    graceinit.signal(libc::SIGTERM);
    let Some((status, _)) = graceinit.exit_by(Instant::now() + EXIT_TIMEOUT) else {
        panic!("graceinit did not exit after SIGTERM");
    };
    assert_eq!(
        exit_code(status, "200 MiB hook"),
        143,
        "the app died of SIGTERM\nstderr (start):\n{}",
        output.finish()
    );
}

/// What a line looks like, without printing 16 KiB of it.
fn describe(line: &str) -> String {
    let head: String = line.chars().take(40).collect();
    let tail: String = line
        .chars()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{} bytes: {head:?} ... {tail:?}", line.len())
}

/// A 40000-byte line (16384 `a`, 16384 `b`, 7232 `c`, then a newline) comes out in text
/// format as three pieces of exactly 16384, 16384 and 7232 bytes of text, in order, each
/// with the hook's label, all but the last marked ` [cut]`. (Today: one line of 40000.)
#[test]
fn a_40000_byte_line_is_cut_into_pieces_of_16384_bytes() {
    let dir = TempDir::new("long-line");
    let printed = dir.file("printed");
    let script = dir.write(
        "print.sh",
        &format!(
            "head -c {PIECE} /dev/zero | tr '\\0' a\n\
             head -c {PIECE} /dev/zero | tr '\\0' b\n\
             head -c 7232 /dev/zero | tr '\\0' c\n\
             echo\n\
             : > {printed}\n"
        ),
    );
    let config = dir.write(
        "graceinit.toml",
        &format!("[[hooks.post_start]]\nexec = [\"sh\", \"{script}\"]\n"),
    );
    let running = Launch::direct(args(&["--config", &config, "--", "sleep", "1000"])).start();
    running.wait_for_app("sleep");
    wait_until(PROMPTLY, "the hook to print its line", || {
        Path::new(&printed).exists()
    });
    running.signal(libc::SIGTERM);
    let done = running.wait(EXIT_TIMEOUT);
    done.assert_code(143);

    let pieces: Vec<&str> = done
        .stderr
        .lines()
        .filter_map(|line| line.strip_prefix("[post_start#1] "))
        .collect();
    let expected = [
        format!("{} [cut]", "a".repeat(PIECE)),
        format!("{} [cut]", "b".repeat(PIECE)),
        "c".repeat(7232),
    ];
    assert!(
        pieces == expected,
        "expected 3 pieces (16384 a + \" [cut]\", 16384 b + \" [cut]\", 7232 c), got {}:\n{}",
        pieces.len(),
        pieces
            .iter()
            .map(|piece| describe(piece))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 12. Signals

/// graceinit's host pid is alive (for PID 1, the namespace's init).
fn assert_graceinit_alive(running: &mut Running, after: &str) {
    assert!(
        running.try_exit().is_none() && alive(running.graceinit_pid()),
        "graceinit died after {after}\nstderr:\n{}",
        running.stderr_so_far()
    );
}

/// SIGPIPE sent with kill(2) to graceinit reaches the app, as tini and dumb-init forward
/// it (today graceinit ignores it).
fn sigpipe_is_forwarded(mode: Mode) {
    let dir = TempDir::new("sigpipe");
    let log = dir.file("signals.log");
    let mut running = launch(mode, &["--", &sigrec(), &log, "app", "TERM"]).start();
    let app = running.wait_for_app("sigrec");
    let _cleanup = KillOnDrop(vec![app]);
    wait_for_line(&log, "app ready");
    running.signal(libc::SIGPIPE);
    wait_for_line(&log, "app PIPE");
    assert_graceinit_alive(&mut running, "SIGPIPE");
    running.signal(libc::SIGTERM);
    running.wait(PROMPTLY).assert_code(0);
    assert_eq!(lines(&log), ["app ready", "app PIPE", "app TERM"]);
}

#[test]
fn sigpipe_sent_to_graceinit_reaches_the_app_as_pid1() {
    sigpipe_is_forwarded(Mode::Pid1);
}

#[test]
fn sigpipe_sent_to_graceinit_reaches_the_app_not_pid1() {
    sigpipe_is_forwarded(Mode::Direct);
}

const FAULT_SIGNALS: &[(&str, i32)] = &[
    ("SEGV", libc::SIGSEGV),
    ("BUS", libc::SIGBUS),
    ("ILL", libc::SIGILL),
    ("FPE", libc::SIGFPE),
    ("ABRT", libc::SIGABRT),
    ("TRAP", libc::SIGTRAP),
    ("SYS", libc::SIGSYS),
];

/// Each fault signal, sent with kill(2) (not a fault of graceinit's own), is forwarded to
/// the app, in order, and graceinit keeps running; SIGTERM then ends the app (exit 0).
/// (Today, not PID 1, the first one kills graceinit and orphans the app; as PID 1 the
/// kernel drops them, as graceinit has no handler.)
fn fault_signals_are_forwarded(mode: Mode) {
    let dir = TempDir::new("faults");
    let log = dir.file("signals.log");
    // cwd: where a core dump would land, if the machine writes one.
    let mut running = launch(mode, &["--", &sigrec(), &log, "app", "TERM"])
        .cwd(dir.path())
        .start();
    let app = running.wait_for_app("sigrec");
    let _cleanup = KillOnDrop(vec![app]);
    wait_for_line(&log, "app ready");
    for &(name, sig) in FAULT_SIGNALS {
        running.signal(sig);
        wait_for_line(&log, &format!("app {name}"));
        assert_graceinit_alive(&mut running, &format!("SIG{name} sent with kill(2)"));
    }
    running.signal(libc::SIGTERM);
    running.wait(PROMPTLY).assert_code(0);
    let expected: Vec<String> = std::iter::once("app ready".to_string())
        .chain(FAULT_SIGNALS.iter().map(|(name, _)| format!("app {name}")))
        .chain(std::iter::once("app TERM".to_string()))
        .collect();
    assert_eq!(lines(&log), expected);
}

#[test]
fn fault_signals_sent_with_kill_are_forwarded_and_graceinit_survives_as_pid1() {
    fault_signals_are_forwarded(Mode::Pid1);
}

#[test]
fn fault_signals_sent_with_kill_are_forwarded_and_graceinit_survives_not_pid1() {
    fault_signals_are_forwarded(Mode::Direct);
}

/// `-r SEGV:USR1`: a SIGSEGV sent to graceinit reaches the app as SIGUSR1.
fn segv_rewritten_to_usr1(mode: Mode) {
    let dir = TempDir::new("rewrite-segv");
    let log = dir.file("signals.log");
    let mut running = launch(
        mode,
        &["-r", "SEGV:USR1", "--", &sigrec(), &log, "app", "TERM"],
    )
    .cwd(dir.path())
    .start();
    let app = running.wait_for_app("sigrec");
    let _cleanup = KillOnDrop(vec![app]);
    wait_for_line(&log, "app ready");
    running.signal(libc::SIGSEGV);
    wait_for_line(&log, "app USR1");
    assert_graceinit_alive(&mut running, "SIGSEGV");
    running.signal(libc::SIGTERM);
    running.wait(PROMPTLY).assert_code(0);
    assert_eq!(lines(&log), ["app ready", "app USR1", "app TERM"]);
}

#[test]
fn rewrite_segv_to_usr1_delivers_usr1_as_pid1() {
    segv_rewritten_to_usr1(Mode::Pid1);
}

#[test]
fn rewrite_segv_to_usr1_delivers_usr1_not_pid1() {
    segv_rewritten_to_usr1(Mode::Direct);
}

/// Blocks SIGTERM, sends it to itself (so it is pending), and execs argv[1:].
const EXEC_WITH_SIGTERM_PENDING: &str = "\
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
os.kill(os.getpid(), signal.SIGTERM)
os.execv(sys.argv[1], sys.argv[1:])
";

/// graceinit starts with SIGTERM pending (blocked by its parent): the drain starts
/// (DrainStarted, the pre_stop hook runs), the app inherits the blocked SIGTERM so the
/// stop signal does not end it, and it is SIGKILLed at grace_period: exit 137. Not PID 1,
/// nothing of the app is left afterwards. (Today, not PID 1, graceinit dies of the
/// SIGTERM at once; as PID 1 the kernel drops it and graceinit runs on.)
fn pending_sigterm_starts_the_drain(mode: Mode) {
    let _serial = serial();
    require_tool("python3", "python3");
    let dir = TempDir::new("pending");
    let hook_ran = dir.file("pre_stop.ran");
    let app_pid = dir.file("app.pid");
    let config = dir.write(
        "graceinit.toml",
        &format!(
            r#"
[app]
grace_period = "2s"
stop_timeout = "1s"

[[hooks.pre_stop]]
exec = ["sh", "-c", "echo ran > {hook_ran}"]
"#
        ),
    );
    let app = format!("echo $$ > {app_pid}; exec sleep 1000");
    let mut list = match mode {
        Mode::Pid1 => vec!["--pid", "--fork", "--mount-proc", "--kill-child", "python3"],
        Mode::Direct => vec![],
    };
    list.extend([
        "-c",
        EXEC_WITH_SIGTERM_PENDING,
        GRACEINIT,
        "--config",
        &config,
        "--",
        "sh",
        "-c",
        &app,
    ]);
    let launch = match mode {
        Mode::Pid1 => {
            require_tool("unshare", "util-linux");
            Launch::program("unshare", &list)
        }
        Mode::Direct => Launch::program("python3", &list),
    };
    let running = launch.start();
    let done = running.wait(Duration::from_secs(2) + PROMPTLY);
    let _cleanup = KillOnDrop(
        lines(&app_pid)
            .iter()
            .filter_map(|pid| pid.trim().parse().ok())
            .filter(|_| matches!(mode, Mode::Direct))
            .collect(),
    );
    done.assert_code(137);
    assert_eq!(
        done.stderr_lines_with("DrainStarted"),
        1,
        "the pending SIGTERM started the drain\nstderr:\n{}",
        done.stderr
    );
    assert_eq!(
        lines(&hook_ran),
        ["ran"],
        "the pre_stop hook ran\nstderr:\n{}",
        done.stderr
    );
    assert!(
        done.elapsed >= Duration::from_secs(2),
        "SIGKILL came at grace_period (2s), not before: {:?}",
        done.elapsed
    );
    if let Mode::Direct = mode {
        let pid: i32 = lines(&app_pid)
            .first()
            .and_then(|pid| pid.trim().parse().ok())
            .unwrap_or_else(|| panic!("the app recorded its pid"));
        assert_eq!(
            state(pid),
            None,
            "the app ({pid}, {:?}) is gone after graceinit exited",
            comm(pid)
        );
    }
}

#[test]
fn sigterm_pending_at_start_up_starts_the_drain_as_pid1() {
    pending_sigterm_starts_the_drain(Mode::Pid1);
}

#[test]
fn sigterm_pending_at_start_up_starts_the_drain_not_pid1() {
    pending_sigterm_starts_the_drain(Mode::Direct);
}
