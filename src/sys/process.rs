//! Process-wide settings and signalling: subreaper, parent-death signal, terminal,
//! sending signals.

use libc::c_int;
use nix::errno::Errno;
use nix::sys::signal::{self, Signal};

use nix::unistd::Pid;

/// True when graceinit is the init of its PID namespace.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Orphans of our descendants are reparented to us, so we can reap them and kill them
/// at exit (what PID 1 gets for free).
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// The signal graceinit receives when its parent dies (tini's `-p`); it is then handled
/// like any other signal, so a drain signal drains.
pub fn set_parent_death_signal(sig: c_int) -> nix::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value; the kernel checks it.
    let result = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    Errno::result(result).map(drop)
}

/// Sends signal number `sig` (real-time ones included, which `nix::Signal` cannot name)
/// to one process. ESRCH (already gone) is not an error worth reporting.
pub fn signal_process(pid: Pid, sig: c_int) -> nix::Result<()> {
    raw_kill(pid.as_raw(), sig)
}

/// Sends `sig` to a whole process group.
pub fn signal_group(pgid: Pid, sig: c_int) -> nix::Result<()> {
    raw_kill(-pgid.as_raw(), sig)
}

/// Sends `sig` to every process in the namespace but ourselves. Only meaningful, and
/// only used, when graceinit is PID 1.
pub fn signal_everyone(sig: c_int) -> nix::Result<()> {
    raw_kill(-1, sig)
}

fn raw_kill(target: libc::pid_t, sig: c_int) -> nix::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions; a bad signal number is EINVAL.
    let result = Errno::result(unsafe { libc::kill(target, sig) }).map(drop);
    ignore_gone(result)
}

/// Stops graceinit itself (dumb-init's answer to TSTP/TTIN/TTOU: the shell that started
/// us sees its job stopped, and SIGCONT resumes us and is forwarded).
pub fn stop_self() {
    let _ = signal::raise(Signal::SIGSTOP);
}

fn ignore_gone(result: nix::Result<()>) -> nix::Result<()> {
    match result {
        Err(Errno::ESRCH) => Ok(()),
        other => other,
    }
}

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
}

/// Gives up graceinit's controlling terminal so that the app's new session can take it.
/// Returns whether we had one.
pub fn release_controlling_terminal() -> bool {
    super::signals::with_hangup_ignored(|| {
        // SAFETY: TIOCNOTTY takes no argument; on a descriptor that is not our
        // controlling terminal it fails with ENOTTY and changes nothing.
        unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCNOTTY) == 0 }
    })
}
