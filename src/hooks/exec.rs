//! Exec hooks: argv without a shell, in a process group of their own, output relayed.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::unistd::Pid;
use tokio::time::Instant;

use super::Outcome;
use super::relay::Relays;
use crate::reaper::Reaper;
use crate::sys::process::signal_group;

/// How long the output relay may go on after the hook's process group is gone (only a
/// process that left the group, e.g. with setsid, can hold the pipe open that long).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

#[allow(
    clippy::too_many_arguments,
    reason = "one call site, every argument distinct"
)]
pub async fn run(
    reaper: &Reaper,
    relays: &Relays,
    label: &str,
    argv: &[String],
    env: &BTreeMap<String, String>,
    workdir: Option<&str>,
    limit: Instant,
    expired: Outcome,
) -> Outcome {
    let (reader, writer) = match std::io::pipe() {
        Ok(pair) => pair,
        Err(e) => return Outcome::Failed(format!("cannot create a pipe: {e}")),
    };
    let writer_for_stderr = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return Outcome::Failed(format!("cannot create a pipe: {e}")),
    };
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(env)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_for_stderr);
    if let Some(dir) = workdir {
        command.current_dir(dir);
    }
    let spawned = reaper.spawn(&mut command, false);
    // Our copies of the write end must close, or the relay would never see end of file.
    drop(command);
    let spawned = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            return Outcome::Failed(match workdir {
                Some(dir) if !std::path::Path::new(dir).is_dir() => {
                    format!("cannot run {:?} in workdir {dir:?}: {e}", argv[0])
                }
                _ => format!("cannot run {:?}: {e}", argv[0]),
            });
        }
    };
    let group = KillGroupOnDrop(spawned.pid);
    let relayed = relays.start(reader.into(), label.to_string());

    let outcome = tokio::select! {
        status = spawned.exit => match status {
            Ok(status) if status.success() => Outcome::Succeeded,
            Ok(status) => Outcome::Failed(format!("{:?} ended with {status}", argv[0])),
            Err(_) => Outcome::Failed("the reaper lost the hook's status".into()),
        },
        _ = tokio::time::sleep_until(limit) => expired,
    };
    // A hook does not outlive its run: whatever is left of its group goes now, which also
    // closes the pipe so the relay can finish.
    drop(group);
    // Normally immediate; a process that left the group may hold the pipe open, and is
    // then given until graceinit exits (`Relays::finish`).
    let _ = tokio::time::timeout(OUTPUT_GRACE, relayed).await;
    outcome
}

/// Kills the hook's whole process group when dropped: at its timeout, after it exits,
/// and when the task running it is aborted (the drain skipping ahead). The exit status
/// still goes to the reaper, which reaps it with nobody waiting.
struct KillGroupOnDrop(Pid);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = signal_group(self.0, libc::SIGKILL);
    }
}
