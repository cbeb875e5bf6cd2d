//! The lifecycle's transitions, without a process: inputs in, actions out, time chosen.

use std::time::Duration;

use super::*;
use crate::config::{self, Action as HookAction, Hook, Overrides, Probe};
use crate::hooks::Outcome;
use crate::supervisor::report::TrafficReport;
use crate::supervisor::snapshot::Phase;
use crate::traffic::Observed;

const TERM: c_int = libc::SIGTERM;
const INT: c_int = libc::SIGINT;
const KILL: c_int = libc::SIGKILL;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn pid(n: i32) -> Pid {
    Pid::from_raw(n)
}

fn hook(phase: HookPhase, index: usize) -> Hook {
    let action = HookAction::Sleep(secs(1.0));
    Hook {
        phase,
        index,
        as_written: action.clone(),
        action,
        timeout: secs(30.0),
        on_failure: match phase {
            HookPhase::PostStart => OnFailure::Fail,
            HookPhase::PreStop => OnFailure::Continue,
            _ => OnFailure::Ignore,
        },
    }
}

/// Default settings (grace 30 s, stop_timeout 10 s, kill_leftovers_after 2 s, back-off
/// 10 s to 5 min), with one hook in each phase listed.
fn settings(phases: &[HookPhase]) -> Settings {
    let mut settings = config::defaults(&Overrides::default()).unwrap();
    for &phase in phases {
        let hooks = match phase {
            HookPhase::PostStart => &mut settings.hooks.post_start,
            HookPhase::OnReady => &mut settings.hooks.on_ready,
            HookPhase::PreStop => &mut settings.hooks.pre_stop,
            HookPhase::PostStop => &mut settings.hooks.post_stop,
        };
        hooks.push(hook(phase, 1));
    }
    settings
}

/// A lifecycle driven by hand, with its own clock.
struct Run {
    lifecycle: Lifecycle,
    t0: Instant,
    now: Instant,
    /// Every action so far, in order.
    all: Vec<Action>,
}

impl Run {
    fn new(settings: Settings) -> Run {
        let mut lifecycle = Lifecycle::new(Arc::new(settings), "\"app\"".into(), false);
        assert_eq!(lifecycle.start(), [Action::StartApp]);
        let t0 = Instant::now();
        Run {
            lifecycle,
            t0,
            now: t0,
            all: vec![Action::StartApp],
        }
    }

    /// Started as pid 100, post_start (if any) done.
    fn running(settings: Settings) -> Run {
        let mut run = Run::new(settings);
        let actions = run.on(Input::AppStarted(pid(100)));
        if let Some(run_id) = hook_run(&actions, HookPhase::PostStart) {
            run.phase_done(HookPhase::PostStart, run_id, true);
        }
        run
    }

    fn at(&mut self, seconds: f64) -> &mut Self {
        self.now = self.t0 + secs(seconds);
        self
    }

    fn on(&mut self, input: Input) -> Vec<Action> {
        let actions = self.lifecycle.on(input, self.now);
        self.all.extend(actions.iter().cloned());
        actions
    }

    fn signal(&mut self, sig: c_int) -> Vec<Action> {
        self.on(Input::Signal(sig))
    }

    fn phase_done(&mut self, phase: HookPhase, run: u64, ok: bool) -> Vec<Action> {
        self.on(Input::PhaseDone { phase, run, ok })
    }

    /// The timer, at the time the lifecycle asked for.
    fn timer(&mut self) -> Vec<Action> {
        let at = self.lifecycle.wake_at().expect("a wake-up is armed");
        self.now = at;
        self.on(Input::Timer)
    }

    fn wake_in(&self) -> Option<Duration> {
        self.lifecycle.wake_at().map(|at| at - self.now)
    }

    fn exits(&mut self, status: ExitStatus) -> Vec<Action> {
        let pid = self.lifecycle.app.pid.expect("the app runs");
        self.on(Input::AppExited(pid, status))
    }

    /// From the app's exit: nothing left, no post_stop hooks run by hand.
    fn nothing_left(&mut self) -> Vec<Action> {
        self.on(Input::Reaped(Children::None))
    }

    fn phase(&self) -> Phase {
        self.lifecycle.snapshot().phase
    }

    fn count(&self, wanted: impl Fn(&Action) -> bool) -> usize {
        self.all.iter().filter(|a| wanted(a)).count()
    }
}

/// The actions that touch the world (no logs, no events).
/// What the actions do to processes and hooks: not what they say, nor the drain's traffic
/// sampler (tested on its own, `the_drain_reports_the_traffic_...`).
fn effects(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| {
            !matches!(
                a,
                Action::Log(..)
                    | Action::Announce(_)
                    | Action::WatchTraffic
                    | Action::FinishWatchingTraffic
            )
        })
        .cloned()
        .collect()
}

fn reasons(actions: &[Action]) -> Vec<Reason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce(event) => Some(event.reason),
            _ => None,
        })
        .collect()
}

fn messages(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce(event) => Some(format!("{}: {}", event.reason, event.message)),
            Action::Log(_, message) => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn hook_run(actions: &[Action], wanted: HookPhase) -> Option<u64> {
    actions.iter().find_map(|a| match a {
        Action::RunHooks { phase, run, .. } if *phase == wanted => Some(*run),
        _ => None,
    })
}

fn forward(sig: c_int) -> Action {
    Action::Forward {
        sig,
        sent: sig,
        to: Target::Group(pid(100)),
    }
}

fn is_run_of(phase: HookPhase) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::RunHooks { phase: p, .. } if *p == phase)
}

fn is_forward_of(sig: c_int) -> impl Fn(&Action) -> bool {
    move |a| matches!(a, Action::Forward { sig: s, .. } if *s == sig)
}

// --- starting ---

#[test]
fn without_hooks_the_app_is_ready_once_started() {
    let mut run = Run::new(settings(&[]));
    assert_eq!(run.phase(), Phase::Starting);
    let actions = run.on(Input::AppStarted(pid(100)));
    assert_eq!(reasons(&actions), [Reason::Started]);
    assert_eq!(messages(&actions)[0], "Started: app \"app\" is pid 100");
    assert!(effects(&actions).is_empty());
    assert_eq!(run.phase(), Phase::Running);
    assert!(run.lifecycle.snapshot().ready);
    // Idle: no timer.
    assert_eq!(run.wake_in(), None);
}

#[test]
fn post_start_runs_with_the_app_and_on_ready_after_it() {
    let mut run = Run::new(settings(&[HookPhase::PostStart, HookPhase::OnReady]));
    let actions = run.on(Input::AppStarted(pid(100)));
    let post_start = hook_run(&actions, HookPhase::PostStart).unwrap();
    assert_eq!(
        effects(&actions),
        [Action::RunHooks {
            phase: HookPhase::PostStart,
            run: post_start,
            deadline: None
        }]
    );
    assert_eq!(run.phase(), Phase::Starting);
    assert!(!run.lifecycle.snapshot().ready);
    let actions = run.phase_done(HookPhase::PostStart, post_start, true);
    assert!(hook_run(&actions, HookPhase::OnReady).is_some());
    assert_eq!(run.phase(), Phase::Running);
    assert!(run.lifecycle.snapshot().ready);
}

