//! The rules a config must follow, each a function of values already read (and expanded)
//! that says in words what is wrong. The resolver ([`super::resolve`]) locates every
//! error at the value in the file (`file:line:column`); `graceinit probe` checks its URL
//! with the same functions, so a probe and an http or tcp hook accept the same targets.

use std::net::SocketAddr;
use std::ops::Range;

use toml::Spanned;

use super::file::{ActionTable, SignalValue};
use super::resolve::Origin;
use crate::signals::signal_name;

/// A rule broken by a setting whose place the rule decides: what, and where in the file
/// (`None`: not in the file, so on the command line or in the environment).
pub(super) struct Invalid {
    pub at: Option<Range<usize>>,
    pub message: String,
}

impl Invalid {
    pub(super) fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Invalid {
            at: Some(span),
            message: message.into(),
        }
    }
}

/// The app always gets its stop_timeout before SIGKILL, and SIGKILL comes at
/// grace_period: the first cannot be longer.
pub(super) fn stop_timeout_fits(
    stop_timeout: &Origin,
    grace_period: &Origin,
) -> Result<(), Invalid> {
    if stop_timeout.value <= grace_period.value {
        return Ok(());
    }
    // Point at a value in the file if either came from it (stop_timeout first); only
    // when neither did is the command line (or environment) to blame.
    Err(Invalid {
        at: stop_timeout.span.clone().or(grace_period.span.clone()),
        message: format!(
            "stop_timeout ({stop_timeout}) is longer than grace_period ({grace_period}): the app could never get its stop_timeout before SIGKILL",
        ),
    })
}

/// The back-off between restarts doubles from `restart_backoff` up to
/// `restart_backoff_max`: the base must be a pause, and not beyond the cap.
pub(super) fn restart_backoff(base: &Origin, max: &Origin) -> Result<(), Invalid> {
    if base.value.is_zero() {
        return Err(Invalid {
            at: base.span.clone(),
            message: "`restart_backoff` must be longer than 0s".into(),
        });
    }
    if base.value <= max.value {
        return Ok(());
    }
    Err(Invalid {
        at: base.span.clone().or(max.span.clone()),
        message: format!(
            "restart_backoff ({base}) is longer than restart_backoff_max ({max}): the back-off starts at restart_backoff and doubles up to restart_backoff_max"
        ),
    })
}

/// A drain starts on a signal graceinit reads: not one it never catches, SIGCHLD (the
/// reaper's) or a fault signal (the kernel's, or sent only by graceinit itself).
pub(super) fn drain_signals(drain: &Spanned<Vec<SignalValue>>) -> Result<(), Invalid> {
    let caught = crate::sys::signals::caught();
    if let Some(bad) = drain.get_ref().iter().find(|s| {
        !caught.contains(&s.0)
            || s.0 == libc::SIGCHLD
            || crate::sys::signals::FAULT_OR_SENT.contains(&s.0)
    }) {
        return Err(Invalid::at(
            drain.span(),
            format!(
                "{} cannot start the drain: graceinit does not catch it",
                signal_name(bad.0)
            ),
        ));
    }
    if drain.get_ref().is_empty() {
        return Err(Invalid::at(
            drain.span(),
            "`drain` needs at least one signal (the default is [\"SIGTERM\"])",
        ));
    }
    Ok(())
}

/// Hooks take `timeout` and `on_failure`, not a probe's schedule.
pub(super) fn hook_keys(t: &ActionTable) -> Result<(), Invalid> {
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
    match probe_only.into_iter().find(|(_, s)| s.is_some()) {
        Some((key, Some(at))) => Err(Invalid::at(
            at,
            format!("`{key}` is a probe setting; hooks take `timeout` and `on_failure`"),
        )),
        _ => Ok(()),
    }
}

/// Probes take `failure_threshold`, not a hook's `on_failure`.
pub(super) fn probe_keys(t: &ActionTable) -> Result<(), Invalid> {
    match &t.on_failure {
        Some(on_failure) => Err(Invalid::at(
            on_failure.span(),
            "`on_failure` is a hook setting; probes take `failure_threshold`",
        )),
        None => Ok(()),
    }
}

pub(super) fn threshold(value: u32) -> Result<(), String> {
    if value == 0 {
        return Err("a threshold must be at least 1".into());
    }
    Ok(())
}

/// A duration that must not be zero (a hook cut before it starts, a probe that never
/// pauses).
pub(super) fn nonzero(key: &str, value: std::time::Duration) -> Result<(), String> {
    if value.is_zero() {
        return Err(format!("`{key}` must be longer than 0s"));
    }
    Ok(())
}

