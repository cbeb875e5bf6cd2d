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
        passive_opens: None,
        own_accepts: 0,
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
    assert_eq!(
        tracker.observe(&first),
        Observed {
            arrivals: 0,
            open: 1
        }
    );
    // Same connection, nothing received: nothing arrived.
    assert_eq!(
        tracker.observe(&first),
        Observed {
            arrivals: 0,
            open: 1
        }
    );
    let second = sample(
        vec![
            listener("0.0.0.0:8080", 1),
            conn(APP, "10.1.0.1:40000", 2, 100),
            conn(APP, "10.1.0.1:40002", 3, 0),
        ],
        &[],
    );
    assert_eq!(
        tracker.observe(&second),
        Observed {
            arrivals: 1,
            open: 2
        }
    );
    assert_eq!(
        tracker.observe(&second),
        Observed {
            arrivals: 0,
            open: 2
        }
    );
}

#[test]
fn bytes_on_an_open_connection_are_an_arrival() {
    let mut tracker = tracker(&[8080], &[]);
    tracker.observe(&sample(vec![conn(APP, "10.1.0.1:40000", 2, 100)], &[]));
    let more = sample(vec![conn(APP, "10.1.0.1:40000", 2, 180)], &[]);
    assert_eq!(
        tracker.observe(&more),
        Observed {
            arrivals: 1,
            open: 1
        }
    );
    assert_eq!(
        tracker.observe(&more),
        Observed {
            arrivals: 0,
            open: 1
        }
    );
}

#[test]
fn a_closed_then_reused_tuple_counts_again() {
    let mut tracker = tracker(&[8080], &[]);
    tracker.observe(&sample(vec![conn(APP, "10.1.0.1:40000", 2, 10)], &[]));
    assert_eq!(
        tracker.observe(&sample(vec![], &[])),
        Observed {
            arrivals: 0,
            open: 0
        }
    );
    let again = sample(vec![conn(APP, "10.1.0.1:40000", 9, 10)], &[]);
    assert_eq!(
        tracker.observe(&again),
        Observed {
            arrivals: 1,
            open: 1
        }
    );
}

#[test]
fn other_ports_ignored_peers_and_graceinits_own_connections_do_not_count() {
    let mut tracker = tracker(&[8080], &["10.9.0.0/16"]);
    tracker.observe(&sample(vec![], &[]));
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
    assert_eq!(
        tracker.observe(&next),
        Observed {
            arrivals: 0,
            open: 0
        }
    );
    // Loopback from anyone else is traffic (a mesh sidecar forwards over it).
    let sidecar = sample(vec![conn("127.0.0.1:8080", "127.0.0.1:42000", 9, 1)], &[7]);
    assert_eq!(
        tracker.observe(&sidecar),
        Observed {
            arrivals: 1,
            open: 1
        }
    );
}

#[test]
fn without_ports_every_listener_but_graceinits_own_is_watched() {
    let mut tracker = tracker(&[], &[]);
    tracker.observe(&sample(vec![], &[]));
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
    assert_eq!(
        tracker.observe(&next),
        Observed {
            arrivals: 2,
            open: 2
        }
    );
}

#[test]
fn a_half_open_connection_arrives_once() {
    let mut tracker = tracker(&[8080], &[]);
    tracker.observe(&sample(vec![], &[]));
    let mut syn = conn(APP, "10.1.0.1:40000", 0, 0);
    syn.bytes_received = None;
    assert_eq!(
        tracker.observe(&sample(vec![syn], &[])),
        Observed {
            arrivals: 1,
            open: 1
        }
    );
    let established = sample(vec![conn(APP, "10.1.0.1:40000", 5, 0)], &[]);
    assert_eq!(
        tracker.observe(&established),
        Observed {
            arrivals: 0,
            open: 1
        }
    );
}

#[test]
fn a_connection_that_came_and_went_between_samples_arrived_but_is_not_open() {
    let mut tracker = tracker(&[8080], &[]);
    tracker.observe(&sample(vec![], &[]));
    let mut gone = conn(APP, "10.1.0.1:40000", 0, 0);
    gone.open = false;
    gone.bytes_received = None;
    let time_wait = sample(vec![gone], &[]);
    assert_eq!(
        tracker.observe(&time_wait),
        Observed {
            arrivals: 1,
            open: 0
        }
    );
    assert_eq!(
        tracker.observe(&time_wait),
        Observed {
            arrivals: 0,
            open: 0
        }
    );
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
    let baseline = counted(sample(vec![app(), health()], &[2]), 100, 7);
    assert_eq!(tracker.observe(&baseline).arrivals, 0);
    // Two opens nobody saw (clients that closed first), and one of graceinit's own.
    let quiet_sockets = sample(vec![app(), health()], &[2]);
    assert_eq!(
        tracker
            .observe(&counted(quiet_sockets.clone(), 103, 8))
            .arrivals,
        2
    );
    // One seen, on the app's port: one arrival, not two.
    let with_one = sample(vec![app(), health(), conn(APP, "10.1.0.1:1", 3, 0)], &[2]);
    assert_eq!(
        tracker.observe(&counted(with_one.clone(), 104, 8)).arrivals,
        1
    );
    // Seen before the count moved (listed after the read): counted once, when seen.
    let with_two = sample(
        vec![
            app(),
            health(),
            conn(APP, "10.1.0.1:1", 3, 0),
            conn(APP, "10.1.0.1:2", 4, 0),
        ],
        &[2],
    );
    assert_eq!(
        tracker.observe(&counted(with_two.clone(), 104, 8)).arrivals,
        1
    );
    assert_eq!(
        tracker.observe(&counted(with_two.clone(), 105, 8)).arrivals,
        0
    );
    // Nothing new: nothing arrives.
    assert_eq!(tracker.observe(&counted(with_two, 105, 8)).arrivals, 0);
}

#[test]
fn seen_connections_to_other_ports_or_from_ignored_peers_explain_the_opens() {
    let mut tracker = tracker(&[8080], &["10.9.0.0/16"]);
    let listeners = || vec![listener("0.0.0.0:8080", 1), listener("0.0.0.0:9090", 2)];
    assert_eq!(
        tracker
            .observe(&counted(sample(listeners(), &[]), 10, 0))
            .arrivals,
        0
    );
    let mut sockets = listeners();
    sockets.push(conn("10.0.0.5:9090", "10.1.0.1:1", 3, 0));
    sockets.push(conn(APP, "10.9.0.1:1", 4, 0));
    let seen = counted(sample(sockets, &[]), 12, 0);
    assert_eq!(tracker.observe(&seen).arrivals, 0);
}
