//! `waitpid` with the status decoded here, as tini does with WIFEXITED / WIFSIGNALED.
//!
//! nix's `WaitStatus` cannot represent death by a real-time signal (its `Signal` enum has
//! no such variant), so `nix::sys::wait::waitpid` returns EINVAL for it after the child
//! is already reaped: the status would be lost, and a reaping loop that treats every
//! error as "no children" would stop early.

use libc::c_int;
use nix::errno::Errno;
use nix::unistd::Pid;

/// How a reaped process ended, straight from the kernel's status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(c_int),
    /// Any signal, real-time ones included.
    Signaled(c_int),
}

/// One step of `waitpid(-1, WNOHANG)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// A child ended and is reaped.
    Child(Pid, Ended),
    /// Children exist, none has ended.
    NoneEnded,
    /// No children at all (ECHILD).
    NoChildren,
}

/// Reaps one ended child, if any. Only ECHILD means there is nothing to wait for; EINTR
/// is retried; any other error (none is expected for these arguments) is returned.
pub fn reap_one() -> Result<Reaped, Errno> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid writes the status word into `status`, a valid c_int we own.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            return Ok(Reaped::Child(Pid::from_raw(pid), decode(status)));
        }
        if pid == 0 {
            return Ok(Reaped::NoneEnded);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::ECHILD => return Ok(Reaped::NoChildren),
            other => return Err(other),
        }
    }
}

/// Without WUNTRACED / WCONTINUED, waitpid reports only exits and deaths by signal.
fn decode(status: c_int) -> Ended {
    if libc::WIFSIGNALED(status) {
        Ended::Signaled(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_number_decodes_real_time_included() {
        for sig in 1..=libc::SIGRTMAX() {
            // The kernel's encoding: the low 7 bits hold the signal, bit 7 a core dump.
            assert_eq!(decode(sig), Ended::Signaled(sig));
            assert_eq!(decode(sig | 0x80), Ended::Signaled(sig));
        }
        for code in 0..=255 {
            assert_eq!(decode(code << 8), Ended::Exited(code));
        }
    }
}
