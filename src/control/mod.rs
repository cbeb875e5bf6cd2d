//! The control socket (DESIGN: Endpoints): `graceinit drain` and `graceinit status`
//! without the network.
//!
//! - `server.rs`: binds the socket (mode 0600, a stale file replaced, a live one an
//!   error) and serves each client on a task of its own, after checking its uid.
//! - `client.rs`: finds the socket and asks it, for the `drain` and `status` commands.
//!
//! The protocol is one request line, `drain` or `status`, and one JSON answer line:
//! `{"ok":true,"outcome":TEXT}` for a drain whose pre_stop hooks are done,
//! `{"ok":true,"status":STATUS}` (the JSON of `/status`), or `{"ok":false,"error":TEXT}`.

mod client;
mod server;

use std::path::Path;

pub use client::{Failure, ask, locate};
pub use server::SocketFile;

use crate::config::Settings;
use crate::supervisor::Handle;

/// Where graceinit serves the socket as PID 1 when no path is configured: /run is where a
/// container's runtime state goes (FHS), and it is a tmpfs in most images that have it.
pub const DEFAULT_SOCKET: &str = "/run/graceinit.sock";
/// Where /run is missing (a FROM-scratch image), read-only, or not writable by
/// graceinit's user.
pub const FALLBACK_SOCKET: &str = "/tmp/graceinit.sock";

/// What a client may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Start or join the drain; answered when its pre_stop hooks are done.
    Drain,
    /// The supervisor's snapshot, as `/status` has it.
    Status,
}

impl Request {
    pub fn line(self) -> &'static str {
        match self {
            Request::Drain => "drain",
            Request::Status => "status",
        }
    }

    fn parse(line: &str) -> Option<Request> {
        match line.trim() {
            "drain" => Some(Request::Drain),
            "status" => Some(Request::Status),
            _ => None,
        }
    }
}

/// Binds the control socket and serves it on a task of its own; None when off.
///
/// A configured path (`--socket`, `GRACEINIT_SOCKET`, `[control] socket`) that cannot be
/// served is an error: graceinit exits before the app starts. As PID 1 with nothing
/// configured the socket is on at [`DEFAULT_SOCKET`] or [`FALLBACK_SOCKET`]; where
/// neither can be had (a read-only root without /run and /tmp) graceinit warns and runs
/// without it, as tini would, since a SIGTERM alone still drains. Not PID 1, it is off
/// unless configured: several graceinits may share a host and its /run.
pub fn start(
    settings: &Settings,
    pid1: bool,
    handle: Handle,
) -> Result<Option<SocketFile>, String> {
    let bound = match (&settings.control_socket, pid1) {
        (Some(path), _) => server::bind(Path::new(path))
            .map_err(|e| format!("cannot serve the control socket at {path}: {e}"))?,
        (None, true) => match server::bind_default() {
            Ok(bound) => bound,
            Err(server::DefaultError::Fatal(message)) => return Err(message),
            Err(server::DefaultError::Unavailable(message)) => {
                tracing::warn!(
                    "{message}: running without the control socket (`graceinit drain` cannot reach this graceinit; set --socket or [control] socket to a writable place)"
                );
                return Ok(None);
            }
        },
        (None, false) => return Ok(None),
    };
    Ok(Some(server::serve(bound, handle)))
}
