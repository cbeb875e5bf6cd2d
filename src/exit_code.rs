//! graceinit's own exit codes, written down once.
//!
//! The app's status passes through (128+N for death by signal N, the shell's rule that
//! tini and dumb-init follow), then `remap_exit` applies; the codes below are graceinit's
//! own, the same as a shell's for a command that cannot run.

use std::collections::BTreeMap;
use std::io;

use crate::reaper::ExitStatus;

/// An internal failure, or a post-start hook that failed (Kubernetes kills the container).
pub const FAILURE: i32 = 1;
/// A usage or configuration error.
pub const USAGE: i32 = 2;
/// The command exists but cannot be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// The code for a command that could not be started.
pub fn for_spawn_error(error: &io::Error) -> i32 {
    match error.kind() {
        io::ErrorKind::NotFound => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    }
}

/// The app's status as graceinit's exit code, after `remap_exit` (tini's `-e`).
pub fn for_app(status: ExitStatus, remap: &BTreeMap<u8, u8>) -> i32 {
    let code = status.code();
    u8::try_from(code)
        .ok()
        .and_then(|c| remap.get(&c))
        .map_or(code, |&to| i32::from(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_become_128_plus_n_and_remap_applies_after() {
        let remap = BTreeMap::from([(143, 0), (3, 4)]);
        assert_eq!(for_app(ExitStatus::Signaled(15), &remap), 0);
        assert_eq!(for_app(ExitStatus::Signaled(9), &remap), 137);
        assert_eq!(for_app(ExitStatus::Exited(3), &remap), 4);
        assert_eq!(for_app(ExitStatus::Exited(5), &remap), 5);
    }

    #[test]
    fn spawn_errors_follow_the_shell() {
        assert_eq!(
            for_spawn_error(&io::Error::from(io::ErrorKind::NotFound)),
            127
        );
        assert_eq!(
            for_spawn_error(&io::Error::from(io::ErrorKind::PermissionDenied)),
            126
        );
    }
}
