//! Precedence: flag > environment variable > file > default, and `${VAR}` expansion,
//! turning the file as written ([`super::file`]) into [`Settings`].

use std::collections::BTreeMap;
use std::env::VarError;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libc::c_int;
use toml::Spanned;

use super::error::{ConfigError, Locator};
use super::file::{
    ActionTable, ConfigFile, ControlTable, DurationValue, HttpTable, LogFormat, LogLevel,
    RestartPolicy, SignalValue, Text, WaitQuietTable,
};
use super::model::{
    Action, Cidr, Hook, HookPhase, Hooks, Http, HttpRequest, Probe, Probes, Settings, WaitQuiet,
};
use super::redact::redact_url;
use super::template;
use super::validate::{self, Invalid};
use crate::signals::{Rewrite, SignalTarget};

pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Kubernetes' default terminationGracePeriodSeconds.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
pub const DEFAULT_KILL_LEFTOVERS_AFTER: Duration = Duration::from_secs(2);
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// The kubelet's back-off for a crashing container: 10s doubling to 5m.
pub const DEFAULT_RESTART_BACKOFF: Duration = Duration::from_secs(10);
pub const DEFAULT_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
/// The longest path a unix socket can be bound at (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What the command line and the environment say; `None` leaves the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub signal_target: Option<SignalTarget>,
    pub rewrite: Vec<(c_int, Option<c_int>)>,
    pub remap_exit: Vec<(u8, u8)>,
    pub pdeathsig: Option<c_int>,
    pub stop_signal: Option<c_int>,
    pub stop_timeout: Option<Duration>,
    pub grace_period: Option<Duration>,
    pub verbosity: u8,
    pub log_format: Option<LogFormat>,
    pub warn_on_reap: bool,
    /// `--listen` / `GRACEINIT_LISTEN`: the endpoints' address, over `[http] listen`.
    pub listen: Option<String>,
    /// `--socket` / `GRACEINIT_SOCKET`: the control socket's path.
    pub socket: Option<String>,
}

pub(super) fn resolve(
    file: Option<(&Path, &str)>,
    overrides: &Overrides,
    env: impl Fn(&str) -> Result<String, VarError>,
) -> Result<Settings, ConfigError> {
    let (parsed, locator) = match file {
        Some((path, source)) => {
            let mut locator = Locator {
                path,
                source,
                masked: Vec::new(),
            };
            let parsed: ConfigFile = toml::from_str(source).map_err(|e| locator.toml_error(&e))?;
            locator.masked = never_printed(&parsed);
            (parsed, Some(locator))
        }
        None => (ConfigFile::default(), None),
    };
    let mut resolver = Resolver {
        locator,
        env: &env,
        warnings: Vec::new(),
    };
    resolver.settings(parsed, overrides)
}

/// A duration setting and where it came from, so that an error about two settings can
/// point at the one in the file and say which is a default.
pub(super) struct Origin {
    pub value: Duration,
    /// Where the file sets it, if the file is what set it.
    pub span: Option<Range<usize>>,
    is_default: bool,
}

impl Origin {
    fn of(
        overridden: Option<Duration>,
        in_file: &Option<Spanned<DurationValue>>,
        default: Duration,
    ) -> Origin {
        match (overridden, in_file) {
            (Some(value), _) => Origin {
                value,
                span: None,
                is_default: false,
            },
            (None, Some(set)) => Origin {
                value: set.get_ref().0,
                span: Some(set.span()),
                is_default: false,
            },
            (None, None) => Origin {
                value: default,
                span: None,
                is_default: true,
            },
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.value))?;
        if self.is_default {
            f.write_str(", the default")?;
        }
        Ok(())
    }
}

