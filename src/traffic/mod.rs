//! The app's TCP traffic as graceinit sees it from the shared network namespace: samples
//! of the TCP sockets through NETLINK_SOCK_DIAG ([`diag`], on the blocking pool), and the
//! [`Tracker`] that turns samples into arrivals (new connections, and requests on open
//! ones) and open connections. Used only while something needs it: the `wait_quiet`
//! pre_stop action, and the drain's report.

mod diag;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Cidr;
use diag::Sample;
#[cfg(test)]
use diag::TcpSocket;
pub use diag::{accepted_one, own_connection, own_listener};

/// How often the sockets are sampled while someone watches.
pub const PERIOD: Duration = Duration::from_millis(100);

/// How many samples in a row must count an open that no sample saw before it is an
/// arrival (it is then counted PERIOD x (CONFIRMING - 1) late).
const CONFIRMING: usize = 3;

/// What one sample showed, next to the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// New connections, and open ones that received bytes, since the last sample.
    pub arrivals: usize,
    /// Connections open to the watched listeners now (established, half-open, or closed
    /// by the peer only; not the ones the app has closed).
    pub open: usize,
    /// When the sample was begun.
    pub taken_at: Instant,
}

/// Arrivals as a function of samples: the first sample is the baseline (what is open at
/// the start is not an arrival); after it, a 4-tuple not seen in the sample before (open,
/// or already closing or in TIME_WAIT: it came and went between samples), or one whose
/// bytes_received grew, is one.
///
/// A connection can also come and go between two samples without a trace on the app's
/// side: when the client closes first, the app's socket is gone at once (the TIME_WAIT
/// stays with the client). The namespace's count of passive opens (`PassiveOpens` of
/// /proc/net/snmp) catches those: the opens it counts, less graceinit's own accepts and
/// the passive connections seen in the samples (on any listener, from any peer), came
/// unseen, and each is an arrival (on which port, from which peer, nobody can tell: for
/// quiet, counting them errs on the side of waiting). The count is kept as running
/// totals, so that an open counted before its socket is seen (or after) is not counted
/// twice, and an unseen one is counted when the next samples confirm it (200 ms late).
pub struct Tracker {
    ports: Vec<u16>,
    ignore: Vec<Cidr>,
    /// Each open connection (local, peer) and the bytes it had received.
    seen: HashMap<(SocketAddr, SocketAddr), Option<u64>>,
    /// graceinit's own connections (app side) seen so far: still its own once its socket
    /// is closed and the app's side is closing or in TIME_WAIT.
    own: HashSet<(SocketAddr, SocketAddr)>,
    /// Every passive connection (to any listener but graceinit's own) in the last sample.
    passive: HashSet<(SocketAddr, SocketAddr)>,
    /// Since the baseline: passive opens counted by the kernel less graceinit's accepts,
    /// less those seen; and the most of it counted as arrivals so far.
    unseen: i64,
    unseen_counted: i64,
    /// The count at the samples before (CONFIRMING - 1 of them).
    earlier: [i64; CONFIRMING - 1],
    /// The kernel's count and graceinit's accepts at the last sample.
    counters: Option<(u64, u64)>,
    baseline: bool,
}

impl Tracker {
    /// Watches `ports` (none: every listener but graceinit's own), not counting peers in
    /// `ignore`.
    pub fn new(ports: &[u16], ignore: &[Cidr]) -> Self {
        Tracker {
            ports: ports.to_vec(),
            ignore: ignore.to_vec(),
            seen: HashMap::new(),
            own: HashSet::new(),
            passive: HashSet::new(),
            unseen: 0,
            unseen_counted: 0,
            earlier: [0; CONFIRMING - 1],
            counters: None,
            baseline: true,
        }
    }

