//! The `wait_quiet` pre_stop action: it watches the app's TCP listeners in the shared
//! network namespace (a [`Sampler`], every [`PERIOD`] only while the action runs) and
//! ends when nothing has arrived for `quiet`: no new connection, no request on an open
//! one (tcp_info's bytes_received grew). graceinit's own connections and `ignore` peers
//! do not count. It always succeeds: it only decides when the drain goes on.

use tokio::time::Instant;

use crate::config::WaitQuiet;
use crate::traffic::{PERIOD, Sampler};

/// Whether the wait is over at `now`: `max` (or the drain's deadline, `end`) has come;
/// or `min` has passed, nothing has arrived for `quiet` and, with `until_idle`, nothing is
/// open.
pub fn is_over(
    wait: &WaitQuiet,
    started: Instant,
    end: Instant,
    last_arrival: Instant,
    open: usize,
    now: Instant,
) -> bool {
    now >= end || is_quiet(wait, started, last_arrival, open, now)
}

/// `min` has passed, nothing has arrived for `quiet` and, with `until_idle`, nothing is
/// open.
fn is_quiet(
    wait: &WaitQuiet,
    started: Instant,
    last_arrival: Instant,
    open: usize,
    now: Instant,
) -> bool {
    now >= started + wait.min && now >= last_arrival + wait.quiet && (!wait.until_idle || open == 0)
}

/// Runs the action until it is over or `limit` (its timeout, or the drain's deadline).
pub async fn run(wait: &WaitQuiet, limit: Instant) {
    let started = Instant::now();
    let end = (started + wait.max).min(limit);
    let mut sampler = Sampler::new(&wait.ports, &wait.ignore);
    let mut last_arrival = started;
    let mut arrivals = 0usize;
    let mut open = 0usize;
    let mut failed = false;
    loop {
        let now = Instant::now();
        if is_over(wait, started, end, last_arrival, open, now) {
            break;
        }
        match tokio::time::timeout_at(end, sampler.next()).await {
            Err(_) => break,
            Ok(Ok(observed)) => {
                open = observed.open;
                if observed.arrivals > 0 {
                    arrivals += observed.arrivals;
                    last_arrival = Instant::now();
                }
            }
            Ok(Err(e)) => no_sample(&mut failed, &mut last_arrival, &e),
        }
        // Every PERIOD from the start of the last sample, however long it took.
        tokio::time::sleep_until((now + PERIOD).min(end)).await;
    }
    let now = Instant::now();
    let why = if is_quiet(wait, started, last_arrival, open, now) {
        "quiet"
    } else {
        "its max or the drain deadline came first"
    };
    tracing::info!(
        arrivals,
        open,
        waited = ?now - started,
        since_last_arrival = ?now - last_arrival,
        "wait_quiet over: {why}"
    );
}

/// A sample failed: no evidence of quiet, so the wait goes on (until `max` at most);
/// said once.
fn no_sample(failed: &mut bool, last_arrival: &mut Instant, reason: &str) {
    if !*failed {
        tracing::warn!(
            "wait_quiet cannot sample the TCP sockets ({reason}): waiting until its max"
        );
        *failed = true;
    }
    *last_arrival = Instant::now();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Cidr;

    fn wait(ports: &[u16], ignore: &[&str]) -> WaitQuiet {
        WaitQuiet {
            ports: ports.to_vec(),
            quiet: Duration::from_secs(2),
            until_idle: false,
            min: Duration::ZERO,
            max: Duration::from_secs(30),
            ignore: ignore.iter().map(|c| Cidr::parse(c).unwrap()).collect(),
        }
    }

    #[test]
    fn over_after_quiet_not_before_min_and_at_max() {
        let w = WaitQuiet {
            min: Duration::from_secs(5),
            ..wait(&[8080], &[])
        };
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let end = t0 + s(30);
        // Quiet since the start, but min is 5s.
        assert!(!is_over(&w, t0, end, t0, 0, t0 + s(3)));
        assert!(is_over(&w, t0, end, t0, 0, t0 + s(5)));
        // An arrival at 4s: quiet from 6s.
        assert!(!is_over(&w, t0, end, t0 + s(4), 0, t0 + s(5)));
        assert!(is_over(&w, t0, end, t0 + s(4), 0, t0 + s(6)));
        // Arrivals until the end: the end wins.
        assert!(is_over(&w, t0, end, t0 + s(29), 0, t0 + s(30)));
        let idle = WaitQuiet {
            until_idle: true,
            ..w
        };
        assert!(!is_over(&idle, t0, end, t0, 1, t0 + s(10)));
        assert!(is_over(&idle, t0, end, t0, 0, t0 + s(10)));
        assert!(is_over(&idle, t0, end, t0, 1, t0 + s(30)));
    }
}
