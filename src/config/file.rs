//! The TOML file as written, one struct per table, with `deny_unknown_fields` so a typo
//! is an error (and [`super::error`] suggests the nearest key). Values that need the
//! file position later (for `${VAR}` warnings and cross-field checks) are `Spanned`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::signals::{SignalTarget, parse_signal};

pub type Text = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub app: AppTable,
    #[serde(default)]
    pub signals: SignalsTable,
    #[serde(default)]
    pub http: HttpTable,
    #[serde(default)]
    pub control: ControlTable,
    #[serde(default)]
    pub log: LogTable,
    #[serde(default)]
    pub hooks: HooksTable,
    #[serde(default)]
    pub probes: ProbesTable,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTable {
    pub command: Option<Spanned<Vec<Text>>>,
    pub stop_signal: Option<SignalValue>,
    pub stop_timeout: Option<Spanned<DurationValue>>,
    pub grace_period: Option<Spanned<DurationValue>>,
    pub kill_leftovers_after: Option<DurationValue>,
    pub restart: Option<Spanned<RestartPolicy>>,
    pub restart_backoff: Option<Spanned<DurationValue>>,
    pub restart_backoff_max: Option<Spanned<DurationValue>>,
    pub signal_target: Option<TargetValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsTable {
    pub drain: Option<Spanned<Vec<SignalValue>>>,
    #[serde(default)]
    pub rewrite: BTreeMap<SignalValue, RewriteTarget>,
    #[serde(default)]
    pub remap_exit: BTreeMap<ExitCodeValue, ExitCodeValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTable {
    pub listen: Option<Text>,
    #[serde(default)]
    pub prestop: bool,
    pub token: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlTable {
    pub socket: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogTable {
    pub level: Option<LogLevel>,
    pub format: Option<LogFormat>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksTable {
    #[serde(default)]
    pub post_start: Vec<Spanned<ActionTable>>,
    #[serde(default)]
    pub on_ready: Vec<Spanned<ActionTable>>,
    #[serde(default)]
    pub pre_stop: Vec<Spanned<ActionTable>>,
    #[serde(default)]
    pub post_stop: Vec<Spanned<ActionTable>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesTable {
    pub startup: Option<Spanned<ActionTable>>,
    pub liveness: Option<Spanned<ActionTable>>,
    pub readiness: Option<Spanned<ActionTable>>,
}

/// One hook or probe: exactly one action key plus its settings. Hooks and probes share
/// the table; fields that belong to only one of them are checked in validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionTable {
    pub exec: Option<Vec<Text>>,
    pub http: Option<HttpAction>,
    pub tcp: Option<Text>,
    pub sleep: Option<DurationValue>,
    pub wait_quiet: Option<Spanned<WaitQuietTable>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Text>,
    pub workdir: Option<Spanned<String>>,
    pub timeout: Option<Spanned<DurationValue>>,
    pub on_failure: Option<Spanned<OnFailure>>,
    // Probe schedule (Kubernetes' field names).
    pub initial_delay: Option<Spanned<DurationValue>>,
    pub period: Option<Spanned<DurationValue>>,
    pub success_threshold: Option<Spanned<u32>>,
    pub failure_threshold: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    pub url: Text,
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Text>,
    pub body: Option<Text>,
    pub expect_status: Option<Spanned<Vec<u16>>>,
}

/// A `wait_quiet` pre_stop action: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { ports = [8080], quiet = \"2s\", max = \"30s\" }"
)]
pub struct WaitQuietTable {
    pub ports: Option<Spanned<Vec<u16>>>,
    pub quiet: Option<Spanned<DurationValue>>,
    pub until_idle: Option<bool>,
    pub min: Option<Spanned<DurationValue>>,
    pub max: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub ignore: Vec<Text>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

/// What a failed hook does to the lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// post_start: kill the app and exit 1. pre_stop: skip the remaining pre_stop hooks.
    Fail,
    /// Record a Failed*Hook event and go on.
    Continue,
    /// Go on without an event (logged at info).
    Ignore,
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        })
    }
}

impl fmt::Display for OnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnFailure::Fail => "fail",
            OnFailure::Continue => "continue",
            OnFailure::Ignore => "ignore",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// "250ms", "5s", "2m", "1h" (and humantime's combinations such as "1m 30s").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(DurationValue)
            .map_err(de::Error::custom)
    }
}

/// Durations longer than this are rejected: deadlines are `Instant`s, and no timeout
/// of a container's lifecycle is meant to be longer.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); expected a number with a unit, like \"500ms\", \"30s\", \"2m\" or \"1h\"")
    })?;
    if duration > LONGEST {
        return Err(format!(
            "`{text}` is longer than a year, the longest duration graceinit accepts"
        ));
    }
    Ok(duration)
}

/// A signal given by name ("SIGTERM", "TERM") or number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SignalValue(pub libc::c_int);

impl<'de> Deserialize<'de> for SignalValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(SignalVisitor { allow_zero: false })
            .map(|s| SignalValue(s.unwrap_or(0)))
    }
}

/// The right side of a rewrite rule: a signal, or 0 to drop the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewriteTarget(pub Option<libc::c_int>);

impl<'de> Deserialize<'de> for RewriteTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(SignalVisitor { allow_zero: true })
            .map(RewriteTarget)
    }
}

struct SignalVisitor {
    allow_zero: bool,
}

impl Visitor<'_> for SignalVisitor {
    type Value = Option<libc::c_int>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.allow_zero {
            f.write_str("a signal name like \"SIGTERM\", a number, or 0 to drop the signal")
        } else {
            f.write_str("a signal name like \"SIGTERM\" or a number")
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if self.allow_zero && text.trim() == "0" {
            return Ok(None);
        }
        parse_signal(text).map(Some).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
        if self.allow_zero && number == 0 {
            return Ok(None);
        }
        parse_signal(&number.to_string())
            .map(Some)
            .map_err(E::custom)
    }
}

/// An exit code 0..=255, written as a TOML integer or (as table keys must be) a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExitCodeValue(pub u8);

impl<'de> Deserialize<'de> for ExitCodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExitCodeVisitor;
        impl Visitor<'_> for ExitCodeVisitor {
            type Value = ExitCodeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exit code from 0 to 255")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                text.trim()
                    .parse::<u8>()
                    .map(ExitCodeValue)
                    .map_err(|_| E::custom(format!("`{text}` is not an exit code from 0 to 255")))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
                u8::try_from(number)
                    .map(ExitCodeValue)
                    .map_err(|_| E::custom(format!("{number} is not an exit code from 0 to 255")))
            }
        }
        deserializer.deserialize_any(ExitCodeVisitor)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetValue(pub SignalTarget);

impl<'de> Deserialize<'de> for TargetValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_target(&text)
            .map(TargetValue)
            .map_err(de::Error::custom)
    }
}

pub fn parse_target(text: &str) -> Result<SignalTarget, String> {
    match text {
        "group" => Ok(SignalTarget::Group),
        "child" => Ok(SignalTarget::Child),
        other => Err(format!(
            "unknown signal target `{other}`, expected `group` or `child`"
        )),
    }
}
