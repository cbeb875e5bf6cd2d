//! Signal state: what graceinit inherited (so the app can get it back) and the set of
//! signals graceinit catches.

use std::mem::MaybeUninit;

use libc::c_int;

/// Signals graceinit never installs a handler for: the kernel's synchronous faults (a
/// fault in graceinit must kill graceinit, not be forwarded), the two uncatchable ones,
/// and SIGPIPE, which Rust ignores so that a closed stderr is an error, not a death.
const NOT_CAUGHT: &[c_int] = &[
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGSYS,
    libc::SIGPIPE,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Ignored by graceinit itself, as tini does: a background graceinit writing a log line
/// to a `tostop` terminal would otherwise be stopped (or, with a handler, livelock).
/// They concern whoever reads or writes the terminal, which graceinit does not forward.
const IGNORED: &[c_int] = &[libc::SIGTTIN, libc::SIGTTOU];

/// Every signal graceinit catches: the standard ones it may forward, SIGCHLD, and the
/// real-time range, which tini forwards too.
pub fn caught() -> Vec<c_int> {
    let standard = 1..32;
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    standard
        .chain(realtime)
        .filter(|sig| !NOT_CAUGHT.contains(sig))
        .collect()
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
}

impl InheritedSignals {
    /// Records the current mask and dispositions, unblocks every signal for graceinit
    /// itself (a blocked SIGTERM must still start the drain), and ignores TTIN/TTOU.
    pub fn capture_and_unblock() -> Self {
        let mut mask = MaybeUninit::<libc::sigset_t>::uninit();
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises `empty`; pthread_sigmask with SIG_SETMASK writes
        // the previous mask into `mask`, which is then initialised.
        let mask = unsafe {
            libc::sigemptyset(empty.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, empty.as_ptr(), mask.as_mut_ptr());
            mask.assume_init()
        };
        let dispositions = caught()
            .into_iter()
            .chain(IGNORED.iter().copied())
            .map(|sig| (sig, disposition(sig) == libc::SIG_IGN))
            .collect();
        let ignore = sigaction_with(libc::SIG_IGN);
        for &sig in IGNORED {
            // SAFETY: installs SIG_IGN, a valid disposition for a catchable signal.
            unsafe { libc::sigaction(sig, &ignore, std::ptr::null_mut()) };
        }
        InheritedSignals { mask, dispositions }
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

fn disposition(sig: c_int) -> libc::sighandler_t {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null `act` only queries; `old` is zero-initialised and fully written by
    // the kernel on success; on failure we read the zeroed value (SIG_DFL).
    unsafe {
        libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr());
        old.assume_init().sa_sigaction
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
