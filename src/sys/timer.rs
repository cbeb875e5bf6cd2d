//! A periodic timer the event loop can wait on: a timerfd (CLOCK_MONOTONIC) in tokio's
//! epoll set. Each expiry wakes the loop once, at its time; the kernel counts the
//! expiries missed since the last read, and one read takes them all.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, TimerSetTimeFlags};
use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub struct PeriodicTimer(TimerFd);

impl AsRawFd for PeriodicTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl PeriodicTimer {
    /// A timer that expires first after `first` (which must not be zero: that would
    /// disarm it), then every `period`, registered with the tokio runtime (call from
    /// within it).
    pub fn open_async(first: Duration, period: Duration) -> io::Result<AsyncFd<PeriodicTimer>> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        timer.set(
            Expiration::IntervalDelayed(
                TimeSpec::from_duration(first),
                TimeSpec::from_duration(period),
            ),
            TimerSetTimeFlags::empty(),
        )?;
        // SAFETY: `PeriodicTimer` owns its descriptor (the `TimerFd`), never closes or
        // replaces it while it lives, and `as_raw_fd` always returns that one descriptor.
        unsafe { AsyncFd::register_with_interest(PeriodicTimer(timer), Interest::READABLE) }
            .map_err(io::Error::from)
    }

    /// Takes the expiries so far: Ok once at least one has passed (however many),
    /// WouldBlock before the next.
    pub fn take_expiries(&self) -> io::Result<()> {
        self.0.wait().map_err(io::Error::from)
    }
}
