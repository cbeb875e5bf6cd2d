//! The command line: `graceinit [OPTIONS] [--] CMD [ARGS...]` and the subcommands.
//!
//! A first word that names a subcommand is that subcommand; anything else is the
//! supervisor's command line, so `graceinit -- app`, `graceinit app` and tini's and
//! dumb-init's flags all work as they do there.

use std::ffi::OsString;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, Args, CommandFactory, Parser};

use crate::config::{LogFormat, Overrides, parse_duration, parse_target};
use crate::signals::{SignalTarget, parse_rewrite, parse_signal};

pub enum Invocation {
    Supervise(SuperviseArgs),
    Check(CheckArgs),
    Sleep(SleepArgs),
    Probe(ProbeArgs),
    Drain(DrainArgs),
    Status(StatusArgs),
}

pub const USAGE: &str = "graceinit [OPTIONS] [--] CMD [ARGS...]\n       graceinit check [CONFIG]\n       graceinit sleep DURATION...\n       graceinit probe URL [--timeout D]\n       graceinit drain [--timeout D] [--socket PATH]\n       graceinit status [--json] [--socket PATH]";

const SUBCOMMANDS: &[&str] = &["check", "sleep", "probe", "drain", "status"];

pub fn parse(args: Vec<OsString>) -> Result<Invocation, clap::Error> {
    let first = args
        .get(1)
        .and_then(|a| a.to_str())
        .unwrap_or("")
        .to_string();
    let first = first.as_str();
    if SUBCOMMANDS.contains(&first) {
        let rest = std::iter::once(OsString::from(format!("graceinit {first}")))
            .chain(args.into_iter().skip(2));
        return Ok(match first {
            "check" => Invocation::Check(CheckArgs::try_parse_from(rest)?),
            "sleep" => Invocation::Sleep(SleepArgs::try_parse_from(rest)?),
            "drain" => Invocation::Drain(DrainArgs::try_parse_from(rest)?),
            "status" => Invocation::Status(StatusArgs::try_parse_from(rest)?),
            _ => Invocation::Probe(ProbeArgs::try_parse_from(rest)?),
        });
    }
    SuperviseArgs::try_parse_from(&args)
        .map(Invocation::Supervise)
        .map_err(|e| name_the_variable(e, &SuperviseArgs::command(), &args))
}

/// clap names the option whose value it rejected even when the value came from the
/// environment (`GRACEINIT_STOP_TIMEOUT=bad` reads "invalid value 'bad' for
/// '--stop-timeout <D>'"); then the variable is what the user has to fix, so say so.
fn name_the_variable(
    error: clap::Error,
    command: &clap::Command,
    args: &[OsString],
) -> clap::Error {
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return error;
    }
    let (Some(ContextValue::String(shown)), Some(ContextValue::String(value))) = (
        error.get(ContextKind::InvalidArg),
        error.get(ContextKind::InvalidValue),
    ) else {
        return error;
    };
    let Some(arg) = command.get_arguments().find(|arg| {
        arg.get_long()
            .is_some_and(|long| shown.split(' ').next() == Some(&format!("--{long}")))
    }) else {
        return error;
    };
    let Some(var) = arg.get_env() else {
        return error;
    };
    let from_env = std::env::var_os(var).is_some_and(|set| {
        let set = set.to_string_lossy();
        set == *value || set.split(',').any(|piece| piece == value)
    });
    if !from_env || given_on_command_line(arg, args) {
        return error;
    }
    let message = error.to_string().replacen(
        &format!("for '{shown}'"),
        &format!(
            "for '{shown}' (from the environment variable {})",
            var.to_string_lossy()
        ),
        1,
    );
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    clap::Error::raw(error.kind(), message)
}

/// Whether `arg` appears among the options (before `--`) of `args`.
fn given_on_command_line(arg: &clap::Arg, args: &[OsString]) -> bool {
    let long = arg.get_long().map(|long| format!("--{long}"));
    let short = arg.get_short().map(|short| format!("-{short}"));
    args.iter()
        .skip(1)
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .any(|a| {
            long.as_deref()
                .is_some_and(|long| a == long || a.starts_with(&format!("{long}=")))
                || short.as_deref().is_some_and(|short| a.starts_with(short))
        })
}