#[test]
fn a_failed_post_start_stops_the_app_and_exits_1() {
    let mut run = Run::new(settings(&[HookPhase::PostStart, HookPhase::OnReady]));
    let actions = run.on(Input::AppStarted(pid(100)));
    let post_start = hook_run(&actions, HookPhase::PostStart).unwrap();
    run.at(1.0);
    let actions = run.phase_done(HookPhase::PostStart, post_start, false);
    assert_eq!(effects(&actions), [forward(TERM)]);
    // SIGKILL after stop_timeout.
    assert_eq!(run.wake_in(), Some(secs(10.0)));
    let actions = run.timer();
    assert_eq!(effects(&actions), [Action::KillApp(pid(100))]);
    assert_eq!(reasons(&actions), [Reason::Killing]);
    assert_eq!(
        run.exits(ExitStatus::Signaled(KILL)),
        vec![
            Action::Log(Level::INFO, "the app exited (killed by SIGKILL)".into()),
            Action::Reap
        ]
    );
    let actions = run.nothing_left();
    let by = run.now + OUTPUT_AT_EXIT;
    assert_eq!(effects(&actions), [Action::FlushOutput { by }]);
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(1)]);
    assert_eq!(run.count(is_run_of(HookPhase::OnReady)), 0);
}

#[test]
fn the_first_start_failing_exits_with_the_shells_code() {
    let mut settings = settings(&[HookPhase::PostStop]);
    settings.restart = RestartPolicy::Always;
    let mut run = Run::new(settings);
    let actions = run.on(Input::AppNotStarted(127));
    assert_eq!(
        effects(&actions),
        [Action::FlushOutput {
            by: run.now + OUTPUT_AT_EXIT
        }]
    );
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(127)]);
    assert_eq!(run.count(|a| *a == Action::StartApp), 1);
    assert_eq!(run.count(is_run_of(HookPhase::PostStop)), 0);
}

// --- signals ---

#[test]
fn other_signals_are_forwarded_rewritten_or_dropped() {
    let mut settings = settings(&[]);
    settings.rewrite.set(libc::SIGUSR1, Some(libc::SIGUSR2));
    settings.rewrite.set(libc::SIGHUP, None);
    let mut run = Run::running(settings);
    assert_eq!(
        effects(&run.signal(libc::SIGUSR1)),
        [Action::Forward {
            sig: libc::SIGUSR1,
            sent: libc::SIGUSR2,
            to: Target::Group(pid(100))
        }]
    );
    assert!(effects(&run.signal(libc::SIGHUP)).is_empty());
    assert_eq!(effects(&run.signal(libc::SIGCHLD)), [Action::Reap]);
    // Not PID 1: a terminal stop stops graceinit too (dumb-init).
    assert_eq!(
        effects(&run.signal(libc::SIGTSTP)),
        [
            Action::Forward {
                sig: libc::SIGTSTP,
                sent: libc::SIGSTOP,
                to: Target::Group(pid(100))
            },
            Action::StopSelf
        ]
    );
}

#[test]
fn signal_target_child_sends_to_the_app_alone() {
    let mut settings = settings(&[]);
    settings.signal_target = SignalTarget::Child;
    let mut run = Run::running(settings);
    assert_eq!(
        effects(&run.signal(libc::SIGUSR1)),
        [Action::Forward {
            sig: libc::SIGUSR1,
            sent: libc::SIGUSR1,
            to: Target::Process(pid(100))
        }]
    );
}

// --- the drain by a signal ---

#[test]
fn the_drain_reports_the_traffic_from_the_trigger_to_the_apps_exit() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    run.at(5.0);
    let actions = run.signal(TERM);
    assert!(actions.contains(&Action::WatchTraffic), "{actions:?}");
    let t0 = run.t0;
    // A sample begun at `at` seconds: `arrivals` since the one before, `open` now.
    let seen = |arrivals, open, at: f64, last| Input::Traffic {
        seen: Ok(Observed {
            arrivals,
            open,
            taken_at: t0 + secs(at),
        }),
        last,
    };
    run.at(5.1);
    run.on(seen(0, 3, 5.0, false));
    run.at(6.0);
    run.on(seen(2, 4, 5.9, false));
    let pre_stop = hook_run(&actions, HookPhase::PreStop).unwrap();
    run.at(7.0);
    run.on(Input::PhaseDone {
        phase: HookPhase::PreStop,
        run: pre_stop,
        ok: true,
    });
    run.at(7.5);
    run.on(seen(1, 1, 7.4, false));
    let traffic = run.lifecycle.snapshot().drain.unwrap().traffic;
    assert_eq!(
        traffic,
        TrafficReport {
            open_at_trigger: Some(3),
            open: 1,
            arrivals: 3,
            last_arrival_at: Some(run.t0 + secs(7.5)),
            arrivals_after_stop_signal: 1,
            open_at_stop_signal: Some(4),
            open_at_kill: None,
            unavailable: false,
        }
    );
    run.at(8.0);
    let actions = run.exits(ExitStatus::Exited(0));
    assert!(
        actions.contains(&Action::FinishWatchingTraffic),
        "{actions:?}"
    );
    // DrainFinished waits for the last sample.
    assert_eq!(reasons(&actions), []);
    // A periodic sample begun after the exit changes nothing.
    run.at(8.02);
    run.on(seen(5, 5, 8.01, false));
    assert_eq!(run.lifecycle.snapshot().drain.unwrap().traffic, traffic);
    // The last one: what arrived by the exit (its time is the exit's at the latest).
    run.at(8.05);
    let actions = run.on(seen(1, 0, 8.03, true));
    assert_eq!(
        messages(&actions),
        [
            "DrainFinished: the app exited (exit code 0) 3.000s after the trigger; connections: 3 open at the \
         trigger, 4 arrived after it (the last 3.000s after the trigger), 2 after the stop \
         signal, 4 open at the stop signal"
        ]
    );
    // Once.
    assert_eq!(reasons(&run.on(seen(1, 0, 8.06, true))), []);
}

#[test]
fn a_drain_whose_traffic_cannot_be_sampled_says_so_once() {
    let mut run = Run::running(settings(&[]));
    run.signal(TERM);
    let before = run.lifecycle.revision();
    let actions = run.on(Input::Traffic {
        seen: Err("Operation not permitted".into()),
        last: false,
    });
    assert_eq!(
        messages(&actions),
        ["the drain's report cannot see the app's connections: Operation not permitted"]
    );
    assert!(run.lifecycle.revision() > before);
    assert!(
        run.on(Input::Traffic {
            seen: Err("again".into()),
            last: false,
        })
        .is_empty()
    );
    run.exits(ExitStatus::Exited(0));
    let actions = run.on(Input::Traffic {
        seen: Err("again".into()),
        last: true,
    });
    assert!(
        messages(&actions)[0]
            .ends_with("; connections: not seen (the TCP sockets could not be sampled)"),
        "{actions:?}"
    );
}

#[test]
fn post_stop_hooks_follow_drain_finished_which_waits_for_the_last_sample() {
    let mut run = Run::running(settings(&[HookPhase::PostStop]));
    run.signal(TERM);
    run.exits(ExitStatus::Exited(0));
    let actions = run.nothing_left();
    assert_eq!(hook_run(&actions, HookPhase::PostStop), None);
    assert_eq!(run.wake_in(), Some(LAST_LINES));
    let actions = run.on(Input::Traffic {
        seen: Err("no sample in this test".into()),
        last: true,
    });
    assert_eq!(reasons(&actions), [Reason::DrainFinished]);
    assert!(hook_run(&actions, HookPhase::PostStop).is_some());
    // Or, without the sample, at LAST_LINES.
    let mut run = Run::running(settings(&[HookPhase::PostStop]));
    run.signal(TERM);
    run.exits(ExitStatus::Exited(0));
    run.nothing_left();
    let actions = run.timer();
    assert_eq!(reasons(&actions), [Reason::DrainFinished]);
    assert!(hook_run(&actions, HookPhase::PostStop).is_some());
}

