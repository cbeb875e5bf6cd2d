//! The health endpoints (DESIGN: Endpoints): `/livez`, `/readyz`, `/startupz`,
//! `/status`, `/metrics`, `/prestop`, served from the supervisor's snapshot.
//!
//! - `server.rs`: the listener, the connection cap and hyper's limits (header size, header
//!   time); each connection on a task of its own, so a slow client delays no one.
//! - `routes.rs`: what each path answers, kube-apiserver's way for the health paths.
//! - `metrics.rs`: the Prometheus text exposition of the snapshot.
//!
//! Nothing here ever waits on the supervisor's loop: the snapshot is a `watch` value
//! read at once, and `/prestop` awaits its answer on the connection's own task.

mod metrics;
mod routes;
mod server;

use std::net::SocketAddr;

use crate::config::Settings;
use crate::supervisor::Handle;

/// What the routes need from the settings, fixed at start.
#[derive(Clone)]
struct Endpoints {
    prestop: bool,
    /// `X-Graceinit-Token` must equal this for `/prestop`, when set.
    token: Option<String>,
}

/// Binds `[http] listen` and serves it on a task of its own; None when not configured.
///
/// The bind happens now, before the app starts: a port that cannot be had is an error
/// the pod sees at once, not an app running without the probes it relies on.
pub fn start(settings: &Settings, handle: Handle) -> Result<Option<SocketAddr>, String> {
    let Some(listen) = &settings.http.listen else {
        return Ok(None);
    };
    // Validated with the config; parsed again here rather than carried as a second type.
    let address: SocketAddr = listen
        .trim()
        .parse()
        .map_err(|_| format!("[http] listen `{listen}` is not an IP address and port"))?;
    let endpoints = Endpoints {
        prestop: settings.http.prestop,
        token: settings.http.token.clone().filter(|t| !t.is_empty()),
    };
    let listener = server::bind(address)
        .map_err(|e| format!("cannot serve the health endpoints on {address}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot serve the health endpoints on {address}: {e}"))?;
    tokio::spawn(server::serve(listener, handle, endpoints));
    Ok(Some(bound))
}
