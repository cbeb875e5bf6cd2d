//! The arrival logic as a pure function of samples.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn listener(local: &str, inode: u32) -> TcpSocket {
    TcpSocket {
        local: addr(local),
        peer: addr(if local.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }),
        listening: true,
        open: false,
        inode,
        bytes_received: None,
    }
}

fn conn(local: &str, peer: &str, inode: u32, bytes: u64) -> TcpSocket {
    TcpSocket {
        local: addr(local),
        peer: addr(peer),
        listening: false,
        open: true,
        inode,
        bytes_received: Some(bytes),
    }
}

fn sample(sockets: Vec<TcpSocket>, own: &[u32]) -> Sample {
    Sample {
        sockets,
        own_inodes: own.iter().copied().collect::<HashSet<u32>>(),
        own_tuples: Vec::new(),
        taken_at: tokio::time::Instant::now(),
        passive_opens: None,
        own_accepts: 0,
    }
}

/// (arrivals, open) of an observation.
fn seen(observed: Observed) -> (usize, usize) {
    (observed.arrivals, observed.open)
}

impl Tracker {
    /// A sample that is not the last.
    fn observe_now(&mut self, sample: &Sample) -> Observed {
        self.observe(sample, false)
    }
}

fn tracker(ports: &[u16], ignore: &[&str]) -> Tracker {
    let ignore: Vec<Cidr> = ignore.iter().map(|c| Cidr::parse(c).unwrap()).collect();
    Tracker::new(ports, &ignore)
}

const APP: &str = "10.0.0.5:8080";

#[test]
fn what_is_open_at_the_start_is_not_an_arrival_and_a_new_tuple_is() {
    let mut tracker = tracker(&[8080], &[]);
    let first = sample(
        vec![
            listener("0.0.0.0:8080", 1),
            conn(APP, "10.1.0.1:40000", 2, 100),
        ],
        &[],
    );
    assert_eq!(seen(tracker.observe_now(&first)), (0, 1));
    // Same connection, nothing received: nothing arrived.
    assert_eq!(seen(tracker.observe_now(&first)), (0, 1));
    let second = sample(
        vec![
            listener("0.0.0.0:8080", 1),
            conn(APP, "10.1.0.1:40000", 2, 100),
            conn(APP, "10.1.0.1:40002", 3, 0),
        ],
        &[],
    );
    assert_eq!(seen(tracker.observe_now(&second)), (1, 2));
    assert_eq!(seen(tracker.observe_now(&second)), (0, 2));
}

#[test]
fn bytes_on_an_open_connection_are_an_arrival() {
    let mut tracker = tracker(&[8080], &[]);
    tracker.observe_now(&sample(vec![conn(APP, "10.1.0.1:40000", 2, 100)], &[]));
    let more = sample(vec![conn(APP, "10.1.0.1:40000", 2, 180)], &[]);
    assert_eq!(seen(tracker.observe_now(&more)), (1, 1));
    assert_eq!(seen(tracker.observe_now(&more)), (0, 1));
}

#[test]
fn a_closed_then_reused_tuple_counts_again() {
    let mut tracker = tracker(&[8080], &[]);
    tracker.observe_now(&sample(vec![conn(APP, "10.1.0.1:40000", 2, 10)], &[]));
    assert_eq!(seen(tracker.observe_now(&sample(vec![], &[]))), (0, 0));
    let again = sample(vec![conn(APP, "10.1.0.1:40000", 9, 10)], &[]);
    assert_eq!(seen(tracker.observe_now(&again)), (1, 1));
}

#[test]
fn other_ports_ignored_peers_and_graceinits_own_connections_do_not_count() {
    let mut tracker = tracker(&[8080], &["10.9.0.0/16"]);
    tracker.observe_now(&sample(vec![], &[]));
    let next = sample(
        vec![
            // Another port.
            conn("10.0.0.5:9090", "10.1.0.1:40000", 2, 1),
            // An ignored peer (kubelet from the node), also as IPv4-mapped IPv6.
            conn(APP, "10.9.3.4:50000", 3, 1),
            conn("[::ffff:10.0.0.5]:8080", "[::ffff:10.9.3.4]:50001", 4, 1),
            // graceinit's probe: its own client socket (inode 7), and the app's side.
            conn("127.0.0.1:41000", "127.0.0.1:8080", 7, 0),
            conn("127.0.0.1:8080", "127.0.0.1:41000", 8, 1),
        ],
        &[7],
    );
    assert_eq!(seen(tracker.observe_now(&next)), (0, 0));
    // Loopback from anyone else is traffic (a mesh sidecar forwards over it).
    let sidecar = sample(vec![conn("127.0.0.1:8080", "127.0.0.1:42000", 9, 1)], &[7]);
    assert_eq!(seen(tracker.observe_now(&sidecar)), (1, 1));
}

