//! The resolved configuration: the values the supervisor, the hooks and `check` run on,
//! after precedence ([`super::resolve`]) and validation ([`super::validate`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use libc::c_int;

use super::file::{LogFormat, LogLevel, OnFailure, RestartPolicy};
use super::redact::{redact_url, redact_urls_in};
use crate::signals::{Rewrite, SignalTarget};

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: Option<PathBuf>,
    /// The app's argv from the config file; the command line's CMD replaces it.
    pub command: Vec<String>,
    /// `command` as written, `${VAR}`s unexpanded: what `check` shows.
    pub command_as_written: Vec<String>,
    pub stop_signal: c_int,
    pub stop_timeout: Duration,
    pub grace_period: Duration,
    pub kill_leftovers_after: Duration,
    pub restart: RestartPolicy,
    /// The pause before the second restart; it doubles with each restart after that.
    pub restart_backoff: Duration,
    /// The longest pause between restarts.
    pub restart_backoff_max: Duration,
    pub signal_target: SignalTarget,
    pub drain_signals: Vec<c_int>,
    pub rewrite: Rewrite,
    pub remap_exit: BTreeMap<u8, u8>,
    pub pdeathsig: Option<c_int>,
    pub hooks: Hooks,
    pub probes: Probes,
    pub http: Http,
    pub control_socket: Option<String>,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub warn_on_reap: bool,
    /// Non-fatal findings (unset `${VAR}`s), each located.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub post_start: Vec<Hook>,
    pub on_ready: Vec<Hook>,
    pub pre_stop: Vec<Hook>,
    pub post_stop: Vec<Hook>,
}

/// The four moments a hook can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPhase {
    PostStart,
    OnReady,
    PreStop,
    PostStop,
}

impl HookPhase {
    pub fn name(self) -> &'static str {
        match self {
            HookPhase::PostStart => "post_start",
            HookPhase::OnReady => "on_ready",
            HookPhase::PreStop => "pre_stop",
            HookPhase::PostStop => "post_stop",
        }
    }

    /// DESIGN: "fail" for post_start, "continue" for pre_stop, "ignore" for the others.
    pub(super) fn default_on_failure(self) -> OnFailure {
        match self {
            HookPhase::PostStart => OnFailure::Fail,
            HookPhase::PreStop => OnFailure::Continue,
            HookPhase::OnReady | HookPhase::PostStop => OnFailure::Ignore,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub phase: HookPhase,
    /// 1-based position within its phase, as shown in `[pre_stop#1]`.
    pub index: usize,
    pub action: Action,
    /// `action` as written, `${VAR}`s unexpanded: what `check` shows.
    pub as_written: Action,
    pub timeout: Duration,
    pub on_failure: OnFailure,
}

impl Hook {
    pub fn label(&self) -> String {
        format!("{}#{}", self.phase.name(), self.index)
    }

    /// The longest this hook can take: a sleep takes its duration, anything else up to
    /// its timeout.
    pub fn budget(&self) -> Duration {
        match self.action {
            Action::Sleep(duration) => duration.min(self.timeout),
            _ => self.timeout,
        }
    }
}

/// One thing to do, shared by hooks and probes.
#[derive(Debug, Clone)]
pub enum Action {
    Exec {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        workdir: Option<String>,
    },
    Http(HttpRequest),
    Tcp(String),
    Sleep(Duration),
}

impl fmt::Display for Action {
    /// A one-line description that never shows env values, header values or bodies, and
    /// shows URLs redacted (the module `redact`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Exec { argv, .. } => {
                let shown: Vec<String> = argv.iter().map(|arg| redact_urls_in(arg)).collect();
                write!(f, "exec {shown:?}")
            }
            Action::Http(request) => {
                write!(f, "http {} {}", request.method, redact_url(&request.url))
            }
            Action::Tcp(address) => write!(f, "tcp {address}"),
            Action::Sleep(duration) => write!(f, "sleep {}", humantime::format_duration(*duration)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Statuses that count as success; empty means 200..=399.
    pub expect_status: Vec<u16>,
}

impl HttpRequest {
    /// A GET with no headers or body that accepts what Kubernetes' httpGet does.
    pub fn get(url: impl Into<String>) -> Self {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            expect_status: Vec::new(),
        }
    }

    pub fn accepts(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..=399).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Probes {
    pub startup: Option<Probe>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
}

/// Kubernetes' probe fields, with Kubernetes' defaults.
#[derive(Debug, Clone)]
pub struct Probe {
    pub action: Action,
    /// `action` as written, `${VAR}`s unexpanded: what `check` shows.
    pub as_written: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// The endpoints' settings, served by the HTTP module (DESIGN: Endpoints).
#[derive(Debug, Clone, Default)]
pub struct Http {
    pub listen: Option<String>,
    pub prestop: bool,
    pub token: Option<String>,
}
