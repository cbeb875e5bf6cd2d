//! Signal state: what graceinit inherited (so the app can get it back), the set of
//! signals graceinit catches, and the one handler that reports them on a pipe.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use libc::c_int;

/// Signals that mean a fault when the kernel raises them for graceinit's own code, and
/// are ordinary messages, to be forwarded as dumb-init does, when another process sends
/// them with kill(2). SIGPIPE is here too: the kernel raises it when graceinit writes to
/// a closed pipe (the write then fails with EPIPE, which is handled), while one sent by
/// another process is for the app (tini and dumb-init forward it).
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

/// Signals graceinit never installs a handler for: the two uncatchable ones, and the
/// terminal's read/write stops, which it ignores (below).
const NOT_CAUGHT: &[c_int] = &[libc::SIGKILL, libc::SIGSTOP, libc::SIGTTIN, libc::SIGTTOU];

/// Ignored by graceinit itself, as tini does: a background graceinit writing a log line
/// to a `tostop` terminal would otherwise be stopped (or, with a handler, livelock).
/// They concern whoever reads or writes the terminal, which graceinit does not forward.
const IGNORED: &[c_int] = &[libc::SIGTTIN, libc::SIGTTOU];

/// Every signal graceinit forwards: the standard ones and the real-time range, which
/// tini forwards too. SIGCHLD is among them (it wakes the reaper, and is not forwarded).
pub fn caught() -> Vec<c_int> {
    let standard = 1..32;
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    standard
        .chain(realtime)
        .filter(|sig| !NOT_CAUGHT.contains(sig))
        .collect()
}

/// The write end of the pipe that [`on_signal`] reports signals on.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);
/// graceinit's pid, to tell its own SIGPIPE and abort() from ones sent by others.
static OWN_PID: AtomicI32 = AtomicI32::new(0);

