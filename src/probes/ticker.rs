//! A probe's schedule: a tick at `initial_delay`, then every `period`, as the kubelet's
//! prober has it (a Go ticker: one check per tick, never two at once; ticks missed while
//! a check overran are dropped, but for one that is due at once; the phase is kept).
//!
//! The ticks come from a periodic timerfd in the event loop's epoll set, so that an idle
//! graceinit wakes exactly once per period. tokio's timer is a hierarchical wheel: a
//! 10 s sleep wakes the loop at the boundary of each level's slot (4.096 s, then 64 ms
//! granularity) before it fires, three wake-ups where one is due. The kernel's timer
//! also counts the expirations missed, which is the ticker's dropping of ticks.

use std::io;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::{Interval, MissedTickBehavior};

use crate::sys::timer::PeriodicTimer;

pub enum Ticker {
    /// `due_now`: the first tick is due at once (no initial delay); the timer gives the
    /// rest.
    Kernel {
        due_now: bool,
        timer: AsyncFd<PeriodicTimer>,
    },
    /// Where no timerfd can be had: tokio's timer, dropping missed ticks likewise.
    Tokio(Interval),
}

impl Ticker {
    pub fn new(initial_delay: Duration, period: Duration) -> Ticker {
        let first = if initial_delay.is_zero() {
            period
        } else {
            initial_delay
        };
        match PeriodicTimer::open_async(first, period) {
            Ok(timer) => Ticker::Kernel {
                due_now: initial_delay.is_zero(),
                timer,
            },
            Err(e) => {
                tracing::warn!("cannot create a timerfd for a probe ({e}): using tokio's timer");
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + initial_delay, period);
                interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
                Ticker::Tokio(interval)
            }
        }
    }

    /// Waits for the next tick.
    pub async fn tick(&mut self) {
        match self {
            Ticker::Kernel { due_now, timer } => {
                if std::mem::take(due_now) {
                    return;
                }
                loop {
                    let Ok(mut ready) = timer.readable().await else {
                        // The epoll registration failed: nothing will ever tick.
                        return std::future::pending().await;
                    };
                    // The read returns the expirations since the last one: any number of
                    // missed ticks make one.
                    match ready.try_io(|fd| fd.get_ref().take_expiries()) {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => {
                            tracing::warn!("a probe's timerfd failed: {e}");
                            return std::future::pending().await;
                        }
                        _ => {}
                    }
                }
            }
            Ticker::Tokio(interval) => {
                interval.tick().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn ticks_at_once_then_every_period_dropping_missed_ticks() {
        runtime().block_on(async {
            let start = Instant::now();
            let period = Duration::from_millis(100);
            let mut ticker = Ticker::new(Duration::ZERO, period);
            assert!(matches!(ticker, Ticker::Kernel { .. }));
            ticker.tick().await;
            assert!(
                start.elapsed() < Duration::from_millis(50),
                "the first at once"
            );
            ticker.tick().await;
            let second = start.elapsed();
            assert!(second >= period && second < period * 2, "{second:?}");
            // A check that overruns by 2.5 periods: one tick due at once, then the phase.
            std::thread::sleep(period * 5 / 2);
            let overran = start.elapsed();
            ticker.tick().await;
            assert!(start.elapsed() - overran < Duration::from_millis(20));
            ticker.tick().await;
            let fifth = start.elapsed();
            assert!(
                fifth >= period * 4 && fifth < period * 4 + period / 2,
                "{fifth:?}"
            );
        });
    }

    #[test]
    fn the_first_tick_waits_for_the_initial_delay() {
        runtime().block_on(async {
            let start = Instant::now();
            let mut ticker = Ticker::new(Duration::from_millis(150), Duration::from_millis(50));
            ticker.tick().await;
            let first = start.elapsed();
            assert!(first >= Duration::from_millis(150), "{first:?}");
            ticker.tick().await;
            let second = start.elapsed();
            assert!(second >= Duration::from_millis(200), "{second:?}");
        });
    }
}
