//! `graceinit check [CONFIG]`: validate a config, print it resolved, and do the drain's
//! arithmetic — the pre-stop hooks plus stop_timeout must fit in grace_period, which in
//! Kubernetes must not exceed terminationGracePeriodSeconds.
//!
//! Values are printed as written, `${VAR}`s unexpanded (their values may be secrets, and
//! `check` often runs where the pod's environment is not), and URLs redacted.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cli::CheckArgs;
use crate::commands::output;
use crate::config::{self, Hook, Overrides, Settings, redact_urls_in};
use crate::exit_code;
use crate::signals::signal_name;

pub fn run(args: &CheckArgs) -> i32 {
    let settings = match config::load(&args.config, &Overrides::default()) {
        Ok(settings) => settings,
        Err(e) => {
            // A usage error whatever happens to its message.
            let _ = output::stderr_line(&format!("graceinit: {e}"));
            return exit_code::USAGE;
        }
    };
    let budget = Budget::of(&settings);
    let written = settings
        .warnings
        .iter()
        .cloned()
        .chain(budget.warnings(&settings))
        .try_for_each(|warning| output::stderr_line(&format!("warning: {warning}")))
        .and_then(|()| output::stdout(&describe(&settings, &budget)));
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = output::stderr_line(&format!("graceinit check: cannot write: {e}"));
            exit_code::FAILURE
        }
    }
}

/// The drain's time budget.
pub struct Budget {
    pub pre_stop: Duration,
    pub stop_timeout: Duration,
    pub grace_period: Duration,
}

impl Budget {
    pub fn of(settings: &Settings) -> Self {
        Budget {
            pre_stop: settings.hooks.pre_stop.iter().map(Hook::budget).sum(),
            stop_timeout: settings.stop_timeout,
            grace_period: settings.grace_period,
        }
    }

    pub fn total(&self) -> Duration {
        self.pre_stop + self.stop_timeout
    }

    pub fn warnings(&self, settings: &Settings) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.total() > self.grace_period {
            let hook_time = self.grace_period.saturating_sub(self.stop_timeout);
            warnings.push(format!(
                "the drain does not fit: pre_stop hooks ({}) + stop_timeout ({}) = {} > grace_period ({}); pre_stop hooks will be cut after {} so the app still gets its stop_timeout",
                fmt(self.pre_stop),
                fmt(self.stop_timeout),
                fmt(self.total()),
                fmt(self.grace_period),
                fmt(hook_time),
            ));
        }
        if settings.kill_leftovers_after > self.stop_timeout && !settings.hooks.pre_stop.is_empty()
        {
            warnings.push(format!(
                "kill_leftovers_after ({}) is longer than stop_timeout ({}): leftovers of a late app may be killed by the kubelet first",
                fmt(settings.kill_leftovers_after),
                fmt(self.stop_timeout)
            ));
        }
        warnings
    }
}

