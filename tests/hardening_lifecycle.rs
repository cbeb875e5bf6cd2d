//! Regression tests for issue 9's lifecycle items: waiting for hook output never stretches
//! a deadline and never piles up pipes (4), a drain aborts the on_ready hooks (5), a drain
//! signal after the app exited fixes kill_at (6), leftovers that keep forking new
//! sessions are all gone (7), `--log-format json` stays JSON when hooks print (10), and a
//! run without a config file is quiet (13).
//!
//! The real binary, real processes, real signals and real time, as in tests/lifecycle.rs
//! (whose `Scenario` and `Graceinit` these tests share). Every test holds `serial()`: the
//! timing tests measure deadlines to within 500 ms, and the storm tests load the machine.

mod common;
#[allow(
    dead_code,
    reason = "shared with tests/lifecycle.rs, which uses the rest"
)]
mod lifecycle_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{Launch, TempDir, args, comm, helper, send_signal, serial, state, wait_until};
use lifecycle_support::{
    Graceinit, Scenario, assert_between, assert_lines, hook_lines, now_ns, process_exists, secs,
};

const SECOND: i128 = 1_000_000_000;
const WAIT: Duration = Duration::from_secs(20);

/// SIGKILLs, when dropped, the processes a test recorded that still run `comm`: hook
/// descendants that left their group, should graceinit have left them behind.
struct Strays {
    pids: Vec<i32>,
    comm: &'static str,
}

impl Strays {
    fn new(comm: &'static str) -> Strays {
        Strays {
            pids: Vec::new(),
            comm,
        }
    }

    /// Adds the pids listed, one a line, in `file` (read when the test decides).
    fn add_from(&mut self, file: &Path) {
        let text = fs::read_to_string(file).unwrap_or_default();
        self.pids
            .extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }

    /// Asserts that none of them exists any more (zombies included).
    fn assert_gone(&self, why: &str) {
        for &pid in &self.pids {
            assert_eq!(state(pid), None, "{why}: process {pid} ({:?})", comm(pid));
        }
    }
}

impl Drop for Strays {
    fn drop(&mut self) {
        for &pid in &self.pids {
            if comm(pid).as_deref() == Some(self.comm) {
                send_signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Writes `leave.sh` into `dir` and returns the command that runs it: `sh leave.sh PIDS
/// SECONDS` starts `sleep SECONDS` in a session of its own (setsid), holding the caller's
/// stdout and stderr open, appends its pid to PIDS, and returns once the sleep has left
/// the caller's process group (else killing the hook's group could still catch it).
fn leave_behind(dir: &TempDir, seconds: u32) -> String {
    let script = dir.write(
        "leave.sh",
        r#"marker="$1.$$"
setsid sh -c 'echo $$ > "$0"; exec sleep "$1"' "$marker" "$2" &
while [ ! -s "$marker" ]; do sleep 0.01; done
cat "$marker" >> "$1"
"#,
    );
    format!("sh {script} {} {seconds}", dir.file("pids"))
}

/// The number of open descriptors of `pid`.
fn open_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("cannot list /proc/{pid}/fd: {e}"))
        .count()
}

/// The descriptors of `pid` with what they refer to, for messages.
fn describe_fds(pid: i32) -> String {
    let mut fds: Vec<(i32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    let fd = entry.file_name().to_string_lossy().parse().unwrap_or(-1);
                    let target = fs::read_link(entry.path())
                        .map_or_else(|e| format!("({e})"), |t| t.display().to_string());
                    (fd, target)
                })
                .collect()
        })
        .unwrap_or_default();
    fds.sort_unstable();
    format!("{fds:?}")
}

