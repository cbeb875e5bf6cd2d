//! `graceinit sleep` as a drop-in for coreutils' `sleep`: under `ENTRYPOINT ["graceinit"]`
//! a `CMD ["sleep", ...]` names the subcommand, so it must take the same arguments, sleep
//! as long, and end on the same signals, also as PID 1 of a PID namespace.
//!
//! Short sleeps are timed; long ones are read from the running process: the timeout it
//! passed to `rt_sigtimedwait` (/proc/PID/syscall, then the timespec in /proc/PID/mem).

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::{GRACEINIT, Launch, Running, require_tool, serial, wait_until};

const SIGNALS: [(&str, i32); 3] = [
    ("TERM", libc::SIGTERM),
    ("INT", libc::SIGINT),
    ("HUP", libc::SIGHUP),
];

/// A child runs from its exec on, a little before `Launch` starts the clock: how much
/// shorter than the sleep the measured time may be.
const HEAD_START: Duration = Duration::from_millis(20);

/// Waits (up to 5 s) until `pid` waits in `rt_sigtimedwait`, which `graceinit sleep` only
/// does once its arguments are parsed and its ending signals blocked (from then on a
/// signal is never lost, even as PID 1), and returns the timeout it waits with: None
/// for ever, else the time left (read from its memory; we are root).
fn sleeping(pid: i32) -> Option<Duration> {
    let mut timespec_address = None;
    wait_until(
        Duration::from_secs(5),
        &format!("pid {pid} to wait in rt_sigtimedwait"),
        || {
            // "NR ARG1 ARG2 ARG3 ...": rt_sigtimedwait(set, info, timeout, sigsetsize).
            let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall"))
                .unwrap_or_else(|e| panic!("pid {pid} exited before sleeping ({e})"));
            let fields: Vec<&str> = syscall.split_whitespace().collect();
            if fields.first() != Some(&libc::SYS_rt_sigtimedwait.to_string().as_str()) {
                return false;
            }
            let timeout = fields[3].trim_start_matches("0x");
            timespec_address = Some(u64::from_str_radix(timeout, 16).unwrap());
            true
        },
    );
    let address = timespec_address.expect("set once waiting");
    if address == 0 {
        return None;
    }
    let memory = File::open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("cannot open /proc/{pid}/mem: {e}"));
    let mut timespec = [0u8; 16];
    memory
        .read_exact_at(&mut timespec, address)
        .unwrap_or_else(|e| panic!("cannot read the timespec in pid {pid}: {e}"));
    let seconds = i64::from_ne_bytes(timespec[..8].try_into().unwrap());
    let nanos = i64::from_ne_bytes(timespec[8..].try_into().unwrap());
    Some(Duration::new(seconds as u64, nanos as u32))
}

/// Sends `sig` to a `graceinit sleep infinity` once it waits, and asserts that it exits
/// promptly with 128+sig.
fn assert_ends_on(running: Running, name: &str, sig: i32) {
    assert_eq!(
        sleeping(running.graceinit_pid()),
        None,
        "infinity has no timeout"
    );
    let sent = Instant::now();
    running.signal(sig);
    let done = running.wait(Duration::from_secs(5));
    done.assert_code(128 + sig);
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "SIG{name} took {:?} to end the sleep",
        sent.elapsed()
    );
}

#[test]
fn short_sleeps_in_every_form_last_as_long_as_they_say_and_arguments_add_up() {
    let _serial = serial();
    for (args, expected_ms) in [
        (&["0"][..], 0),
        (&["0.3"], 300),
        (&[".3"], 300),
        (&["0.3s"], 300),
        (&["0.005m"], 300),
        (&["0.0001h"], 360),
        (&["0.000004d"], 345),
        (&["3e-1"], 300),
        (&["300ms"], 300),
        // Each alone is shorter than their sum, by more than HEAD_START.
        (&["0.2", "0.3"], 500),
        (&["0.1", ".1s", "100ms"], 300),
    ] {
        let expected = Duration::from_millis(expected_ms);
        let done = Launch::direct(["sleep"].iter().chain(args)).run(Duration::from_secs(10));
        done.assert_code(0);
        assert_eq!(done.stderr, "", "{args:?}");
        assert!(
            done.elapsed + HEAD_START >= expected
                && done.elapsed < expected + Duration::from_millis(500),
            "sleep {args:?} took {:?}, expected {expected:?}",
            done.elapsed
        );
    }
}