#[test]
fn without_its_last_sample_the_drain_finishes_at_graceinits_exit() {
    let mut run = Run::running(settings(&[]));
    run.signal(TERM);
    assert_eq!(reasons(&run.exits(ExitStatus::Exited(0))), []);
    // The flush waits LAST_LINES at the most for the last sample.
    let actions = run.nothing_left();
    assert_eq!(reasons(&actions), []);
    assert_eq!(effects(&actions), []);
    assert_eq!(run.wake_in(), Some(LAST_LINES));
    let actions = run.timer();
    assert_eq!(reasons(&actions), [Reason::DrainFinished]);
    assert_eq!(
        effects(&actions),
        [Action::FlushOutput {
            by: run.now - LAST_LINES + OUTPUT_AT_EXIT
        }]
    );
    assert!(
        messages(&actions)[0]
            .ends_with("; connections: not seen (the app exited before the first sample)"),
        "{actions:?}"
    );
}

#[test]
fn no_traffic_is_watched_without_an_app_or_outside_a_drain() {
    let mut run = Run::running(settings(&[]));
    let actions = run.exits(ExitStatus::Exited(0));
    assert!(!actions.contains(&Action::FinishWatchingTraffic));
    let actions = run.nothing_left();
    assert!(!actions.contains(&Action::WatchTraffic));
}

#[test]
fn a_drain_without_hooks_stops_at_once_and_kills_at_the_grace_periods_end() {
    let mut run = Run::running(settings(&[]));
    run.at(5.0);
    let actions = run.signal(TERM);
    assert_eq!(effects(&actions), [forward(TERM)]);
    assert_eq!(reasons(&actions), [Reason::DrainStarted]);
    assert!(!run.lifecycle.snapshot().ready);
    assert_eq!(run.phase(), Phase::Draining);
    assert_eq!(run.wake_in(), Some(secs(30.0)));
    let actions = run.timer();
    assert_eq!(run.now, run.t0 + secs(35.0));
    assert_eq!(effects(&actions), [Action::KillApp(pid(100))]);
    assert_eq!(run.lifecycle.snapshot().drain.unwrap().stage, "killed");
    assert_eq!(run.wake_in(), None);
    run.exits(ExitStatus::Signaled(KILL));
    let last = Input::Traffic {
        seen: Err("no sample in this test".into()),
        last: true,
    };
    assert_eq!(reasons(&run.on(last)), [Reason::DrainFinished]);
    let actions = run.nothing_left();
    // At kill_at already: the last lines (the Killing event) get LAST_LINES, no more.
    assert_eq!(
        effects(&actions),
        [Action::FlushOutput {
            by: run.now + LAST_LINES
        }]
    );
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(137)]);
}

#[test]
fn pre_stop_hooks_run_before_the_stop_signal_which_goes_out_when_they_are_done() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    let actions = run.signal(TERM);
    let stop_by = run.t0 + secs(20.0);
    let pre_stop = hook_run(&actions, HookPhase::PreStop).unwrap();
    assert_eq!(
        effects(&actions),
        [Action::RunHooks {
            phase: HookPhase::PreStop,
            run: pre_stop,
            deadline: Some(stop_by)
        }]
    );
    assert_eq!(run.wake_in(), Some(secs(20.0)));
    run.at(3.0);
    let actions = run.phase_done(HookPhase::PreStop, pre_stop, true);
    assert_eq!(effects(&actions), [forward(TERM)]);
    // kill_at is fixed at the trigger, not at the stop signal.
    assert_eq!(run.wake_in(), Some(secs(27.0)));
}

#[test]
fn the_stop_signal_goes_out_at_stop_by_however_long_the_hooks_want() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    let pre_stop = hook_run(&run.signal(TERM), HookPhase::PreStop).unwrap();
    let actions = run.timer();
    assert_eq!(run.now, run.t0 + secs(20.0));
    assert_eq!(effects(&actions), [forward(TERM)]);
    // The app gets exactly stop_timeout.
    assert_eq!(run.wake_in(), Some(secs(10.0)));
    // The hooks, cut at the same deadline, report later: no second stop signal.
    let actions = run.phase_done(HookPhase::PreStop, pre_stop, true);
    assert!(effects(&actions).is_empty());
    assert_eq!(run.count(is_forward_of(TERM)), 1);
}

#[test]
fn a_repeated_sigterm_changes_nothing() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    run.signal(TERM);
    for _ in 0..3 {
        let actions = run.signal(TERM);
        assert!(effects(&actions).is_empty());
        assert_eq!(
            messages(&actions),
            ["SIGTERM during the drain: the drain is already under way"]
        );
    }
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 1);
}

#[test]
fn ctrl_c_three_times_drains_then_skips_the_hooks_then_kills() {
    let mut settings = settings(&[HookPhase::PreStop]);
    settings.drain_signals = vec![TERM, INT];
    let mut run = Run::running(settings);
    let actions = run.signal(INT);
    assert!(hook_run(&actions, HookPhase::PreStop).is_some());
    let actions = run.signal(INT);
    assert_eq!(
        effects(&actions),
        [
            Action::AbortHooks(HookPhase::PreStop),
            Action::Forward {
                sig: TERM,
                sent: TERM,
                to: Target::Group(pid(100))
            }
        ]
    );
    let actions = run.signal(INT);
    assert_eq!(effects(&actions), [Action::KillApp(pid(100))]);
    assert_eq!(reasons(&actions), [Reason::Killing]);
}

#[test]
fn a_second_press_after_the_stop_signal_only_warns_then_kills() {
    let mut settings = settings(&[]);
    settings.drain_signals = vec![TERM, INT];
    let mut run = Run::running(settings);
    run.signal(TERM);
    let actions = run.signal(INT);
    assert!(effects(&actions).is_empty());
    assert!(messages(&actions)[0].contains("already has its stop signal"));
    assert_eq!(effects(&run.signal(INT)), [Action::KillApp(pid(100))]);
}

#[test]
fn other_signals_are_still_forwarded_during_the_drain() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    run.signal(TERM);
    assert_eq!(
        effects(&run.signal(libc::SIGUSR1)),
        [forward(libc::SIGUSR1)]
    );
}

#[test]
fn the_stop_signal_is_the_configured_one_rewritten_like_any_other() {
    let mut settings = settings(&[]);
    settings.stop_signal = libc::SIGQUIT;
    settings.rewrite.set(libc::SIGQUIT, Some(libc::SIGUSR2));
    let mut run = Run::running(settings);
    assert_eq!(
        effects(&run.signal(TERM)),
        [Action::Forward {
            sig: libc::SIGQUIT,
            sent: libc::SIGUSR2,
            to: Target::Group(pid(100))
        }]
    );
}

// --- a drain at every phase ---

#[test]
fn a_drain_during_post_start_runs_pre_stop_and_never_on_ready() {
    let mut run = Run::new(settings(&[
        HookPhase::PostStart,
        HookPhase::OnReady,
        HookPhase::PreStop,
    ]));
    let post_start = hook_run(&run.on(Input::AppStarted(pid(100))), HookPhase::PostStart).unwrap();
    let pre_stop = hook_run(&run.signal(TERM), HookPhase::PreStop).unwrap();
    assert!(effects(&run.phase_done(HookPhase::PostStart, post_start, true)).is_empty());
    assert!(!run.lifecycle.snapshot().ready);
    assert_eq!(
        effects(&run.phase_done(HookPhase::PreStop, pre_stop, true)),
        [forward(TERM)]
    );
    assert_eq!(run.count(is_run_of(HookPhase::OnReady)), 0);
}

