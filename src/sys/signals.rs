//! Signal state: what graceinit inherited (so the app can get it back), the set of
//! signals graceinit handles, and the signalfd it reads them from.
//!
//! graceinit installs no signal handler. Every signal stays blocked, in every thread, from
//! its first instruction, and is read from a signalfd, one batch per turn of the event
//! loop (tini's design, with `sigtimedwait`): each queued instance of a real-time signal
//! is read and forwarded once, and a storm of signals cannot starve reaping or the
//! drain's deadlines, as a storm of asynchronous handlers running back to back in the
//! kernel's return path does. A real fault in graceinit still kills it: the kernel forces
//! a synchronous SIGSEGV (or BUS, ILL, FPE, TRAP, SYS) through a blocked mask.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_int;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Signals that are faults when the kernel raises them for graceinit's own code (those
/// kill graceinit whatever the mask), and ordinary messages, forwarded as dumb-init
/// does, when another process sends them with kill(2). SIGPIPE is here too: one that
/// graceinit's own write to a closed pipe raises stays pending on the writing thread
/// (the write fails with EPIPE), while one sent by another process is for the app.
pub const FAULT_OR_SENT: &[c_int] = &[
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGSYS,
    libc::SIGPIPE,
];

/// Signals graceinit never forwards: the two uncatchable ones, and the terminal's
/// read/write stops, which concern whoever reads or writes the terminal. (Blocked, as
/// every signal is, they never stop graceinit either: the kernel lets a background
/// process whose SIGTTOU is blocked write to a `tostop` terminal.)
const NOT_CAUGHT: &[c_int] = &[libc::SIGKILL, libc::SIGSTOP, libc::SIGTTIN, libc::SIGTTOU];

/// Whether SIGPIPE came ignored, recorded before Rust's runtime ignores it (std sets
/// SIG_IGN before `main`, and resets it to the default in every child).
static SIGPIPE_CAME_IGNORED: AtomicBool = AtomicBool::new(false);

extern "C" fn record_sigpipe() {
    SIGPIPE_CAME_IGNORED.store(
        disposition(libc::SIGPIPE) == libc::SIG_IGN,
        Ordering::Relaxed,
    );
}

// SAFETY: a constructor run by the C runtime before `main` (and so before std's own
// start-up); it makes one system call and stores a flag.
#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_SIGPIPE: extern "C" fn() = record_sigpipe;

/// Every signal number, 1 to 64, the C library's own 32 and 33 included: glibc's
/// `sigfillset` and `pthread_sigmask` leave those out, so they would stay unblocked and
/// kill graceinit (their default action) or be discarded (inherited SIG_IGN). Blocking
/// them is safe because graceinit never uses what the C library needs them for
/// (pthread_cancel, setuid/setgid with threads running, POSIX timers with threads).
pub(super) fn every_signal() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; all-zero is a valid (empty) set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel's sigset is the first 8 bytes of glibc's and musl's sigset_t.
    unsafe { std::ptr::write((&mut set as *mut libc::sigset_t).cast::<u64>(), !0u64) };
    set
}

/// rt_sigprocmask without the C library's filter (see `every_signal`); async-signal-safe.
pub(super) fn set_mask_raw(set: &libc::sigset_t, old: *mut libc::sigset_t) {
    // SAFETY: rt_sigprocmask reads 8 bytes from `set` and writes 8 into `old` if non-null.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as libc::c_long,
            set as *const libc::sigset_t,
            old,
            8 as libc::c_long,
        );
    }
}

/// Every signal graceinit forwards: the standard ones and the real-time range, which
/// tini forwards too. SIGCHLD is among them (it wakes the reaper, and is not forwarded).
pub fn caught() -> Vec<c_int> {
    let standard = 1..32;
    let realtime = 32..=libc::SIGRTMAX();
    standard
        .chain(realtime)
        .filter(|sig| !NOT_CAUGHT.contains(sig))
        .collect()
}

