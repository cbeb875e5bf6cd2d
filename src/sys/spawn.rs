//! Starting a process with the signal state graceinit inherited, in a session of its own.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::unistd::Pid;

use super::signals::{InheritedSignals, set_dispositions_raw, set_mask_raw};

/// How the new process is set up between `fork` and `exec`.
pub struct SpawnOptions<'a> {
    /// The signal state the child gets back.
    pub inherited: &'a InheritedSignals,
    /// Make the terminal on stdin the new session's controlling terminal, so the app
    /// owns the foreground process group (dumb-init's TIOCSCTTY rule).
    pub take_terminal: bool,
}

/// Spawns `cmd` in a new session (so its process group id is its pid) and returns its
/// pid. Nothing waits on it here: the caller registers the pid with the reaper.
///
/// Errors are those of `exec` (std reports them through a close-on-exec pipe), so
/// ENOENT and EACCES reach the caller as the app's own failure.
pub fn spawn(cmd: &mut Command, opts: SpawnOptions<'_>) -> io::Result<Pid> {
    let dispositions = opts.inherited.dispositions().to_vec();
    let mask = *opts.inherited.mask();
    let take_terminal = opts.take_terminal;

    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe calls (rt_sigaction, setsid, ioctl, rt_sigprocmask) on data prepared
    // before the fork; it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            set_dispositions_raw(&dispositions);
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if take_terminal {
                // Fails harmlessly when the terminal is another session's (graceinit
                // started from an interactive shell): the app then reads the terminal
                // without owning it, and graceinit forwards the terminal's signals.
                libc::ioctl(libc::STDIN_FILENO, libc::TIOCSCTTY, 0);
            }
            // Last, so a signal already pending for the child meets the dispositions
            // above, exactly as it would after exec.
            set_mask_raw(&mask, std::ptr::null_mut());
            Ok(())
        });
    }

    // Every signal is blocked in graceinit (they are read from a signalfd), so none can
    // reach the child before the mask above is restored.
    let child = cmd.spawn()?;
    // Dropping `Child` neither waits nor kills: the reaper owns the status.
    Ok(Pid::from_raw(child.id() as i32))
}
