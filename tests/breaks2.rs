//! Second round of attacks on graceinit's promises, against the signalfd design (every
//! signal blocked in every thread, read in batches on the event loop): each test is a
//! failure found with the real binary, kept as a regression test.
//!
//! - A parent that ignores SIGCHLD (a daemon that does not want zombies, starting
//!   graceinit with Python's subprocess) hands graceinit SIG_IGN for SIGCHLD: the kernel
//!   then reaps graceinit's children itself and sends no SIGCHLD, so the app's exit is
//!   never seen; graceinit hangs for ever and the status is lost. dumb-init exits with
//!   the app's code.
//! - An ignored SIGPIPE is not handed on: Rust's runtime ignores SIGPIPE before `main`
//!   and std resets it to the default in every child, so the app (and exec hooks) lose
//!   the SIG_IGN graceinit inherited (tini hands it on).
//! - Signals 32 and 33 (the kernel's first real-time signals, which glibc keeps for
//!   itself) are never blocked: glibc's `sigfillset`/`pthread_sigmask` leave them out.
//!   `kill -33` kills graceinit (not PID 1), orphaning the app; as PID 1 the kernel
//!   discards them. And a parent's blocked 32/33 are not in the app's mask.
//! - A signal sent to one of graceinit's other threads (tgkill to the log writer) stays
//!   pending on that thread for ever: the signalfd is read on the main thread, which
//!   only sees its own and the process's pending signals. A SIGTERM sent so never
//!   starts the drain.

mod common;

use std::time::Duration;

use common::{GRACEINIT, Launch, TempDir, require_tool};

/// Bound for what must happen at once (a process exiting, a line appearing).
const PROMPTLY: Duration = Duration::from_secs(5);

/// The value of a `/proc/PID/status` line such as "SigIgn:\t0000000000001000", as a
/// number, from the text of a process's output; panics naming what is missing.
fn status_mask(output: &str, prefix: &str) -> u64 {
    let line = output
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{output}"));
    u64::from_str_radix(line.trim(), 16)
        .unwrap_or_else(|e| panic!("`{prefix}{line}` is not a hex mask: {e}"))
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

// ---------------------------------------------------------------------------------------
// 1. SIGCHLD ignored by graceinit's parent.

/// Ignores SIGCHLD (as a daemon does to avoid zombies) and execs argv[1:].
const EXEC_WITH_SIGCHLD_IGNORED: &str = "
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])
";

/// graceinit started with SIGCHLD ignored still learns the app's exit status. Today the
/// kernel auto-reaps the app (SIGCHLD is SIG_IGN: no zombie, no SIGCHLD), graceinit
/// waits for ever, and the wait below panics.
#[test]
fn the_apps_exit_is_seen_when_graceinit_inherits_sigchld_ignored() {
    require_tool("python3", "python3");
    let finished = Launch::program(
        "python3",
        [
            "-c",
            EXEC_WITH_SIGCHLD_IGNORED,
            GRACEINIT,
            "--",
            "sh",
            "-c",
            "exit 3",
        ],
    )
    .run(PROMPTLY);
    finished.assert_code(3);
}

/// The same during a drain: the app dies of the stop signal, graceinit exits 143 at once
/// (today it waits for an exit it never sees: the SIGKILL at kill_at finds nothing, and
/// graceinit hangs).
#[test]
fn a_drain_ends_when_graceinit_inherits_sigchld_ignored() {
    require_tool("python3", "python3");
    let running = Launch::program(
        "python3",
        [
            "-c",
            EXEC_WITH_SIGCHLD_IGNORED,
            GRACEINIT,
            "--grace-period",
            "2s",
            "--stop-timeout",
            "1s",
            "--",
            "sleep",
            "1000",
        ],
    )
    .start();
    running.wait_for_app("sleep");
    running.signal(libc::SIGTERM);
    running.wait(PROMPTLY).assert_code(143);
}

// ---------------------------------------------------------------------------------------
// 2. An ignored SIGPIPE is handed on, as tini hands it on.

/// Ignores SIGPIPE and SIGHUP, prints its own SigIgn as "parent SigIgn:\t...", and execs
/// argv[1:].
const EXEC_WITH_SIGPIPE_IGNORED: &str = "
import os, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
with open('/proc/self/status') as status:
    mask = [l for l in status if l.startswith('SigIgn:')][0]
sys.stdout.write('parent ' + mask)
sys.stdout.flush()
os.execv(sys.argv[1], sys.argv[1:])
";

/// The app's ignored signals are exactly those graceinit's parent left ignored (SIGPIPE
/// included). Today SIGPIPE is missing from the app's SigIgn.
#[test]
fn the_app_inherits_an_ignored_sigpipe() {
    require_tool("python3", "python3");
    let finished = Launch::program(
        "python3",
        [
            "-c",
            EXEC_WITH_SIGPIPE_IGNORED,
            GRACEINIT,
            "--",
            "grep",
            "SigIgn:",
            "/proc/self/status",
        ],
    )
    .run(PROMPTLY);
    finished.assert_code(0);
    let parent = status_mask(&finished.stdout, "parent SigIgn:");
    let app = status_mask(&finished.stdout, "SigIgn:");
    assert_ne!(parent & bit(libc::SIGPIPE), 0, "the parent ignored SIGPIPE");
    assert_eq!(
        app,
        parent,
        "the app's SigIgn {app:#x} differs from the parent's {parent:#x} (SIGPIPE is {:#x})",
        bit(libc::SIGPIPE)
    );
}

