//! The resolved configuration: the values the supervisor, the hooks and `check` run on,
//! after precedence ([`super::resolve`]) and validation ([`super::validate`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
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
            Action::WaitQuiet(ref wait) => wait.max.min(self.timeout),
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
    /// pre_stop only: wait until the app's listeners have had no arrival for `quiet`.
    WaitQuiet(WaitQuiet),
}

/// The `wait_quiet` action (DESIGN: Hooks and probes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitQuiet {
    /// The listening ports to watch; empty: every listener but graceinit's own.
    pub ports: Vec<u16>,
    /// How long without an arrival ends the wait.
    pub quiet: Duration,
    /// Also wait until no connection is open.
    pub until_idle: bool,
    /// The wait never ends before this.
    pub min: Duration,
    /// The wait never lasts longer than this.
    pub max: Duration,
    /// Peers whose traffic does not count (kubelet probes from the node, say).
    pub ignore: Vec<Cidr>,
}

impl WaitQuiet {
    pub const DEFAULT_QUIET: Duration = Duration::from_secs(2);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(30);
}

/// An address block, `10.0.0.0/8` or `fd00::/8`; a bare address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad =
            || format!("`{text}` is not an address block like \"10.0.0.0/8\" or \"fd00::/8\"");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| bad())?;
        let longest = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => longest,
        };
        if prefix > longest {
            return Err(bad());
        }
        // `::ffff:10.0.0.0/104`, as `ss` shows the IPv4 peers of a dual-stack listener:
        // the IPv4 block, which is what `contains` compares those peers with.
        if let IpAddr::V6(v6) = network {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                return Ok(Cidr {
                    network: IpAddr::V4(v4),
                    prefix: prefix - 96,
                });
            }
        }
        Ok(Cidr { network, prefix })
    }

    /// Whether `address` is in the block; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    /// as a dual-stack listener sees IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let keep = |bits: u32, width: u32| -> u128 {
            if bits == 0 {
                0
            } else {
                u128::MAX << (width - bits)
            }
        };
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = keep(u32::from(self.prefix), 32);
                (u128::from(u32::from(net)) & mask) == (u128::from(u32::from(a)) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = keep(u32::from(self.prefix), 128);
                (u128::from(net) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
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
            Action::WaitQuiet(wait) => {
                let ports: Vec<String> = wait.ports.iter().map(u16::to_string).collect();
                let ports = if ports.is_empty() {
                    "every listener".to_string()
                } else {
                    format!("port {}", ports.join(","))
                };
                write!(
                    f,
                    "wait_quiet {ports}, quiet {}{}, max {}",
                    humantime::format_duration(wait.quiet),
                    if wait.until_idle { " and idle" } else { "" },
                    humantime::format_duration(wait.max)
                )
            }
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
