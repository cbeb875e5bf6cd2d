//! The restart policy (issue 10), end to end: `[app] restart = "never" | "on-failure" |
//! "always"`, Kubernetes' back-off (`restart_backoff`, `restart_backoff_max`), which hooks
//! run on which transition, leftovers of the old app ended before the new one starts, a
//! drain stopping restarts, and the exit code after restarts.
//!
//! The real binary, real processes, real signals and real time, as in tests/lifecycle.rs
//! (whose `Scenario` and `Graceinit` these tests share). The apps are `sh` scripts that
//! count their own runs in a file, so each run of one graceinit can do something else;
//! hooks and apps append to one `log` file only what is ordered by cause (on_ready after
//! post_start, the app's exit after its on_ready, post_stop after the exit, the next
//! post_start after that), so its lines are asserted exactly. Times compared across
//! processes are the scripts' `date +%s%N`. Every test holds `serial()`: several measure
//! delays to within 500 ms on a 2-core machine.

mod common;
#[allow(
    dead_code,
    reason = "shared with tests/lifecycle.rs, which uses the rest"
)]
mod lifecycle_support;

use std::thread;
use std::time::{Duration, Instant};

use common::{Crowd, Launch, serial, wait_until};
use lifecycle_support::{Graceinit, Mode, Scenario, assert_between, now_ns, secs, stamped_lines};

const SECOND: i128 = 1_000_000_000;
/// The bound on every wait for something the product does within a second or two.
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Helpers

/// The events that tell starts and restarts apart, in order, without pids:
/// `Started: app "sh"`, `Started: app "sh" (restart N)` and whole `BackOff: restart N in D
/// (the app ended with STATUS)` messages.
fn restart_events(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| {
            if let Some(at) = line.find("Started: app ") {
                let event = &line[at..];
                let (app, rest) = event
                    .split_once(" is pid ")
                    .unwrap_or_else(|| panic!("a Started event without a pid: {line:?}"));
                let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                Some(match rest.strip_prefix(" (restart ") {
                    Some(n) => {
                        let end = n
                            .find(')')
                            .unwrap_or_else(|| panic!("an unclosed `(restart`: {line:?}"));
                        format!("{app} (restart {})", &n[..end])
                    }
                    None => app.to_string(),
                })
            } else if let Some(at) = line.find("BackOff: ") {
                let event = &line[at..];
                let end = event
                    .find(')')
                    .unwrap_or_else(|| panic!("a BackOff event without its status: {line:?}"));
                Some(event[..=end].to_string())
            } else {
                None
            }
        })
        .collect()
}