fn describe(settings: &Settings, budget: &Budget) -> String {
    let mut out = String::new();
    let path = settings
        .source
        .as_ref()
        .map_or("<defaults>".into(), |p| p.display().to_string());
    let _ = writeln!(out, "{path}: ok\n");
    let _ = writeln!(out, "[app]");
    if settings.command_as_written.is_empty() {
        let _ = writeln!(out, "  command              (from the command line)");
    } else {
        let shown: Vec<String> = settings
            .command_as_written
            .iter()
            .map(|arg| redact_urls_in(arg))
            .collect();
        let _ = writeln!(out, "  command              {shown:?}");
    }
    let _ = writeln!(
        out,
        "  stop_signal          {}",
        signal_name(settings.stop_signal)
    );
    let _ = writeln!(out, "  stop_timeout         {}", fmt(settings.stop_timeout));
    let _ = writeln!(out, "  grace_period         {}", fmt(settings.grace_period));
    let _ = writeln!(
        out,
        "  kill_leftovers_after {}",
        fmt(settings.kill_leftovers_after)
    );
    let _ = writeln!(out, "  restart              {}", settings.restart);
    let _ = writeln!(
        out,
        "  restart_backoff      {}",
        fmt(settings.restart_backoff)
    );
    let _ = writeln!(
        out,
        "  restart_backoff_max  {}",
        fmt(settings.restart_backoff_max)
    );
    let _ = writeln!(out, "  signal_target        {}", settings.signal_target);
    let _ = writeln!(out, "[signals]");
    let drain: Vec<String> = settings
        .drain_signals
        .iter()
        .map(|&s| signal_name(s))
        .collect();
    let _ = writeln!(out, "  drain                {}", drain.join(", "));
    for (from, to) in settings.rewrite.rules() {
        let to = to.map_or("dropped".into(), signal_name);
        let _ = writeln!(out, "  rewrite              {} -> {to}", signal_name(from));
    }
    for (from, to) in &settings.remap_exit {
        let _ = writeln!(out, "  remap_exit           {from} -> {to}");
    }
    let hooks = &settings.hooks;
    for hook in hooks
        .post_start
        .iter()
        .chain(&hooks.on_ready)
        .chain(&hooks.pre_stop)
        .chain(&hooks.post_stop)
    {
        let _ = writeln!(
            out,
            "[{}] {}  timeout {}  on_failure {}",
            hook.label(),
            hook.as_written,
            fmt(hook.timeout),
            hook.on_failure
        );
    }
    for (name, probe) in [
        ("startup", &settings.probes.startup),
        ("liveness", &settings.probes.liveness),
        ("readiness", &settings.probes.readiness),
    ] {
        if let Some(p) = probe {
            let _ = writeln!(
                out,
                "[probes.{name}] {}  period {}  timeout {}  initial_delay {}  success_threshold {}  failure_threshold {}",
                p.as_written,
                fmt(p.period),
                fmt(p.timeout),
                fmt(p.initial_delay),
                p.success_threshold,
                p.failure_threshold
            );
        }
    }
    let _ = writeln!(out, "\ndrain budget (from SIGTERM):");
    for hook in &hooks.pre_stop {
        let _ = writeln!(
            out,
            "  {:<22} {:>8}",
            format!("{}", hook.label()),
            fmt(hook.budget())
        );
    }
    let _ = writeln!(
        out,
        "  {:<22} {:>8}",
        "pre_stop hooks",
        fmt(budget.pre_stop)
    );
    let _ = writeln!(
        out,
        "  {:<22} {:>8}",
        "stop_timeout",
        fmt(budget.stop_timeout)
    );
    let _ = writeln!(out, "  {:<22} {:>8}", "total", fmt(budget.total()));
    let _ = writeln!(
        out,
        "  {:<22} {:>8}",
        "grace_period",
        fmt(budget.grace_period)
    );
    if budget.total() <= budget.grace_period {
        let _ = writeln!(
            out,
            "  fits, with {} to spare",
            fmt(budget.grace_period - budget.total())
        );
    } else {
        let _ = writeln!(
            out,
            "  DOES NOT FIT by {}",
            fmt(budget.total() - budget.grace_period)
        );
    }
    if !hooks.post_stop.is_empty() {
        let _ = writeln!(
            out,
            "  post_stop hooks run after the app exits, in what is left of grace_period"
        );
    }
    let _ = writeln!(
        out,
        "  (Kubernetes: terminationGracePeriodSeconds must be at least {}s)",
        budget.grace_period.as_secs_f64().ceil()
    );
    out
}

fn fmt(duration: Duration) -> String {
    if duration.is_zero() {
        "0s".into()
    } else {
        humantime::format_duration(duration).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_policy_is_shown_with_its_back_off() {
        let settings = config::defaults(&Overrides::default()).unwrap();
        let shown = describe(&settings, &Budget::of(&settings));
        assert!(
            shown.contains(
                "  restart              never\n  restart_backoff      10s\n  restart_backoff_max  5m\n"
            ),
            "{shown}"
        );
    }
}