/// Polls until wall-clock time `until_ns` (nanoseconds since the epoch) and panics if
/// `file` ever exists meanwhile.
fn assert_never_appears(file: &Path, until_ns: i128, why: &str) {
    loop {
        assert!(
            !file.exists(),
            "{why}: {} appeared ({:.3}s before the end of the watch)",
            file.display(),
            secs(until_ns - now_ns())
        );
        if now_ns() >= until_ns {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------
// 4. Waiting for a hook's output never stretches a deadline, and never piles up

/// A pre_stop hook whose setsid'd child keeps its stdout and stderr open ends when its own
/// process does: the next pre_stop hook starts within 500 ms (the report waits at most
/// 100 ms for the output), not after a second of "output grace".
#[test]
fn the_next_pre_stop_hook_starts_at_once_when_a_descendant_holds_the_output_open() {
    let _serial = serial();
    let s = Scenario::new("grace-pre-stop");
    let mut strays = Strays::new("sleep");
    let config = s.config(&format!(
        r#"
[app]
grace_period = "10s"
stop_timeout = "5s"

[[hooks.pre_stop]]
exec = ["sh", "-c", "{leave}; echo one; date +%s%N > {end1}"]

[[hooks.pre_stop]]
exec = ["sh", "-c", "date +%s%N > {start2}; echo two"]
"#,
        leave = leave_behind(&s, 30),
        end1 = s.file("end1"),
        start2 = s.file("start2"),
    ));
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));

    graceinit.drain();
    s.wait_for_line("start2", "pre_stop#2 to start", WAIT);
    strays.add_from(&s.join("pids"));
    let (_, stderr) = graceinit.finish(0, "the app exited 0 on SIGTERM");

    let gap = s.number::<i128>("start2") - s.number::<i128>("end1");
    assert_between(
        gap,
        0..SECOND / 2,
        "pre_stop#2 started after pre_stop#1 ended; a descendant holding #1's output open must not delay it",
    );
    assert_eq!(hook_lines(&stderr, "pre_stop#1"), ["one"], "{stderr}");
    assert_eq!(hook_lines(&stderr, "pre_stop#2"), ["two"], "{stderr}");
    assert_lines(&stderr, "FailedPreStopHook", 0, "both hooks succeeded");
    strays.assert_gone("the setsid'd leftover is ended with the others");
}

/// After a drain, post_stop hooks end by kill_at (grace_period 2s after the trigger) and
/// graceinit exits then, even though each hook left a setsid'd process holding its
/// output open: the first hook's report does not wait a second for its output, and the
/// second, cut at kill_at, does not add a second of output grace after it.
#[test]
fn post_stop_hooks_end_by_kill_at_when_descendants_hold_their_output_open() {
    let _serial = serial();
    let s = Scenario::new("grace-post-stop");
    let mut strays = Strays::new("sleep");
    let config = s.config(&format!(
        r#"
[app]
grace_period = "2s"
stop_timeout = "1s"

[[hooks.post_stop]]
exec = ["sh", "-c", "{leave}; echo one; date +%s%N > {end1}"]

[[hooks.post_stop]]
exec = ["sh", "-c", "date +%s%N > {start2}; {leave}; echo two; exec sleep 10"]
timeout = "30s"
"#,
        leave = leave_behind(&s, 30),
        end1 = s.file("end1"),
        start2 = s.file("start2"),
    ));
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));

    let sent = Instant::now();
    graceinit.drain();
    s.wait_for_line("start2", "post_stop#2 to start", WAIT);
    let exit = graceinit.wait(WAIT);
    strays.add_from(&s.join("pids"));
    let stderr = graceinit.stderr();
    assert_eq!(
        exit.code, 0,
        "the app exited 0 on SIGTERM; stderr:\n{stderr}"
    );

    let took = exit.at - sent;
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_millis(2500),
        "graceinit exited {took:?} after SIGTERM; post_stop#2 runs until kill_at (2s), no longer\n{stderr}"
    );
    let gap = s.number::<i128>("start2") - s.number::<i128>("end1");
    assert_between(
        gap,
        0..SECOND / 2,
        "post_stop#2 started after post_stop#1 ended; a descendant holding #1's output open must not delay it",
    );
    assert_eq!(hook_lines(&stderr, "post_stop#1"), ["one"], "{stderr}");
    assert_eq!(hook_lines(&stderr, "post_stop#2"), ["two"], "{stderr}");
    assert_eq!(s.events().len(), 1, "the app got TERM once");
    assert_eq!(
        strays.pids.len(),
        2,
        "both hooks recorded their setsid'd child"
    );
    strays.assert_gone("the setsid'd leftovers are ended before graceinit exits");
}

