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
    ActionTable, ConfigFile, DurationValue, LogFormat, LogLevel, RestartPolicy, SignalValue, Text,
};
use super::model::{Action, Hook, HookPhase, Hooks, Http, HttpRequest, Probe, Probes, Settings};
use super::redact::redact_url;
use super::template;
use crate::signals::signal_name;
use crate::signals::{Rewrite, SignalTarget};

pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Kubernetes' default terminationGracePeriodSeconds.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
pub const DEFAULT_KILL_LEFTOVERS_AFTER: Duration = Duration::from_secs(2);
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

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
struct Origin {
    value: Duration,
    /// Where the file sets it, if the file is what set it.
    span: Option<Range<usize>>,
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
    Action::Sleep(t.sleep.map_or(Duration::ZERO, |d| d.0))
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

    /// An argv, expanded; a NUL byte cannot be passed to a program (execve takes
    /// C strings), so it is an error now rather than a failure at run time.
    fn argv(&mut self, texts: &[Text]) -> Result<Vec<String>, ConfigError> {
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let arg = self.expand(text)?;
                if arg.contains('\0') {
                    return Err(self.error(
                        text.span(),
                        format!(
                            "argument {i} contains a NUL byte, which a program's argv cannot hold"
                        ),
                    ));
                }
                Ok(arg)
            })
            .collect()
    }

    /// An exec action's `env`, expanded; what the kernel cannot carry in an
    /// environment (`=` or NUL in a name, NUL in a value) is an error now. Values are
    /// never quoted in a message: they may be secrets.
    fn env(
        &mut self,
        env: &BTreeMap<Spanned<String>, Text>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for (name, value) in env {
            let shown = format!("{:?}", name.get_ref());
            let problem = if name.get_ref().is_empty() {
                Some("an environment variable needs a name".to_string())
            } else if name.get_ref().contains('=') {
                Some(format!(
                    "{shown} contains `=`, which would end the variable's name"
                ))
            } else if name.get_ref().contains('\0') {
                Some(format!(
                    "{shown} contains a NUL byte, which an environment cannot hold"
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(self.error(name.span(), format!("`env`: {problem}")));
            }
            let expanded = self.expand(value)?;
            if expanded.contains('\0') {
                return Err(self.error(
                    value.span(),
                    format!(
                        "`env`: the value of {} contains a NUL byte, which an environment cannot hold",
                        name.get_ref()
                    ),
                ));
            }
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
        if stop_timeout.value > grace_period.value {
            // Point at a value in the file if either came from it (stop_timeout first);
            // only when neither did is the command line (or environment) to blame.
            let in_file = stop_timeout.span.clone().or(grace_period.span.clone());
            return Err(self.error_at(
                in_file,
                format!(
                    "stop_timeout ({stop_timeout}) is longer than grace_period ({grace_period}): the app could never get its stop_timeout before SIGKILL",
                ),
            ));
        }
        let (stop_timeout, grace_period) = (stop_timeout.value, grace_period.value);

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
        let http = Http {
            listen: file
                .http
                .listen
                .as_ref()
                .map(|t| self.expand(t))
                .transpose()?,
            prestop: file.http.prestop,
            token: file
                .http
                .token
                .as_ref()
                .map(|t| self.expand(t))
                .transpose()?,
        };
        let control_socket = file
            .control
            .socket
            .as_ref()
            .map(|t| self.expand(t))
            .transpose()?;

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

    fn drain_signals(
        &self,
        drain: Option<&Spanned<Vec<SignalValue>>>,
    ) -> Result<Vec<c_int>, ConfigError> {
        let Some(drain) = drain else {
            return Ok(vec![libc::SIGTERM]);
        };
        let caught = crate::sys::signals::caught();
        if let Some(bad) = drain.get_ref().iter().find(|s| {
            !caught.contains(&s.0)
                || s.0 == libc::SIGCHLD
                || crate::sys::signals::FAULT_OR_SENT.contains(&s.0)
        }) {
            return Err(self.error(
                drain.span(),
                format!(
                    "{} cannot start the drain: graceinit does not catch it",
                    signal_name(bad.0)
                ),
            ));
        }
        if drain.get_ref().is_empty() {
            return Err(self.error(
                drain.span(),
                "`drain` needs at least one signal (the default is [\"SIGTERM\"])",
            ));
        }
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
                // A sleep hook's time is its duration unless a timeout says otherwise.
                let default_timeout = t.sleep.map_or(DEFAULT_HOOK_TIMEOUT, |d| d.0);
                let probe_only = [
                    ("initial_delay", t.initial_delay.as_ref().map(Spanned::span)),
                    ("period", t.period.as_ref().map(Spanned::span)),
                    (
                        "success_threshold",
                        t.success_threshold.as_ref().map(Spanned::span),
                    ),
                    (
                        "failure_threshold",
                        t.failure_threshold.as_ref().map(Spanned::span),
                    ),
                ];
                if let Some((key, Some(at))) = probe_only.into_iter().find(|(_, s)| s.is_some()) {
                    return Err(self.error(
                        at,
                        format!(
                            "`{key}` is a probe setting; hooks take `timeout` and `on_failure`"
                        ),
                    ));
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
        if let Some(on_failure) = &t.on_failure {
            return Err(self.error(
                on_failure.span(),
                "`on_failure` is a hook setting; probes take `failure_threshold`",
            ));
        }
        let threshold = |value: &Option<Spanned<u32>>, default: u32, this: &Self| match value {
            Some(v) if *v.get_ref() == 0 => {
                Err(this.error(v.span(), "a threshold must be at least 1"))
            }
            Some(v) => Ok(*v.get_ref()),
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

    /// A duration that must not be zero (a hook cut before it starts, a probe that
    /// never pauses).
    fn nonzero(
        &self,
        value: &Option<Spanned<DurationValue>>,
        key: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        match value {
            Some(d) if d.get_ref().0.is_zero() => {
                Err(self.error(d.span(), format!("`{key}` must be longer than 0s")))
            }
            Some(d) => Ok(Some(d.get_ref().0)),
            None => Ok(None),
        }
    }

    fn action(
        &mut self,
        span: Range<usize>,
        t: &ActionTable,
        is_hook: bool,
    ) -> Result<Action, ConfigError> {
        let given: Vec<&str> = [
            t.exec.as_ref().map(|_| "exec"),
            t.http.as_ref().map(|_| "http"),
            t.tcp.as_ref().map(|_| "tcp"),
            t.sleep.as_ref().map(|_| "sleep"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.as_slice() {
            [_] => {}
            [] => {
                return Err(self.error(
                    span,
                    "expected one action: `exec`, `http`, `tcp` or `sleep`",
                ));
            }
            many => {
                return Err(self.error(
                    span,
                    format!("one action per entry, found {}", many.join(" and ")),
                ));
            }
        }
        if t.exec.is_none() && (!t.env.is_empty() || t.workdir.is_some()) {
            return Err(self.error(span, "`env` and `workdir` apply only to `exec` actions"));
        }
        if let Some(argv) = &t.exec {
            if argv.is_empty() {
                return Err(self.error(span, "`exec` needs at least the program to run"));
            }
            let argv = self.argv(argv)?;
            let env = self.env(&t.env)?;
            if let Some(workdir) = &t.workdir
                && workdir.get_ref().contains('\0')
            {
                return Err(self.error(workdir.span(), "`workdir` contains a NUL byte"));
            }
            return Ok(Action::Exec {
                argv,
                env,
                workdir: t.workdir.as_ref().map(|w| w.get_ref().clone()),
            });
        }
        if let Some(http) = &t.http {
            let url = self.expand(&http.url)?;
            // Shown as written only, redacted: once expanded, a `/`, `?` or `#` inside a
            // secret moves where the authority or the query ends, and no redaction can
            // tell the secret from the URL any more.
            let written = redact_url(http.url.get_ref());
            let shown = if http.url.get_ref().contains("${") {
                format!("`{written}` (after expanding its ${{VAR}}s)")
            } else {
                format!("`{written}`")
            };
            let parsed = reqwest::Url::parse(&url)
                .map_err(|e| self.error(http.url.span(), format!("{shown} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(self.error(
                    http.url.span(),
                    format!("{shown}: only http:// and https:// URLs are supported"),
                ));
            }
            let method = match &http.method {
                Some(m) => {
                    let upper = m.get_ref().to_ascii_uppercase();
                    if reqwest::Method::from_bytes(upper.as_bytes()).is_err() || upper.is_empty() {
                        return Err(self
                            .error(m.span(), format!("`{}` is not an HTTP method", m.get_ref())));
                    }
                    upper
                }
                None => "GET".to_string(),
            };
            let expect_status = match &http.expect_status {
                Some(list) => {
                    if let Some(bad) = list.get_ref().iter().find(|s| !(100..=599).contains(*s)) {
                        return Err(self.error(
                            list.span(),
                            format!("{bad} is not an HTTP status (100..=599)"),
                        ));
                    }
                    list.get_ref().clone()
                }
                None => Vec::new(),
            };
            let mut headers = Vec::new();
            for (name, value) in &http.headers {
                let expanded = self.expand(value)?;
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(
                        self.error(value.span(), format!("`{name}` is not an HTTP header name"))
                    );
                }
                if reqwest::header::HeaderValue::from_str(&expanded).is_err() {
                    return Err(self.error(
                        value.span(),
                        format!("the value of header `{name}` is not a valid HTTP header value"),
                    ));
                }
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
            let port_ok = expanded
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(self.error(address.span(), format!("`{expanded}` is not host:port")));
            }
            return Ok(Action::Tcp(expanded));
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
