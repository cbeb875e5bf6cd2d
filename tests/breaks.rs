//! Attacks on graceinit's promises that broke them (issue 9 follow-up): each test is a
//! failure found with the real binary, kept as a regression test.
//!
//! - A drain signal while the app is being stopped after a failed post_start hook must
//!   still fix `kill_at`: post_stop hooks are cut there and graceinit exits by then.
//! - Real-time signals queue (one instance per kill(2)); tini and dumb-init forward every
//!   instance, graceinit must too.
//! - A storm of queued real-time signals must not starve the event loop: the drain's
//!   SIGKILL still lands at trigger + grace_period.

mod common;

use std::time::{Duration, Instant};

use common::{GRACEINIT, Launch, Running, TempDir, helper, require_tool, send_signal, serial};

/// The margin the README's timing promises are asserted with.
const MARGIN: Duration = Duration::from_millis(500);

fn path_str(path: &std::path::Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}

/// Waits (up to `timeout`) until the process's stdout has a line equal to `line`.
fn wait_for_stdout_line(running: &Running, line: &str, timeout: Duration) {
    common::wait_until(timeout, &format!("`{line}` on stdout"), || {
        running.stdout_so_far().lines().any(|l| l == line)
    });
}

// ---------------------------------------------------------------------------------------
// 1. SIGTERM while the app is being stopped after a failed post_start hook.
//
// The failed post_start starts a shutdown (cause FailedPostStart) with no kill_at for
// what follows the app's exit; the kubelet's SIGTERM that lands during that stop is
// ignored as "the drain is already under way", so it fixes no deadline, and a slow
// post_stop hook runs to its end (30 s here) although the pod's grace period is 2 s.

#[test]
fn sigterm_during_the_stop_after_a_failed_post_start_bounds_post_stop_as_subreaper() {
    sigterm_after_failed_post_start(false);
}

#[test]
fn sigterm_during_the_stop_after_a_failed_post_start_bounds_post_stop_as_pid1() {
    sigterm_after_failed_post_start(true);
}

fn sigterm_after_failed_post_start(pid1: bool) {
    let _serial = serial();
    let dir = TempDir::new("failed-post-start-term");
    let stopping = dir.file("stopping");
    let trapped = dir.file("trapped");
    // The hook fails only once the app's trap is in: post_start runs beside the app, and
    // a stop signal before the trap would kill the app at once.
    let config = dir.write(
        "graceinit.toml",
        &format!(
            r#"[app]
grace_period = "2s"
stop_timeout = "2s"

[[hooks.post_start]]
exec = ["sh", "-c", "while [ ! -e {trapped} ]; do sleep 0.01; done; exit 1"]

[[hooks.post_stop]]
exec = ["sleep", "30"]
"#
        ),
    );
    // The app takes 1 s to stop once told (its stop signal follows the failed hook).
    let app = format!(
        "trap 'echo x > {stopping}; sleep 1; exit 0' TERM; : > {trapped}; while :; do sleep 0.05; done"
    );
    let args = ["--config", &config, "--", "sh", "-c", &app];
    let running = if pid1 {
        Launch::pid1(args).start()
    } else {
        Launch::direct(args).start()
    };
    common::wait_until(
        Duration::from_secs(5),
        "the app to get its stop signal after the failed post_start hook",
        || !dir.read("stopping").is_empty(),
    );
    // The kubelet's SIGTERM: kill_at = now + grace_period (2 s).
    running.signal(libc::SIGTERM);
    let term_at = Instant::now();
    let finished = running.wait(Duration::from_secs(2) + MARGIN);
    let took = term_at.elapsed();
    finished.assert_code(1);
    assert!(
        took <= Duration::from_secs(2) + MARGIN,
        "graceinit exited {took:?} after SIGTERM; kill_at was 2 s after it\n{}",
        finished.stderr
    );
}