/// Where the file holds values that are never printed, not even as written: env values,
/// header values, bodies and the endpoints' token.
fn never_printed(file: &ConfigFile) -> Vec<Range<usize>> {
    let hooks = &file.hooks;
    let probes = &file.probes;
    let tables = hooks
        .post_start
        .iter()
        .chain(&hooks.on_ready)
        .chain(&hooks.pre_stop)
        .chain(&hooks.post_stop)
        .chain(probes.startup.iter())
        .chain(probes.liveness.iter())
        .chain(probes.readiness.iter())
        .map(Spanned::get_ref);
    let mut spans: Vec<Range<usize>> = file.http.token.iter().map(Spanned::span).collect();
    for t in tables {
        spans.extend(t.env.values().map(Spanned::span));
        if let Some(http) = &t.http {
            spans.extend(http.headers.values().map(Spanned::span));
            spans.extend(http.body.iter().map(Spanned::span));
        }
    }
    spans
}

/// An action as the file has it, `${VAR}`s unexpanded, for display only: env values,
/// header values and bodies are left out, as they are never shown.
fn action_as_written(t: &ActionTable) -> Action {
    if let Some(argv) = &t.exec {
        return Action::Exec {
            argv: as_written(argv),
            env: BTreeMap::new(),
            workdir: t.workdir.as_ref().map(|w| w.get_ref().clone()),
        };
    }
    if let Some(http) = &t.http {
        return Action::Http(HttpRequest {
            method: http
                .method
                .as_ref()
                .map_or("GET".into(), |m| m.get_ref().to_ascii_uppercase()),
            url: http.url.get_ref().clone(),
            headers: Vec::new(),
            body: None,
            expect_status: http
                .expect_status
                .as_ref()
                .map_or(Vec::new(), |s| s.get_ref().clone()),
        });
    }
    if let Some(address) = &t.tcp {
        return Action::Tcp(address.get_ref().clone());
    }
    if let Some(wait) = &t.wait_quiet {
        // Validated before this is built; nothing in it is a secret.
        if let Ok(wait) = wait_quiet_of(wait.get_ref()) {
            return Action::WaitQuiet(wait);
        }
    }
    Action::Sleep(t.sleep.map_or(Duration::ZERO, |d| d.0))
}