/// Installs one handler for every signal in [`caught`] and returns the read end of the
/// pipe it writes each signal's number to, as one byte (the self-pipe of tini's and
/// tokio's designs). One `sigaction` per signal: registering them one by one with
/// signal-hook, whose registry copies its whole table on each registration, was 85% of
/// graceinit's start-up instructions.
///
/// For [`FAULT_OR_SENT`], only a signal another process sent is reported; a real fault
/// in graceinit (or its own abort) resets the signal to its default action, so that it
/// kills graceinit with the usual core dump when the faulting instruction runs again.
pub fn catch_all() -> io::Result<OwnedFd> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`, an array of two c_ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so fds[0] is an open descriptor that nothing else owns.
    let reader = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    OWN_PID.store(std::process::id() as i32, Ordering::Relaxed);
    SIGNAL_PIPE.store(fds[1], Ordering::Release);
    let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_signal;
    let mut action = sigaction_with(handler as libc::sighandler_t);
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    for sig in caught() {
        // SAFETY: installs a handler that makes only async-signal-safe calls (write,
        // sigaction) on a catchable signal.
        if unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(reader)
}

extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if FAULT_OR_SENT.contains(&sig) {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t. si_code <= 0
        // (SI_USER, SI_QUEUE, SI_TKILL) means a process sent the signal, and then si_pid
        // is set (0 for a sender in an ancestor PID namespace).
        let sent_by = unsafe {
            let info = &*info;
            (info.si_code <= 0).then(|| info.si_pid())
        };
        match sent_by {
            Some(pid) if pid != OWN_PID.load(Ordering::Relaxed) => {}
            // graceinit's own write to a closed pipe: the write fails with EPIPE instead.
            _ if sig == libc::SIGPIPE => return,
            // A real fault, or graceinit's own abort(): let the default action happen.
            _ => {
                let default = sigaction_with(libc::SIG_DFL);
                // SAFETY: sigaction is async-signal-safe; SIG_DFL is a valid disposition.
                unsafe { libc::sigaction(sig, &default, std::ptr::null_mut()) };
                return;
            }
        }
    }
    let byte = sig as u8;
    let saved = io::Error::last_os_error().raw_os_error();
    // SAFETY: write(2) is async-signal-safe. The pipe is non-blocking: when 64 KiB of
    // signals wait unread, this one is lost rather than the handler blocking.
    unsafe {
        libc::write(
            SIGNAL_PIPE.load(Ordering::Acquire),
            (&raw const byte).cast(),
            1,
        )
    };
    restore_errno(saved);
}

fn restore_errno(saved: Option<c_int>) {
    if let Some(errno) = saved {
        // SAFETY: __errno_location returns the calling thread's errno slot.
        unsafe { *libc::__errno_location() = errno };
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
    /// Every signal whose disposition graceinit changes, and whether it came ignored.
    dispositions: Vec<(c_int, bool)>,
    /// The C library's own signals (between 32 and SIGRTMIN) that came ignored: glibc
    /// installs a handler for one of them when graceinit starts a thread, and its
    /// `sigaction` refuses to touch them, so they are restored with the raw syscall.
    libc_internal_ignored: Vec<c_int>,
}

impl InheritedSignals {
    /// Must run before graceinit starts any thread (see `libc_internal_ignored`).
    ///
    /// Records the current mask and dispositions, blocks every signal until
    /// [`unblock_all`] (so that one pending since before graceinit started, or arriving
    /// now, waits for its handler instead of meeting the default action), and ignores
    /// TTIN/TTOU.
    pub fn capture_and_block() -> Self {
        let mut mask = MaybeUninit::<libc::sigset_t>::uninit();
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; pthread_sigmask with SIG_SETMASK writes
        // the previous mask into `mask`, which is then initialised.
        let mask = unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), mask.as_mut_ptr());
            mask.assume_init()
        };
        // SIGPIPE is left out: Rust ignores it before main, so what graceinit inherited
        // is unknown, and std resets it to the default for every child, as tini and
        // dumb-init leave it.
        let dispositions = caught()
            .into_iter()
            .filter(|&sig| sig != libc::SIGPIPE)
            .chain(IGNORED.iter().copied())
            .map(|sig| (sig, disposition(sig) == libc::SIG_IGN))
            .collect();
        let ignore = sigaction_with(libc::SIG_IGN);
        for &sig in IGNORED {
            // SAFETY: installs SIG_IGN, a valid disposition for a catchable signal.
            unsafe { libc::sigaction(sig, &ignore, std::ptr::null_mut()) };
        }
        let libc_internal_ignored = (32..libc::SIGRTMIN())
            .filter(|&sig| disposition(sig) == libc::SIG_IGN)
            .collect();
        InheritedSignals {
            mask,
            dispositions,
            libc_internal_ignored,
        }
    }

    pub fn libc_internal_ignored(&self) -> &[c_int] {
        &self.libc_internal_ignored
    }

    pub fn mask(&self) -> &libc::sigset_t {
        &self.mask
    }

    /// Each signal graceinit changed, with the disposition to give back to a child.
    pub fn dispositions(&self) -> impl Iterator<Item = (c_int, libc::sighandler_t)> + '_ {
        self.dispositions.iter().map(|&(sig, ignored)| {
            (
                sig,
                if ignored {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                },
            )
        })
    }
}

/// Gives the calling process SIG_IGN for each of `signals`, by the raw system call:
/// async-signal-safe, and allowed for the C library's internal signals. Used between
/// fork and exec.
pub(super) fn ignore_raw(signals: &[c_int]) {
    // The kernel's struct sigaction starts with the handler; flags, restorer and mask
    // stay zero, so its layout beyond that does not matter (x86_64 and aarch64 alike).
    let mut action = [0usize; 4];
    action[0] = libc::SIG_IGN;
    for &sig in signals {
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

/// Unblocks every signal for graceinit (a blocked SIGTERM must still start the drain),
/// once its handlers are installed; signals pending meanwhile are delivered now.
pub fn unblock_all() {
    let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises `empty`, then it is installed as the mask.
    unsafe {
        libc::sigemptyset(empty.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, empty.as_ptr(), std::ptr::null_mut());
    }
}

/// Blocks every signal on the calling thread until dropped.
///
/// Held across `fork` so that no signal handler of graceinit's runs in the child between
/// `fork` and `exec` (it would write to graceinit's own wake-up pipe).
pub struct BlockAll {
    previous: libc::sigset_t,
}

impl BlockAll {
    pub fn new() -> Self {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        let mut previous = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; pthread_sigmask writes the old mask into
        // `previous`.
        let previous = unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), previous.as_mut_ptr());
            previous.assume_init()
        };
        BlockAll { previous }
    }
}

impl Drop for BlockAll {
    fn drop(&mut self) {
        // SAFETY: restores a mask previously returned by pthread_sigmask.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
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
    // and that wait, pending, while graceinit blocks every signal at start-up.
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