// ---------------------------------------------------------------------------------------
// 2. Every queued instance of a real-time signal is forwarded.
//
// signal-hook's handlers only set a per-signal flag, so N queued instances of one RT
// signal become one forwarded signal (tini and dumb-init forward all N: they take each
// instance with sigtimedwait/sigwait). An app counting RT signals (a job queue, a
// profiler's ticks) loses all but one.

#[test]
fn every_queued_real_time_signal_is_forwarded_as_subreaper() {
    every_queued_real_time_signal_is_forwarded(false);
}

#[test]
fn every_queued_real_time_signal_is_forwarded_as_pid1() {
    every_queued_real_time_signal_is_forwarded(true);
}

fn every_queued_real_time_signal_is_forwarded(pid1: bool) {
    const COUNT: usize = 200;
    let _serial = serial();
    let rtcount = path_str(&helper("rtcount"));
    let count = COUNT.to_string();
    let args = ["--", rtcount.as_str(), "3", count.as_str()];
    let running = if pid1 {
        Launch::pid1(args).start()
    } else {
        Launch::direct(args).start()
    };
    wait_for_stdout_line(&running, "ready", Duration::from_secs(5));
    let graceinit = running.graceinit_pid();
    for _ in 0..COUNT {
        send_signal(graceinit, libc::SIGRTMIN() + 3);
    }
    // The app exits 0 once it has taken COUNT instances.
    let finished = running.wait(Duration::from_secs(5));
    finished.assert_code(0);
    assert_eq!(finished.stdout, format!("ready\ncount={COUNT}\n"));
}

// ---------------------------------------------------------------------------------------
// 3. A storm of queued real-time signals does not starve the drain's deadlines.
//
// Each queued instance is delivered to a signal handler on the event loop's thread, and
// the kernel delivers pending instances one after the other before it returns to user
// space; dequeuing the lower of two interleaved RT signals walks the whole queue, so
// 60000 queued signals keep graceinit's only runtime thread inside signal delivery for
// many seconds: no reaping, no deadline. tini and dumb-init take them with sigtimedwait
// and reap between two of them. Here the app ignores SIGTERM, so its SIGKILL is due at
// trigger + grace_period (2 s); today it lands 10+ s late.
//
// graceinit runs as `nobody` (setpriv) so that the queued signals are charged to that
// user's RLIMIT_SIGPENDING, not to root's, which other processes on the machine share.

#[test]
fn a_real_time_signal_storm_does_not_delay_the_drain_sigkill() {
    const STORM: usize = 60_000;
    let _serial = serial();
    require_tool("setpriv", "util-linux");
    let (first, second) = (libc::SIGRTMIN() + 1, libc::SIGRTMIN() + 2);
    let app = format!("trap '' TERM {first} {second}; echo ready; while :; do sleep 0.2; done");
    let running = Launch::program(
        "setpriv",
        [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            GRACEINIT,
            "--grace-period",
            "2s",
            "--stop-timeout",
            "1s",
            "--",
            "sh",
            "-c",
            &app,
        ],
    )
    .start();
    // setpriv execs graceinit: same pid. The app prints once graceinit's handlers are in.
    wait_for_stdout_line(&running, "ready", Duration::from_secs(5));
    let graceinit = running.pid();
    running.signal(libc::SIGTERM);
    let term_at = Instant::now();
    let mut sent = 0;
    for i in 0..STORM {
        let sig = if i % 2 == 0 { first } else { second };
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(graceinit, sig) } == 0 {
            sent += 1;
        }
    }
    assert!(
        sent > STORM / 2,
        "only {sent} of {STORM} signals could be queued"
    );
    let finished =
        running.wait((Duration::from_secs(2) + MARGIN).saturating_sub(term_at.elapsed()));
    let took = term_at.elapsed();
    finished.assert_code(137);
    assert!(
        took >= Duration::from_secs(2) - MARGIN && took <= Duration::from_secs(2) + MARGIN,
        "SIGKILL is due 2 s after SIGTERM; graceinit exited {took:?} after it\n{}",
        finished.stderr
    );
}