/// 40 post_start hooks, each leaving a setsid'd `sleep 60` that holds its stdout and
/// stderr open: graceinit keeps at most 16 pipes of ended hooks open, so its descriptors
/// never grow past its baseline (the same graceinit with a config without hooks) + 16,
/// plus 7 while a hook starts (the read and write ends of its two pipes, its /dev/null
/// stdin and both ends of std's exec-error socket pair), and are at most baseline + 16
/// once all ended.
#[test]
fn relays_of_abandoned_pipes_do_not_pile_up() {
    const HOOKS: usize = 40;
    const KEPT: usize = 16;
    const RUNNING_HOOK: usize = 7;
    let _serial = serial();
    let dir = TempDir::new("grace-pile-up");

    let empty = dir.write("empty.toml", "");
    let baseline_run = Graceinit::start(&["--config", &empty, "--", "sleep", "1000"], &[]);
    let baseline = open_fds(baseline_run.pid());
    let baseline_fds = describe_fds(baseline_run.pid());
    drop(baseline_run);

    let leave = leave_behind(&dir, 60);
    let mut config = String::new();
    for _ in 0..HOOKS {
        config += &format!(
            "[[hooks.post_start]]\nexec = [\"sh\", \"-c\", \"{leave}; echo started\"]\n\n"
        );
    }
    config += &format!(
        "[[hooks.on_ready]]\nexec = [\"touch\", \"{}\"]\n",
        dir.file("ready")
    );
    let config = dir.write("graceinit.toml", &config);
    let mut strays = Strays::new("sleep");
    let mut graceinit = Graceinit::start(&["--config", &config, "--", "sleep", "1000"], &[]);
    let pid = graceinit.pid();
    let peak_allowed = baseline + KEPT + RUNNING_HOOK;
    let mut peak = 0;
    wait_until(
        WAIT,
        "the on_ready hook, after all 40 post_start hooks",
        || {
            let now = open_fds(pid);
            peak = peak.max(now);
            assert!(
                now <= peak_allowed,
                "graceinit holds {now} descriptors after {} hooks, more than baseline {baseline} + {KEPT} + {RUNNING_HOOK} for the running hook: {}\nbaseline: {baseline_fds}",
                fs::read_to_string(dir.join("pids"))
                    .unwrap_or_default()
                    .lines()
                    .count(),
                describe_fds(pid)
            );
            dir.join("ready").exists()
        },
    );
    strays.add_from(&dir.join("pids"));
    assert_eq!(strays.pids.len(), HOOKS, "every hook left its sleep");
    let mut settled = 0;
    wait_until(
        Duration::from_secs(2),
        &format!("graceinit to hold at most baseline {baseline} + {KEPT} descriptors"),
        || {
            settled = open_fds(pid);
            settled <= baseline + KEPT
        },
    );
    assert!(
        graceinit.running(),
        "the app still runs:\n{}",
        graceinit.stderr()
    );
    graceinit.drain();
    let (_, stderr) = graceinit.finish(143, "the app (sleep) died of SIGTERM");
    assert_eq!(
        hook_lines(&stderr, "post_start#40"),
        ["started"],
        "the last hook's output was relayed:\n{stderr}"
    );
    assert_lines(&stderr, "FailedPostStartHook", 0, "every hook succeeded");
    strays.assert_gone("the hooks' setsid'd sleeps are ended as leftovers");
}

// ---------------------------------------------------------------------------------------
// 5. A drain aborts the on_ready hooks once the stop signal goes out

/// The config of the on_ready tests: the first on_ready hook takes 2 s (it writes the
/// time it started into `on_ready.started`), the second would write `registered`. A 1 s
/// post_stop hook keeps graceinit running a while after the app exited, long enough for
/// a second on_ready hook that was not aborted to show up.
fn on_ready_config(s: &Scenario, extra: &str) -> String {
    s.config(&format!(
        r#"
{extra}

[[hooks.post_stop]]
sleep = "1s"

[[hooks.on_ready]]
exec = ["sh", "-c", "date +%s%N > {started}; sleep 2"]

[[hooks.on_ready]]
exec = ["touch", "{registered}"]
"#,
        started = s.file("on_ready.started"),
        registered = s.file("registered"),
    ))
}

/// Asserts that the second on_ready hook (the registration) never ran: `registered` is
/// absent now that graceinit has exited, and stays absent for 2 s after the first hook
/// would have ended (today it runs as soon as the first hook ends).
fn assert_registration_never_ran(s: &Scenario, stderr: &str) {
    let registered = s.join("registered");
    assert!(
        !registered.exists(),
        "the second on_ready hook ran although the app was told to stop (or exited); stderr:\n{stderr}"
    );
    let started: i128 = s.number("on_ready.started");
    let watch_until = (started + 4 * SECOND).max(now_ns() + 2 * SECOND);
    assert_never_appears(
        &registered,
        watch_until,
        "the second on_ready hook must never run",
    );
    assert_lines(stderr, "[on_ready#2]", 0, "no output of on_ready#2");
}