/// The Started event of the app's first start (`restart` 0) or of restart `restart`.
fn started(restart: usize) -> String {
    match restart {
        0 => r#"Started: app "sh""#.to_string(),
        n => format!(r#"Started: app "sh" (restart {n})"#),
    }
}

/// The BackOff event of restart `n`, `delay` later, after the app ended with `status`.
fn back_off(n: usize, delay: &str, status: &str) -> String {
    format!("BackOff: restart {n} in {delay} (the app ended with {status})")
}

/// Asserts the exact sequence of Started and BackOff events in `stderr`.
fn assert_events(stderr: &str, expected: &[String], why: &str) {
    assert_eq!(restart_events(stderr), expected, "{why}; stderr:\n{stderr}");
}

/// Config entries for one hook per phase in `phases`, each appending the phase's name
/// to the scenario's `log`.
fn logging_hooks(s: &Scenario, phases: &[&str]) -> String {
    phases
        .iter()
        .map(|phase| {
            format!(
                "[[hooks.{phase}]]\nexec = [\"sh\", \"-c\", \"echo {phase} >> {log}\"]\n\n",
                log = s.file("log")
            )
        })
        .collect()
}

/// Writes `app.sh` and returns graceinit's arguments: `--config CONFIG -- sh app.sh`.
fn app_args(s: &Scenario, config: &str, script: &str) -> Vec<String> {
    let app = s.write("app.sh", script);
    ["--config", config, "--", "sh", app.as_str()]
        .map(str::to_string)
        .to_vec()
}

/// Starts graceinit with `args` as `mode` says (not waiting for anything).
fn spawn(mode: Mode, args: &[String]) -> Graceinit {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Graceinit::spawn_as(mode, &args, &[])
}

/// Waits until the file `name` exists, failing at once (with graceinit's output) if
/// graceinit exits first.
fn wait_for_file(graceinit: &mut Graceinit, s: &Scenario, name: &str, what: &str) {
    wait_until(WAIT, what, || s.join(name).exists() || !graceinit.running());
    assert!(
        s.join(name).exists(),
        "graceinit exited before {what}; stderr:\n{}",
        graceinit.stderr()
    );
}

/// The lines of the scenario's file `name`.
fn file_lines(s: &Scenario, name: &str) -> Vec<String> {
    s.read(name).lines().map(str::to_string).collect()
}

/// The `log` lines of `runs` runs that each became ready and exited with `code`:
/// post_start, on_ready, the app's exit, post_stop.
fn ready_runs(runs: usize, code: i32) -> Vec<String> {
    let run = [
        "post_start".to_string(),
        "on_ready".to_string(),
        format!("exit {code}"),
        "post_stop".to_string(),
    ];
    run.iter().cycle().take(4 * runs).cloned().collect()
}

/// The delays before each restart, from the stamps an app wrote: `start NS` when it
/// starts, `exit NS` just before it exits; asserts they alternate and that the last run
/// did not stamp an exit (it ended graceinit).
fn restart_delays(stamps: &str) -> Vec<i128> {
    let stamps = stamped_lines(stamps);
    let names: Vec<&str> = stamps.iter().map(|(name, _)| name.as_str()).collect();
    let expected: Vec<&str> = (0..names.len())
        .map(|i| if i % 2 == 0 { "start" } else { "exit" })
        .collect();
    assert!(
        names == expected && names.len() % 2 == 1,
        "runs that start, exit, start, ..., start: {stamps:?}"
    );
    stamps
        .windows(2)
        .skip(1)
        .step_by(2)
        .map(|pair| pair[1].1 - pair[0].1)
        .collect()
}

/// Asserts that each delay lies in its expected range (a promised delay and +500 ms).
fn assert_delays(delays: &[i128], expected: &[(i128, &str)], stderr: &str) {
    assert_eq!(
        delays.len(),
        expected.len(),
        "one delay per restart: {:?}\n{stderr}",
        delays.iter().map(|&d| secs(d)).collect::<Vec<_>>()
    );
    for (i, (&delay, &(promised, as_logged))) in delays.iter().zip(expected).enumerate() {
        assert_between(
            delay,
            promised..promised + SECOND / 2,
            &format!(
                "restart {} came after the app's exit ({as_logged} promised); all delays: {:?}",
                i + 1,
                delays.iter().map(|&d| secs(d)).collect::<Vec<_>>()
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------
// never / on-failure / always, each with an exit 0, an exit 3 and a death by signal

#[derive(Clone, Copy)]
enum Ending {
    Success,
    Failure,
    Killed,
}

impl Ending {
    fn command(self) -> &'static str {
        match self {
            Ending::Success => "exit 0",
            Ending::Failure => "exit 3",
            Ending::Killed => "kill -KILL $$",
        }
    }

    fn code(self) -> i32 {
        match self {
            Ending::Success => 0,
            Ending::Failure => 3,
            Ending::Killed => 137,
        }
    }

    fn status(self) -> &'static str {
        match self {
            Ending::Success => "exit code 0",
            Ending::Failure => "exit code 3",
            Ending::Killed => "killed by SIGKILL",
        }
    }
}

/// The app's first run ends as `ending` says; every later run touches `ready` and exits
/// 5 on SIGTERM. Restarted (`restarts`): graceinit logs one BackOff at once with the
/// first run's status, starts the app again, and after a drain exits 5 without another
/// restart. Not restarted: graceinit exits with the first run's status and starts nothing.
fn first_run_ends(policy: Option<&str>, ending: Ending, restarts: bool) {
    let _serial = serial();
    let s = Scenario::new("policy");
    let config = s.config(&match policy {
        Some(policy) => format!("[app]\nrestart = \"{policy}\"\n"),
        None => String::new(),
    });
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo run >> {runs}\n\
             if [ \"$(wc -l < {runs})\" -eq 1 ]; then {end}; fi\n\
             trap 'exit 5' TERM\n\
             touch {ready}\n\
             while :; do sleep 0.05 & wait $!; done\n",
            runs = s.file("runs"),
            end = ending.command(),
            ready = s.file("ready"),
        ),
    );
    let mut graceinit = spawn(Mode::Subreaper, &args);
    if restarts {
        wait_for_file(&mut graceinit, &s, "ready", "the restarted app");
        graceinit.drain();
        let (_, stderr) = graceinit.finish(5, "the restarted app exited 5 on the drain's SIGTERM");
        assert_events(
            &stderr,
            &[started(0), back_off(1, "0s", ending.status()), started(1)],
            "one restart, at once, and none after the drain",
        );
        assert_eq!(file_lines(&s, "runs").len(), 2, "the app ran twice");
    } else {
        let (_, stderr) = graceinit.finish(ending.code(), "graceinit ends with the app's status");
        assert_events(&stderr, &[started(0)], "no restart");
        assert_eq!(file_lines(&s, "runs").len(), 1, "the app ran once");
    }
}

#[test]
fn never_ends_with_the_apps_exit_0() {
    first_run_ends(Some("never"), Ending::Success, false);
}

#[test]
fn never_ends_with_the_apps_exit_3() {
    first_run_ends(Some("never"), Ending::Failure, false);
}

#[test]
fn never_ends_with_the_apps_death_by_signal() {
    first_run_ends(Some("never"), Ending::Killed, false);
}

#[test]
fn the_policy_defaults_to_never() {
    first_run_ends(None, Ending::Failure, false);
}

#[test]
fn on_failure_ends_with_the_apps_exit_0() {
    first_run_ends(Some("on-failure"), Ending::Success, false);
}

#[test]
fn on_failure_restarts_after_exit_3() {
    first_run_ends(Some("on-failure"), Ending::Failure, true);
}

#[test]
fn on_failure_restarts_after_death_by_signal() {
    first_run_ends(Some("on-failure"), Ending::Killed, true);
}

#[test]
fn always_restarts_after_exit_0() {
    first_run_ends(Some("always"), Ending::Success, true);
}

#[test]
fn always_restarts_after_exit_3() {
    first_run_ends(Some("always"), Ending::Failure, true);
}

#[test]
fn always_restarts_after_death_by_signal() {
    first_run_ends(Some("always"), Ending::Killed, true);
}

/// A command that cannot be started at all (not found) ends graceinit with 127 at once,
/// whatever the policy: nothing is restarted.
#[test]
fn a_command_not_found_exits_127_at_once_whatever_the_policy() {
    let _serial = serial();
    for policy in ["never", "on-failure", "always"] {
        let s = Scenario::new("not-found");
        let config = s.config(&format!(
            "[app]\nrestart = \"{policy}\"\nrestart_backoff = \"1s\"\n"
        ));
        let missing = s.file("no-such-app");
        let finished = Launch::direct(["--config", &config, "--", &missing]).run(WAIT);
        finished.assert_code(127);
        assert!(
            finished.elapsed < Duration::from_millis(500),
            "restart = {policy}: graceinit took {:?} to give up on a missing command\n{}",
            finished.elapsed,
            finished.stderr
        );
        assert_eq!(
            finished.stderr_lines_with("BackOff"),
            0,
            "restart = {policy}: no restart\n{}",
            finished.stderr
        );
        assert_eq!(
            finished.stderr_lines_with("cannot run"),
            1,
            "restart = {policy}: the reason is given once\n{}",
            finished.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------
// The back-off

/// restart_backoff = 1s, restart_backoff_max = 2s: the first restart at once, then 1s,
/// 2s, and 2s again (the cap), each measured from the app's exit to its next start, and
/// logged as such.
#[test]
fn back_off_doubles_from_the_base_up_to_the_cap() {
    let _serial = serial();
    let s = Scenario::new("back-off");
    let config = s.config(
        "[app]\nrestart = \"on-failure\"\nrestart_backoff = \"1s\"\nrestart_backoff_max = \"2s\"\n",
    );
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo \"start $(date +%s%N)\" >> {stamps}\n\
             if [ \"$(grep -c start {stamps})\" -le 4 ]; then\n\
             echo \"exit $(date +%s%N)\" >> {stamps}; exit 3\n\
             fi\n\
             exit 0\n",
            stamps = s.file("stamps"),
        ),
    );
    let mut graceinit = spawn(Mode::Subreaper, &args);
    let exit = graceinit.wait(Duration::from_secs(20));
    let stderr = graceinit.stderr();
    assert_eq!(exit.code, 0, "the fifth run exited 0; stderr:\n{stderr}");

    let failed = "exit code 3";
    assert_events(
        &stderr,
        &[
            started(0),
            back_off(1, "0s", failed),
            started(1),
            back_off(2, "1s", failed),
            started(2),
            back_off(3, "2s", failed),
            started(3),
            back_off(4, "2s", failed),
            started(4),
        ],
        "four restarts: at once, then 1s doubling up to the 2s cap",
    );
    assert_delays(
        &restart_delays(&s.read("stamps")),
        &[
            (0, "0s"),
            (SECOND, "1s"),
            (2 * SECOND, "2s"),
            (2 * SECOND, "2s"),
        ],
        &stderr,
    );
}

/// The back-off starts over once the app ran at least twice restart_backoff_max (4s)
/// before it exited: after a run of 4.5s the next restart is at once, and the one after
/// it comes after the base again (1s), not after the cap.
#[test]
fn back_off_starts_over_after_the_app_ran_twice_the_cap() {
    let _serial = serial();
    let s = Scenario::new("back-off-reset");
    let config = s.config(
        "[app]\nrestart = \"on-failure\"\nrestart_backoff = \"1s\"\nrestart_backoff_max = \"2s\"\n",
    );
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo \"start $(date +%s%N)\" >> {stamps}\n\
             case \"$(grep -c start {stamps})\" in\n\
             3) sleep 4.5 ;;\n\
             5) exit 0 ;;\n\
             esac\n\
             echo \"exit $(date +%s%N)\" >> {stamps}\n\
             exit 3\n",
            stamps = s.file("stamps"),
        ),
    );
    let mut graceinit = spawn(Mode::Subreaper, &args);
    let exit = graceinit.wait(Duration::from_secs(20));
    let stderr = graceinit.stderr();
    assert_eq!(exit.code, 0, "the fifth run exited 0; stderr:\n{stderr}");

    let failed = "exit code 3";
    assert_events(
        &stderr,
        &[
            started(0),
            back_off(1, "0s", failed),
            started(1),
            back_off(2, "1s", failed),
            started(2),
            back_off(3, "0s", failed),
            started(3),
            back_off(4, "1s", failed),
            started(4),
        ],
        "the third run lasted 4.5s (over twice the 2s cap): its restart is at once, the next after the base",
    );
    assert_delays(
        &restart_delays(&s.read("stamps")),
        &[(0, "0s"), (SECOND, "1s"), (0, "0s"), (SECOND, "1s")],
        &stderr,
    );
}

// ---------------------------------------------------------------------------------------
// A drain stops restarts

/// A drain during the back-off (restart 2 due in 10s): graceinit exits at once with the
/// app's last status (3), and no hook runs again (pre_stop included: there is nothing to
/// stop).
fn drain_during_back_off(mode: Mode) {
    let _serial = serial();
    let s = Scenario::new("drain-back-off");
    s.write("log", "");
    let config = s.config(&format!(
        "[app]\nrestart = \"on-failure\"\nrestart_backoff = \"10s\"\nrestart_backoff_max = \"20s\"\n\n{}",
        logging_hooks(&s, &["post_start", "on_ready", "pre_stop", "post_stop"])
    ));
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo run >> {runs}\n\
             while [ \"$(grep -c on_ready {log})\" -lt \"$(wc -l < {runs})\" ]; do sleep 0.01; done\n\
             echo 'exit 3' >> {log}\n\
             exit 3\n",
            runs = s.file("runs"),
            log = s.file("log"),
        ),
    );
    let mut graceinit = spawn(mode, &args);
    graceinit.wait_for_stderr("BackOff: restart 2 in 10s", WAIT);
    wait_until(WAIT, "the second run's post_stop", || {
        file_lines(&s, "log").len() == 8
    });

    let sent = Instant::now();
    graceinit.drain();
    let exit = graceinit.wait(WAIT);
    let stderr = graceinit.stderr();
    let took = exit.at - sent;
    assert_eq!(
        exit.code, 3,
        "graceinit exits with the app's last status; stderr:\n{stderr}"
    );
    assert!(
        took < Duration::from_millis(500),
        "graceinit exited {took:?} after the SIGTERM; during the back-off it exits at once\n{stderr}"
    );
    assert_eq!(
        file_lines(&s, "log"),
        ready_runs(2, 3),
        "two runs with their hooks, and no hook after the drain"
    );
    assert_events(
        &stderr,
        &[
            started(0),
            back_off(1, "0s", "exit code 3"),
            started(1),
            back_off(2, "10s", "exit code 3"),
        ],
        "no start after the drain",
    );
    assert_eq!(file_lines(&s, "runs").len(), 2, "the app ran twice");
}

