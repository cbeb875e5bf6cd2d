//! Configuration: the TOML file ([`file`]), command-line and environment overrides, and
//! their resolution into [`Settings`], the validated values the supervisor runs on.
//!
//! Precedence is flag > environment variable > file > default ([`resolve`]). Every mistake
//! in the file is reported as `path:line:column: what was expected` ([`validate`],
//! [`error`]). The resolved types are in [`model`].

mod error;
mod file;
mod model;
mod redact;
mod resolve;
mod template;
pub mod validate;

use std::path::Path;

pub use error::ConfigError;
pub use file::{LogFormat, LogLevel, OnFailure, parse_duration, parse_target};
pub use model::{Action, Cidr, Hook, HookPhase, HttpRequest, Settings, WaitQuiet};
pub use redact::{redact_url, redact_urls_in};
pub use resolve::Overrides;
#[cfg(test)]
use resolve::{DEFAULT_GRACE_PERIOD, DEFAULT_STOP_TIMEOUT};
pub use {file::RestartPolicy, model::Probe};

use error::Locator;
use resolve::resolve;

/// Reads and resolves a config file.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read config file: {e}"),
        excerpt: None,
    })?;
    let source = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid_up_to = e.utf8_error().valid_up_to();
        let line_end = bytes[valid_up_to..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| valid_up_to + i);
        let valid = std::str::from_utf8(&bytes[..valid_up_to]).unwrap_or_default();
        Locator::not_utf8(path, valid, &bytes[valid_up_to..line_end])
    })?;
    resolve(Some((path, &source)), overrides, |name| std::env::var(name))
}

/// No file: the defaults (a plain tini/dumb-init replacement) plus overrides, which
/// can still contradict each other (`--stop-timeout` longer than the grace period).
pub fn defaults(overrides: &Overrides) -> Result<Settings, ConfigError> {
    resolve(None, overrides, |name| std::env::var(name))
}

#[cfg(test)]
mod tests;