/// drain = [SIGTERM, SIGINT]: SIGTERM during the first (slow) on_ready hook starts the
/// drain, which waits for on_ready; SIGINT skips ahead and sends the stop signal now. From
/// then on no registration may land: the second on_ready hook never runs.
#[test]
fn a_drain_signal_during_on_ready_aborts_the_remaining_on_ready_hooks() {
    let _serial = serial();
    let s = Scenario::new("on-ready-drain");
    let config = on_ready_config(&s, "[signals]\ndrain = [\"SIGTERM\", \"SIGINT\"]");
    let mut graceinit = s.start(&["--config", &config], &s.app_recording_term(0));
    s.wait_for_line("on_ready.started", "the first on_ready hook to start", WAIT);

    graceinit.drain();
    graceinit.wait_for_stderr("DrainStarted", WAIT);
    let sigint_at = graceinit.signal(libc::SIGINT);
    let (_, stderr) = graceinit.finish(0, "the app exited 0 on its stop signal");

    assert_between(
        s.term_once() - sigint_at,
        0..SECOND / 2,
        "the app got its stop signal after the SIGINT; it should be at once",
    );
    assert_registration_never_ran(&s, &stderr);
}

/// The app exits by itself while the drain waits for a slow on_ready hook: the second
/// on_ready hook never runs, and graceinit exits with the app's code.
#[test]
fn the_app_exiting_while_the_drain_waits_for_on_ready_aborts_the_remaining_on_ready_hooks() {
    let _serial = serial();
    let s = Scenario::new("on-ready-app-exit");
    let config = on_ready_config(&s, "");
    let app = format!(
        "touch {ready}; while [ ! -e {go} ]; do sleep 0.02; done; exit 5",
        ready = s.file("ready"),
        go = s.file("go"),
    );
    let mut graceinit = s.start(&["--config", &config], &app);
    s.wait_for_line("on_ready.started", "the first on_ready hook to start", WAIT);

    graceinit.drain();
    graceinit.wait_for_stderr("DrainStarted", WAIT);
    s.write("go", "");
    let (_, stderr) = graceinit.finish(5, "graceinit exits with the app's code");
    assert_registration_never_ran(&s, &stderr);
}

// ---------------------------------------------------------------------------------------
// 6. A drain signal after the app exited by itself fixes kill_at

/// The app exits 4 by itself; its post_stop hook would run 10 s. SIGTERM then fixes
/// kill_at = now + grace_period (2s): the hook is cut there and graceinit exits with 4.
#[test]
fn sigterm_while_post_stop_hooks_run_cuts_them_at_the_grace_period() {
    let _serial = serial();
    let s = Scenario::new("post-stop-sigterm");
    let config = s.config(&format!(
        r#"
[app]
grace_period = "2s"
stop_timeout = "1s"

[[hooks.post_stop]]
exec = ["sh", "-c", "echo $$ > {hook}; exec sleep 10"]
timeout = "30s"
"#,
        hook = s.file("hook.pid"),
    ));
    let mut strays = Strays::new("sleep");
    let mut graceinit = Graceinit::spawn(&["--config", &config, "--", "sh", "-c", "exit 4"], &[]);
    s.wait_for_line("hook.pid", "the post_stop hook to start", WAIT);
    strays.add_from(&s.join("hook.pid"));
    wait_until(WAIT, "the post_stop hook to exec `sleep`", || {
        comm(strays.pids[0]).as_deref() == Some("sleep")
    });

    let sent = Instant::now();
    graceinit.drain();
    let (exit, stderr) = graceinit.finish(4, "graceinit exits with the app's code");
    let took = exit.at - sent;
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_millis(2500),
        "graceinit exited {took:?} after SIGTERM; the post_stop hook is cut at kill_at (2s)\n{stderr}"
    );
    assert!(
        !process_exists(strays.pids[0]),
        "the cut hook is gone with graceinit"
    );
}

// ---------------------------------------------------------------------------------------
// 7. Leftovers that keep forking new sessions are all gone when graceinit exits