#[test]
fn drain_during_back_off_exits_at_once_with_the_last_status_as_subreaper() {
    drain_during_back_off(Mode::Subreaper);
}

#[test]
fn drain_during_back_off_exits_at_once_with_the_last_status_as_pid1() {
    drain_during_back_off(Mode::Pid1);
}

/// The app's second run (restart = "always") is drained: pre_stop runs once, the app
/// gets SIGTERM once and exits 7, post_stop runs, and graceinit exits 7 instead of
/// restarting it.
#[test]
fn drain_while_the_app_runs_stops_restarts() {
    let _serial = serial();
    let s = Scenario::new("drain-running");
    s.write("log", "");
    let config = s.config(&format!(
        "[app]\nrestart = \"always\"\n\n{}",
        logging_hooks(&s, &["post_start", "on_ready", "pre_stop", "post_stop"])
    ));
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo run >> {runs}\n\
             n=$(wc -l < {runs})\n\
             while [ \"$(grep -c on_ready {log})\" -lt $n ]; do sleep 0.01; done\n\
             if [ $n -eq 1 ]; then echo 'exit 3' >> {log}; exit 3; fi\n\
             trap 'echo app_term >> {log}; exit 7' TERM\n\
             touch {ready}\n\
             while :; do sleep 0.05 & wait $!; done\n",
            runs = s.file("runs"),
            log = s.file("log"),
            ready = s.file("ready"),
        ),
    );
    let mut graceinit = spawn(Mode::Subreaper, &args);
    wait_for_file(&mut graceinit, &s, "ready", "the restarted app");

    graceinit.drain();
    let (_, stderr) = graceinit.finish(7, "the app exited 7 on the drain's SIGTERM");
    let mut expected = ready_runs(1, 3);
    expected.extend(
        [
            "post_start",
            "on_ready",
            "pre_stop",
            "app_term",
            "post_stop",
        ]
        .map(str::to_string),
    );
    assert_eq!(
        file_lines(&s, "log"),
        expected,
        "pre_stop ran once, in the drain, and nothing started after it"
    );
    assert_events(
        &stderr,
        &[started(0), back_off(1, "0s", "exit code 3"), started(1)],
        "no restart after the drain",
    );
    assert_eq!(file_lines(&s, "runs").len(), 2, "the app ran twice");
}

