//! One sample of the network namespace's TCP sockets, through NETLINK_SOCK_DIAG
//! (inet_diag): listeners, and connections with what tcp_info says they received.
//! Blocking: run it off the event loop (`spawn_blocking`).

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{
    AF_INET, AF_INET6, IPPROTO_TCP, TCP_CLOSE_WAIT, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_RECV,
};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NetlinkAddr};

/// A TCP socket as inet_diag shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub listening: bool,
    /// Established, half-open (SYN_RECV), or closed by the peer only (CLOSE_WAIT: the
    /// app may still be answering a request whose client has shut down its side); else
    /// closing or closed (TIME_WAIT): a connection that came and went between two
    /// samples shows as one of those.
    pub open: bool,
    pub inode: u32,
    /// tcp_info's `tcpi_bytes_received` (kernel 4.1 on); `None` if the kernel gave none.
    pub bytes_received: Option<u64>,
}

/// What one look at the namespace found, and which socket inodes are graceinit's own.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the sample was begun.
    pub taken_at: Instant,
    pub sockets: Vec<TcpSocket>,
    pub own_inodes: HashSet<u32>,
    /// graceinit's own recent connections to local listeners, (its end, the listener's).
    pub own_tuples: Vec<(SocketAddr, SocketAddr)>,
    /// The namespace's count of passive TCP opens, read before the sockets were listed;
    /// None if /proc/net/snmp cannot be read.
    pub passive_opens: Option<u64>,
    /// The TCP connections graceinit's own listeners had accepted or had waiting to be,
    /// read right after `passive_opens`.
    pub own_accepts: u64,
}

/// Lists the TCP sockets (IPv4 and IPv6): listening, open, closing and in TIME_WAIT; and
/// graceinit's own socket inodes.
pub fn sample() -> io::Result<Sample> {
    // In this order, and at once: every open the kernel has counted is, by the time the
    // next two are read, either waiting in graceinit's accept queue or accepted (so
    // graceinit's own are never short, which would show as an arrival), or not
    // graceinit's; and an open counted here is listed below unless it is gone already.
    let taken_at = Instant::now();
    let (opens, own_accepts) = counts();
    let mut sockets = dump(AF_INET)?;
    sockets.extend(dump(AF_INET6)?);
    let own_inodes = own_socket_inodes()?;
    let own_tuples = OWN_TUPLES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .copied()
        .collect();
    Ok(Sample {
        own_tuples,
        taken_at,
        sockets,
        own_inodes,
        passive_opens: opens,
        own_accepts,
    })
}

/// The namespace's passive opens and graceinit's own, as of one instant: read again
/// until no open came between the two reads of the first (a thread preempted between
/// them on a loaded machine would otherwise pair counts of different moments; at the
/// first sample that would stay as a difference for good).
fn counts() -> (Option<u64>, u64) {
    let mut opens = passive_opens();
    for _ in 0..COUNT_TRIES {
        let own = own_opens();
        let again = passive_opens();
        if again == opens {
            return (opens, own);
        }
        opens = again;
    }
    (opens, own_opens())
}

/// How many times `counts` tries for two equal reads.
const COUNT_TRIES: usize = 5;

/// TCP connections graceinit's own listeners have accepted (its health endpoints).
static OWN_ACCEPTS: AtomicU64 = AtomicU64::new(0);

/// graceinit's own listening sockets (copies of their descriptors).
static OWN_LISTENERS: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// Called by graceinit's own TCP servers for each connection they accept.
pub fn accepted_one() {
    OWN_ACCEPTS.fetch_add(1, Ordering::SeqCst);
}

/// graceinit's own connections to listeners in its network namespace (hooks', probes'):
/// opens the kernel counts that are not the app's traffic.
static OWN_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// Records one of graceinit's own connections to a local listener, by its two ends
/// (graceinit's, the listener's), once made: counted late, it is an open for a sample
/// or two that the next ones take back (the tracker waits for them to agree).
pub fn own_connection(local: SocketAddr, peer: SocketAddr) {
    OWN_CONNECTIONS.fetch_add(1, Ordering::SeqCst);
    let mut tuples = OWN_TUPLES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if tuples.len() == OWN_TUPLES_KEPT {
        tuples.pop_front();
    }
    tuples.push_back((local, peer));
}

/// graceinit's latest own connections to local listeners, (its end, the listener's).
static OWN_TUPLES: Mutex<VecDeque<(SocketAddr, SocketAddr)>> = Mutex::new(VecDeque::new());

/// How many of them are kept: more than any drain's hooks make in the time the app's end
/// of a connection stays in the samples (TIME_WAIT, a minute).
const OWN_TUPLES_KEPT: usize = 256;

/// Called by graceinit's own TCP servers for their listening socket, once bound.
pub fn own_listener(listener: OwnedFd) {
    OWN_LISTENERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(listener);
}

/// The connections graceinit's own listeners have accepted or have waiting, in that
/// order: one dequeued between the two reads is still counted once.
fn own_opens() -> u64 {
    let own = own_queued() + OWN_ACCEPTS.load(Ordering::SeqCst);
    own.wrapping_add(OWN_CONNECTIONS.load(Ordering::SeqCst))
}