#[test]
fn a_post_start_failing_during_the_drain_changes_nothing() {
    let mut run = Run::new(settings(&[HookPhase::PostStart, HookPhase::PreStop]));
    let post_start = hook_run(&run.on(Input::AppStarted(pid(100))), HookPhase::PostStart).unwrap();
    run.signal(TERM);
    assert!(effects(&run.phase_done(HookPhase::PostStart, post_start, false)).is_empty());
    assert_eq!(run.count(is_forward_of(TERM)), 0);
}

#[test]
fn a_drain_during_on_ready_lets_it_finish_before_pre_stop() {
    let mut run = Run::new(settings(&[HookPhase::OnReady, HookPhase::PreStop]));
    let on_ready = hook_run(&run.on(Input::AppStarted(pid(100))), HookPhase::OnReady).unwrap();
    let actions = run.signal(TERM);
    assert!(effects(&actions).is_empty());
    assert_eq!(
        run.lifecycle.snapshot().drain.unwrap().stage,
        "waiting_for_on_ready"
    );
    let actions = run.phase_done(HookPhase::OnReady, on_ready, true);
    assert!(hook_run(&actions, HookPhase::PreStop).is_some());
}

#[test]
fn on_ready_still_running_at_stop_by_is_aborted_and_pre_stop_not_started() {
    let mut run = Run::new(settings(&[HookPhase::OnReady, HookPhase::PreStop]));
    let on_ready = hook_run(&run.on(Input::AppStarted(pid(100))), HookPhase::OnReady).unwrap();
    run.signal(TERM);
    let actions = run.timer();
    assert_eq!(
        effects(&actions),
        [Action::AbortHooks(HookPhase::OnReady), forward(TERM)]
    );
    // The aborted run's last word changes nothing.
    assert!(effects(&run.phase_done(HookPhase::OnReady, on_ready, true)).is_empty());
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 0);
}

#[test]
fn on_ready_still_running_when_the_stop_signal_goes_out_is_aborted() {
    let mut settings = settings(&[HookPhase::PostStart, HookPhase::OnReady]);
    settings.hooks.post_start.clear();
    let mut run = Run::new(settings);
    run.on(Input::AppStarted(pid(100)));
    // No pre_stop hooks: nothing to wait for but on_ready, which finishes first.
    let actions = run.signal(TERM);
    assert!(effects(&actions).is_empty());
    let actions = run.timer();
    assert_eq!(
        effects(&actions),
        [Action::AbortHooks(HookPhase::OnReady), forward(TERM)]
    );
}

#[test]
fn a_drain_during_post_stop_cuts_it_at_kill_at_and_stops_restarts() {
    let mut settings = settings(&[HookPhase::PostStop]);
    settings.restart = RestartPolicy::Always;
    let mut run = Run::running(settings);
    run.exits(ExitStatus::Exited(3));
    let actions = run.nothing_left();
    let post_stop = hook_run(&actions, HookPhase::PostStop).unwrap();
    assert_eq!(
        effects(&actions),
        [Action::RunHooks {
            phase: HookPhase::PostStop,
            run: post_stop,
            deadline: None
        }]
    );
    assert_eq!(run.wake_in(), None);
    run.at(1.0);
    let actions = run.signal(TERM);
    assert!(effects(&actions).is_empty());
    assert!(
        messages(&actions)[0].starts_with("DrainStarted: SIGTERM received after the app exited")
    );
    assert_eq!(run.wake_in(), Some(secs(30.0)));
    let actions = run.timer();
    assert_eq!(
        effects(&actions),
        [Action::AbortHooks(HookPhase::PostStop), Action::Reap]
    );
    let actions = run.nothing_left();
    assert_eq!(
        effects(&actions),
        [Action::FlushOutput {
            by: run.now + LAST_LINES
        }]
    );
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(3)]);
    assert_eq!(run.count(|a| *a == Action::StartApp), 1);
}

#[test]
fn a_drain_during_back_off_exits_at_once_with_the_last_status() {
    let mut settings = settings(&[HookPhase::PostStop, HookPhase::PreStop]);
    settings.restart = RestartPolicy::Always;
    let mut run = Run::running(settings);
    // The first restart is immediate; the second waits 10 s.
    run.exits(ExitStatus::Exited(3));
    let post_stop = hook_run(&run.nothing_left(), HookPhase::PostStop).unwrap();
    run.phase_done(HookPhase::PostStop, post_stop, true);
    assert_eq!(effects(&run.nothing_left()), [Action::StartApp]);
    run.on(Input::AppStarted(pid(101)));
    run.at(1.0);
    run.exits(ExitStatus::Exited(4));
    let post_stop = hook_run(&run.nothing_left(), HookPhase::PostStop).unwrap();
    run.phase_done(HookPhase::PostStop, post_stop, true);
    let actions = run.nothing_left();
    assert!(effects(&actions).is_empty());
    assert_eq!(
        messages(&actions),
        ["BackOff: restart 2 in 10s (the app ended with exit code 4)"]
    );
    assert_eq!(run.phase(), Phase::BackOff);
    run.at(2.0);
    let actions = run.signal(TERM);
    assert_eq!(
        effects(&actions),
        [Action::FlushOutput {
            by: run.now + OUTPUT_AT_EXIT
        }]
    );
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(4)]);
    // post_stop ran after each exit, not again; pre_stop never (the app was not running).
    assert_eq!(run.count(is_run_of(HookPhase::PostStop)), 2);
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 0);
    assert_eq!(run.count(|a| *a == Action::StartApp), 2);
}

#[test]
fn a_drain_while_the_app_stops_after_a_failed_post_start_brings_sigkill_no_later() {
    let mut settings = settings(&[HookPhase::PostStart, HookPhase::PreStop]);
    settings.stop_timeout = secs(10.0);
    settings.grace_period = secs(4.0);
    let mut run = Run::new(settings);
    let post_start = hook_run(&run.on(Input::AppStarted(pid(100))), HookPhase::PostStart).unwrap();
    run.phase_done(HookPhase::PostStart, post_start, false);
    assert_eq!(run.wake_in(), Some(secs(10.0)));
    run.at(1.0);
    let actions = run.signal(TERM);
    assert!(effects(&actions).is_empty());
    assert_eq!(run.wake_in(), Some(secs(4.0)));
    assert_eq!(effects(&run.timer()), [Action::KillApp(pid(100))]);
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 0);
}

#[test]
fn sigterm_after_the_app_exited_fixes_kill_at_and_forwards_nothing() {
    let mut settings = settings(&[]);
    settings.kill_leftovers_after = secs(60.0);
    let mut run = Run::running(settings);
    run.exits(ExitStatus::Exited(0));
    // A leftover ignores SIGTERM.
    let actions = run.on(Input::Reaped(Children::Running));
    assert_eq!(
        effects(&actions),
        [Action::SignalLeftovers {
            sig: TERM,
            app: pid(100)
        }]
    );
    run.on(Input::LeftoversSignalled);
    assert_eq!(run.wake_in(), Some(secs(60.0)));
    run.at(1.0);
    assert!(effects(&run.signal(TERM)).is_empty());
    // graceinit is gone by kill_at: the SIGTERM round is cut there.
    assert_eq!(run.wake_in(), Some(secs(30.0)));
    let actions = run.timer();
    assert_eq!(
        effects(&actions),
        [Action::SignalLeftovers {
            sig: KILL,
            app: pid(100)
        }]
    );
    assert!(effects(&run.signal(libc::SIGUSR1)).is_empty());
}

// --- the drain by a request (graceinit drain, /prestop) ---