#[test]
fn without_ports_every_listener_but_graceinits_own_is_watched() {
    let mut tracker = tracker(&[], &[]);
    tracker.observe_now(&sample(vec![], &[]));
    let next = sample(
        vec![
            listener("0.0.0.0:8080", 1),
            listener("[::]:8443", 2),
            listener("127.0.0.1:9090", 3), // graceinit's health endpoint
            conn(APP, "10.1.0.1:40000", 10, 1),
            conn("[fd00::5]:8443", "[fd00::9]:40000", 11, 1),
            conn("127.0.0.1:9090", "127.0.0.1:43000", 12, 1),
            // The client side of a connection out of the namespace: not a listener's.
            conn("10.0.0.5:45000", "10.2.0.1:5432", 13, 1),
        ],
        &[3],
    );
    assert_eq!(seen(tracker.observe_now(&next)), (2, 2));
}

#[test]
fn a_half_open_connection_arrives_once() {
    let mut tracker = tracker(&[8080], &[]);
    tracker.observe_now(&sample(vec![], &[]));
    let mut syn = conn(APP, "10.1.0.1:40000", 0, 0);
    syn.bytes_received = None;
    assert_eq!(seen(tracker.observe_now(&sample(vec![syn], &[]))), (1, 1));
    let established = sample(vec![conn(APP, "10.1.0.1:40000", 5, 0)], &[]);
    assert_eq!(seen(tracker.observe_now(&established)), (0, 1));
}

#[test]
fn a_connection_that_came_and_went_between_samples_arrived_but_is_not_open() {
    let mut tracker = tracker(&[8080], &[]);
    tracker.observe_now(&sample(vec![], &[]));
    let mut gone = conn(APP, "10.1.0.1:40000", 0, 0);
    gone.open = false;
    gone.bytes_received = None;
    let time_wait = sample(vec![gone], &[]);
    assert_eq!(seen(tracker.observe_now(&time_wait)), (1, 0));
    assert_eq!(seen(tracker.observe_now(&time_wait)), (0, 0));
}

fn counted(mut sample: Sample, passive_opens: u64, own_accepts: u64) -> Sample {
    sample.passive_opens = Some(passive_opens);
    sample.own_accepts = own_accepts;
    sample
}

#[test]
fn connections_that_came_and_went_unseen_arrive_by_the_namespaces_count_of_opens() {
    let mut tracker = tracker(&[8080], &[]);
    let app = || listener("0.0.0.0:8080", 1);
    let health = || listener("127.0.0.1:9000", 2);
    let mut observe = |sockets: Vec<TcpSocket>, opens, own| {
        tracker
            .observe_now(&counted(sample(sockets, &[2]), opens, own))
            .arrivals
    };
    assert_eq!(observe(vec![app(), health()], 100, 7), 0);
    // Two opens nobody saw (clients that closed first), and one of graceinit's own:
    // counted once two more samples confirm them.
    assert_eq!(observe(vec![app(), health()], 103, 8), 0);
    assert_eq!(observe(vec![app(), health()], 103, 8), 0);
    // With one seen on the app's port: the two confirmed, and the one seen.
    let one = || conn(APP, "10.1.0.1:1", 3, 0);
    let two = || conn(APP, "10.1.0.1:2", 4, 0);
    assert_eq!(observe(vec![app(), health(), one()], 104, 8), 3);
    // Seen before the count moved (listed after the read): counted once, when seen.
    assert_eq!(observe(vec![app(), health(), one(), two()], 104, 8), 1);
    assert_eq!(observe(vec![app(), health(), one(), two()], 105, 8), 0);
    // Nothing new: nothing arrives.
    assert_eq!(observe(vec![app(), health(), one(), two()], 105, 8), 0);
}

#[test]
fn an_open_counted_before_graceinit_counts_its_own_accept_is_not_an_arrival() {
    let mut tracker = tracker(&[8080], &[]);
    let mut observe = |opens, own| {
        tracker
            .observe_now(&counted(
                sample(vec![listener("0.0.0.0:8080", 1)], &[]),
                opens,
                own,
            ))
            .arrivals
    };
    assert_eq!(observe(10, 0), 0);
    // The kernel's count moved; graceinit's own count only two samples later (a
    // connection it counts once its request is answered).
    assert_eq!(observe(11, 0), 0);
    assert_eq!(observe(11, 0), 0);
    assert_eq!(observe(11, 1), 0);
    assert_eq!(observe(12, 2), 0);
    // An unseen open of the app's stays in the count: counted once confirmed.
    assert_eq!(observe(13, 2), 0);
    assert_eq!(observe(13, 2), 0);
    assert_eq!(observe(13, 2), 1);
    assert_eq!(observe(13, 2), 0);
}

#[test]
fn seen_connections_to_other_ports_or_from_ignored_peers_explain_the_opens() {
    let mut tracker = tracker(&[8080], &["10.9.0.0/16"]);
    let listeners = || vec![listener("0.0.0.0:8080", 1), listener("0.0.0.0:9090", 2)];
    assert_eq!(
        tracker
            .observe_now(&counted(sample(listeners(), &[]), 10, 0))
            .arrivals,
        0
    );
    let mut sockets = listeners();
    sockets.push(conn("10.0.0.5:9090", "10.1.0.1:1", 3, 0));
    sockets.push(conn(APP, "10.9.0.1:1", 4, 0));
    let seen = counted(sample(sockets, &[]), 12, 0);
    assert_eq!(tracker.observe_now(&seen).arrivals, 0);
}