/// The same for an exec hook: its SigIgn, relayed as `[post_start#1] SigIgn:\t...`, is
/// the parent's.
#[test]
fn an_exec_hook_inherits_an_ignored_sigpipe() {
    require_tool("python3", "python3");
    let dir = TempDir::new("hook-sigpipe");
    let config = dir.write(
        "graceinit.toml",
        r#"[app]
grace_period = "2s"
stop_timeout = "1s"

[[hooks.post_start]]
exec = ["grep", "SigIgn:", "/proc/self/status"]
"#,
    );
    let running = Launch::program(
        "python3",
        [
            "-c",
            EXEC_WITH_SIGPIPE_IGNORED,
            GRACEINIT,
            "--config",
            &config,
            "--",
            "sleep",
            "1000",
        ],
    )
    .start();
    common::wait_until(PROMPTLY, "the hook's SigIgn line", || {
        running.stderr_so_far().contains("[post_start#1] SigIgn:")
    });
    running.signal(libc::SIGTERM);
    let finished = running.wait(PROMPTLY);
    finished.assert_code(143);
    let parent = status_mask(&finished.stdout, "parent SigIgn:");
    let hook = status_mask(&finished.stderr, "[post_start#1] SigIgn:");
    assert_eq!(
        hook,
        parent,
        "the hook's SigIgn {hook:#x} differs from the parent's {parent:#x} (SIGPIPE is {:#x})",
        bit(libc::SIGPIPE)
    );
}

// ---------------------------------------------------------------------------------------
// 3. Signals 32 and 33.

/// The app: blocks signals 32 and 33 with the raw system call (glibc refuses them),
/// says "ready", and waits (up to 5 s) until signal 33 is pending for it: "pending 33",
/// exit 0; else "no 33", exit 1.
const APP_WAITING_FOR_33: &str = "
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
mask = ctypes.c_uint64((1 << 31) | (1 << 32))
assert libc.syscall(14, 0, ctypes.byref(mask), None, 8) == 0
print('ready', flush=True)
end = time.time() + 5
while time.time() < end:
    with open('/proc/self/status') as status:
        pending = 0
        for line in status:
            if line.startswith(('SigPnd:', 'ShdPnd:')):
                pending |= int(line.split()[1], 16)
    if pending & (1 << 32):
        print('pending 33', flush=True)
        sys.exit(0)
    time.sleep(0.01)
print('no 33', flush=True)
sys.exit(1)
";

/// `kill -33 graceinit` is forwarded like any real-time signal; graceinit survives it
/// and exits with the app's code. Today 33 is never blocked: when graceinit came with
/// its default action (started from a shell) it dies of it, not PID 1, and orphans the
/// app (as PID 1 the kernel discards it); when its parent spawned it with glibc's
/// posix_spawn (Rust's `Command`, as here), it came ignored and is discarded. Either
/// way the app never gets it.
fn signal_33_is_forwarded(pid1: bool) {
    require_tool("python3", "python3");
    let args = ["--", "python3", "-c", APP_WAITING_FOR_33];
    let running = if pid1 {
        Launch::pid1(args).start()
    } else {
        Launch::direct(args).start()
    };
    common::wait_until(PROMPTLY, "the app's `ready`", || {
        running.stdout_so_far().lines().any(|line| line == "ready")
    });
    running.signal(33);
    let finished = running.wait(Duration::from_secs(10));
    finished.assert_code(0);
    assert_eq!(finished.stdout, "ready\npending 33\n");
}

#[test]
fn signal_33_is_forwarded_not_fatal_as_subreaper() {
    signal_33_is_forwarded(false);
}

#[test]
fn signal_33_is_forwarded_as_pid1() {
    signal_33_is_forwarded(true);
}

/// Blocks SIGUSR1, 32 and 33 with the raw system call and execs argv[1:].
const EXEC_WITH_32_33_BLOCKED: &str = "
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
mask = ctypes.c_uint64((1 << 9) | (1 << 31) | (1 << 32))
assert libc.syscall(14, 0, ctypes.byref(mask), None, 8) == 0
os.execv(sys.argv[1], sys.argv[1:])
";

/// The app's mask is graceinit's original mask, signals 32 and 33 included. Today (as
/// under tini, whose glibc strips them too) the app gets SIGUSR1 blocked but not 32/33.
#[test]
fn the_app_inherits_blocked_signals_32_and_33() {
    require_tool("python3", "python3");
    let finished = Launch::program(
        "python3",
        [
            "-c",
            EXEC_WITH_32_33_BLOCKED,
            GRACEINIT,
            "--",
            "grep",
            "SigBlk:",
            "/proc/self/status",
        ],
    )
    .run(PROMPTLY);
    finished.assert_code(0);
    let blocked = status_mask(&finished.stdout, "SigBlk:");
    assert_eq!(
        blocked,
        bit(libc::SIGUSR1) | bit(32) | bit(33),
        "the app's SigBlk is {blocked:#x}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. A signal sent to another of graceinit's threads.
