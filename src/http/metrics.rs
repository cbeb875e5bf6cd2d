//! `/metrics`: the snapshot in Prometheus' text exposition format (version 0.0.4),
//! written by a small encoder: graceinit's own names under `graceinit_`, in base units
//! (seconds, bytes), counters ending `_total`; plus the two standard `process_` gauges.
//! Label values are names graceinit chooses (phases, probes), never anything configured.

use std::fmt::Write as _;
use std::sync::OnceLock;

use tokio::time::Instant;

use crate::config::HookPhase;
use crate::probes::ProbeKind;
use crate::supervisor::{Phase, Snapshot, TrafficReport};

const PHASES: [Phase; 6] = [
    Phase::Starting,
    Phase::Running,
    Phase::Draining,
    Phase::Stopping,
    Phase::BackOff,
    Phase::Exited,
];

const HOOK_PHASES: [HookPhase; 4] = [
    HookPhase::PostStart,
    HookPhase::OnReady,
    HookPhase::PreStop,
    HookPhase::PostStop,
];

/// The whole exposition for `snapshot`. The process gauges read /proc on the blocking
/// pool: a read there is a syscall the event loop must not wait on.
pub async fn render(snapshot: &Snapshot) -> String {
    let process = tokio::task::spawn_blocking(ProcessStats::read)
        .await
        .ok()
        .flatten();
    encode(snapshot, process, Instant::now())
}

/// What /proc says about graceinit itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessStats {
    /// Seconds since the Unix epoch.
    pub start_time_seconds: f64,
    pub resident_memory_bytes: u64,
}

impl ProcessStats {
    /// /proc/self/stat's start time (clock ticks after boot) plus /proc/stat's `btime`,
    /// as Prometheus' own clients compute it; /proc/self/statm's resident pages.
    fn read() -> Option<ProcessStats> {
        static START: OnceLock<Option<f64>> = OnceLock::new();
        let start_time_seconds = (*START.get_or_init(|| {
            let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
            let boot = std::fs::read_to_string("/proc/stat").ok()?;
            start_time(&stat, &boot, clock_ticks()?)
        }))?;
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
        Some(ProcessStats {
            start_time_seconds,
            resident_memory_bytes: resident_pages * u64::try_from(page_size).ok()?,
        })
    }
}

fn clock_ticks() -> Option<f64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(ticks as f64)
}

/// The start time from /proc/self/stat (`stat`) and /proc/stat (`boot`).
fn start_time(stat: &str, boot: &str, ticks_per_second: f64) -> Option<f64> {
    // Field 22 of proc(5); the command name before it may hold spaces and ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let started_ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot_time: u64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot_time as f64 + started_ticks as f64 / ticks_per_second)
}

fn encode(snapshot: &Snapshot, process: Option<ProcessStats>, now: Instant) -> String {
    let mut out = Exposition::default();
    out.family(
        "graceinit_phase",
        "gauge",
        "The supervisor's phase: 1 for the current one.",
    );
    for phase in PHASES {
        out.sample(
            "graceinit_phase",
            &[("phase", phase.name())],
            flag(snapshot.phase == phase),
        );
    }
    out.family(
        "graceinit_ready",
        "gauge",
        "1 when /readyz answers 200: started, readiness probe passing, not draining.",
    );
    out.sample("graceinit_ready", &[], flag(snapshot.ready));
    out.family(
        "graceinit_started",
        "gauge",
        "1 once the app's post_start hooks and startup probe have passed.",
    );
    out.sample("graceinit_started", &[], flag(snapshot.started));
    out.family(
        "graceinit_app_restarts_total",
        "counter",
        "Times the app was restarted.",
    );
    out.sample(
        "graceinit_app_restarts_total",
        &[],
        f64::from(snapshot.app.restarts),
    );

    out.family(
        "graceinit_hook_runs_total",
        "counter",
        "Hook runs finished, by phase.",
    );
    for phase in HOOK_PHASES {
        let runs = hooks_of(snapshot, phase)
            .map(|h| u64::from(h.runs))
            .sum::<u64>();
        out.sample(
            "graceinit_hook_runs_total",
            &[("phase", phase.name())],
            runs as f64,
        );
    }
    out.family(
        "graceinit_hook_failures_total",
        "counter",
        "Hook runs that failed or timed out, by phase.",
    );
    for phase in HOOK_PHASES {
        let failures = hooks_of(snapshot, phase)
            .map(|h| u64::from(h.failures))
            .sum::<u64>();
        out.sample(
            "graceinit_hook_failures_total",
            &[("phase", phase.name())],
            failures as f64,
        );
    }

    out.family(
        "graceinit_probe_results_total",
        "counter",
        "Probe results, by configured probe and result.",
    );
    for kind in ProbeKind::ALL {
        let Some(probe) = snapshot.probe(kind) else {
            continue;
        };
        for (result, count) in [("success", probe.successes), ("failure", probe.failures)] {
            out.sample(
                "graceinit_probe_results_total",
                &[("probe", kind.name()), ("result", result)],
                count as f64,
            );
        }
    }

    if let Some(drain) = &snapshot.drain {
        let since_trigger = |at: Instant| at.saturating_duration_since(drain.started_at);
        out.family(
            "graceinit_drain_duration_seconds",
            "gauge",
            "Seconds from the drain's trigger to the app's exit, or until now while it runs.",
        );
        out.sample(
            "graceinit_drain_duration_seconds",
            &[],
            since_trigger(drain.finished_at.unwrap_or(now)).as_secs_f64(),
        );
        out.family(
            "graceinit_drain_stage_seconds",
            "gauge",
            "Seconds from the drain's trigger to each stage reached: stop_signal, sigkill, app_exit.",
        );
        let stages = [
            ("stop_signal", drain.stop_signal_at),
            ("sigkill", drain.killed_at),
            ("app_exit", drain.finished_at),
        ];
        for (stage, at) in stages {
            if let Some(at) = at {
                out.sample(
                    "graceinit_drain_stage_seconds",
                    &[("stage", stage)],
                    since_trigger(at).as_secs_f64(),
                );
            }
        }
        drain_traffic(&mut out, &drain.traffic, drain.started_at);
    }

    if let Some(process) = process {
        out.family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        out.sample(
            "process_start_time_seconds",
            &[],
            process.start_time_seconds,
        );
        out.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        out.sample(
            "process_resident_memory_bytes",
            &[],
            process.resident_memory_bytes as f64,
        );
    }
    out.text
}