/// The connections waiting to be accepted by graceinit's own listeners.
fn own_queued() -> u64 {
    let listeners = OWN_LISTENERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    listeners
        .iter()
        .filter_map(|fd| crate::sys::socket::accept_queue(fd.as_fd()).ok())
        .map(u64::from)
        .sum()
}

/// `PassiveOpens` of the `Tcp:` lines of /proc/net/snmp: the network namespace's
/// connections opened by a listener since it was made (RFC 1213's tcpPassiveOpens).
fn passive_opens() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    passive_opens_in(&text)
}

fn passive_opens_in(snmp: &str) -> Option<u64> {
    let mut tcp = snmp.lines().filter(|line| line.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "PassiveOpens")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

fn dump(family: u8) -> io::Result<Vec<TcpSocket>> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&NetlinkAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO,
            // Every state but CLOSE (nobody's). SYN_SENT is a client's: listed so that
            // graceinit's own connection, still being made, marks the listener's
            // half-open end (SYN_RECV) as its own.
            states: StateFlags::all() - StateFlags::CLOSE,
            socket_id,
        })
        .into(),
    );
    request.finalize();
    let mut buffer = vec![0; request.buffer_len()];
    request.serialize(&mut buffer);
    socket.send(&buffer, 0)?;

    let mut found = Vec::new();
    let mut receive = vec![0u8; 64 * 1024];
    loop {
        let size = socket.recv(&mut &mut receive[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let message = <NetlinkMessage<SockDiagMessage>>::deserialize(&receive[offset..size])
                .map_err(|e| io::Error::other(format!("sock_diag answer: {e}")))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let id = &response.header.socket_id;
                    let bytes_received = response.nlas.iter().find_map(|nla| match nla {
                        Nla::TcpInfo(info) => bytes_received(info),
                        _ => None,
                    });
                    found.push(TcpSocket {
                        local: SocketAddr::new(id.source_address, id.source_port),
                        peer: SocketAddr::new(id.destination_address, id.destination_port),
                        listening: response.header.state == TCP_LISTEN,
                        open: matches!(
                            response.header.state,
                            TCP_ESTABLISHED | TCP_SYN_RECV | TCP_CLOSE_WAIT
                        ),
                        inode: response.header.inode,
                        bytes_received,
                    });
                }
                NetlinkPayload::Done(_) => return Ok(found),
                NetlinkPayload::Error(e) => {
                    return Err(io::Error::other(format!("sock_diag: {e}")));
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

/// `tcpi_bytes_received` from a raw `struct tcp_info`: the kernel only appends to it,
/// so the field's offset is fixed (linux/tcp.h: 8 one-byte fields, 24 u32s, then the
/// u64s pacing_rate, max_pacing_rate, bytes_acked, bytes_received).
fn bytes_received(info: &[u8]) -> Option<u64> {
    const OFFSET: usize = 8 + 24 * 4 + 3 * 8;
    let bytes = info.get(OFFSET..OFFSET + 8)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

/// The inodes of graceinit's own sockets (its health endpoint, its probes' and hooks'
/// connections), from /proc/self/fd.
fn own_socket_inodes() -> io::Result<HashSet<u32>> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue; // closed since the listing
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        {
            inodes.insert(inode);
        }
    }
    Ok(inodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_opens_are_read_from_the_tcp_lines() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
            Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails\n\
            Tcp: 1 200 120000 -1 812 4711 3\n\
            Udp: InDatagrams\nUdp: 9\n";
        assert_eq!(passive_opens_in(snmp), Some(4711));
        assert_eq!(passive_opens_in("Tcp: A B\nTcp: 1 2\n"), None);
        assert!(passive_opens().is_some(), "this machine's /proc/net/snmp");
    }
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_sample_sees_a_listener_its_connection_and_the_bytes_it_received() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(address).unwrap();
        let (mut server, peer) = listener.accept().unwrap();
        client.write_all(b"hello").unwrap();
        let mut got = [0; 5];
        server.read_exact(&mut got).unwrap();

        let sample = sample().unwrap();
        let listening: Vec<_> = sample
            .sockets
            .iter()
            .filter(|s| s.local == address && s.listening)
            .collect();
        assert_eq!(listening.len(), 1);
        // Our own listener is one of this process's sockets.
        assert!(sample.own_inodes.contains(&listening[0].inode));
        let served: Vec<_> = sample
            .sockets
            .iter()
            .filter(|s| s.local == address && !s.listening)
            .collect();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].peer, peer);
        assert!(served[0].open);
        assert_eq!(served[0].bytes_received, Some(5));

        // Closed by the server first: its side stays in TIME_WAIT, still to be seen.
        drop(server);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        drop(client);
        let sample = super::sample().unwrap();
        let closed: Vec<_> = sample
            .sockets
            .iter()
            .filter(|s| s.local == address && s.peer == peer)
            .collect();
        assert_eq!(closed.len(), 1, "{:?}", sample.sockets);
        assert!(!closed[0].open);
    }
}