#[test]
fn a_requested_drain_runs_pre_stop_answers_then_waits_for_sigterm() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    let actions = run.on(Input::DrainRequested(7));
    let pre_stop = hook_run(&actions, HookPhase::PreStop).unwrap();
    assert!(!run.lifecycle.snapshot().ready);
    run.at(2.0);
    let actions = run.phase_done(HookPhase::PreStop, pre_stop, true);
    assert_eq!(
        effects(&actions),
        [Action::AnswerDrain {
            waiters: vec![7],
            outcome: Ok("1 pre_stop hook(s) done".into())
        }]
    );
    assert_eq!(
        run.lifecycle.snapshot().drain.unwrap().stage,
        "awaiting_signal"
    );
    // The kubelet's SIGTERM, once the preStop hook returned: the stop signal, no hooks.
    run.at(3.0);
    assert_eq!(effects(&run.signal(TERM)), [forward(TERM)]);
    // kill_at counts from the request, as the grace period counts from preStop's start.
    assert_eq!(run.wake_in(), Some(secs(27.0)));
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 1);
}

#[test]
fn a_requested_drain_sends_the_stop_signal_at_stop_by_without_sigterm() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    let pre_stop = hook_run(&run.on(Input::DrainRequested(1)), HookPhase::PreStop).unwrap();
    run.phase_done(HookPhase::PreStop, pre_stop, true);
    assert_eq!(run.wake_in(), Some(secs(20.0)));
    assert_eq!(effects(&run.timer()), [forward(TERM)]);
}

#[test]
fn sigterm_during_a_requested_drains_hooks_waits_for_them() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    let pre_stop = hook_run(&run.on(Input::DrainRequested(1)), HookPhase::PreStop).unwrap();
    assert!(effects(&run.signal(TERM)).is_empty());
    let actions = run.phase_done(HookPhase::PreStop, pre_stop, true);
    assert_eq!(
        effects(&actions),
        [
            Action::AnswerDrain {
                waiters: vec![1],
                outcome: Ok("1 pre_stop hook(s) done".into())
            },
            forward(TERM)
        ]
    );
}

#[test]
fn every_trigger_joins_one_drain_and_the_hooks_run_once() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    let pre_stop = hook_run(&run.on(Input::DrainRequested(1)), HookPhase::PreStop).unwrap();
    // /prestop while `graceinit drain` waits: both answered together.
    assert!(effects(&run.on(Input::DrainRequested(2))).is_empty());
    run.signal(TERM);
    run.signal(TERM);
    let actions = run.phase_done(HookPhase::PreStop, pre_stop, true);
    assert_eq!(
        effects(&actions)[0],
        Action::AnswerDrain {
            waiters: vec![1, 2],
            outcome: Ok("1 pre_stop hook(s) done".into())
        }
    );
    // Late requesters get the same answer at once.
    assert_eq!(
        effects(&run.on(Input::DrainRequested(3))),
        [Action::AnswerDrain {
            waiters: vec![3],
            outcome: Ok("1 pre_stop hook(s) done".into())
        }]
    );
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 1);
    assert_eq!(run.count(is_forward_of(TERM)), 1);
    assert_eq!(
        run.count(|a| matches!(a, Action::Announce(e) if e.reason == Reason::DrainStarted)),
        1
    );
}

#[test]
fn a_failing_pre_stop_hook_with_on_failure_fail_is_the_answer() {
    let mut settings = settings(&[HookPhase::PreStop]);
    settings.hooks.pre_stop[0].on_failure = OnFailure::Fail;
    let mut run = Run::running(settings);
    let pre_stop = hook_run(&run.on(Input::DrainRequested(1)), HookPhase::PreStop).unwrap();
    let actions = run.on(Input::HookDone {
        phase: HookPhase::PreStop,
        run: pre_stop,
        index: 1,
        on_failure: OnFailure::Fail,
        report: Report {
            label: "pre_stop#1".into(),
            outcome: Outcome::Failed("deregister answered 500".into()),
            took: secs(0.5),
        },
    });
    assert_eq!(reasons(&actions), [Reason::FailedPreStopHook]);
    let actions = run.phase_done(HookPhase::PreStop, pre_stop, false);
    assert_eq!(
        effects(&actions),
        [Action::AnswerDrain {
            waiters: vec![1],
            outcome: Err("pre_stop#1: deregister answered 500".into())
        }]
    );
    let hooks = run.lifecycle.snapshot().hooks;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].runs, 1);
    assert_eq!(
        hooks[0].last,
        Some((Outcome::Failed("deregister answered 500".into()), secs(0.5)))
    );
}

#[test]
fn requesters_are_answered_when_the_app_exits_during_pre_stop() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    run.on(Input::DrainRequested(1));
    let actions = run.exits(ExitStatus::Exited(0));
    assert_eq!(
        effects(&actions),
        [
            Action::AbortHooks(HookPhase::PreStop),
            Action::AnswerDrain {
                waiters: vec![1],
                outcome: Err("the app exited before the pre_stop hooks were done".into())
            },
            Action::Reap
        ]
    );
}

#[test]
fn a_request_after_the_app_exited_is_answered_at_once() {
    let mut run = Run::running(settings(&[HookPhase::PreStop]));
    run.exits(ExitStatus::Exited(0));
    let actions = run.on(Input::DrainRequested(1));
    assert_eq!(
        effects(&actions),
        [Action::AnswerDrain {
            waiters: vec![1],
            outcome: Ok("the app was not running".into())
        }]
    );
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 0);
}

// --- the end of the app: leftovers, post_stop ---

#[test]
fn leftovers_get_sigterm_then_rounds_of_sigkill_until_reaped() {
    let mut run = Run::running(settings(&[HookPhase::PostStop]));
    run.exits(ExitStatus::Exited(0));
    let actions = run.on(Input::Reaped(Children::Running));
    assert_eq!(
        effects(&actions),
        [Action::SignalLeftovers {
            sig: TERM,
            app: pid(100)
        }]
    );
    // The round's deadline counts once the signals are out.
    assert_eq!(run.wake_in(), None);
    run.on(Input::LeftoversSignalled);
    assert_eq!(run.wake_in(), Some(secs(2.0)));
    let actions = run.timer();
    assert_eq!(
        effects(&actions),
        [Action::SignalLeftovers {
            sig: KILL,
            app: pid(100)
        }]
    );
    run.on(Input::LeftoversSignalled);
    assert_eq!(run.wake_in(), Some(KILL_ROUND));
    assert_eq!(
        effects(&run.timer()),
        [
            Action::Reap,
            Action::SignalLeftovers {
                sig: KILL,
                app: pid(100)
            }
        ]
    );
    run.on(Input::LeftoversSignalled);
    // post_stop only once they are all gone.
    assert_eq!(run.count(is_run_of(HookPhase::PostStop)), 0);
    let actions = run.nothing_left();
    assert!(hook_run(&actions, HookPhase::PostStop).is_some());
}

#[test]
fn leftovers_surviving_sigkill_are_given_up_after_five_seconds() {
    let mut run = Run::running(settings(&[]));
    run.exits(ExitStatus::Exited(0));
    run.on(Input::Reaped(Children::Running));
    run.on(Input::LeftoversSignalled);
    run.timer();
    let kill_started = run.now;
    loop {
        run.on(Input::LeftoversSignalled);
        let actions = run.timer();
        if let [Action::FlushOutput { .. }] = effects(&actions)[..] {
            break;
        }
    }
    assert_eq!(run.now - kill_started, AFTER_SIGKILL);
}

