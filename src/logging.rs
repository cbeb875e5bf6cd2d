//! Everything graceinit writes to stderr after start-up: tracing's log lines and the
//! lines hooks print.
//!
//! Writing never delays supervision. stderr is often a pipe to a container log driver
//! that may block, a terminal that may be stopped, or a pipe the app fills too; a
//! blocking write there from the event loop would freeze forwarding, reaping and the
//! drain's deadlines. So every line goes into a queue bounded in bytes, and a writer
//! thread of its own does the blocking writes. When the queue is full a line is dropped
//! and counted, and the count is reported once the writer has caught up. stderr is
//! never made O_NONBLOCK: the app shares that open file description.
//!
//! Without a config file a normal run prints nothing, as tini and dumb-init; with one,
//! lifecycle events show; -v info, -vv debug. With `--log-format json` every line is one
//! JSON object, hook lines included.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt, Targets, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::{LogFormat, LogLevel};
use crate::events;

/// The most bytes waiting for the writer; beyond that lines are dropped. Enough for
/// bursts of a few thousand lines, small next to graceinit's own footprint.
const QUEUE_BYTES: usize = 1024 * 1024;

/// The log target of hook output lines (JSON format).
pub const HOOK_TARGET: &str = "graceinit::hook";

pub fn init(level: LogLevel, format: LogFormat, config_given: bool) {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    // With a config file, lifecycle events are what a quiet graceinit still says; without
    // one it is a plain tini/dumb-init replacement, silent unless something goes wrong.
    let events = if config_given {
        level.max(LevelFilter::INFO)
    } else {
        level
    };
    // Hook output is always shown (in the text format it bypasses tracing altogether).
    // Matched exactly: `Targets` would match "graceinit::hooks" by prefix.
    let filter = Targets::new()
        .with_default(level)
        .with_target(events::TARGET, events)
        .or(filter_fn(|meta| meta.target() == HOOK_TARGET));
    QUEUE.get_or_init(|| Queue::new(format));
    let registry = tracing_subscriber::registry();
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(QueueWriter)
                    .with_ansi(io::stderr().is_terminal())
                    .with_target(false)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(QueueWriter)
                    .with_filter(filter),
            )
            .try_init(),
    };
    drop(result);
}

/// Which of a hook's output streams a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Where a hook line comes from: `[pre_stop#1]` is phase "pre_stop", index 1.
#[derive(Clone, Debug)]
pub struct HookSource {
    pub phase: &'static str,
    pub index: usize,
    pub stream: Stream,
}

/// The marker after a piece of a line that was cut (text format).
pub const CUT_MARKER: &[u8] = b" [cut]";

/// Writes one line a hook printed (without its newline); `cut` when the line goes on in
/// the next piece.
pub fn hook_line(source: &HookSource, text: &[u8], cut: bool) {
    // Hooks run only once `init` has made the queue; were one to run before, it would
    // still go through a queue (in text), never a write of its own.
    let queue = QUEUE.get_or_init(|| Queue::new(LogFormat::Text));
    match queue.format {
        LogFormat::Text => queue.push(text_hook_line(source, text, cut)),
        LogFormat::Json => tracing::info!(
            target: HOOK_TARGET,
            phase = source.phase,
            index = source.index,
            stream = source.stream.name(),
            truncated = cut,
            "{}",
            String::from_utf8_lossy(text)
        ),
    }
}

fn text_hook_line(source: &HookSource, text: &[u8], cut: bool) -> Vec<u8> {
    let prefix = format!("[{}#{}] ", source.phase, source.index);
    let mut line = Vec::with_capacity(prefix.len() + text.len() + CUT_MARKER.len() + 1);
    line.extend_from_slice(prefix.as_bytes());
    line.extend_from_slice(text);
    if cut {
        line.extend_from_slice(CUT_MARKER);
    }
    line.push(b'\n');
    line
}

/// Waits, at most until `deadline`, for the lines already queued to be written.
/// Whether log lines are queued or being written.
pub fn pending() -> bool {
    QUEUE
        .get()
        .is_some_and(|queue| queue.pending.load(Ordering::Acquire) > 0)
}

pub fn flush(deadline: Instant) {
    if let Some(queue) = QUEUE.get() {
        queue.wait_empty(deadline);
    }
}

static QUEUE: OnceLock<Queue> = OnceLock::new();

struct Queue {
    format: LogFormat,
    writer: Mutex<Writer>,
    /// Bytes queued or being written.
    pending: AtomicUsize,
    dropped: AtomicUsize,
    empty: (Mutex<()>, Condvar),
}

/// The writer thread starts with the first line: a quiet run never pays for it.
enum Writer {
    NotStarted,
    Running(Sender<Vec<u8>>),
    Failed,
}

impl Queue {
    fn new(format: LogFormat) -> Queue {
        Queue {
            format,
            writer: Mutex::new(Writer::NotStarted),
            pending: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            empty: (Mutex::new(()), Condvar::new()),
        }
    }

    fn send(&self, line: Vec<u8>) -> bool {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Writer::NotStarted = *writer {
            let (sender, lines) = mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("log-writer".into())
                .stack_size(256 * 1024)
                .spawn(move || write_lines(lines));
            *writer = match spawned {
                Ok(_) => Writer::Running(sender),
                Err(e) => {
                    // Without a writer every line is dropped; say so once, in place.
                    let _ = writeln!(io::stderr(), "graceinit: cannot start the log writer: {e}");
                    Writer::Failed
                }
            };
        }
        match &*writer {
            Writer::Running(sender) => sender.send(line).is_ok(),
            _ => false,
        }
    }

    /// Queues `line` for the writer, or drops and counts it when the queue is full.
    fn push(&self, line: Vec<u8>) {
        let len = line.len();
        let fits = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                (pending + len <= QUEUE_BYTES).then_some(pending + len)
            })
            .is_ok();
        let sent = fits && self.send(line);
        if !sent {
            if fits {
                self.pending.fetch_sub(len, Ordering::AcqRel);
            }
            self.dropped.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn written(&self, len: usize) {
        if self.pending.fetch_sub(len, Ordering::AcqRel) == len {
            let _guard = self.empty.0.lock().unwrap_or_else(|e| e.into_inner());
            self.empty.1.notify_all();
        }
    }

    fn wait_empty(&self, deadline: Instant) {
        let mut guard = self.empty.0.lock().unwrap_or_else(|e| e.into_inner());
        while self.pending.load(Ordering::Acquire) > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            guard = self
                .empty
                .1
                .wait_timeout(guard, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// After a write: once the backlog is down to half, tell how many lines were lost.
    fn report_drops(&self) {
        if self.pending.load(Ordering::Acquire) > QUEUE_BYTES / 2 {
            return;
        }
        let dropped = self.dropped.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "{dropped} log lines dropped: stderr was not keeping up"
            );
        }
    }
}

/// The writer thread: blocking writes to stderr, one line at a time.
fn write_lines(lines: Receiver<Vec<u8>>) {
    // std's stderr is unbuffered: each line is written as it comes.
    let mut stderr = io::stderr();
    for line in lines {
        // An error (stderr closed: EPIPE) loses the line; nothing better can be done.
        let _ = stderr.write_all(&line);
        if let Some(queue) = QUEUE.get() {
            queue.written(line.len());
            queue.report_drops();
        }
    }
}

/// tracing's writer: each formatted event arrives in one `write` call and becomes one
/// queued line.
struct QueueWriter;

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(queue) = QUEUE.get() {
            queue.push(buf.to_vec());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = QueueWriter;

    fn make_writer(&'a self) -> Self::Writer {
        QueueWriter
    }
}