/// A PID 1 for containers on Kubernetes: runs CMD, forwards signals, reaps zombies,
/// runs lifecycle hooks and drains gracefully on SIGTERM.
#[derive(Debug, Parser)]
#[command(
    name = "graceinit",
    version,
    override_usage = USAGE,
    after_help = "Exit status: the app's; 128+N when it died of signal N; 127 command not found; 126 not executable; 2 usage or config error; 1 internal failure or failed post-start hook."
)]
pub struct SuperviseArgs {
    /// TOML config file.
    #[arg(long, env = "GRACEINIT_CONFIG", value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,

    /// Where forwarded signals go: the app's process group, or the app alone.
    #[arg(long, env = "GRACEINIT_SIGNAL_TARGET", value_name = "group|child", value_parser = parse_target)]
    pub signal_target: Option<SignalTarget>,

    /// Signal the app alone, not its process group (dumb-init's --single-child).
    #[arg(short = 'c', long = "single-child", conflicts_with = "signal_target")]
    pub single_child: bool,

    /// Signal the app's process group (tini's -g; the default).
    #[arg(short = 'g', hide = true)]
    pub group: bool,

    /// Accepted for tini compatibility: graceinit becomes a subreaper whenever it is not PID 1.
    #[arg(short = 's', hide = true)]
    pub subreaper: bool,

    /// Rewrite signal FROM to TO before forwarding; TO=0 drops it. Repeatable.
    #[arg(short = 'r', long = "rewrite", env = "GRACEINIT_REWRITE", value_delimiter = ',', value_name = "FROM:TO", value_parser = parse_rewrite, action = ArgAction::Append)]
    pub rewrite: Vec<(i32, Option<i32>)>,

    /// Exit with TO (default 0) when the app exits with FROM (tini's -e). Repeatable.
    #[arg(short = 'e', long = "remap-exit", env = "GRACEINIT_REMAP_EXIT", value_delimiter = ',', value_name = "FROM[:TO]", value_parser = parse_remap, action = ArgAction::Append)]
    pub remap_exit: Vec<(u8, u8)>,

    /// Signal graceinit receives when its parent dies (tini's -p).
    #[arg(short = 'p', long = "pdeathsig", env = "GRACEINIT_PDEATHSIG", value_name = "SIG", value_parser = parse_signal)]
    pub pdeathsig: Option<i32>,

    /// Signal that asks the app to stop at the end of the drain.
    #[arg(long, env = "GRACEINIT_STOP_SIGNAL", value_name = "SIG", value_parser = parse_signal)]
    pub stop_signal: Option<i32>,

    /// Time the app always gets between its stop signal and SIGKILL.
    #[arg(long, env = "GRACEINIT_STOP_TIMEOUT", value_name = "D", value_parser = parse_duration)]
    pub stop_timeout: Option<Duration>,

    /// Drain trigger to SIGKILL; at most the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "GRACEINIT_GRACE_PERIOD", value_name = "D", value_parser = parse_duration)]
    pub grace_period: Option<Duration>,

    /// More output: -v info, -vv debug.
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,

    /// Log a warning for every zombie reaped that graceinit did not start (tini's -w).
    #[arg(short = 'w', long = "warn-on-reap", env = "GRACEINIT_WARN_ON_REAP")]
    pub warn_on_reap: bool,

    /// Serve the health endpoints (/livez, /readyz, /metrics, ...) on this IP:PORT.
    #[arg(long, env = "GRACEINIT_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// The control socket for `graceinit drain` and `status` (as PID 1 the default is
    /// /run/graceinit.sock, or /tmp/graceinit.sock where /run is missing or read-only).
    #[arg(long, env = "GRACEINIT_SOCKET", value_name = "PATH")]
    pub socket: Option<String>,

    /// Log format.
    #[arg(long, env = "GRACEINIT_LOG_FORMAT", value_name = "text|json", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,