#[test]
fn long_sleeps_wait_for_the_sum_and_infinity_or_huge_values_for_ever() {
    for (args, expected_secs) in [
        (&["1000"][..], Some(1000)),
        (&["1m"], Some(60)),
        (&["1.5m"], Some(90)),
        (&["2h"], Some(7200)),
        (&["1d"], Some(86400)),
        (&["1m", "30"], Some(90)),
        (&["1h30m"], Some(5400)),
        (&["1e9"], Some(1_000_000_000)),
        (&["infinity"], None),
        (&["inf"], None),
        (&["1", "infinity"], None),
        (&["1e300"], None),
        (&["1e300d", "1e300d"], None),
    ] {
        let running = Launch::direct(["sleep"].iter().chain(args)).start();
        let timeout = sleeping(running.pid());
        match expected_secs {
            None => assert_eq!(timeout, None, "sleep {args:?}"),
            Some(secs) => {
                let expected = Duration::from_secs(secs);
                let timeout = timeout.unwrap_or_else(|| panic!("sleep {args:?}: no timeout"));
                assert!(
                    timeout <= expected && timeout > expected - Duration::from_secs(5),
                    "sleep {args:?} waits {timeout:?}, expected {expected:?}"
                );
            }
        }
        running.signal(libc::SIGTERM);
        running
            .wait(Duration::from_secs(5))
            .assert_code(128 + libc::SIGTERM);
    }
}

#[test]
fn what_coreutils_sleep_rejects_is_a_usage_error_naming_the_argument() {
    for (args, reason) in [
        (&["-1"][..], "cannot be negative"),
        (&["-0.5s"], "cannot be negative"),
        (&["-1500ms"], "cannot be negative"),
        (&["-inf"], "cannot be negative"),
        (&["nan"], "not a number"),
        (&["abc"], "not a time interval"),
        (&["5x"], "not a time interval"),
        (&["5 fortnights"], "not a time interval"),
        (&["--version"], "not a time interval"),
        (&[""], "empty argument"),
        // One bad argument among good ones: nothing is slept.
        (&["1", "abc"], "not a time interval"),
    ] {
        let done = Launch::direct(["sleep"].iter().chain(args)).run(Duration::from_secs(10));
        done.assert_code(2);
        let bad = args.last().unwrap();
        assert!(
            done.stderr.contains(&format!("'{bad}'")) && done.stderr.contains(reason),
            "sleep {args:?}: {}",
            done.stderr
        );
        assert!(
            done.elapsed < Duration::from_millis(500),
            "sleep {args:?} slept {:?} before failing",
            done.elapsed
        );
    }
    let done = Launch::direct(["sleep"]).run(Duration::from_secs(10));
    done.assert_code(2);
    assert!(done.stderr.contains("<DURATION>"), "{}", done.stderr);
}

#[test]
fn sleep_as_cmd_under_a_graceinit_entrypoint_is_a_sleep() {
    require_tool("sleep", "coreutils");
    let _serial = serial();
    let second = Duration::from_secs(1);
    for (how, launch) in [
        // ENTRYPOINT ["graceinit"] + CMD ["sleep", "1"]: PID 1 runs `graceinit sleep 1`.
        ("PID 1: graceinit sleep 1", Launch::pid1(["sleep", "1"])),
        ("graceinit sleep 1", Launch::direct(["sleep", "1"])),
        // With `--`, the real sleep runs supervised: the same outcome.
        ("graceinit -- sleep 1", Launch::direct(["--", "sleep", "1"])),
        (
            "PID 1: graceinit -- sleep 1",
            Launch::pid1(["--", "sleep", "1"]),
        ),
    ] {
        let done = launch.run(Duration::from_secs(10));
        done.assert_code(0);
        assert!(
            done.elapsed + HEAD_START >= second
                && done.elapsed < second + Duration::from_millis(500),
            "{how} took {:?}",
            done.elapsed
        );
    }
}

#[test]
fn term_int_and_hup_end_sleep_infinity_with_128_plus_the_signal() {
    for (name, sig) in SIGNALS {
        assert_ends_on(Launch::direct(["sleep", "infinity"]).start(), name, sig);
    }
}

#[test]
fn term_int_and_hup_end_sleep_infinity_as_pid1() {
    // As PID 1 the kernel discards a signal left at its default action.
    for (name, sig) in SIGNALS {
        assert_ends_on(Launch::pid1(["sleep", "infinity"]).start(), name, sig);
    }
}

#[test]
fn a_signal_ignored_at_start_stays_ignored_as_for_sleep() {
    // nohup sets SIGHUP to SIG_IGN and execs: `nohup sleep` outlives a hangup.
    require_tool("nohup", "coreutils");
    let running = Launch::program("nohup", [GRACEINIT, "sleep", "infinity"]).start();
    assert_eq!(sleeping(running.pid()), None);
    running.signal(libc::SIGHUP);
    running.signal(libc::SIGTERM);
    // Had SIGHUP been taken, it would have ended the sleep first (129): a pending HUP is
    // taken before TERM, the lower number first.
    running
        .wait(Duration::from_secs(5))
        .assert_code(128 + libc::SIGTERM);
}