/// One signal read from the signalfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub signal: c_int,
    /// Whether a process sent it (kill, sigqueue, tgkill) rather than the kernel.
    pub sent: bool,
    /// The sender's pid, as seen in graceinit's PID namespace (0 from an ancestor one).
    pub sender: u32,
}

/// The signalfd for every signal (all of them are blocked since
/// `InheritedSignals::capture_and_block`).
pub struct SignalFd(OwnedFd);

impl SignalFd {
    /// Opens the signalfd and registers it with the tokio runtime (call from within it).
    pub fn open_async() -> io::Result<AsyncFd<SignalFd>> {
        let fd = SignalFd::open()?;
        // SAFETY: `SignalFd` owns its descriptor, never closes or replaces it while it
        // lives, and `as_raw_fd` always returns that one descriptor.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(io::Error::from)
    }

    fn open() -> io::Result<SignalFd> {
        let all = every_signal();
        // SAFETY: signalfd reads the set and returns a new descriptor (or -1), which is
        // then owned here.
        let fd = unsafe { libc::signalfd(-1, &all, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Reads up to `BATCH` pending signals into `out`; WouldBlock when none is pending.
    pub fn read_batch(&self, out: &mut Vec<Received>) -> io::Result<()> {
        const BATCH: usize = 64;
        let mut infos = [MaybeUninit::<libc::signalfd_siginfo>::uninit(); BATCH];
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most BATCH whole signalfd_siginfo records into `infos`.
        let n = unsafe { libc::read(self.0.as_raw_fd(), infos.as_mut_ptr().cast(), BATCH * size) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for info in &infos[..n as usize / size] {
            // SAFETY: the kernel wrote this record in full (reads are whole records).
            let info = unsafe { info.assume_init_ref() };
            out.push(Received {
                signal: info.ssi_signo as c_int,
                sent: info.ssi_code <= 0,
                sender: info.ssi_pid,
            });
        }
        Ok(())
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The signal mask and ignored dispositions graceinit was started with.
///
/// Rust's standard library does not reset the mask for children, and handlers are only
/// reset by `exec`, so without this the app would inherit graceinit's own signal state.
/// Ignored signals (SIG_IGN) survive `exec` by POSIX rule and are handed on as they came.
#[derive(Clone)]
pub struct InheritedSignals {
    mask: libc::sigset_t,
    /// Every signal whose disposition may differ from what came, and whether it came
    /// ignored: SIGPIPE, SIGCHLD, and the C library's own signals (32 to SIGRTMIN) that
    /// came ignored, since glibc installs a handler for one of them when graceinit
    /// starts a thread (its `sigaction` refuses them: all go through the raw syscall).
    dispositions: Vec<(c_int, bool)>,
}

impl InheritedSignals {
    /// Must run before graceinit starts any thread (see `dispositions`).
    ///
    /// Records the current mask and dispositions and blocks every signal for good (they
    /// are read from a [`SignalFd`]; one pending since before graceinit started waits
    /// there too). Threads started later inherit the mask.
    pub fn capture_and_block() -> Self {
        // SAFETY: sigset_t is plain data; all-zero is valid, and the call fills it.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        set_mask_raw(&every_signal(), &mut mask);
        // SIGPIPE: ignored by Rust's runtime before main, reset to the default by std in
        // children, and then by graceinit to what came.
        let mut dispositions = vec![(libc::SIGPIPE, SIGPIPE_CAME_IGNORED.load(Ordering::Relaxed))];
        // An ignored SIGCHLD (or SA_NOCLDWAIT) makes the kernel reap graceinit's
        // children itself, without a SIGCHLD: the app's status would be lost. graceinit
        // takes the default; the app gets back what came.
        dispositions.push((libc::SIGCHLD, disposition(libc::SIGCHLD) == libc::SIG_IGN));
        let default = sigaction_with(libc::SIG_DFL);
        // SAFETY: installs SIG_DFL (no flags, so no SA_NOCLDWAIT) for SIGCHLD.
        unsafe { libc::sigaction(libc::SIGCHLD, &default, std::ptr::null_mut()) };
        dispositions.extend(
            (32..libc::SIGRTMIN())
                .filter(|&sig| disposition(sig) == libc::SIG_IGN)
                .map(|sig| (sig, true)),
        );
        InheritedSignals { mask, dispositions }
    }

    pub fn mask(&self) -> &libc::sigset_t {
        &self.mask
    }

    /// Each signal to give back to a child, and whether it came ignored.
    pub fn dispositions(&self) -> &[(c_int, bool)] {
        &self.dispositions
    }
}

/// Sets each signal's disposition to SIG_IGN (true) or SIG_DFL (false), by the raw
/// system call: async-signal-safe, and allowed for the C library's internal signals.
/// Used between fork and exec.
pub(super) fn set_dispositions_raw(dispositions: &[(c_int, bool)]) {
    for &(sig, ignored) in dispositions {
        // The kernel's struct sigaction starts with the handler; flags, restorer and
        // mask stay zero, so its layout beyond that does not matter (x86_64 and aarch64
        // alike).
        let mut action = [0usize; 4];
        action[0] = if ignored {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        // SAFETY: rt_sigaction reads a kernel sigaction from `action` (32 zeroed bytes
        // but the handler) and the 8-byte sigset size; no old action is written.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig as libc::c_long,
                action.as_ptr(),
                std::ptr::null_mut::<libc::c_void>(),
                8 as libc::c_long,
            );
        }
    }
}

/// A signal's current handler (SIG_DFL, SIG_IGN or a function), by the raw system call:
/// glibc's `sigaction` refuses its internal signals (EINVAL).
pub(super) fn disposition(sig: c_int) -> libc::sighandler_t {
    let mut old = [0usize; 4];
    // SAFETY: rt_sigaction with no new action writes the current one into `old`; the
    // kernel's struct sigaction starts with the handler and fits in 32 bytes.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig as libc::c_long,
            std::ptr::null::<libc::c_void>(),
            old.as_mut_ptr(),
            8 as libc::c_long,
        );
    }
    old[0]
}

/// Ignores SIGHUP and SIGCONT while `f` runs. Used around TIOCNOTTY: when a session
/// leader gives up its terminal, the kernel sends both to the foreground group, which
/// would otherwise be forwarded to the app (dumb-init #136).
pub fn with_hangup_ignored<T>(f: impl FnOnce() -> T) -> T {
    let ignore = sigaction_with(libc::SIG_IGN);
    let mut old_hup = MaybeUninit::<libc::sigaction>::zeroed();
    let mut old_cont = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: installs SIG_IGN and saves the previous actions into zeroed structs that the
    // kernel fills on success.
    unsafe {
        libc::sigaction(libc::SIGHUP, &ignore, old_hup.as_mut_ptr());
        libc::sigaction(libc::SIGCONT, &ignore, old_cont.as_mut_ptr());
    }
    let result = f();
    // SAFETY: installing SIG_IGN again discards the SIGHUP and SIGCONT that `f` caused
    // and that wait, pending, since graceinit blocks every signal.
    unsafe {
        libc::sigaction(libc::SIGHUP, &ignore, std::ptr::null_mut());
        libc::sigaction(libc::SIGCONT, &ignore, std::ptr::null_mut());
    }
    // SAFETY: restores the actions saved above.
    unsafe {
        libc::sigaction(libc::SIGHUP, old_hup.as_ptr(), std::ptr::null_mut());
        libc::sigaction(libc::SIGCONT, old_cont.as_ptr(), std::ptr::null_mut());
    }
    result
}

pub(super) fn sigaction_with(handler: libc::sighandler_t) -> libc::sigaction {
    // SAFETY: sigaction is plain data; all-zero is a valid value (empty mask, no flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action
}
