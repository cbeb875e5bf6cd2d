//! Passing a hook's output to graceinit's log, line by line, with its source.
//!
//! Memory is bounded whatever a hook prints: a line longer than [`MAX_LINE`] is passed
//! on in pieces, each but the last marked as cut. A relay lives until its pipe reaches
//! end of file, which a descendant that left the hook's process group (setsid) can delay
//! for ever; the hook's report waits for it only briefly, and at most
//! [`MAX_ABANDONED`] such relays are kept (the oldest is closed beyond that), so they
//! cannot pile up however often hooks run.
//!
//! A probe's output is not logged as it comes: it is captured ([`Captured`]) and handed
//! back with the run's result, and the probe decides what of it to show (probes/output.rs).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::logging::{self, HookSource, Stream};

/// The longest piece of a line passed on at once.
pub const MAX_LINE: usize = 16 * 1024;

/// Relays of ended hooks kept open for output still to come.
pub const MAX_ABANDONED: usize = 16;

/// How long a hook's report waits for its output after the hook's process group is gone:
/// normally end of file is immediate; only a process that left the group can hold the
/// pipe, and then its output goes on in the background.
pub const OUTPUT_GRACE: Duration = Duration::from_millis(100);

/// Every relay still copying output, so that graceinit can let them finish before it
/// exits, including those of hooks that ended while a process that left their group
/// still holds the pipe.
#[derive(Default)]
pub struct Relays {
    running: Mutex<VecDeque<JoinHandle<()>>>,
}

impl Relays {
    /// Starts relaying `reader` to `sink`; the receiver fires at end of file.
    pub fn start(&self, reader: OwnedFd, sink: Sink) -> oneshot::Receiver<()> {
        let (done, finished) = oneshot::channel();
        let task = tokio::spawn(async move {
            relay_lines(reader, &sink).await;
            let _ = done.send(());
        });
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|task| !task.is_finished());
        running.push_back(task);
        finished
    }

    /// Called when a hook has ended and its relays were given their time: closes the
    /// oldest relays beyond [`MAX_ABANDONED`] (the processes holding those pipes get
    /// EPIPE or SIGPIPE on their next write).
    pub fn limit_abandoned(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|task| !task.is_finished());
        while running.len() > MAX_ABANDONED {
            if let Some(oldest) = running.pop_front() {
                oldest.abort();
            }
        }
    }

    /// Whether any relay is still copying output.
    pub fn any_running(&self) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|task| !task.is_finished());
        !running.is_empty()
    }

    /// Waits, at most until `deadline`, for the relays still running.
    pub async fn finish(&self, deadline: Instant) {
        let tasks = std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
    }
}

/// Where a relay's lines go.
pub enum Sink {
    /// Straight to the log, as `[pre_stop#1] line`.
    Log(HookSource),
    /// Into a probe run's capture.
    Capture(Arc<Mutex<Captured>>, Stream),
}

impl Sink {
    fn line(&self, text: &[u8], cut: bool) {
        match self {
            Sink::Log(source) => logging::hook_line(source, text, cut),
            Sink::Capture(captured, stream) => captured
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(*stream, text, cut),
        }
    }
}

/// One line (or cut piece) a probe printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedLine {
    pub stream: Stream,
    pub text: Vec<u8>,
    pub cut: bool,
}

/// The output of one probe run, stdout and stderr interleaved as they came: at most
/// `room` lines are kept (each at most [`MAX_LINE`] bytes), the rest only counted, so a
/// probe that prints without end costs a bounded amount of memory.
#[derive(Debug, Default)]
pub struct Captured {
    pub lines: Vec<CapturedLine>,
    /// Lines beyond `room`.
    pub overflow: usize,
    room: usize,
}

impl Captured {
    pub fn with_room(room: usize) -> Self {
        Captured {
            lines: Vec::new(),
            overflow: 0,
            room,
        }
    }

    fn push(&mut self, stream: Stream, text: &[u8], cut: bool) {
        if self.lines.len() < self.room {
            self.lines.push(CapturedLine {
                stream,
                text: text.to_vec(),
                cut,
            });
        } else {
            self.overflow += 1;
        }
    }
}