/// A `wait_quiet` table checked: ports 1-65535, `quiet` and `max` longer than 0s, `min`
/// no longer than `max`; `ignore` is left empty (its blocks are `${VAR}`-expanded, then
/// parsed, by the resolver).
fn wait_quiet_of(t: &WaitQuietTable) -> Result<WaitQuiet, Invalid> {
    let ports = t.ports.as_ref().map_or(Vec::new(), |p| p.get_ref().clone());
    if let Some(p) = &t.ports {
        if p.get_ref().contains(&0) {
            return Err(Invalid::at(
                p.span(),
                "`ports` are 1 to 65535; 0 is not a port",
            ));
        }
    }
    let duration = |d: &Option<Spanned<DurationValue>>, default: Duration| {
        d.as_ref().map_or(default, |d| d.get_ref().0)
    };
    let quiet = duration(&t.quiet, WaitQuiet::DEFAULT_QUIET);
    let min = duration(&t.min, Duration::ZERO);
    let max = duration(&t.max, WaitQuiet::DEFAULT_MAX);
    for (key, value) in [("quiet", &t.quiet), ("max", &t.max)] {
        if let Some(v) = value {
            validate::nonzero(key, v.get_ref().0).map_err(|e| Invalid::at(v.span(), e))?;
        }
    }
    if min > max {
        let at = t
            .min
            .as_ref()
            .map(Spanned::span)
            .expect("min > max needs a min");
        return Err(Invalid::at(
            at,
            format!(
                "`min` ({}) is longer than `max` ({})",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    // `ignore` needs the environment: the resolver expands and parses it.
    let ignore = Vec::new();
    Ok(WaitQuiet {
        ports,
        quiet,
        until_idle: t.until_idle.unwrap_or(false),
        min,
        max,
        ignore,
    })
}

/// Texts as the file has them, `${VAR}`s unexpanded.
fn as_written(texts: &[Text]) -> Vec<String> {
    texts.iter().map(|text| text.get_ref().clone()).collect()
}

struct Resolver<'a, E> {
    locator: Option<Locator<'a>>,
    env: &'a E,
    warnings: Vec<String>,
}

impl<E: Fn(&str) -> Result<String, VarError>> Resolver<'_, E> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        self.error_at(Some(span), message)
    }

    /// An error located in the file, or (`None`, or no file) on the command line.
    fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        match (&self.locator, span) {
            (Some(locator), Some(span)) => locator.error(span, message),
            _ => ConfigError {
                path: PathBuf::from("<command line>"),
                line: 0,
                column: 0,
                message: message.into(),
                excerpt: None,
            },
        }
    }

    /// A broken rule, located where the rule points.
    fn invalid(&self, invalid: Invalid) -> ConfigError {
        self.error_at(invalid.at, invalid.message)
    }

    fn expand(&mut self, text: &Text) -> Result<String, ConfigError> {
        let (value, unset) =
            template::expand(text.get_ref(), self.env).map_err(|e| self.error(text.span(), e))?;
        for name in unset {
            let position = match &self.locator {
                Some(locator) => {
                    let (line, column) = locator.position(text.span().start);
                    format!("{}:{line}:{column}", locator.path.display())
                }
                None => "<command line>".into(),
            };
            self.warnings.push(format!(
                "{position}: ${{{name}}} is not set; it expands to an empty string (write ${{{name}:-default}} to choose)"
            ));
        }
        Ok(value)
    }

    /// An argv, expanded and checked.
    fn argv(&mut self, texts: &[Text]) -> Result<Vec<String>, ConfigError> {
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let arg = self.expand(text)?;
                validate::argument(i, &arg).map_err(|e| self.error(text.span(), e))?;
                Ok(arg)
            })
            .collect()
    }

    /// An exec action's `env`, expanded and checked.
    fn env(
        &mut self,
        env: &BTreeMap<Spanned<String>, Text>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for (name, value) in env {
            validate::env_name(name.get_ref()).map_err(|e| self.error(name.span(), e))?;
            let expanded = self.expand(value)?;
            validate::env_value(name.get_ref(), &expanded)
                .map_err(|e| self.error(value.span(), e))?;
            out.insert(name.get_ref().clone(), expanded);
        }
        Ok(out)
    }

    fn settings(
        &mut self,
        file: ConfigFile,
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let app = file.app;
        let (command, command_as_written) = match &app.command {
            Some(argv) if argv.get_ref().is_empty() => {
                return Err(self.error(argv.span(), "`command` needs at least the program to run"));
            }
            Some(argv) => (self.argv(argv.get_ref())?, as_written(argv.get_ref())),
            None => (Vec::new(), Vec::new()),
        };
        let stop_timeout = Origin::of(
            overrides.stop_timeout,
            &app.stop_timeout,
            DEFAULT_STOP_TIMEOUT,
        );
        let grace_period = Origin::of(
            overrides.grace_period,
            &app.grace_period,
            DEFAULT_GRACE_PERIOD,
        );
        validate::stop_timeout_fits(&stop_timeout, &grace_period).map_err(|e| self.invalid(e))?;
        let (stop_timeout, grace_period) = (stop_timeout.value, grace_period.value);
        let restart_backoff = Origin::of(None, &app.restart_backoff, DEFAULT_RESTART_BACKOFF);
        let restart_backoff_max =
            Origin::of(None, &app.restart_backoff_max, DEFAULT_RESTART_BACKOFF_MAX);
        validate::restart_backoff(&restart_backoff, &restart_backoff_max)
            .map_err(|e| self.invalid(e))?;

        // The app always has a session of its own, so in either signal target mode a
        // TSTP would be discarded by the kernel (orphaned process group).
        let mut rewrite = Rewrite::job_control_defaults();
        for (from, to) in &file.signals.rewrite {
            rewrite.set(from.0, to.0);
        }
        for &(from, to) in &overrides.rewrite {
            rewrite.set(from, to);
        }
        let mut remap_exit: BTreeMap<u8, u8> = file
            .signals
            .remap_exit
            .iter()
            .map(|(from, to)| (from.0, to.0))
            .collect();
        remap_exit.extend(overrides.remap_exit.iter().copied());

        let hooks = Hooks {
            post_start: self.hooks(HookPhase::PostStart, &file.hooks.post_start)?,
            on_ready: self.hooks(HookPhase::OnReady, &file.hooks.on_ready)?,
            pre_stop: self.hooks(HookPhase::PreStop, &file.hooks.pre_stop)?,
            post_stop: self.hooks(HookPhase::PostStop, &file.hooks.post_stop)?,
        };
        let probes = Probes {
            startup: self.probe(file.probes.startup.as_ref())?,
            liveness: self.probe(file.probes.liveness.as_ref())?,
            readiness: self.probe(file.probes.readiness.as_ref())?,
        };
        let http = self.http(&file.http, overrides.listen.as_deref())?;
        let control_socket = self.control_socket(overrides.socket.as_deref(), &file.control)?;

        let log_level = match overrides.verbosity {
            0 => file.log.level.unwrap_or(LogLevel::Warn),
            1 => LogLevel::Info,
            2 => LogLevel::Debug,
            _ => LogLevel::Trace,
        };

        Ok(Settings {
            source: self.locator.as_ref().map(|l| l.path.to_path_buf()),
            command,
            command_as_written,
            stop_signal: overrides
                .stop_signal
                .or(app.stop_signal.map(|s| s.0))
                .unwrap_or(libc::SIGTERM),
            stop_timeout,
            grace_period,
            kill_leftovers_after: app
                .kill_leftovers_after
                .map_or(DEFAULT_KILL_LEFTOVERS_AFTER, |d| d.0),
            restart: app
                .restart
                .map_or(RestartPolicy::Never, Spanned::into_inner),
            restart_backoff: restart_backoff.value,
            restart_backoff_max: restart_backoff_max.value,
            signal_target: overrides
                .signal_target
                .or(app.signal_target.map(|t| t.0))
                .unwrap_or_default(),
            drain_signals: self.drain_signals(file.signals.drain.as_ref())?,
            rewrite,
            remap_exit,
            pdeathsig: overrides.pdeathsig,
            hooks,
            probes,
            http,
            control_socket,
            log_level,
            log_format: overrides.log_format.or(file.log.format).unwrap_or_default(),
            warn_on_reap: overrides.warn_on_reap,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    /// `[http]`, with `--listen` / `GRACEINIT_LISTEN` over the file's `listen`.
    fn http(&mut self, table: &HttpTable, listen: Option<&str>) -> Result<Http, ConfigError> {
        let (listen, span) = match (listen, &table.listen) {
            (Some(listen), _) => (Some(listen.to_string()), None),
            (None, Some(text)) => (Some(self.expand(text)?), Some(text.span())),
            (None, None) => (None, None),
        };
        // A token read from a file (a Secret mounted or put in an env var) usually ends
        // with a newline, which no header value can carry: the token is the text
        // without surrounding whitespace.
        let token = table
            .token
            .as_ref()
            .map(|t| self.expand(t).map(|token| token.trim().to_string()))
            .transpose()?;
        if let Some(listen) = &listen {
            let address =
                validate::listen_address(listen).map_err(|e| self.error_at(span.clone(), e))?;
            validate::prestop_token(address, table.prestop, token.as_deref(), span)
                .map_err(|e| self.invalid(e))?;
        }
        Ok(Http {
            listen,
            prestop: table.prestop,
            token,
        })
    }

    /// `--socket` / `GRACEINIT_SOCKET` over `[control] socket`: a path a unix socket can
    /// be bound at (sun_path holds 107 bytes and a NUL).
    fn control_socket(
        &mut self,
        overridden: Option<&str>,
        control: &ControlTable,
    ) -> Result<Option<String>, ConfigError> {
        let (path, span) = match (overridden, &control.socket) {
            (Some(path), _) => (path.to_string(), None),
            (None, Some(text)) => (self.expand(text)?, Some(text.span())),
            (None, None) => return Ok(None),
        };
        let problem = if path.is_empty() {
            Some("the control socket's path is empty".to_string())
        } else if path.len() > MAX_SOCKET_PATH {
            Some(format!(
                "the control socket's path `{path}` is {} bytes long; a unix socket's path is at most {MAX_SOCKET_PATH}",
                path.len()
            ))
        } else {
            None
        };
        match problem {
            Some(message) => Err(self.error_at(span, message)),
            None => Ok(Some(path)),
        }
    }

    fn drain_signals(
        &self,
        drain: Option<&Spanned<Vec<SignalValue>>>,
    ) -> Result<Vec<c_int>, ConfigError> {
        let Some(drain) = drain else {
            return Ok(vec![libc::SIGTERM]);
        };
        validate::drain_signals(drain).map_err(|e| self.invalid(e))?;
        Ok(drain.get_ref().iter().map(|s| s.0).collect())
    }

    fn hooks(
        &mut self,
        phase: HookPhase,
        tables: &[Spanned<ActionTable>],
    ) -> Result<Vec<Hook>, ConfigError> {
        tables
            .iter()
            .enumerate()
            .map(|(i, table)| {
                let span = table.span();
                let t = table.get_ref();
                // A sleep hook's time is its duration, a wait_quiet's its `max`, unless a
                // timeout says otherwise.
                let mut default_timeout = t.sleep.map_or(DEFAULT_HOOK_TIMEOUT, |d| d.0);
                validate::hook_keys(t).map_err(|e| self.invalid(e))?;
                if let Some(wait) = &t.wait_quiet {
                    if phase != HookPhase::PreStop {
                        return Err(self.error(
                            wait.span(),
                            format!(
                                "`wait_quiet` is a pre_stop action; {} hooks take `exec`, `http`, `tcp` or `sleep`",
                                phase.name()
                            ),
                        ));
                    }
                    default_timeout = wait_quiet_of(wait.get_ref())
                        .map_or(WaitQuiet::DEFAULT_MAX, |w| w.max);
                    // The wait ends at its timeout: a longer `min` could never hold.
                    let min = wait.get_ref().min.as_ref();
                    if let (Some(min), Some(timeout)) = (min, &t.timeout) {
                        if min.get_ref().0 > timeout.get_ref().0 {
                            return Err(self.error(
                                min.span(),
                                format!(
                                    "`min` ({}) is longer than the hook's `timeout` ({})",
                                    humantime::format_duration(min.get_ref().0),
                                    humantime::format_duration(timeout.get_ref().0)
                                ),
                            ));
                        }
                    }
                }
                Ok(Hook {
                    phase,
                    index: i + 1,
                    action: self.action(span, t, true)?,
                    as_written: action_as_written(t),
                    timeout: self
                        .nonzero(&t.timeout, "timeout")?
                        .unwrap_or(default_timeout),
                    on_failure: t
                        .on_failure
                        .as_ref()
                        .map_or(phase.default_on_failure(), |f| *f.get_ref()),
                })
            })
            .collect()
    }

    fn probe(
        &mut self,
        table: Option<&Spanned<ActionTable>>,
    ) -> Result<Option<Probe>, ConfigError> {
        let Some(table) = table else { return Ok(None) };
        let t = table.get_ref();
        validate::probe_keys(t).map_err(|e| self.invalid(e))?;
        let threshold = |value: &Option<Spanned<u32>>, default: u32, this: &Self| match value {
            Some(v) => validate::threshold(*v.get_ref())
                .map(|()| *v.get_ref())
                .map_err(|e| this.error(v.span(), e)),
            None => Ok(default),
        };
        Ok(Some(Probe {
            action: self.action(table.span(), t, false)?,
            as_written: action_as_written(t),
            initial_delay: t
                .initial_delay
                .as_ref()
                .map_or(Duration::ZERO, |d| d.get_ref().0),
            period: self
                .nonzero(&t.period, "period")?
                .unwrap_or(Duration::from_secs(10)),
            timeout: self
                .nonzero(&t.timeout, "timeout")?
                .unwrap_or(Duration::from_secs(1)),
            success_threshold: threshold(&t.success_threshold, 1, self)?,
            failure_threshold: threshold(&t.failure_threshold, 3, self)?,
        }))
    }

    fn nonzero(
        &self,
        value: &Option<Spanned<DurationValue>>,
        key: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        match value {
            Some(d) => validate::nonzero(key, d.get_ref().0)
                .map(|()| Some(d.get_ref().0))
                .map_err(|e| self.error(d.span(), e)),
            None => Ok(None),
        }
    }

    fn action(
        &mut self,
        span: Range<usize>,
        t: &ActionTable,
        is_hook: bool,
    ) -> Result<Action, ConfigError> {
        validate::one_action(t).map_err(|e| self.error(span.clone(), e))?;
        if let Some(argv) = &t.exec {
            if argv.is_empty() {
                return Err(self.error(span, "`exec` needs at least the program to run"));
            }
            let argv = self.argv(argv)?;
            let env = self.env(&t.env)?;
            if let Some(workdir) = &t.workdir {
                validate::workdir(workdir.get_ref()).map_err(|e| self.error(workdir.span(), e))?;
            }
            return Ok(Action::Exec {
                argv,
                env,
                workdir: t.workdir.as_ref().map(|w| w.get_ref().clone()),
            });
        }
        if let Some(http) = &t.http {
            let url = self.expand(&http.url)?;
            let url = validate::http_url(&url).map_err(|e| {
                // Shown as written only, redacted: once expanded, a `/`, `?` or `#` inside
                // a secret moves where the authority or the query ends, and no redaction
                // can tell the secret from the URL any more.
                let written = redact_url(http.url.get_ref());
                let shown = if http.url.get_ref().contains("${") {
                    format!("`{written}` (after expanding its ${{VAR}}s)")
                } else {
                    format!("`{written}`")
                };
                self.error(http.url.span(), e.about(&shown))
            })?;
            let method = match &http.method {
                Some(m) => {
                    validate::http_method(m.get_ref()).map_err(|e| self.error(m.span(), e))?
                }
                None => "GET".to_string(),
            };
            let expect_status = match &http.expect_status {
                Some(list) => {
                    validate::expect_status(list.get_ref())
                        .map_err(|e| self.error(list.span(), e))?;
                    list.get_ref().clone()
                }
                None => Vec::new(),
            };
            let mut headers = Vec::new();
            for (name, value) in &http.headers {
                let expanded = self.expand(value)?;
                validate::header(name, &expanded).map_err(|e| self.error(value.span(), e))?;
                headers.push((name.clone(), expanded));
            }
            let body = http.body.as_ref().map(|b| self.expand(b)).transpose()?;
            return Ok(Action::Http(HttpRequest {
                method,
                url,
                headers,
                body,
                expect_status,
            }));
        }
        if let Some(address) = &t.tcp {
            let expanded = self.expand(address)?;
            if !validate::is_host_port(&expanded) {
                // Quoted as written: an expanded ${VAR} may be a secret.
                return Err(self.error(
                    address.span(),
                    format!("`{}` is not host:port", address.get_ref()),
                ));
            }
            return Ok(Action::Tcp(expanded));
        }
        if let Some(wait) = &t.wait_quiet {
            if !is_hook {
                return Err(self.error(
                    wait.span(),
                    "`wait_quiet` is a pre_stop action; probes take `exec`, `http` or `tcp`",
                ));
            }
            let mut checked = wait_quiet_of(wait.get_ref()).map_err(|e| self.invalid(e))?;
            // `ignore = ["${NODE_IP}"]`: the node's address differs per node.
            for block in &wait.get_ref().ignore {
                let expanded = self.expand(block)?;
                let cidr = match Cidr::parse(&expanded) {
                    Ok(cidr) => cidr,
                    // Quoted as written: an expanded ${VAR} may be a secret.
                    Err(_) if block.get_ref().contains("${") => {
                        return Err(self.error(
                            block.span(),
                            format!(
                                "`{}` does not expand to an address block like \"10.0.0.0/8\" or \"fd00::/8\"",
                                block.get_ref()
                            ),
                        ));
                    }
                    Err(e) => return Err(self.error(block.span(), e)),
                };
                checked.ignore.push(cidr);
            }
            return Ok(Action::WaitQuiet(checked));
        }
        let duration = t.sleep.expect("one action is present").0;
        if !is_hook {
            return Err(self.error(
                span,
                "`sleep` is a hook action; probes take `exec`, `http` or `tcp`",
            ));
        }
        Ok(Action::Sleep(duration))
    }
}