    /// The app and its arguments.
    #[arg(trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

impl SuperviseArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            signal_target: if self.single_child {
                Some(SignalTarget::Child)
            } else {
                self.signal_target
            },
            rewrite: self.rewrite.clone(),
            remap_exit: self.remap_exit.clone(),
            pdeathsig: self.pdeathsig,
            stop_signal: self.stop_signal,
            stop_timeout: self.stop_timeout,
            grace_period: self.grace_period,
            verbosity: self.verbose,
            log_format: self.log_format,
            warn_on_reap: self.warn_on_reap,
            listen: self.listen.clone(),
            socket: self.socket.clone(),
        }
    }
}

/// Validate a config file, print it resolved, and print the drain's time budget.
#[derive(Debug, Parser)]
#[command(name = "graceinit check")]
pub struct CheckArgs {
    /// Config file (default: $GRACEINIT_CONFIG).
    #[arg(env = "GRACEINIT_CONFIG", value_name = "CONFIG")]
    pub config: std::path::PathBuf,
}

/// Sleep for the sum of the DURATIONs, as coreutils' sleep does (for images with no shell,
/// and for `CMD ["sleep", ...]` under `ENTRYPOINT ["graceinit"]`). SIGTERM, SIGINT and
/// SIGHUP end it with 128+N, also as PID 1.
#[derive(Debug, Parser)]
#[command(name = "graceinit sleep")]
pub struct SleepArgs {
    /// Seconds ("5", "0.5"), with a unit s, m, h or d ("1.5m", "2h"), "1500ms", or
    /// "infinity". Several are added up ("1m 30").
    // Hyphen values reach the parser, so "-1" is called negative, not an unknown flag.
    #[arg(
        value_name = "DURATION",
        required = true,
        allow_hyphen_values = true,
        value_parser = crate::commands::sleep::parse_interval
    )]
    pub intervals: Vec<Duration>,
}

/// One check, for images with no shell: http(s)://... (2xx/3xx is ok) or tcp://host:port.
#[derive(Debug, Parser)]
#[command(name = "graceinit probe")]
pub struct ProbeArgs {
    /// http://host:port/path, https://..., or tcp://host:port.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Give up after this long.
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub log: QuietArgs,
}

/// Start the drain (or join the one under way) and wait until the pre_stop hooks are
/// done: the target of a Kubernetes preStop exec hook. Exit 0 when they are; 1 with the
/// reason when no supervisor answers, a hook failed with on_failure = "fail", or the
/// timeout passed (the drain goes on).
#[derive(Debug, Parser)]
#[command(name = "graceinit drain")]
pub struct DrainArgs {
    /// Give up waiting after this long (default: wait as long as the hooks take; the
    /// supervisor cuts them short at the drain's stop deadline).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    #[command(flatten)]
    pub socket: SocketArgs,

    #[command(flatten)]
    pub log: QuietArgs,
}

/// What the running supervisor knows: phase, readiness, the app, hooks, probes, the
/// drain and the last events.
#[derive(Debug, Parser)]
#[command(name = "graceinit status")]
pub struct StatusArgs {
    /// The JSON of the /status endpoint.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub socket: SocketArgs,
}

#[derive(Debug, Args)]
pub struct SocketArgs {
    /// The supervisor's control socket (default: $GRACEINIT_SOCKET, [control] socket in
    /// $GRACEINIT_CONFIG, /run/graceinit.sock, /tmp/graceinit.sock).
    #[arg(long, env = "GRACEINIT_SOCKET", value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct QuietArgs {
    /// Print what was checked and the answer.
    #[arg(short = 'v')]
    pub verbose: bool,
}

fn parse_remap(text: &str) -> Result<(u8, u8), String> {
    let code = |s: &str| {
        s.trim()
            .parse::<u8>()
            .map_err(|_| format!("`{s}` is not an exit code from 0 to 255"))
    };
    match text.split_once(':') {
        Some((from, to)) => Ok((code(from)?, code(to)?)),
        None => Ok((code(text)?, 0)),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "unknown log format `{other}`, expected `text` or `json`"
        )),
    }
}