/// Copies every line from `reader` to `sink` until end of file. A last line without a
/// newline is still passed on.
async fn relay_lines(reader: OwnedFd, sink: &Sink) {
    let Ok(mut receiver) = pipe::Receiver::from_owned_fd(reader) else {
        return;
    };
    let mut lines = LineSplitter::default();
    let mut chunk = vec![0; 8192];
    loop {
        match receiver.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.push(&chunk[..n], |text, cut| sink.line(text, cut)),
        }
    }
    lines.finish(|text, cut| sink.line(text, cut));
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes, holding at most one
/// such piece.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `bytes`; `emit(text, cut)` gets each complete line (without its newline) or
    /// piece of a long line (`cut` = true).
    fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.pending.len();
            // One byte past the room tells whether the line ends right there.
            let window = &bytes[..bytes.len().min(room + 1)];
            if let Some(newline) = window.iter().position(|&b| b == b'\n') {
                self.pending.extend_from_slice(&window[..newline]);
                emit(&self.pending, false);
                self.pending.clear();
                bytes = &bytes[newline + 1..];
            } else if window.len() <= room {
                self.pending.extend_from_slice(bytes);
                return;
            } else {
                // A full piece, and the line goes on: pass the piece on, marked as cut.
                self.pending.extend_from_slice(&bytes[..room]);
                bytes = &bytes[room..];
                let cut = utf8_cut(&self.pending);
                emit(&self.pending[..cut], true);
                self.pending.drain(..cut);
            }
        }
    }

    fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
            self.pending.clear();
        }
    }
}

/// Where to cut a full piece: at its end, or before a UTF-8 character that the end
/// would split (so JSON logs do not get a replacement character at every cut).
fn utf8_cut(piece: &[u8]) -> usize {
    match std::str::from_utf8(piece) {
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
        _ => piece.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut splitter = LineSplitter::default();
        for chunk in chunks {
            splitter.push(chunk, |text, cut| out.push((text.to_vec(), cut)));
        }
        splitter.finish(|text, cut| out.push((text.to_vec(), cut)));
        out
    }

    #[test]
    fn lines_across_chunks_and_a_last_line_without_newline() {
        let out = split(&[b"one\ntw", b"o\n\nthr", b"ee"]);
        let expected: Vec<(Vec<u8>, bool)> = vec![
            (b"one".to_vec(), false),
            (b"two".to_vec(), false),
            (b"".to_vec(), false),
            (b"three".to_vec(), false),
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn long_lines_are_cut_into_pieces_of_max_line() {
        let long = vec![b'a'; 2 * MAX_LINE + 100];
        let mut input = long.clone();
        input.extend_from_slice(b"\nnext\n");
        let out = split(&[&input]);
        let sizes: Vec<(usize, bool)> = out.iter().map(|(t, c)| (t.len(), *c)).collect();
        assert_eq!(
            sizes,
            vec![(MAX_LINE, true), (MAX_LINE, true), (100, false), (4, false)]
        );
        // Fed a byte at a time, the same.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(split(&bytes), out);
    }

    #[test]
    fn a_line_of_exactly_max_line_is_not_cut() {
        let mut input = vec![b'x'; MAX_LINE];
        input.push(b'\n');
        let expected = vec![(vec![b'x'; MAX_LINE], false)];
        assert_eq!(split(&[&input]), expected);
        assert_eq!(split(&[&input[..MAX_LINE], b"\n"]), expected);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(split(&bytes), expected);
    }

    #[test]
    fn cuts_never_split_a_utf8_character() {
        let mut input = vec![b'a'; MAX_LINE - 1];
        input.extend_from_slice("é".as_bytes());
        input.push(b'\n');
        let out = split(&[&input]);
        assert_eq!(out[0].0.len(), MAX_LINE - 1);
        assert!(out[0].1);
        assert_eq!(out[1].0, "é".as_bytes());
        // Invalid UTF-8 is cut at the full length.
        let invalid = vec![0xff; MAX_LINE + 1];
        assert_eq!(split(&[&invalid])[0].0.len(), MAX_LINE);
    }
}