// ---------------------------------------------------------------------------------------
// Leftovers of a crashed app

/// The app's first run starts a child that records and survives SIGTERM, then dies of
/// SIGKILL. Before the second run starts, the child has had its SIGTERM, then SIGKILL
/// kill_leftovers_after (1s) later, and has been reaped: the second run finds no
/// /proc entry (not even a zombie) for its pid.
fn leftovers_gone_before_the_restart(mode: Mode) {
    let _serial = serial();
    let s = Scenario::new("leftovers");
    let config = s.config(
        "[app]\nrestart = \"on-failure\"\nkill_leftovers_after = \"1s\"\nrestart_backoff = \"10s\"\n",
    );
    let leftover = s.write(
        "leftover.sh",
        &format!(
            "trap 'echo \"term $(date +%s%N)\" >> {terms}' TERM\n\
             echo $$ > {pid}\n\
             while :; do sleep 0.05 & wait $!; done\n",
            terms = s.file("leftover-terms"),
            pid = s.file("leftover.pid"),
        ),
    );
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo \"start $(date +%s%N)\" >> {runs}\n\
             if [ \"$(wc -l < {runs})\" -eq 1 ]; then\n\
             sh {leftover} &\n\
             while [ ! -s {pid} ]; do sleep 0.01; done\n\
             kill -KILL $$\n\
             fi\n\
             cat /proc/$(cat {pid})/stat > {check} 2>/dev/null || echo gone > {check}\n\
             exit 0\n",
            runs = s.file("runs"),
            pid = s.file("leftover.pid"),
            check = s.file("check"),
        ),
    );
    let mut graceinit = spawn(mode, &args);
    let (_, stderr) = graceinit.finish(0, "the second run exited 0");

    assert_events(
        &stderr,
        &[
            started(0),
            back_off(1, "0s", "killed by SIGKILL"),
            started(1),
        ],
        "one restart, at once",
    );
    assert_eq!(
        s.read("check"),
        "gone\n",
        "the old app's child was reaped before the new app started (its /proc/PID/stat when the new app started)"
    );
    // One SIGTERM round. As a subreaper, graceinit signals the app's process group and
    // then each descendant that its scan of /proc finds, so a leftover still in the group
    // gets the round's SIGTERM twice (the second later the longer the scan takes), and
    // the shell runs its trap once or twice.
    let terms = stamped_lines(&s.read("leftover-terms"));
    assert!(
        (1..=2).contains(&terms.len()),
        "the leftover got one round of SIGTERM: {terms:?}"
    );
    let runs = stamped_lines(&s.read("runs"));
    assert_eq!(runs.len(), 2, "the app ran twice: {runs:?}");
    assert_between(
        runs[1].1 - terms[0].1,
        SECOND * 9 / 10..SECOND * 3 / 2,
        "the new app started after the leftover's SIGTERM; it survives that, so its SIGKILL comes kill_leftovers_after (1s) later",
    );
}