#[test]
fn past_kill_at_there_is_no_sigterm_round() {
    let mut settings = settings(&[]);
    settings.grace_period = secs(10.0);
    let mut run = Run::running(settings);
    run.signal(TERM);
    run.timer();
    run.at(10.5);
    run.exits(ExitStatus::Signaled(KILL));
    let actions = run.on(Input::Reaped(Children::Running));
    assert_eq!(
        effects(&actions),
        [Action::SignalLeftovers {
            sig: KILL,
            app: pid(100)
        }]
    );
    run.on(Input::LeftoversSignalled);
    // One round at least, none after.
    assert_eq!(run.wake_in(), Some(KILL_ROUND));
    let actions = run.timer();
    // Given up, and past kill_at: the last lines get LAST_LINES, then the exit.
    assert_eq!(
        effects(&actions),
        [Action::FlushOutput {
            by: run.now + LAST_LINES
        }]
    );
    assert_eq!(run.wake_in(), Some(LAST_LINES));
    assert_eq!(effects(&run.timer()), [Action::Exit(137)]);
}

#[test]
fn post_stop_runs_after_the_leftovers_and_then_leftovers_again() {
    let mut run = Run::running(settings(&[HookPhase::PostStop]));
    run.exits(ExitStatus::Exited(5));
    let post_stop = hook_run(&run.nothing_left(), HookPhase::PostStop).unwrap();
    assert_eq!(run.phase(), Phase::Stopping);
    assert_eq!(
        effects(&run.phase_done(HookPhase::PostStop, post_stop, true)),
        [Action::Reap]
    );
    let actions = run.nothing_left();
    assert_eq!(
        effects(&actions),
        [Action::FlushOutput {
            by: run.now + OUTPUT_AT_EXIT
        }]
    );
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(5)]);
}

#[test]
fn the_exit_code_is_remapped() {
    let mut settings = settings(&[]);
    settings.remap_exit.insert(143, 0);
    let mut run = Run::running(settings);
    run.signal(TERM);
    run.exits(ExitStatus::Signaled(TERM));
    run.nothing_left();
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(0)]);
}

// --- the restart policy ---

/// What follows an exit with `status` under `policy`: a restart or graceinit's exit code.
fn after_one_exit(policy: RestartPolicy, status: ExitStatus) -> Result<(), i32> {
    let mut settings = settings(&[]);
    settings.restart = policy;
    let mut run = Run::running(settings);
    run.exits(status);
    let actions = run.nothing_left();
    if effects(&actions) == [Action::StartApp] {
        return Ok(());
    }
    match run.on(Input::OutputFlushed)[..] {
        [Action::Exit(code)] => Err(code),
        ref other => panic!("neither a restart nor an exit: {other:?}"),
    }
}

#[test]
fn the_restart_policies_follow_kubernetes() {
    use ExitStatus::{Exited, Signaled};
    use RestartPolicy::{Always, Never, OnFailure as Failure};
    let table = [
        (Never, Exited(0), Err(0)),
        (Never, Exited(3), Err(3)),
        (Never, Signaled(KILL), Err(137)),
        (Failure, Exited(0), Err(0)),
        (Failure, Exited(3), Ok(())),
        (Failure, Signaled(KILL), Ok(())),
        (Always, Exited(0), Ok(())),
        (Always, Exited(3), Ok(())),
        (Always, Signaled(TERM), Ok(())),
    ];
    for (policy, status, expected) in table {
        assert_eq!(
            after_one_exit(policy, status),
            expected,
            "{policy} after {status}"
        );
    }
}

#[test]
fn restarts_back_off_and_are_counted() {
    let mut settings = settings(&[
        HookPhase::PostStart,
        HookPhase::OnReady,
        HookPhase::PostStop,
    ]);
    settings.restart = RestartPolicy::OnFailure;
    settings.restart_backoff = secs(1.0);
    settings.restart_backoff_max = secs(4.0);
    let mut run = Run::running(settings);
    let mut delays = Vec::new();
    for n in 1..=5u32 {
        run.exits(ExitStatus::Exited(1));
        let post_stop = hook_run(&run.nothing_left(), HookPhase::PostStop).unwrap();
        run.phase_done(HookPhase::PostStop, post_stop, true);
        let actions = run.nothing_left();
        assert_eq!(reasons(&actions), [Reason::BackOff]);
        let exited_at = run.now;
        if effects(&actions) != [Action::StartApp] {
            assert_eq!(run.phase(), Phase::BackOff);
            assert_eq!(effects(&run.timer()), [Action::StartApp]);
        }
        delays.push(run.now - exited_at);
        let actions = run.on(Input::AppStarted(pid(100 + n as i32)));
        assert!(messages(&actions)[0].ends_with(&format!("(restart {n})")));
        let post_start = hook_run(&actions, HookPhase::PostStart).unwrap();
        run.phase_done(HookPhase::PostStart, post_start, true);
        // Runs for one second: no reset.
        run.now += secs(1.0);
    }
    assert_eq!(delays, [0.0, 1.0, 2.0, 4.0, 4.0].map(secs));
    let snapshot = run.lifecycle.snapshot();
    assert_eq!(snapshot.app.restarts, 5);
    assert_eq!(snapshot.app.pid, Some(105));
    assert_eq!(snapshot.app.last_exit, Some(ExitStatus::Exited(1)));
    assert_eq!(run.count(is_run_of(HookPhase::PostStart)), 6);
    assert_eq!(run.count(is_run_of(HookPhase::OnReady)), 6);
    assert_eq!(run.count(is_run_of(HookPhase::PostStop)), 5);
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 0);
    // Success at last: on-failure ends graceinit with it.
    run.exits(ExitStatus::Exited(0));
    run.nothing_left();
    let post_stop = hook_run(&run.all, HookPhase::PostStop);
    assert!(post_stop.is_some());
}

#[test]
fn the_back_off_starts_over_after_twice_the_cap_of_running() {
    let mut settings = settings(&[]);
    settings.restart = RestartPolicy::Always;
    settings.restart_backoff = secs(1.0);
    settings.restart_backoff_max = secs(2.0);
    let mut run = Run::running(settings);
    let restart_after = |run: &mut Run, ran: f64| {
        run.now += secs(ran);
        run.exits(ExitStatus::Exited(1));
        let actions = run.nothing_left();
        let exited_at = run.now;
        if effects(&actions) != [Action::StartApp] {
            run.timer();
        }
        let delay = run.now - exited_at;
        run.on(Input::AppStarted(pid(200)));
        delay
    };
    assert_eq!(restart_after(&mut run, 0.1), secs(0.0));
    assert_eq!(restart_after(&mut run, 0.1), secs(1.0));
    assert_eq!(restart_after(&mut run, 3.9), secs(2.0));
    assert_eq!(restart_after(&mut run, 4.0), secs(0.0));
    assert_eq!(restart_after(&mut run, 0.1), secs(1.0));
}

#[test]
fn leftovers_of_the_old_app_are_gone_before_the_new_one_starts() {
    let mut settings = settings(&[]);
    settings.restart = RestartPolicy::Always;
    let mut run = Run::running(settings);
    run.exits(ExitStatus::Exited(1));
    assert!(effects(&run.on(Input::Reaped(Children::Running))).len() == 1);
    run.on(Input::LeftoversSignalled);
    assert!(effects(&run.on(Input::Reaped(Children::Running))).is_empty());
    assert_eq!(run.count(|a| *a == Action::StartApp), 1);
    assert_eq!(effects(&run.nothing_left()), [Action::StartApp]);
}