/// Exactly one action per entry, and `env` and `workdir` only with `exec` (the span is
/// the entry's).
pub(super) fn one_action(t: &ActionTable) -> Result<(), String> {
    let given: Vec<&str> = [
        t.exec.as_ref().map(|_| "exec"),
        t.http.as_ref().map(|_| "http"),
        t.tcp.as_ref().map(|_| "tcp"),
        t.sleep.as_ref().map(|_| "sleep"),
        t.wait_quiet.as_ref().map(|_| "wait_quiet"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.as_slice() {
        [_] => {}
        [] => {
            return Err(
                "expected one action: `exec`, `http`, `tcp`, `sleep` or `wait_quiet`".into(),
            );
        }
        many => {
            return Err(format!(
                "one action per entry, found {}",
                many.join(" and ")
            ));
        }
    }
    if t.exec.is_none() && (!t.env.is_empty() || t.workdir.is_some()) {
        return Err("`env` and `workdir` apply only to `exec` actions".into());
    }
    Ok(())
}

/// A program's argument `i`, expanded; a NUL byte cannot be passed to a program (execve
/// takes C strings), so it is an error now rather than a failure at run time.
pub(super) fn argument(i: usize, arg: &str) -> Result<(), String> {
    if arg.contains('\0') {
        return Err(format!(
            "argument {i} contains a NUL byte, which a program's argv cannot hold"
        ));
    }
    Ok(())
}

/// What the kernel cannot carry in an environment's name: `=` or NUL. The name is
/// quoted; a value never is (it may be a secret).
pub(super) fn env_name(name: &str) -> Result<(), String> {
    let shown = format!("{name:?}");
    let problem = if name.is_empty() {
        "an environment variable needs a name".to_string()
    } else if name.contains('=') {
        format!("{shown} contains `=`, which would end the variable's name")
    } else if name.contains('\0') {
        format!("{shown} contains a NUL byte, which an environment cannot hold")
    } else {
        return Ok(());
    };
    Err(format!("`env`: {problem}"))
}

pub(super) fn env_value(name: &str, expanded: &str) -> Result<(), String> {
    if expanded.contains('\0') {
        return Err(format!(
            "`env`: the value of {name} contains a NUL byte, which an environment cannot hold"
        ));
    }
    Ok(())
}

pub(super) fn workdir(workdir: &str) -> Result<(), String> {
    if workdir.contains('\0') {
        return Err("`workdir` contains a NUL byte".into());
    }
    Ok(())
}

/// Why a URL cannot be an http action's. It never quotes the URL: the caller shows it,
/// redacted and as written.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// What the URL parser said.
    #[error("is not a URL: {0}")]
    NotAUrl(String),
    #[error("only http:// and https:// URLs are supported")]
    Scheme,
}

impl UrlError {
    /// The message about `shown` (the URL as the caller may show it).
    pub fn about(&self, shown: &str) -> String {
        match self {
            UrlError::NotAUrl(_) => format!("{shown} {self}"),
            UrlError::Scheme => format!("{shown}: {self}"),
        }
    }
}

/// An http action's URL, expanded: one reqwest can send to, over http or https.
pub fn http_url(url: &str) -> Result<String, UrlError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| UrlError::NotAUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    // As the parser read it: `http:/u:p@h` and `http:\\u:p@h` are `http://u:p@h/`, and
    // only the canonical form is what the redaction rule can be sure to read the same way.
    Ok(parsed.to_string())
}

/// An HTTP method, as sent: upper case.
pub(super) fn http_method(method: &str) -> Result<String, String> {
    let upper = method.to_ascii_uppercase();
    if reqwest::Method::from_bytes(upper.as_bytes()).is_err() || upper.is_empty() {
        return Err(format!("`{method}` is not an HTTP method"));
    }
    Ok(upper)
}

pub(super) fn expect_status(statuses: &[u16]) -> Result<(), String> {
    match statuses.iter().find(|s| !(100..=599).contains(*s)) {
        Some(bad) => Err(format!("{bad} is not an HTTP status (100..=599)")),
        None => Ok(()),
    }
}

/// A header's name and expanded value; the value is never quoted (it may be a secret).
pub(super) fn header(name: &str, expanded: &str) -> Result<(), String> {
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("`{name}` is not an HTTP header name"));
    }
    if reqwest::header::HeaderValue::from_str(expanded).is_err() {
        return Err(format!(
            "the value of header `{name}` is not a valid HTTP header value"
        ));
    }
    Ok(())
}

/// A tcp action's address, expanded: `host:port`, the port a number.
pub fn is_host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// `[http] listen`: an IP address and a port (0 picks a free one). Not a host name: that
/// would need a DNS lookup before the app starts, and "localhost" may mean two addresses.
pub(super) fn listen_address(listen: &str) -> Result<SocketAddr, String> {
    listen.trim().parse().map_err(|_| {
        format!(
            "`listen` must be an IP address and a port, like 127.0.0.1:8080 or [::]:8080, not `{listen}`"
        )
    })
}

/// `/prestop` starts the drain: on an address other hosts can reach (the pod's network),
/// only for a caller that has the token.
pub(super) fn prestop_token(
    listen: SocketAddr,
    prestop: bool,
    token: Option<&str>,
    listen_at: Option<Range<usize>>,
) -> Result<(), Invalid> {
    let loopback = listen.ip().to_canonical().is_loopback();
    if !prestop || loopback || token.is_some_and(|token| !token.is_empty()) {
        return Ok(());
    }
    Err(Invalid {
        at: listen_at,
        message: format!(
            "[http] prestop = true on {listen}, which is not a loopback address, needs a non-empty [http] token: without it anyone who reaches the port could start the drain"
        ),
    })
}