#[test]
fn leftovers_of_a_crashed_app_are_gone_before_the_restart_as_subreaper() {
    leftovers_gone_before_the_restart(Mode::Subreaper);
}

#[test]
fn leftovers_of_a_crashed_app_are_gone_before_the_restart_as_pid1() {
    leftovers_gone_before_the_restart(Mode::Pid1);
}

/// Not PID 1, on a host with 2000 unrelated processes (a /proc scan takes a while): the
/// app's first run leaves a `sleep` in its process group and exits 3. The SIGTERM round
/// for leftovers kills that sleep through the group at once; the round's /proc scan for
/// the app's other descendants is still going when the app is restarted. Whatever that
/// scan finds, the restarted app (and the hooks) must not get the old app's SIGTERM: the
/// second run gets no SIGTERM until the test's drain.
#[test]
fn the_old_apps_leftover_round_never_reaches_the_restarted_app_on_a_crowded_host() {
    let _serial = serial();
    let crowd = Crowd::new(2000);
    let s = Scenario::new("stale-round");
    let config = s.config("[app]\nrestart = \"on-failure\"\nkill_leftovers_after = \"5s\"\n");
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo run >> {runs}\n\
             if [ \"$(wc -l < {runs})\" -eq 1 ]; then sleep 600 & exit 3; fi\n\
             trap 'echo \"term $(date +%s%N)\" >> {terms}; exit 5' TERM\n\
             touch {ready}\n\
             while :; do sleep 0.05 & wait $!; done\n",
            runs = s.file("runs"),
            terms = s.file("terms"),
            ready = s.file("ready"),
        ),
    );
    let mut graceinit = spawn(Mode::Subreaper, &args);
    wait_for_file(&mut graceinit, &s, "ready", "the restarted app");
    // Long past the end of any scan started before the restart.
    let watch_until = now_ns() + 3 * SECOND / 2;
    while now_ns() < watch_until {
        assert!(
            !s.join("terms").exists(),
            "the restarted app got a SIGTERM nobody sent it ({}, {:.3}s before the end of the watch); stderr:\n{}",
            s.read("terms").trim(),
            secs(watch_until - now_ns()),
            graceinit.stderr()
        );
        thread::sleep(Duration::from_millis(5));
    }
    graceinit.drain();
    let (_, stderr) = graceinit.finish(5, "the restarted app exited 5 on the drain's SIGTERM");
    drop(crowd);
    assert_events(
        &stderr,
        &[started(0), back_off(1, "0s", "exit code 3"), started(1)],
        "one restart, and none after the drain",
    );
    assert_eq!(
        file_lines(&s, "terms").len(),
        1,
        "the second run got SIGTERM once, the drain's"
    );
}

