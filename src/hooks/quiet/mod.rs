//! The `wait_quiet` pre_stop action: it watches the app's TCP listeners in the shared
//! network namespace ([`diag`], sampled every [`PERIOD`] only while the action runs) and
//! ends when nothing has arrived for `quiet`: no new connection, no request on an open
//! one (tcp_info's bytes_received grew). graceinit's own connections and `ignore` peers
//! do not count. It always succeeds: it only decides when the drain goes on.

mod diag;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Cidr, WaitQuiet};
use diag::Sample;

/// How often the sockets are sampled while the action runs.
pub const PERIOD: Duration = Duration::from_millis(100);

/// What one sample showed, next to the ones before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// New connections, and open ones that received bytes, since the last sample.
    pub arrivals: usize,
    /// Connections open to the watched listeners now (closing ones are not).
    pub open: usize,
}

/// Arrivals as a function of samples: the first sample is the baseline (what is open at
/// the start is not an arrival); after it, a 4-tuple not seen in the sample before (open,
/// or already closing or in TIME_WAIT: it came and went between samples), or one whose
/// bytes_received grew, is one.
pub struct Tracker {
    ports: Vec<u16>,
    ignore: Vec<Cidr>,
    /// Each open connection (local, peer) and the bytes it had received.
    seen: HashMap<(SocketAddr, SocketAddr), Option<u64>>,
    /// graceinit's own connections (app side) seen so far: still its own once its socket
    /// is closed and the app's side is closing or in TIME_WAIT.
    own: HashSet<(SocketAddr, SocketAddr)>,
    baseline: bool,
}

impl Tracker {
    pub fn new(wait: &WaitQuiet) -> Self {
        Tracker {
            ports: wait.ports.clone(),
            ignore: wait.ignore.clone(),
            seen: HashMap::new(),
            own: HashSet::new(),
            baseline: true,
        }
    }

    pub fn observe(&mut self, sample: &Sample) -> Observed {
        let own = |inode: u32| inode != 0 && sample.own_inodes.contains(&inode);
        // Given ports, or every listener's but graceinit's own (its health endpoint).
        let ports: HashSet<u16> = if self.ports.is_empty() {
            sample
                .sockets
                .iter()
                .filter(|s| s.listening && !own(s.inode))
                .map(|s| s.local.port())
                .collect()
        } else {
            self.ports.iter().copied().collect()
        };
        // graceinit's own connections (probes, hooks) as the app's side sees them.
        self.own
            .retain(|key| sample.sockets.iter().any(|s| (s.local, s.peer) == *key));
        self.own.extend(
            sample
                .sockets
                .iter()
                .filter(|s| !s.listening && own(s.inode))
                .map(|s| (s.peer, s.local)),
        );
        let mut observed = Observed::default();
        let mut now_open = HashMap::new();
        for socket in &sample.sockets {
            if socket.listening
                || !ports.contains(&socket.local.port())
                || own(socket.inode)
                || self.own.contains(&(socket.local, socket.peer))
                || self
                    .ignore
                    .iter()
                    .any(|block| block.contains(socket.peer.ip()))
            {
                continue;
            }
            let key = (socket.local, socket.peer);
            if socket.open {
                observed.open += 1;
            }
            let arrived = match self.seen.get(&key) {
                None => !self.baseline,
                Some(before) => match (before, socket.bytes_received) {
                    (Some(before), Some(now)) => now > *before,
                    _ => false,
                },
            };
            if arrived {
                observed.arrivals += 1;
            }
            // A half-open (SYN_RECV) entry has no tcp_info: keep what was known.
            let bytes = socket
                .bytes_received
                .or_else(|| self.seen.get(&key).copied().flatten());
            now_open.insert(key, bytes);
        }
        self.seen = now_open;
        self.baseline = false;
        observed
    }
}

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
    if now >= end {
        return true;
    }
    now >= started + wait.min && now >= last_arrival + wait.quiet && (!wait.until_idle || open == 0)
}

/// Runs the action until it is over or `limit` (its timeout, or the drain's deadline).
pub async fn run(wait: &WaitQuiet, limit: Instant) {
    let started = Instant::now();
    let end = (started + wait.max).min(limit);
    let mut tracker = Tracker::new(wait);
    let mut last_arrival = started;
    let mut arrivals = 0usize;
    let mut open = 0usize;
    let mut failed = false;
    loop {
        let now = Instant::now();
        if is_over(wait, started, end, last_arrival, open, now) {
            break;
        }
        match tokio::time::timeout_at(end, tokio::task::spawn_blocking(diag::sample)).await {
            Err(_) => break,
            Ok(Ok(Ok(sample))) => {
                let observed = tracker.observe(&sample);
                open = observed.open;
                if observed.arrivals > 0 {
                    arrivals += observed.arrivals;
                    last_arrival = Instant::now();
                }
            }
            Ok(Ok(Err(e))) => no_sample(&mut failed, &mut last_arrival, &e.to_string()),
            Ok(Err(e)) => no_sample(&mut failed, &mut last_arrival, &e.to_string()),
        }
        let next = Instant::now() + PERIOD;
        tokio::time::sleep_until(next.min(end)).await;
    }
    let now = Instant::now();
    let quiet = now >= started + wait.min
        && now >= last_arrival + wait.quiet
        && (!wait.until_idle || open == 0);
    let why = if quiet {
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
mod tests;