#[test]
fn a_failed_post_start_restarts_under_on_failure() {
    let mut settings = settings(&[HookPhase::PostStart]);
    settings.restart = RestartPolicy::OnFailure;
    let mut run = Run::new(settings);
    let post_start = hook_run(&run.on(Input::AppStarted(pid(100))), HookPhase::PostStart).unwrap();
    run.phase_done(HookPhase::PostStart, post_start, false);
    // The app stops cleanly on its stop signal: still a failure of its start.
    run.exits(ExitStatus::Exited(0));
    assert_eq!(effects(&run.nothing_left()), [Action::StartApp]);
    // The next start succeeds and is not stopped.
    let post_start = hook_run(&run.on(Input::AppStarted(pid(101))), HookPhase::PostStart).unwrap();
    assert!(effects(&run.phase_done(HookPhase::PostStart, post_start, true)).is_empty());
    assert!(run.lifecycle.snapshot().ready);
}

#[test]
fn a_restart_that_cannot_start_is_an_exit_of_the_app() {
    let mut settings = settings(&[]);
    settings.restart = RestartPolicy::OnFailure;
    settings.restart_backoff = secs(1.0);
    let mut run = Run::running(settings);
    run.exits(ExitStatus::Exited(1));
    assert_eq!(effects(&run.nothing_left()), [Action::StartApp]);
    let actions = run.on(Input::AppNotStarted(127));
    assert_eq!(effects(&actions), [Action::Reap]);
    let actions = run.nothing_left();
    assert_eq!(
        messages(&actions),
        ["BackOff: restart 2 in 1s (the app ended with exit code 127)"]
    );
    // Failing to start is no running time: a long back-off does not reset the sequence.
    run.now += secs(3600.0);
    assert_eq!(effects(&run.on(Input::Timer)), [Action::StartApp]);
    run.on(Input::AppNotStarted(127));
    let actions = run.nothing_left();
    assert_eq!(
        messages(&actions),
        ["BackOff: restart 3 in 2s (the app ended with exit code 127)"]
    );
}

#[test]
fn a_drain_stops_restarts_and_exits_with_the_apps_status() {
    let mut settings = settings(&[HookPhase::PreStop]);
    settings.restart = RestartPolicy::Always;
    let mut run = Run::running(settings);
    let pre_stop = hook_run(&run.signal(TERM), HookPhase::PreStop).unwrap();
    run.phase_done(HookPhase::PreStop, pre_stop, true);
    run.exits(ExitStatus::Exited(0));
    run.nothing_left();
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(0)]);
    assert_eq!(run.count(|a| *a == Action::StartApp), 1);
}

// --- bookkeeping ---

#[test]
fn a_stale_exit_or_phase_result_changes_nothing() {
    let mut run = Run::running(settings(&[HookPhase::OnReady]));
    let before = run.lifecycle.revision();
    assert!(
        run.on(Input::AppExited(pid(99), ExitStatus::Exited(1)))
            .is_empty()
    );
    assert!(run.phase_done(HookPhase::PostStop, 99, true).is_empty());
    assert_eq!(run.lifecycle.revision(), before);
    assert_eq!(run.phase(), Phase::Running);
}

#[test]
fn the_revision_moves_with_what_the_snapshot_shows() {
    let mut run = Run::running(settings(&[]));
    let before = run.lifecycle.revision();
    run.signal(libc::SIGUSR1);
    run.signal(libc::SIGCHLD);
    run.on(Input::Reaped(Children::Running));
    assert_eq!(run.lifecycle.revision(), before);
    run.signal(TERM);
    assert!(run.lifecycle.revision() > before);
    let drain = run.lifecycle.snapshot().drain.unwrap();
    assert_eq!(drain.trigger, Trigger::Signal(TERM));
    assert_eq!(drain.kill_at - drain.started_at, secs(30.0));
    assert_eq!(drain.kill_at - drain.stop_by, secs(10.0));
    assert_eq!(drain.stage, "stopping");
}

// --- probes ---

fn probe(period: f64, success_threshold: u32, failure_threshold: u32) -> Probe {
    let action = HookAction::Tcp("127.0.0.1:1".into());
    Probe {
        as_written: action.clone(),
        action,
        initial_delay: secs(0.0),
        period: secs(period),
        timeout: secs(1.0),
        success_threshold,
        failure_threshold,
    }
}

fn probe_run(actions: &[Action], wanted: ProbeKind) -> Option<u64> {
    actions.iter().find_map(|a| match a {
        Action::StartProbe { kind, run, .. } if *kind == wanted => Some(*run),
        _ => None,
    })
}

impl Run {
    fn probe(&mut self, kind: ProbeKind, run: u64, ok: bool) -> Vec<Action> {
        let result = if ok {
            Ok(())
        } else {
            Err("connection refused".into())
        };
        self.on(Input::ProbeResult { kind, run, result })
    }

    fn ready(&self) -> bool {
        self.lifecycle.snapshot().ready
    }
}

#[test]
fn the_startup_probe_gates_liveness_readiness_and_on_ready() {
    let mut settings = settings(&[HookPhase::OnReady]);
    settings.probes.startup = Some(probe(1.0, 1, 3));
    settings.probes.liveness = Some(probe(10.0, 1, 3));
    let mut run = Run::new(settings);
    let actions = run.on(Input::AppStarted(pid(100)));
    let startup = probe_run(&actions, ProbeKind::Startup).unwrap();
    assert!(probe_run(&actions, ProbeKind::Liveness).is_none());
    assert_eq!(run.phase(), Phase::Starting);
    assert!(!run.ready());
    let actions = run.probe(ProbeKind::Startup, startup, false);
    assert!(effects(&actions).is_empty());
    let actions = run.probe(ProbeKind::Startup, startup, true);
    let effects = effects(&actions);
    assert_eq!(effects[0], Action::StopProbe(ProbeKind::Startup));
    assert!(matches!(
        effects[1],
        Action::StartProbe {
            kind: ProbeKind::Liveness,
            ..
        }
    ));
    assert!(matches!(
        effects[2],
        Action::RunHooks {
            phase: HookPhase::OnReady,
            ..
        }
    ));
    assert!(run.ready());
    assert_eq!(run.phase(), Phase::Running);
}

#[test]
fn readiness_follows_the_thresholds_and_on_ready_runs_once_per_start() {
    let mut settings = settings(&[HookPhase::OnReady]);
    settings.probes.readiness = Some(probe(1.0, 2, 3));
    let mut run = Run::new(settings);
    let readiness = probe_run(&run.on(Input::AppStarted(pid(100))), ProbeKind::Readiness).unwrap();
    assert!(
        !run.ready(),
        "not ready before the first result (Kubernetes' default)"
    );
    run.probe(ProbeKind::Readiness, readiness, true);
    assert!(!run.ready(), "success_threshold is 2");
    run.probe(ProbeKind::Readiness, readiness, true);
    assert!(run.ready());
    for _ in 0..2 {
        run.probe(ProbeKind::Readiness, readiness, false);
    }
    assert!(run.ready(), "two failures of three");
    let actions = run.probe(ProbeKind::Readiness, readiness, false);
    assert_eq!(reasons(&actions), [Reason::Unhealthy]);
    assert_eq!(
        messages(&actions)[0],
        "Unhealthy: Readiness probe failed: connection refused"
    );
    assert!(!run.ready());
    assert!(
        effects(&actions).is_empty(),
        "readiness never stops the app"
    );
    run.probe(ProbeKind::Readiness, readiness, true);
    run.probe(ProbeKind::Readiness, readiness, true);
    assert!(run.ready());
    assert_eq!(run.count(is_run_of(HookPhase::OnReady)), 1);
    let record = run.lifecycle.snapshot().probes[0].clone();
    assert_eq!((record.successes, record.failures), (4, 3));
}