// ---------------------------------------------------------------------------------------
// Restarts counted, hooks on every transition

/// restart = "on-failure": three runs exit 3, the fourth exits 0. Each run waits for its
/// own on_ready before it exits, so every hook's run is part of the record: 3 BackOff
/// events (0s, 100ms, 200ms), 4 Started events, post_start, on_ready and post_stop 4
/// times each in that order around each exit, pre_stop never (nothing was drained), and
/// graceinit exits 0.
#[test]
fn restarts_are_counted_and_hooks_run_on_every_start_and_exit() {
    let _serial = serial();
    let s = Scenario::new("counted");
    s.write("log", "");
    let config = s.config(&format!(
        "[app]\nrestart = \"on-failure\"\nrestart_backoff = \"100ms\"\nrestart_backoff_max = \"1s\"\n\n{}",
        logging_hooks(&s, &["post_start", "on_ready", "pre_stop", "post_stop"])
    ));
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo run >> {runs}\n\
             n=$(wc -l < {runs})\n\
             while [ \"$(grep -c on_ready {log})\" -lt $n ]; do sleep 0.01; done\n\
             if [ $n -le 3 ]; then echo 'exit 3' >> {log}; exit 3; fi\n\
             echo 'exit 0' >> {log}\n\
             exit 0\n",
            runs = s.file("runs"),
            log = s.file("log"),
        ),
    );
    let mut graceinit = spawn(Mode::Subreaper, &args);
    let (_, stderr) = graceinit.finish(0, "the fourth run exited 0");

    let failed = "exit code 3";
    assert_events(
        &stderr,
        &[
            started(0),
            back_off(1, "0s", failed),
            started(1),
            back_off(2, "100ms", failed),
            started(2),
            back_off(3, "200ms", failed),
            started(3),
        ],
        "three restarts",
    );
    let mut expected = ready_runs(3, 3);
    expected.extend(ready_runs(1, 0));
    assert_eq!(
        file_lines(&s, "log"),
        expected,
        "post_start, on_ready, exit, post_stop for each of the four runs"
    );
    assert_eq!(file_lines(&s, "runs").len(), 4, "the app ran four times");
}

