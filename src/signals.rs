//! Where signals enter graceinit ([`Incoming`]), signal names, and the forwarding
//! rules: rewriting (dumb-init's `--rewrite`) and the target (the app's process group,
//! or the app alone).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;

use libc::c_int;
use tokio::io::unix::AsyncFd;

use crate::sys::signals::{FAULT_OR_SENT, Received, SignalFd};

/// Every signal graceinit handles, as one stream of signal numbers, read from a
/// signalfd in batches (see `sys::signals`).
pub struct Incoming {
    fd: AsyncFd<SignalFd>,
    /// Read but not yet handed out, in order of arrival.
    unread: VecDeque<c_int>,
    batch: Vec<Received>,
    own_pid: u32,
}

impl Incoming {
    pub fn open() -> io::Result<Incoming> {
        Ok(Incoming {
            fd: SignalFd::open_async()?,
            unread: VecDeque::new(),
            batch: Vec::new(),
            own_pid: std::process::id(),
        })
    }

    /// The next signal; cancel-safe (used in `select!`). SIGCHLD goes first and counts
    /// once however often it came: a single reap collects every child that has exited.
    pub async fn next(&mut self) -> Option<c_int> {
        while self.unread.is_empty() {
            let mut ready = self.fd.readable().await.ok()?;
            match self.fd.get_ref().read_batch(&mut self.batch) {
                Ok(()) => {
                    let mut child_exited = false;
                    for received in self.batch.drain(..) {
                        if received.signal == libc::SIGCHLD {
                            child_exited = true;
                        } else if forwardable(received, self.own_pid) {
                            self.unread.push_back(received.signal);
                        }
                    }
                    // Reaping first: the app's exit must not wait behind a storm of
                    // other signals.
                    if child_exited {
                        self.unread.retain(|&sig| sig != libc::SIGCHLD);
                        self.unread.push_front(libc::SIGCHLD);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(_) => return None,
            }
        }
        self.unread.pop_front()
    }
}

/// Whether a signal read from the signalfd is one to act on: a fault-type signal only
/// when another process sent it (graceinit's own, e.g. the SIGPIPE of a write to a
/// closed pipe, is not for the app), and never the terminal stops graceinit ignores.
fn forwardable(received: Received, own_pid: u32) -> bool {
    if received.signal == libc::SIGTTIN || received.signal == libc::SIGTTOU {
        return false;
    }
    !FAULT_OR_SENT.contains(&received.signal) || (received.sent && received.sender != own_pid)
}

const NAMES: &[(&str, c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// "SIGTERM", "TERM", "term", "15", "SIGRTMIN+2" -> the signal number.
pub fn parse_signal(text: &str) -> Result<c_int, String> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<c_int>() {
        return if (1..=libc::SIGRTMAX()).contains(&number) {
            Ok(number)
        } else {
            Err(format!(
                "{number} is not a signal number (1..={})",
                libc::SIGRTMAX()
            ))
        };
    }
    let upper = trimmed.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, number)) = NAMES.iter().find(|(name, _)| *name == bare) {
        return Ok(number);
    }
    if let Some(offset) = bare.strip_prefix("RTMIN") {
        let offset: u8 = if offset.is_empty() {
            0
        } else {
            offset
                .strip_prefix('+')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("unknown signal `{text}`"))?
        };
        let number = libc::SIGRTMIN() + c_int::from(offset);
        if number <= libc::SIGRTMAX() {
            return Ok(number);
        }
    }
    Err(format!(
        "unknown signal `{text}` (expected a name like SIGTERM or TERM, or a number)"
    ))
}

/// The conventional name of a signal number, e.g. "SIGTERM" or "SIGRTMIN+3".
pub fn signal_name(sig: c_int) -> String {
    match NAMES.iter().find(|(_, number)| *number == sig) {
        Some((name, _)) => format!("SIG{name}"),
        None if sig >= libc::SIGRTMIN() && sig <= libc::SIGRTMAX() => {
            format!("SIGRTMIN+{}", sig - libc::SIGRTMIN())
        }
        None => format!("signal {sig}"),
    }
}

/// Where forwarded signals go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SignalTarget {
    /// The app's whole process group, so a `sh -c` wrapper's children hear it too
    /// (dumb-init's default, tini's `-g`).
    #[default]
    Group,
    /// The app's own process alone (dumb-init's `--single-child`), for apps that stop
    /// their workers themselves.
    Child,
}

impl fmt::Display for SignalTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignalTarget::Group => "group",
            SignalTarget::Child => "child",
        })
    }
}

/// Signal rewriting: FROM -> TO, where TO = None drops the signal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    rules: BTreeMap<c_int, Option<c_int>>,
}

impl Rewrite {
    /// dumb-init's default in its setsid mode: a terminal stop becomes SIGSTOP, because
    /// the app's process group is orphaned in its new session and would ignore TSTP.
    /// (TTIN and TTOU are ignored by graceinit itself, as under tini.)
    pub fn job_control_defaults() -> Self {
        let mut rewrite = Rewrite::default();
        rewrite.set(libc::SIGTSTP, Some(libc::SIGSTOP));
        rewrite
    }

    pub fn set(&mut self, from: c_int, to: Option<c_int>) {
        self.rules.insert(from, to);
    }

    /// What `sig` becomes on its way to the app; None when it is dropped.
    pub fn apply(&self, sig: c_int) -> Option<c_int> {
        self.rules.get(&sig).copied().unwrap_or(Some(sig))
    }

    pub fn rules(&self) -> impl Iterator<Item = (c_int, Option<c_int>)> + '_ {
        self.rules.iter().map(|(&from, &to)| (from, to))
    }
}

/// "FROM:TO" as given to `-r/--rewrite`; TO = 0 drops the signal.
pub fn parse_rewrite(text: &str) -> Result<(c_int, Option<c_int>), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: expected FROM:TO, e.g. 15:3 or TERM:QUIT"))?;
    let from = parse_signal(from)?;
    let to = if to.trim() == "0" {
        None
    } else {
        Some(parse_signal(to)?)
    };
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_realtime_parse() {
        assert_eq!(parse_signal("SIGTERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("term"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("15"), Ok(15));
        assert_eq!(parse_signal("SIGRTMIN+2"), Ok(libc::SIGRTMIN() + 2));
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("99").is_err());
        assert!(parse_signal("SIGRTMIN+2147483647").is_err());
        assert!(parse_signal("SIGRTMIN+-3").is_err());
        assert!(parse_signal("SIGRTMIN+99").is_err());
    }

    #[test]
    fn names_round_trip() {
        for sig in 1..=libc::SIGRTMAX() {
            if let Ok(parsed) = parse_signal(&signal_name(sig)) {
                assert_eq!(parsed, sig);
            }
        }
        assert_eq!(signal_name(libc::SIGQUIT), "SIGQUIT");
    }

    #[test]
    fn rewrite_maps_and_drops() {
        let mut rewrite = Rewrite::default();
        let (from, to) = parse_rewrite("TERM:QUIT").unwrap();
        rewrite.set(from, to);
        let (from, to) = parse_rewrite("10:0").unwrap();
        rewrite.set(from, to);
        assert_eq!(rewrite.apply(libc::SIGTERM), Some(libc::SIGQUIT));
        assert_eq!(rewrite.apply(libc::SIGUSR1), None);
        assert_eq!(rewrite.apply(libc::SIGHUP), Some(libc::SIGHUP));
        assert!(parse_rewrite("15").is_err());
    }
}