/// Ends a session storm (tests/helpers/sessionstorm.c) when dropped: creates DIR/stop,
/// which every member obeys, then SIGKILLs whatever still has DIR in its argv, until
/// nothing does and the heartbeat stands still (bounded).
struct StormGuard<'a> {
    dir: &'a TempDir,
}

impl Drop for StormGuard<'_> {
    fn drop(&mut self) {
        self.dir.write("stop", "");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let members = storm_members(self.dir);
            for &pid in &members {
                send_signal(pid, libc::SIGKILL);
            }
            if members.is_empty() && !storm_beating(self.dir) {
                return;
            }
        }
    }
}

/// The processes whose argv holds the storm's directory (graceinit's own included, while
/// it runs).
fn storm_members(dir: &TempDir) -> Vec<i32> {
    let marker = dir.file("");
    let marker = marker.trim_end_matches('/').as_bytes();
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(marker.len()).any(|w| w == marker))
        })
        .collect()
}

/// Whether some chain of the storm is still alive: its heartbeat file grows within 300 ms
/// (a member adds a byte every 5 ms; a short-lived member is easy to miss in /proc).
fn storm_beating(dir: &TempDir) -> bool {
    let size = || fs::metadata(dir.join("beat")).map_or(0, |m| m.len());
    let before = size();
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        if size() != before {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The app leaves 2 chains of processes that ignore SIGTERM and each fork a successor in
/// a new session every 5 ms, plus 100 leftovers that ignore SIGTERM, and exits 3.
/// Afterwards no process of the storm is left and no chain still beats.
fn session_storm(pid1: bool) {
    let _serial = serial();
    let dir = TempDir::new(if pid1 {
        "storm-pid1"
    } else {
        "storm-subreaper"
    });
    let _guard = StormGuard { dir: &dir };
    let storm = helper("sessionstorm");
    let list = args(&[
        "--",
        storm.to_str().expect("UTF-8 path"),
        &dir.file(""),
        "3",
        "2",
        "5",
        "100",
    ]);
    let launch = if pid1 {
        Launch::pid1(list)
    } else {
        Launch::direct(list)
    };
    let done = launch.run(Duration::from_secs(30));
    done.assert_code(3);
    assert!(
        dir.join("running").exists(),
        "the storm got going:\n{}",
        done.stderr
    );
    let survivors = storm_members(&dir);
    assert!(
        survivors.is_empty(),
        "processes of the storm outlived graceinit: {:?}\nstderr:\n{}",
        survivors
            .iter()
            .map(|&pid| (pid, comm(pid), state(pid)))
            .collect::<Vec<_>>(),
        done.stderr
    );
    assert!(
        !storm_beating(&dir),
        "a chain of the storm still forks after graceinit exited\nstderr:\n{}",
        done.stderr
    );
    assert!(
        storm_members(&dir).is_empty(),
        "and nothing of the storm turned up later"
    );
}

#[test]
fn leftovers_forking_new_sessions_in_a_loop_are_all_gone_after_exit_as_subreaper() {
    session_storm(false);
}

#[test]
fn leftovers_forking_new_sessions_in_a_loop_are_all_gone_after_exit_as_pid1() {
    session_storm(true);
}

// ---------------------------------------------------------------------------------------
// 10. `--log-format json`: every line is JSON, hook output included

/// The hook lines of a JSON log, by (phase, index, stream), in order: (message, truncated).
type HookRecords = BTreeMap<(String, u64, String), Vec<(String, bool)>>;

#[test]
fn json_logs_stay_json_when_hooks_print() {
    const CUT: usize = 16384;
    const LONG: usize = 20000;
    let _serial = serial();
    let s = Scenario::new("json-hooks");
    // stdout and stderr lines, a 20000-byte line, and a line that is not UTF-8.
    let post_start = s.write(
        "post_start.sh",
        &format!(
            "echo out1\necho err1 >&2\nhead -c {LONG} /dev/zero | tr '\\000' a\necho\nprintf 'bad \\377\\376 bytes\\n' >&2\n"
        ),
    );
    let config = s.config(&format!(
        r#"
[[hooks.post_start]]
exec = ["sh", "{post_start}"]

[[hooks.pre_stop]]
exec = ["true"]

[[hooks.pre_stop]]
exec = ["sh", "-c", "echo deregistered"]
"#
    ));
    // stderr goes to a file: the test must see the bytes graceinit wrote, not a lossy
    // copy of them. The app's own stderr (its shell reports the `sleep` killed with it)
    // is not graceinit's to format: it goes elsewhere.
    let log = s.file("stderr.log");
    let app = format!(
        "exec 2> {}; {}",
        s.file("app.stderr"),
        s.app_recording_term(0)
    );
    let command = format!(
        "exec {graceinit} --log-format json --config {config} -- sh -c '{app}' 2> {log}",
        graceinit = common::GRACEINIT,
        app = app.replace('\'', r"'\''"),
    );
    let mut graceinit = Graceinit::launch(Launch::program("sh", ["-c", &command]));
    wait_until(WAIT, "the app to be ready", || s.join("ready").exists());
    wait_until(WAIT, "post_start#1's last line in the log", || {
        fs::read(&log).is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains("bytes"))
    });
    graceinit.drain();
    graceinit.finish(0, "the app exited 0 on SIGTERM");

    let bytes = fs::read(&log).expect("the stderr log");
    // For messages: the log with each line shortened to 300 bytes.
    let text: String = String::from_utf8_lossy(&bytes)
        .lines()
        .map(|line| match line.char_indices().nth(300) {
            Some((end, _)) => format!("{}... ({} bytes)\n", &line[..end], line.len()),
            None => format!("{line}\n"),
        })
        .collect();
    let mut hooks = HookRecords::new();
    let mut reasons = Vec::new();
    for raw in bytes.split(|&b| b == b'\n').filter(|raw| !raw.is_empty()) {
        let line = String::from_utf8_lossy(raw);
        // from_slice also rejects bytes that are not UTF-8.
        let record: serde_json::Value = serde_json::from_slice(raw).unwrap_or_else(|e| {
            panic!("not a JSON object in UTF-8 ({e}): {line:?}\nthe whole log:\n{text}")
        });
        assert!(record.is_object(), "{line}");
        assert!(record["timestamp"].is_string(), "{line}");
        assert!(record["level"].is_string(), "{line}");
        let fields = &record["fields"];
        assert!(fields["message"].is_string(), "{line}");
        if let Some(reason) = fields["reason"].as_str() {
            reasons.push(reason.to_string());
        }
        if record["target"] != "graceinit::hook" {
            continue;
        }
        assert_eq!(record["level"], "INFO", "{line}");
        let key = (
            fields["phase"]
                .as_str()
                .unwrap_or_else(|| panic!("no phase: {line}"))
                .to_string(),
            fields["index"]
                .as_u64()
                .unwrap_or_else(|| panic!("no numeric index: {line}")),
            fields["stream"]
                .as_str()
                .unwrap_or_else(|| panic!("no stream: {line}"))
                .to_string(),
        );
        let truncated = fields["truncated"]
            .as_bool()
            .unwrap_or_else(|| panic!("no truncated flag: {line}"));
        hooks.entry(key).or_default().push((
            fields["message"].as_str().expect("a message").to_string(),
            truncated,
        ));
    }
    assert_eq!(
        reasons,
        ["Started", "DrainStarted", "DrainFinished"],
        "the lifecycle events, in order:\n{text}"
    );
    let key =
        |phase: &str, index: u64, stream: &str| (phase.to_string(), index, stream.to_string());
    assert_eq!(
        hooks.keys().cloned().collect::<Vec<_>>(),
        [
            key("post_start", 1, "stderr"),
            key("post_start", 1, "stdout"),
            key("pre_stop", 2, "stdout"),
        ],
        "hook lines by phase, index and stream:\n{text}"
    );

    let stdout = &hooks[&key("post_start", 1, "stdout")];
    assert_eq!(stdout[0], ("out1".to_string(), false), "{stdout:?}");
    let pieces = &stdout[1..];
    assert!(
        pieces.len() >= 2,
        "the {LONG}-byte line is cut into pieces: {} piece(s)",
        pieces.len()
    );
    for (i, (piece, truncated)) in pieces.iter().enumerate() {
        assert!(
            piece.len() <= CUT,
            "piece {i} has {} bytes, more than {CUT}",
            piece.len()
        );
        assert_eq!(
            *truncated,
            i + 1 < pieces.len(),
            "every piece but the last is marked truncated (piece {i} of {})",
            pieces.len()
        );
    }
    let joined: String = pieces.iter().map(|(piece, _)| piece.as_str()).collect();
    assert_eq!(
        joined,
        "a".repeat(LONG),
        "the pieces make up the whole line"
    );

    let stderr = &hooks[&key("post_start", 1, "stderr")];
    assert_eq!(stderr.len(), 2, "{stderr:?}");
    assert_eq!(stderr[0], ("err1".to_string(), false));
    let (bad, truncated) = &stderr[1];
    assert!(
        bad.starts_with("bad ") && bad.ends_with(" bytes") && !truncated,
        "the line that is not UTF-8 is relayed as text: {bad:?}"
    );

    assert_eq!(
        hooks[&key("pre_stop", 2, "stdout")],
        [("deregistered".to_string(), false)]
    );
}

// ---------------------------------------------------------------------------------------
// 13. Quiet by default without a config file

#[test]
fn a_normal_run_without_a_config_prints_nothing() {
    let _serial = serial();
    let done = Launch::direct(["--", "true"]).run(WAIT);
    done.assert_code(0);
    assert_eq!(done.stderr, "", "graceinit -- true");

    let done = Launch::direct(["--", "sh", "-c", "exit 3"]).run(WAIT);
    done.assert_code(3);
    assert_eq!(done.stderr, "", "graceinit -- sh -c 'exit 3'");

    for pid1 in [false, true] {
        let list = ["--", "sleep", "100"];
        let running = if pid1 {
            Launch::pid1(list)
        } else {
            Launch::direct(list)
        }
        .start();
        running.wait_for_app("sleep");
        running.signal(libc::SIGTERM);
        let done = running.wait(WAIT);
        done.assert_code(143);
        assert_eq!(
            done.stderr, "",
            "a SIGTERM'd graceinit -- sleep 100 (PID 1: {pid1})"
        );
    }
}

#[test]
fn with_a_config_file_or_v_the_lifecycle_events_show() {
    let _serial = serial();
    let dir = TempDir::new("quiet-config");
    let empty = dir.write("empty.toml", "");
    let done = Launch::direct(["--config", &empty, "--", "true"]).run(WAIT);
    done.assert_code(0);
    assert_eq!(
        done.stderr.lines().count(),
        1,
        "an empty config: the Started line alone\n{}",
        done.stderr
    );
    assert!(
        done.stderr.contains("Started: app \"true\""),
        "{}",
        done.stderr
    );

    let done = Launch::direct(["-v", "--", "true"]).run(WAIT);
    done.assert_code(0);
    assert_eq!(
        done.stderr_lines_with("Started: app \"true\""),
        1,
        "-v without a config: {}",
        done.stderr
    );
}

#[test]
fn warnings_and_errors_still_print_without_a_config() {
    let _serial = serial();
    let dir = TempDir::new("quiet-warnings");
    let app = format!(
        "trap '' TERM; touch {}; while :; do sleep 0.1; done",
        dir.file("ready")
    );
    let running = Launch::direct([
        "--grace-period",
        "1s",
        "--stop-timeout",
        "1s",
        "--",
        "sh",
        "-c",
        app.as_str(),
    ])
    .start();
    wait_until(WAIT, "the app to be ready", || dir.join("ready").exists());
    running.signal(libc::SIGTERM);
    let done = running.wait(WAIT);
    done.assert_code(137);
    assert_eq!(
        done.stderr_lines_with("Killing"),
        1,
        "the Killing event prints without a config:\n{}",
        done.stderr
    );
    for line in done.stderr.lines() {
        assert!(
            line.contains(" WARN ") || line.contains(" ERROR "),
            "only warnings and errors without a config: {line:?}\n{}",
            done.stderr
        );
    }

    let done = Launch::direct(["--", dir.file("no-such-program").as_str()]).run(WAIT);
    done.assert_code(127);
    assert!(
        done.stderr.contains("cannot run") && done.stderr.contains("no-such-program"),
        "{}",
        done.stderr
    );
}

#[test]
fn a_json_run_without_a_config_prints_nothing_either() {
    let _serial = serial();
    let done = Launch::direct(["--log-format", "json", "--", "sh", "-c", "exit 3"]).run(WAIT);
    done.assert_code(3);
    assert_eq!(
        done.stderr, "",
        "graceinit --log-format json -- sh -c 'exit 3'"
    );
}
