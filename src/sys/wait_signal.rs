//! Waiting for a signal with a timeout, synchronously (tini's `sigtimedwait`), for the
//! one-shot commands that run without the supervisor's event loop (`graceinit sleep`).
//!
//! The signals are blocked and then taken with `sigtimedwait`, never left to their
//! default action: as PID 1 of a PID namespace the kernel discards a signal whose
//! disposition is the default, but it queues a blocked one whatever the disposition.

use std::mem::MaybeUninit;
use std::time::Duration;

use libc::c_int;
use nix::errno::Errno;

use super::signals::disposition;

/// A set of signals blocked on the calling thread, to be waited for with [`wait`].
///
/// Only for a process with a single thread: a signal sent to the process goes to any
/// thread that does not block it.
///
/// [`wait`]: BlockedSignals::wait
pub struct BlockedSignals {
    set: libc::sigset_t,
}

impl BlockedSignals {
    /// Blocks those of `signals` that are not ignored (SIG_IGN) at the time of the call,
    /// so an ignored signal stays ignored, as it would for any program (`nohup`).
    pub fn block_unless_ignored(signals: &[c_int]) -> nix::Result<BlockedSignals> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given.
        let mut set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            set.assume_init()
        };
        for &sig in signals {
            if disposition(sig) != libc::SIG_IGN {
                // SAFETY: `set` is an initialised sigset_t; a bad number is EINVAL.
                Errno::result(unsafe { libc::sigaddset(&mut set, sig) })?;
            }
        }
        // SAFETY: `set` is initialised; a null old set is allowed.
        let result = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        Errno::result(result)?;
        Ok(BlockedSignals { set })
    }

    /// Waits until one of the blocked signals is pending and takes it, or until `timeout`
    /// has passed (`None`: no timeout). Returns the signal, or `None` on timeout or when
    /// interrupted (the caller checks its own deadline and waits again).
    pub fn wait(&self, timeout: Option<Duration>) -> Option<c_int> {
        let timespec = timeout.map(|timeout| libc::timespec {
            // Saturates: past i64::MAX seconds the kernel waits for ever anyway. (i64, as
            // time_t is on every target graceinit builds for: the libc crate deprecates
            // naming the alias on musl, whose time_t it will widen.)
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        });
        let timespec_ptr = timespec
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `self.set` is an initialised sigset_t; a null siginfo pointer is
        // allowed; `timespec_ptr` is null or points at `timespec`, alive for the call.
        let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), timespec_ptr) };
        // -1 is EAGAIN (timed out) or EINTR (a stop and continue, or another handler).
        (sig > 0).then_some(sig)
    }
}
