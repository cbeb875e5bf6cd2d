//! Passing a hook's output to graceinit's stderr, line by line, with its label.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Every relay still copying output, so that graceinit can let them finish before it
/// exits, including those of hooks that were aborted or outlived by a process that left
/// their group.
#[derive(Default)]
pub struct Relays {
    running: Mutex<Vec<JoinHandle<()>>>,
}

impl Relays {
    /// Starts relaying `reader` as `[label]` lines; the receiver fires at end of file.
    pub fn start(&self, reader: OwnedFd, label: String) -> oneshot::Receiver<()> {
        let (done, finished) = oneshot::channel();
        let task = tokio::spawn(async move {
            relay_lines(reader, label).await;
            let _ = done.send(());
        });
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|task| !task.is_finished());
        running.push(task);
        finished
    }

    /// Waits, at most `within`, for the relays still running.
    pub async fn finish(&self, within: Duration) {
        let tasks = std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = Instant::now() + within;
        for task in tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
    }
}

/// Copies every line from `reader` to stderr as `[label] line` until end of file.
/// A last line without a newline is still printed. Each line is one `write`, so lines
/// from different hooks never interleave mid-line.
async fn relay_lines(reader: OwnedFd, label: String) {
    let Ok(receiver) = pipe::Receiver::from_owned_fd(reader) else {
        return;
    };
    let mut reader = BufReader::new(receiver);
    let prefix = format!("[{label}] ");
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                let mut out = Vec::with_capacity(prefix.len() + line.len());
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&line);
                let _ = std::io::stderr().lock().write_all(&out);
            }
        }
    }
}