/// The drain's report of the app's connections, once it has a first sample.
fn drain_traffic(out: &mut Exposition, report: &TrafficReport, trigger: Instant) {
    let Some(open_at_trigger) = report.open_at_trigger else {
        return;
    };
    out.family(
        "graceinit_drain_connections",
        "gauge",
        "Connections open to the app's watched listeners: at the trigger, the stop signal, SIGKILL, and now.",
    );
    let points = [
        ("trigger", Some(open_at_trigger)),
        ("stop_signal", report.open_at_stop_signal),
        ("sigkill", report.open_at_kill),
        ("now", Some(report.open)),
    ];
    for (at, open) in points {
        if let Some(open) = open {
            out.sample("graceinit_drain_connections", &[("at", at)], open as f64);
        }
    }
    out.family(
        "graceinit_drain_arrivals",
        "gauge",
        "New connections and requests on open ones that reached the app after the trigger (readiness false), and after the stop signal.",
    );
    out.sample(
        "graceinit_drain_arrivals",
        &[("after", "trigger")],
        report.arrivals as f64,
    );
    out.sample(
        "graceinit_drain_arrivals",
        &[("after", "stop_signal")],
        report.arrivals_after_stop_signal as f64,
    );
    if let Some(last) = report.last_arrival_at {
        out.family(
            "graceinit_drain_last_arrival_seconds",
            "gauge",
            "Seconds from the drain's trigger to the last arrival.",
        );
        out.sample(
            "graceinit_drain_last_arrival_seconds",
            &[],
            (last - trigger).as_secs_f64(),
        );
    }
}

fn hooks_of(
    snapshot: &Snapshot,
    phase: HookPhase,
) -> impl Iterator<Item = &crate::supervisor::HookRecord> {
    snapshot.hooks.iter().filter(move |h| h.phase == phase)
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// The text format's lines: `# HELP`, `# TYPE`, then `name{label="value"} number`.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        // f64's Display never uses an exponent and prints integers without ".0"; every
        // value here is finite.
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the format quotes it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_snapshot_encodes_every_family() {
        let text = encode(
            &Snapshot::initial(),
            Some(ProcessStats {
                start_time_seconds: 1_700_000_000.25,
                resident_memory_bytes: 1_572_864,
            }),
            Instant::now(),
        );
        assert!(
            text.contains("graceinit_phase{phase=\"starting\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("graceinit_phase{phase=\"running\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("graceinit_ready 0\n"), "{text}");
        assert!(
            text.contains("graceinit_hook_runs_total{phase=\"pre_stop\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE graceinit_app_restarts_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("process_start_time_seconds 1700000000.25\n"),
            "{text}"
        );
        assert!(
            text.contains("process_resident_memory_bytes 1572864\n"),
            "{text}"
        );
        assert!(!text.contains("graceinit_drain"), "no drain yet: {text}");
        assert!(
            !text.contains("graceinit_probe_results_total{"),
            "no probes: {text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_start_time_is_boot_time_plus_the_ticks() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 200\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 10\n";
        assert_eq!(start_time(stat, boot, 100.0), Some(1_700_000_123.45));
    }
}
