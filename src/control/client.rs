//! The control socket's client, for `graceinit drain` and `graceinit status`: a process
//! of its own with no event loop, so plain blocking I/O with deadlines.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{DEFAULT_SOCKET, FALLBACK_SOCKET, Request};
use crate::config::{self, ConfigError, Overrides};

/// The longest answer taken (a status is a few kilobytes).
const MAX_ANSWER: usize = 4 << 20;

/// Where to find the supervisor.
#[derive(Debug)]
pub enum Located {
    /// `--socket`, `GRACEINIT_SOCKET`, or `[control] socket` in `GRACEINIT_CONFIG`.
    Given(PathBuf),
    /// Where graceinit serves it as PID 1: [`DEFAULT_SOCKET`], else [`FALLBACK_SOCKET`].
    Defaults,
}

/// The socket's path as the supervisor chose it: `--socket` / `GRACEINIT_SOCKET`
/// (`given`), then `GRACEINIT_CONFIG`'s `[control] socket`, then the defaults. A config
/// that does not load is the caller's usage error.
pub fn locate(given: Option<&Path>) -> Result<Located, ConfigError> {
    if let Some(path) = given {
        return Ok(Located::Given(path.to_path_buf()));
    }
    let config = std::env::var_os("GRACEINIT_CONFIG").filter(|c| !c.is_empty());
    if let Some(config) = config {
        let settings = config::load(Path::new(&config), &Overrides::default())?;
        if let Some(socket) = settings.control_socket {
            return Ok(Located::Given(socket.into()));
        }
    }
    Ok(Located::Defaults)
}

/// Why no answer came.
#[derive(Debug)]
pub enum Failure {
    /// Nothing answers where the supervisor would be.
    NoSupervisor(String),
    /// The supervisor answered `{"ok":false}` with this.
    Refused(String),
    /// No answer before the deadline.
    TimedOut(Duration),
    /// The connection broke, or the answer is not the protocol's.
    Broken(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoSupervisor(why) | Failure::Refused(why) | Failure::Broken(why) => {
                f.write_str(why)
            }
            Failure::TimedOut(after) => {
                write!(f, "no answer within {}", humantime::format_duration(*after))
            }
        }
    }
}

/// The `{"ok":true}` answer to `request`, as a JSON object.
pub type Answer = serde_json::Map<String, Value>;

/// Sends `request` to the supervisor at `located` and waits (at most `limit`) for its
/// answer.
pub fn ask(
    located: &Located,
    request: Request,
    limit: Option<Duration>,
) -> Result<Answer, Failure> {
    let started = Instant::now();
    let (mut stream, path) = connect(located)?;
    let broken = |e: io::Error| Failure::Broken(format!("{}: {e}", path.display()));
    // A server that refuses the client (busy, wrong uid) answers and closes at once,
    // maybe before the request is written: its answer is still worth reading.
    let mut unsent = stream
        .write_all(format!("{}\n", request.line()).as_bytes())
        .err();
    if unsent.is_some() {
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(broken)?;
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    while !answer.contains(&b'\n') {
        if let Some(limit) = limit {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Failure::TimedOut(limit));
            }
            stream.set_read_timeout(Some(left)).map_err(broken)?;
        }
        let read = match stream.read(&mut chunk) {
            Ok(read) => read,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if let Some(e) = unsent.take() {
                    // Refused without a word: the write's error says why.
                    return Err(broken(e));
                }
                // The deadline passed: the loop's check says so.
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(broken(unsent.take().unwrap_or(e))),
        };
        if let (0, Some(e)) = (read, unsent.take()) {
            return Err(broken(e));
        }
        if read == 0 {
            return Err(Failure::Broken(format!(
                "graceinit closed {} without an answer (it is exiting)",
                path.display()
            )));
        }
        answer.extend_from_slice(&chunk[..read]);
        if answer.len() > MAX_ANSWER {
            return Err(Failure::Broken(format!(
                "{}: an answer longer than {MAX_ANSWER} bytes",
                path.display()
            )));
        }
    }
    let end = answer
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(answer.len());
    let not_protocol = || {
        Failure::Broken(format!(
            "{}: the answer is not graceinit's control protocol",
            path.display()
        ))
    };
    let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(&answer[..end]) else {
        return Err(not_protocol());
    };
    match answer.remove("ok") {
        Some(Value::Bool(true)) => Ok(answer),
        Some(Value::Bool(false)) => Err(Failure::Refused(match answer.remove("error") {
            Some(Value::String(error)) => error,
            _ => "failed, without a reason".into(),
        })),
        _ => Err(not_protocol()),
    }
}

fn connect(located: &Located) -> Result<(UnixStream, PathBuf), Failure> {
    let path = match located {
        Located::Given(path) => path.as_path(),
        Located::Defaults => {
            let mut tried = Vec::new();
            for path in [DEFAULT_SOCKET, FALLBACK_SOCKET] {
                match UnixStream::connect(path) {
                    Ok(stream) => return Ok((stream, path.into())),
                    Err(e) if nobody_there(&e) => tried.push(format!("{path}: {}", why(&e))),
                    Err(e) => {
                        return Err(Failure::NoSupervisor(format!(
                            "cannot connect to {path}: {}",
                            why(&e)
                        )));
                    }
                }
            }
            return Err(Failure::NoSupervisor(format!(
                "no graceinit supervisor answers ({}); graceinit serves its control socket by default only as PID 1: otherwise give the path with --socket, GRACEINIT_SOCKET or [control] socket",
                tried.join("; ")
            )));
        }
    };
    match UnixStream::connect(path) {
        Ok(stream) => Ok((stream, path.to_path_buf())),
        Err(e) if nobody_there(&e) => Err(Failure::NoSupervisor(format!(
            "no graceinit supervisor answers at {}: {}",
            path.display(),
            why(&e)
        ))),
        Err(e) => Err(Failure::NoSupervisor(format!(
            "cannot connect to {}: {}",
            path.display(),
            why(&e)
        ))),
    }
}

fn nobody_there(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ECONNREFUSED)
    )
}

fn why(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such socket".into(),
        Some(libc::ECONNREFUSED) => {
            "connection refused (a socket file left by a graceinit that is gone)".into()
        }
        Some(libc::EACCES) => {
            "permission denied (the socket is mode 0600: run as graceinit's user or root)".into()
        }
        _ => e.to_string(),
    }
}