#[test]
fn a_failing_liveness_probe_stops_the_app_with_pre_stop_and_restarts_it() {
    let mut settings = settings(&[HookPhase::PreStop, HookPhase::PostStop]);
    settings.probes.liveness = Some(probe(10.0, 1, 2));
    settings.restart = RestartPolicy::OnFailure;
    let mut run = Run::new(settings);
    let liveness = probe_run(&run.on(Input::AppStarted(pid(100))), ProbeKind::Liveness).unwrap();
    run.probe(ProbeKind::Liveness, liveness, false);
    run.at(5.0);
    let actions = run.probe(ProbeKind::Liveness, liveness, false);
    assert_eq!(reasons(&actions), [Reason::Unhealthy]);
    let pre_stop = hook_run(&actions, HookPhase::PreStop).unwrap();
    assert_eq!(
        effects(&actions),
        [
            Action::StopProbe(ProbeKind::Liveness),
            Action::RunHooks {
                phase: HookPhase::PreStop,
                run: pre_stop,
                deadline: Some(run.t0 + secs(25.0))
            }
        ]
    );
    assert_eq!(run.phase(), Phase::Stopping);
    assert!(run.lifecycle.snapshot().drain.is_none());
    assert_eq!(
        effects(&run.phase_done(HookPhase::PreStop, pre_stop, true)),
        [forward(TERM)]
    );
    // It stopped cleanly, but it was killed for failing: on-failure restarts it.
    run.exits(ExitStatus::Exited(0));
    let post_stop = hook_run(&run.nothing_left(), HookPhase::PostStop).unwrap();
    run.phase_done(HookPhase::PostStop, post_stop, true);
    assert_eq!(effects(&run.nothing_left()), [Action::StartApp]);
    let actions = run.on(Input::AppStarted(pid(101)));
    let again = probe_run(&actions, ProbeKind::Liveness).unwrap();
    assert_ne!(again, liveness);
    // The old probe task's last word changes nothing.
    assert!(run.probe(ProbeKind::Liveness, liveness, false).is_empty());
}

#[test]
fn a_failing_startup_probe_stops_the_app_and_never_does_not_restart_it() {
    let mut settings = settings(&[]);
    settings.probes.startup = Some(probe(1.0, 1, 1));
    let mut run = Run::new(settings);
    let startup = probe_run(&run.on(Input::AppStarted(pid(100))), ProbeKind::Startup).unwrap();
    let actions = run.probe(ProbeKind::Startup, startup, false);
    assert_eq!(
        messages(&actions)[0],
        "Unhealthy: Startup probe failed: connection refused"
    );
    assert_eq!(
        effects(&actions),
        [Action::StopProbe(ProbeKind::Startup), forward(TERM)]
    );
    run.exits(ExitStatus::Signaled(TERM));
    run.nothing_left();
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(143)]);
}

#[test]
fn a_drain_joins_a_liveness_stop_without_running_pre_stop_again() {
    let mut settings = settings(&[HookPhase::PreStop]);
    settings.probes.liveness = Some(probe(10.0, 1, 1));
    settings.restart = RestartPolicy::Always;
    let mut run = Run::new(settings);
    let liveness = probe_run(&run.on(Input::AppStarted(pid(100))), ProbeKind::Liveness).unwrap();
    let pre_stop = hook_run(
        &run.probe(ProbeKind::Liveness, liveness, false),
        HookPhase::PreStop,
    )
    .unwrap();
    run.at(1.0);
    let actions = run.signal(TERM);
    assert!(effects(&actions).is_empty());
    assert!(messages(&actions)[0].contains("while the app stops for its liveness probe failing"));
    assert_eq!(run.phase(), Phase::Draining);
    // A drain request joins too, and is answered when the hooks are done.
    assert!(effects(&run.on(Input::DrainRequested(4))).is_empty());
    let actions = run.phase_done(HookPhase::PreStop, pre_stop, true);
    assert_eq!(
        effects(&actions),
        [
            Action::AnswerDrain {
                waiters: vec![4],
                outcome: Ok("1 pre_stop hook(s) done".into())
            },
            forward(TERM)
        ]
    );
    run.exits(ExitStatus::Exited(0));
    run.nothing_left();
    assert_eq!(run.on(Input::OutputFlushed), [Action::Exit(0)]);
    assert_eq!(run.count(is_run_of(HookPhase::PreStop)), 1);
    assert_eq!(run.count(|a| *a == Action::StartApp), 1);
}

#[test]
fn probes_stop_when_the_drain_starts_and_readiness_goes_false_at_once() {
    let mut settings = settings(&[HookPhase::PreStop]);
    settings.probes.liveness = Some(probe(10.0, 1, 3));
    settings.probes.readiness = Some(probe(10.0, 1, 3));
    let mut run = Run::new(settings);
    let actions = run.on(Input::AppStarted(pid(100)));
    let readiness = probe_run(&actions, ProbeKind::Readiness).unwrap();
    run.probe(ProbeKind::Readiness, readiness, true);
    assert!(run.ready());
    let actions = run.on(Input::DrainRequested(1));
    assert!(!run.ready());
    assert_eq!(
        effects(&actions)[..2],
        [
            Action::StopProbe(ProbeKind::Liveness),
            Action::StopProbe(ProbeKind::Readiness)
        ]
    );
    let checks = run.lifecycle.snapshot().readiness_checks();
    let draining = checks.iter().find(|c| c.name == "draining").unwrap();
    assert_eq!(draining.failure.as_deref(), Some("the drain has started"));
}

#[test]
fn nothing_new_starts_while_a_round_of_signals_to_leftovers_is_going_out() {
    // Not PID 1, the round is a scan of /proc on a thread: were the restarted app (or a
    // post_stop hook) started before it ended, the scan would signal it as a leftover.
    let mut settings = settings(&[HookPhase::PostStop]);
    settings.restart = RestartPolicy::Always;
    let mut run = Run::running(settings);
    run.exits(ExitStatus::Exited(3));
    run.on(Input::Reaped(Children::Running));
    // The leftover dies of the group's SIGTERM while the scan still runs.
    assert!(effects(&run.nothing_left()).is_empty());
    assert_eq!(run.wake_in(), None);
    let post_stop = hook_run(&run.on(Input::LeftoversSignalled), HookPhase::PostStop).unwrap();
    run.phase_done(HookPhase::PostStop, post_stop, true);
    // The same in a SIGKILL round.
    run.on(Input::Reaped(Children::Running));
    run.on(Input::LeftoversSignalled);
    run.timer();
    assert!(effects(&run.nothing_left()).is_empty());
    assert_eq!(
        effects(&run.on(Input::LeftoversSignalled)),
        [Action::StartApp]
    );
}

#[test]
fn initial_delays_count_from_the_apps_start_as_the_kubelets() {
    let mut settings = settings(&[]);
    settings.probes.startup = Some(probe(1.0, 1, 30));
    let mut liveness = probe(10.0, 1, 3);
    liveness.initial_delay = secs(10.0);
    settings.probes.liveness = Some(liveness);
    let mut run = Run::new(settings);
    let actions = run.on(Input::AppStarted(pid(100)));
    let startup = probe_run(&actions, ProbeKind::Startup).unwrap();
    assert!(actions.contains(&Action::StartProbe {
        kind: ProbeKind::Startup,
        run: startup,
        first: secs(0.0)
    }));
    run.at(4.0);
    let actions = run.probe(ProbeKind::Startup, startup, true);
    let liveness = probe_run(&actions, ProbeKind::Liveness).unwrap();
    assert!(actions.contains(&Action::StartProbe {
        kind: ProbeKind::Liveness,
        run: liveness,
        first: secs(6.0)
    }));
}