// ---------------------------------------------------------------------------------------
// A failed post_start hook

/// post_start fails on the app's first run (once the app's TERM trap is in). The app is
/// stopped with SIGTERM, on which it records `app_term` and then runs `on_term`; post_stop
/// runs. `restarts`: the app starts again at once, its post_start succeeds, it becomes
/// ready and exits 0, and graceinit exits 0. Otherwise graceinit exits 1.
fn failed_post_start(policy: &str, on_term: &str, restarts: bool) {
    let _serial = serial();
    let s = Scenario::new("failed-post-start");
    s.write("log", "");
    let post_start = s.write(
        "post_start.sh",
        &format!(
            "echo post_start >> {log}\n\
             if [ \"$(grep -c post_start {log})\" -eq 1 ]; then\n\
             while [ ! -e {ready} ]; do sleep 0.01; done\n\
             exit 1\n\
             fi\n",
            log = s.file("log"),
            ready = s.file("ready"),
        ),
    );
    let config = s.config(&format!(
        "[app]\nrestart = \"{policy}\"\nstop_timeout = \"5s\"\n\n\
         [[hooks.post_start]]\nexec = [\"sh\", \"{post_start}\"]\n\n{}",
        logging_hooks(&s, &["on_ready", "pre_stop", "post_stop"])
    ));
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo run >> {runs}\n\
             if [ \"$(wc -l < {runs})\" -eq 1 ]; then\n\
             trap 'echo app_term >> {log}; {on_term}' TERM\n\
             touch {ready}\n\
             while :; do sleep 0.05 & wait $!; done\n\
             fi\n\
             while [ \"$(grep -c on_ready {log})\" -lt 1 ]; do sleep 0.01; done\n\
             echo 'exit 0' >> {log}\n\
             exit 0\n",
            runs = s.file("runs"),
            log = s.file("log"),
            ready = s.file("ready"),
        ),
    );
    let mut graceinit = spawn(Mode::Subreaper, &args);
    let stopped = ["post_start", "app_term", "post_stop"].map(str::to_string);
    if restarts {
        let (_, stderr) = graceinit.finish(0, "the second run exited 0");
        let mut expected = stopped.to_vec();
        expected.extend(ready_runs(1, 0));
        assert_eq!(
            file_lines(&s, "log"),
            expected,
            "the first run was stopped (no on_ready), the second ran its hooks"
        );
        let events = restart_events(&stderr);
        assert!(
            events.len() == 3
                && events[0] == started(0)
                && events[1].starts_with("BackOff: restart 1 in 0s (")
                && events[2] == started(1),
            "one restart, at once: {events:?}\n{stderr}"
        );
        assert_eq!(file_lines(&s, "runs").len(), 2, "the app ran twice");
    } else {
        let (_, stderr) = graceinit.finish(
            1,
            "a failed post_start hook ends graceinit with 1 under never",
        );
        assert_eq!(
            file_lines(&s, "log"),
            stopped,
            "the app was stopped, post_stop ran, and nothing else"
        );
        assert_events(&stderr, &[started(0)], "no restart");
        assert_eq!(file_lines(&s, "runs").len(), 1, "the app ran once");
    }
    let stderr = graceinit.stderr();
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("FailedPostStartHook"))
            .count(),
        1,
        "one FailedPostStartHook event:\n{stderr}"
    );
}