    /// The next sample; `last` when no other will follow (connections that came unseen
    /// are then counted without waiting for a next sample to confirm them).
    pub fn observe(&mut self, sample: &Sample, last: bool) -> Observed {
        let own = |inode: u32| inode != 0 && sample.own_inodes.contains(&inode);
        // Every listener's but graceinit's own (its health endpoint).
        let listeners: HashSet<u16> = sample
            .sockets
            .iter()
            .filter(|s| s.listening && !own(s.inode))
            .map(|s| s.local.port())
            .collect();
        // Given ports, or all of them; never graceinit's own (the kubelet's probes of
        // its endpoint are not the app's traffic, even if `ports` names its port).
        let ports: HashSet<u16> = if self.ports.is_empty() {
            listeners.clone()
        } else {
            let own_listeners: HashSet<u16> = sample
                .sockets
                .iter()
                .filter(|s| s.listening && own(s.inode))
                .map(|s| s.local.port())
                .collect();
            self.ports
                .iter()
                .copied()
                .filter(|port| !own_listeners.contains(port))
                .collect()
        };
        let passive: HashSet<_> = sample
            .sockets
            .iter()
            .filter(|s| !s.listening && listeners.contains(&s.local.port()))
            .map(|s| (s.local, s.peer))
            .collect();
        let unseen = self.unseen_arrivals(sample, passive.difference(&self.passive).count(), last);
        self.passive = passive;
        // graceinit's own connections (probes, hooks) as the app's side sees them.
        self.own
            .retain(|key| sample.sockets.iter().any(|s| (s.local, s.peer) == *key));
        self.own.extend(
            sample
                .sockets
                .iter()
                .filter(|s| !s.listening && own(s.inode))
                .map(|s| (s.peer, s.local))
                .chain(sample.own_tuples.iter().map(|&(local, peer)| (peer, local))),
        );
        let mut observed = Observed {
            arrivals: 0,
            open: 0,
            taken_at: sample.taken_at,
        };
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
        observed.arrivals += unseen;
        observed
    }

    /// The passive opens of this sample's interval that no sample saw (`seen_new` were
    /// seen), counted once.
    fn unseen_arrivals(&mut self, sample: &Sample, seen_new: usize, last: bool) -> usize {
        let Some(opens) = sample.passive_opens else {
            return 0;
        };
        // The baseline's counts are read before its listing: a connection opened while
        // the listing was made may be in it (open at the start) and be counted as an
        // arrival too - never neither.
        let counters = (opens, sample.own_accepts);
        let Some((opens_before, own_before)) = self.counters.replace(counters) else {
            return 0;
        };
        let opened = opens.wrapping_sub(opens_before) as i64;
        let own = sample.own_accepts.wrapping_sub(own_before) as i64;
        self.unseen += opened - own - seen_new as i64;
        // Counted once CONFIRMING samples agree: the counters and the listing are read at
        // slightly different instants, and graceinit counts its own connections once
        // made, so a connection can show in one before the other for a sample or two;
        // a connection that came unseen stays in the count.
        let confirmed = if last {
            self.unseen
        } else {
            self.earlier
                .iter()
                .fold(self.unseen, |least, &level| least.min(level))
        };
        self.earlier.rotate_right(1);
        self.earlier[0] = self.unseen;
        let new = (confirmed - self.unseen_counted).max(0);
        self.unseen_counted += new;
        new as usize
    }
}

/// Samples the namespace's TCP sockets and tracks what arrives on the watched ports.
pub struct Sampler {
    ports: Vec<u16>,
    ignore: Vec<Cidr>,
    /// Away on the blocking pool while a sample is taken.
    tracker: Option<Tracker>,
}

impl Sampler {
    pub fn new(ports: &[u16], ignore: &[Cidr]) -> Self {
        Sampler {
            ports: ports.to_vec(),
            ignore: ignore.to_vec(),
            tracker: Some(Tracker::new(ports, ignore)),
        }
    }

    /// One sample now, next to the ones before (the first is the baseline). All of it
    /// runs on the blocking pool, never on the event loop: the netlink dump, the read of
    /// /proc/self/fd and /proc/net/snmp, and the tracking, which costs time in the
    /// number of sockets.
    pub async fn next(&mut self) -> Result<Observed, String> {
        self.sample(false).await
    }

    /// The last sample: what came unseen since the one before counts at once.
    pub async fn last(&mut self) -> Result<Observed, String> {
        self.sample(true).await
    }

    async fn sample(&mut self, last: bool) -> Result<Observed, String> {
        // A sample whose caller gave up on it took the tracker along: start over.
        let mut tracker = self
            .tracker
            .take()
            .unwrap_or_else(|| Tracker::new(&self.ports, &self.ignore));
        let sampled = tokio::task::spawn_blocking(move || {
            let observed = diag::sample().map(|sample| tracker.observe(&sample, last));
            (tracker, observed)
        })
        .await;
        match sampled {
            Ok((tracker, observed)) => {
                self.tracker = Some(tracker);
                observed.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
