//! graceinit: a PID 1 for containers on Kubernetes.
//!
//! Where things happen: a signal enters through `signals::Incoming` (a signalfd read by
//! the `supervisor`'s loop), `reaper` is the only `waitpid`, `supervisor::lifecycle` takes
//! every decision (the drain's deadlines, the stop signal, restarts) as plain data,
//! `hooks` runs hook actions, `logging` writes stderr from a thread of its own, and `sys`
//! is the only module with `unsafe`.

mod cli;
mod commands;
mod config;
mod control;
mod events;
mod exit_code;
mod hooks;
mod http;
mod logging;
mod probes;
mod reaper;
mod runtime;
mod signals;
mod status;
mod supervisor;
mod sys;
mod traffic;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use cli::Invocation;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    match cli::parse(std::env::args_os().collect()) {
        Err(e) if e.use_stderr() => {
            // A usage error whatever happens to its message.
            let _ = e.print();
            exit_code::USAGE
        }
        // --help and --version: their output is the point, so failing to write it fails.
        Err(e) => match e
            .print()
            .and_then(|()| std::io::Write::flush(&mut std::io::stdout()))
        {
            Ok(()) => 0,
            Err(_) => exit_code::FAILURE,
        },
        Ok(Invocation::Supervise(args)) => supervise(args),
        Ok(Invocation::Check(args)) => commands::check::run(&args),
        Ok(Invocation::Sleep(args)) => commands::sleep::run(&args),
        Ok(Invocation::Probe(args)) => commands::probe::run(&args),
        Ok(Invocation::Drain(args)) => commands::drain::run(&args),
        Ok(Invocation::Status(args)) => commands::status::run(&args),
    }
}

fn supervise(args: cli::SuperviseArgs) -> i32 {
    // Before the log writer's thread exists: what the app must inherit (see
    // `InheritedSignals`); every signal stays blocked from here on (they are read from a
    // signalfd), so none pending is lost.
    let inherited = sys::signals::InheritedSignals::capture_and_block();
    let overrides = args.overrides();
    let settings = match &args.config {
        Some(path) => config::load(path, &overrides),
        None => config::defaults(&overrides),
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(e) => {
            if overrides.log_format == Some(config::LogFormat::Json) {
                // A log pipeline that asked for JSON gets JSON, this error included.
                logging::init(config::LogLevel::Warn, config::LogFormat::Json, false);
                tracing::error!(target: "graceinit::config", "{e}");
                logging::flush(Instant::now() + Duration::from_secs(1));
            } else {
                let _ = commands::output::stderr_line(&format!("graceinit: {e}"));
            }
            return exit_code::USAGE;
        }
    };
    logging::init(
        settings.log_level,
        settings.log_format,
        args.config.is_some(),
    );
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let command: Vec<OsString> = if args.command.is_empty() {
        settings.command.iter().map(OsString::from).collect()
    } else {
        args.command
    };
    if command.is_empty() {
        let _ = commands::output::stderr_line(&format!(
            "graceinit: no command to run: give one after `--`, or set [app] command in the config\n\n{}",
            cli::USAGE
        ));
        return exit_code::USAGE;
    }
    // Here only when the app could not be started: the error is still in the log queue.
    let code = supervisor::run(settings, command, inherited);
    logging::flush(Instant::now() + Duration::from_secs(1));
    code
}