/// With on-failure, a failed post_start stops the app (it dies of the stop signal) and
/// restarts it.
#[test]
fn failed_post_start_with_on_failure_stops_and_restarts_the_app() {
    failed_post_start("on-failure", "trap - TERM; kill -TERM $$", true);
}

/// The restart follows the hook's failure, not the app's status: an app that exits 0 on
/// the stop signal is restarted too.
#[test]
fn failed_post_start_with_on_failure_restarts_an_app_that_exits_0_when_stopped() {
    failed_post_start("on-failure", "exit 0", true);
}

/// With never, a failed post_start stops the app and graceinit exits 1, as before
/// restarts existed.
#[test]
fn failed_post_start_with_never_exits_1() {
    failed_post_start("never", "trap - TERM; kill -TERM $$", false);
}

// ---------------------------------------------------------------------------------------
// The exit code

/// restart = "always", remap_exit = { 3 = 30, 4 = 40 }: the first run exits 3, the
/// second exits 4 on the drain's SIGTERM; graceinit exits 40, the last exit remapped
/// (not 30, not 4). The BackOff event shows the app's own status.
#[test]
fn the_exit_code_is_the_last_exits_with_remap_exit_applied() {
    let _serial = serial();
    let s = Scenario::new("remap");
    let config =
        s.config("[app]\nrestart = \"always\"\n\n[signals]\nremap_exit = { 3 = 30, 4 = 40 }\n");
    let args = app_args(
        &s,
        &config,
        &format!(
            "echo run >> {runs}\n\
             if [ \"$(wc -l < {runs})\" -eq 1 ]; then exit 3; fi\n\
             trap 'exit 4' TERM\n\
             touch {ready}\n\
             while :; do sleep 0.05 & wait $!; done\n",
            runs = s.file("runs"),
            ready = s.file("ready"),
        ),
    );
    let mut graceinit = spawn(Mode::Subreaper, &args);
    wait_for_file(&mut graceinit, &s, "ready", "the restarted app");
    graceinit.drain();
    let (_, stderr) = graceinit.finish(40, "the last exit (4) remapped to 40");
    assert_events(
        &stderr,
        &[started(0), back_off(1, "0s", "exit code 3"), started(1)],
        "one restart",
    );
}
