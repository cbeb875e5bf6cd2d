//! Exec hooks and probes: argv without a shell, in a process group of their own, output
//! relayed (a hook's) or captured (a probe's).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use nix::unistd::Pid;
use tokio::time::Instant;

use super::Outcome;
use super::relay::{Captured, OUTPUT_GRACE, Relays, Sink};
use crate::logging::{HookSource, Stream};
use crate::reaper::Reaper;
use crate::sys::process::signal_group;

/// Where an exec action's output goes.
#[derive(Clone)]
pub enum Output {
    /// To the log as it comes, as `[phase#index] line`.
    Log { phase: &'static str, index: usize },
    /// Into a probe run's capture.
    Capture(Arc<Mutex<Captured>>),
}

impl Output {
    fn sink(&self, stream: Stream) -> Sink {
        match self {
            Output::Log { phase, index } => Sink::Log(HookSource {
                phase,
                index: *index,
                stream,
            }),
            Output::Capture(captured) => Sink::Capture(captured.clone(), stream),
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site, every argument distinct"
)]
pub async fn run(
    reaper: &Reaper,
    relays: &Relays,
    output: &Output,
    argv: &[String],
    env: &BTreeMap<String, String>,
    workdir: Option<&str>,
    limit: Instant,
    expired: Outcome,
) -> Outcome {
    let pipes = std::io::pipe().and_then(|out| Ok((out, std::io::pipe()?)));
    let ((out_reader, out_writer), (err_reader, err_writer)) = match pipes {
        Ok(pipes) => pipes,
        Err(e) => return Outcome::Failed(format!("cannot create a pipe: {e}")),
    };
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out_writer)
        .stderr(err_writer);
    if let Some(dir) = workdir {
        command.current_dir(dir);
    }
    let spawned = reaper.spawn(&mut command, false);
    // Our copies of the write ends must close, or the relays would never see end of file.
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
    let stdout_done = relays.start(out_reader.into(), output.sink(Stream::Stdout));
    let stderr_done = relays.start(err_reader.into(), output.sink(Stream::Stderr));

    let outcome = tokio::select! {
        status = spawned.exit => match status {
            Ok(status) if status.success() => Outcome::Succeeded,
            Ok(status) => Outcome::Failed(format!("{:?} ended with {status}", argv[0])),
            Err(_) => Outcome::Failed("the reaper lost the hook's status".into()),
        },
        _ = tokio::time::sleep_until(limit) => expired,
    };
    // A hook does not outlive its run: whatever is left of its group goes now, which also
    // closes the pipes so the relays can finish.
    drop(group);
    // Normally immediate. A process that left the group may hold a pipe open; its output
    // then goes on in the background, and the report (and with it the next hook and the
    // drain's deadlines) does not wait for it.
    let output_by = (Instant::now() + OUTPUT_GRACE).min(limit.max(Instant::now()));
    let _ = tokio::time::timeout_at(output_by, async {
        let _ = stdout_done.await;
        let _ = stderr_done.await;
    })
    .await;
    relays.limit_abandoned();
    // Aborted relays close their pipes when the runtime next polls them: let it, now.
    tokio::task::yield_now().await;
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
