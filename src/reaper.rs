//! The one owner of `waitpid`.
//!
//! Every process graceinit starts (the app, exec hooks) is spawned through
//! [`Reaper::spawn`], which registers its pid *while holding the table lock*, before
//! [`Reaper::reap`] could possibly see it exit. `reap` is the only `waitpid` in the
//! program: `waitpid(-1, WNOHANG)` until nothing is left, on every SIGCHLD (which
//! coalesces, so one SIGCHLD may stand for thousands of exits). A registered pid's status
//! goes to whoever waits for it; anything else is an orphan and is simply reaped. No
//! other code waits on a child, so no status is ever stolen (tokio's and std's waiters
//! would race with `waitpid(-1)` and get ECHILD).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::process::Command;
use std::sync::Mutex;

use nix::unistd::Pid;
use tokio::sync::oneshot;

use crate::signals::signal_name;
use crate::sys::signals::InheritedSignals;
use crate::sys::spawn::{SpawnOptions, spawn};
use crate::sys::wait::{Ended, Reaped, reap_one};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's convention, which tini and dumb-init follow: the exit code, or 128+N
    /// for death by signal N.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(sig) => 128 + sig,
        }
    }

    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(sig) => write!(f, "killed by {}", signal_name(sig)),
        }
    }
}

/// A process graceinit started, with the promise of its status.
pub struct Spawned {
    pub pid: Pid,
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// Told a registered process's pid and status once it has been reaped.
pub type OnExit = Box<dyn FnOnce(Pid, ExitStatus) + Send>;

/// What `reap` found once nothing more could be reaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Children {
    /// Some children are still running.
    Running,
    /// graceinit has no children left at all.
    None,
}

pub struct Reaper {
    waiters: Mutex<HashMap<Pid, OnExit>>,
    inherited: InheritedSignals,
    warn_on_orphan: bool,
}

impl Reaper {
    pub fn new(inherited: InheritedSignals, warn_on_orphan: bool) -> Self {
        Reaper {
            waiters: Mutex::new(HashMap::new()),
            inherited,
            warn_on_orphan,
        }
    }

    /// Spawns `cmd` in its own session with graceinit's inherited signal state and
    /// registers it, so that its status is delivered on `Spawned::exit`.
    pub fn spawn(&self, cmd: &mut Command, take_terminal: bool) -> io::Result<Spawned> {
        let (tx, exit) = oneshot::channel();
        // The receiver may be gone (a hook abandoned at its deadline): the process is
        // reaped all the same.
        let on_exit = Box::new(move |_, status| {
            let _ = tx.send(status);
        });
        let pid = self.spawn_with(cmd, take_terminal, on_exit)?;
        Ok(Spawned { pid, exit })
    }

    /// Like `spawn`, with the status handed to `on_exit` (the app's goes straight into
    /// the supervisor's inbox).
    pub fn spawn_with(
        &self,
        cmd: &mut Command,
        take_terminal: bool,
        on_exit: OnExit,
    ) -> io::Result<Pid> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let options = SpawnOptions {
            inherited: &self.inherited,
            take_terminal,
        };
        let pid = spawn(cmd, options)?;
        waiters.insert(pid, on_exit);
        Ok(pid)
    }

    /// Reaps every child that has exited, delivering registered statuses.
    pub fn reap(&self) -> Children {
        loop {
            let (pid, status) = match reap_one() {
                Ok(Reaped::Child(pid, Ended::Exited(code))) => (pid, ExitStatus::Exited(code)),
                Ok(Reaped::Child(pid, Ended::Signaled(sig))) => (pid, ExitStatus::Signaled(sig)),
                Ok(Reaped::NoneEnded) => return Children::Running,
                Ok(Reaped::NoChildren) => return Children::None,
                Err(e) => {
                    // Not expected for waitpid(-1, WNOHANG); saying "none left" here
                    // would end supervision with children still running.
                    tracing::error!("waitpid failed: {e}");
                    return Children::Running;
                }
            };
            let waiter = self
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pid);
            match waiter {
                Some(on_exit) => on_exit(pid, status),
                None if self.warn_on_orphan => {
                    tracing::warn!(pid = pid.as_raw(), %status, "reaped zombie process")
                }
                None => tracing::debug!(pid = pid.as_raw(), %status, "reaped orphan"),
            }
        }
    }
}
