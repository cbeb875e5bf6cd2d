//! Passing a hook's output to graceinit's stderr, line by line, with its label.

use std::io::Write;
use std::os::fd::OwnedFd;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;

/// Copies every line from `reader` to stderr as `[label] line` until end of file.
/// A last line without a newline is still printed. Each line is one `write`, so lines
/// from different hooks never interleave mid-line.
pub async fn relay_lines(reader: OwnedFd, label: String) {
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
