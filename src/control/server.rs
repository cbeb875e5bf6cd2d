//! The control socket's server: bound before the app starts, then served on the event
//! loop, one task per client, none of which can hold up supervision.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::sys::stat::Mode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixSocket, UnixStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::{DEFAULT_SOCKET, FALLBACK_SOCKET, Request};
use crate::supervisor::Handle;

/// Clients served at once; one more is told so and closed. A `drain` client holds its
/// place until the pre_stop hooks are done, which the drain's deadlines bound.
const MAX_CLIENTS: usize = 16;
/// The longest request line: the requests are words.
const MAX_REQUEST: usize = 64;
/// A client has this long to send its request, and to take its answer.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// After a failed accept (out of file descriptors): a pause, not a busy loop.
const ACCEPT_RETRY: Duration = Duration::from_millis(250);

/// A listening control socket, and the file it was bound at.
pub struct Bound {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's device and inode: at exit it is removed only if still ours.
    file: (u64, u64),
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another graceinit is serving it (a connection to it succeeded)")]
    Served,
    #[error("it exists and is not a socket; not replacing it")]
    NotASocket,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Binds a unix stream socket at `path`, mode 0600, and listens on it.
///
/// A socket file nobody listens on (connect: ECONNREFUSED) is an earlier run's and is
/// replaced; one that answers belongs to a live graceinit, and two supervisors behind
/// one path would have `graceinit drain` stop the wrong app.
pub fn bind(path: &Path) -> Result<Bound, BindError> {
    match std::fs::symlink_metadata(path) {
        Ok(found) if !found.file_type().is_socket() => return Err(BindError::NotASocket),
        Ok(_) => {
            if answers(path)? {
                return Err(BindError::Served);
            }
            tracing::debug!("replacing the stale control socket {}", path.display());
            std::fs::remove_file(path)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let socket = UnixSocket::new_stream()?;
    // The mode of the socket's inode is the file's mode at bind (Linux's unix_bind takes
    // it, less the umask): set before bind, there is no moment when the file exists
    // with a wider mode.
    nix::sys::stat::fchmod(&socket, Mode::from_bits_truncate(0o600)).map_err(io::Error::from)?;
    socket.bind(path)?;
    let file = std::fs::symlink_metadata(path)?;
    let listener = socket.listen(MAX_CLIENTS as u32)?;
    Ok(Bound {
        listener,
        path: path.to_path_buf(),
        file: (file.dev(), file.ino()),
    })
}

/// Whether something listens at `path`. The connect does not block: a full backlog
/// (EAGAIN) means a listener too.
fn answers(path: &Path) -> io::Result<bool> {
    let probe = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let address = UnixAddr::new(path)?;
    match socket::connect(probe.as_raw_fd(), &address) {
        Ok(()) | Err(Errno::EAGAIN) => Ok(true),
        Err(Errno::ECONNREFUSED) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub enum DefaultError {
    /// graceinit must not start: another graceinit serves the default path.
    Fatal(String),
    /// Neither place can hold a socket; graceinit runs without one.
    Unavailable(String),
}

/// The socket as PID 1 with no path configured: [`DEFAULT_SOCKET`], or
/// [`FALLBACK_SOCKET`] where /run is missing, read-only or not graceinit's to write.
/// A FROM-scratch image has no /tmp either: graceinit creates it, mode 1777 as in every
/// other image, so that a preStop `exec: ["/graceinit", "drain"]` works there too.
pub fn bind_default() -> Result<Bound, DefaultError> {
    let fatal = |path: &str, e: BindError| {
        DefaultError::Fatal(format!("cannot serve the control socket at {path}: {e}"))
    };
    let at_run = match bind(Path::new(DEFAULT_SOCKET)) {
        Ok(bound) => return Ok(bound),
        Err(BindError::Io(e)) if unusable_directory(&e) => e,
        Err(e) => return Err(fatal(DEFAULT_SOCKET, e)),
    };
    if let Err(e) = ensure_tmp() {
        return Err(DefaultError::Unavailable(format!(
            "no place for the control socket: {DEFAULT_SOCKET}: {at_run}; /tmp is missing and cannot be created: {e}"
        )));
    }
    match bind(Path::new(FALLBACK_SOCKET)) {
        Ok(bound) => {
            tracing::debug!(
                "{DEFAULT_SOCKET}: {at_run}: the control socket is at {FALLBACK_SOCKET}"
            );
            Ok(bound)
        }
        Err(BindError::Io(e)) if unusable_directory(&e) => Err(DefaultError::Unavailable(format!(
            "no place for the control socket: {DEFAULT_SOCKET}: {at_run}; {FALLBACK_SOCKET}: {e}"
        ))),
        Err(e) => Err(fatal(FALLBACK_SOCKET, e)),
    }
}

/// Errors that say the directory cannot hold the socket (rather than that something is
/// wrong with a socket there).
fn unusable_directory(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::EROFS | libc::EACCES | libc::EPERM)
    )
}

fn ensure_tmp() -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let tmp = Path::new("/tmp");
    match std::fs::symlink_metadata(tmp) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().mode(0o1777).create(tmp)?;
            // The umask took bits off the mode given to mkdir.
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o1777))?;
            tracing::debug!("created /tmp (mode 1777) for the control socket");
            Ok(())
        }
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// Serves `bound` on tasks of the event loop until graceinit exits; the socket file is
/// the caller's to remove then.
pub fn serve(bound: Bound, handle: Handle) -> SocketFile {
    let owner = nix::unistd::geteuid().as_raw();
    let Bound {
        listener,
        path,
        file,
    } = bound;
    let places = Arc::new(Semaphore::new(MAX_CLIENTS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("control socket: cannot accept a client: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let Ok(place) = places.clone().try_acquire_owned() else {
                tracing::debug!("control socket: {MAX_CLIENTS} clients already: one refused");
                // Best effort, never waiting: the client is told why, or just closed.
                let _ = stream.try_write(&line(&failure(format!(
                    "busy: {MAX_CLIENTS} clients are being served"
                ))));
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                serve_client(stream, &handle, owner).await;
                drop(place);
            });
        }
    });
    SocketFile { path, file }
}

async fn serve_client(mut stream: UnixStream, handle: &Handle, owner: u32) {
    let peer = match stream.peer_cred() {
        Ok(peer) => peer,
        Err(e) => {
            tracing::debug!("control socket: no peer credentials: {e}");
            return;
        }
    };
    if peer.uid() != owner && peer.uid() != 0 {
        let pid = peer.pid().map_or("?".into(), |pid| pid.to_string());
        let allowed = match owner {
            0 => "root".to_string(),
            uid => format!("uid {uid} and root"),
        };
        let refusal = failure(format!(
            "refused: uid {} may not use this control socket (only {allowed})",
            peer.uid()
        ));
        tracing::warn!(
            "control socket: refused a client with uid {} (pid {pid}): only {allowed} may use it",
            peer.uid()
        );
        reply(&mut stream, &refusal).await;
        return;
    }
    let request = match timeout(REQUEST_DEADLINE, read_request(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(problem)) => {
            reply(&mut stream, &failure(problem)).await;
            return;
        }
        Err(_) => {
            let problem = format!("no request within {REQUEST_DEADLINE:?}");
            reply(&mut stream, &failure(problem)).await;
            return;
        }
    };
    tracing::debug!(request = request.line(), "control socket");
    let answer = match request {
        Request::Status => {
            json!({ "ok": true, "status": crate::status::to_json(&handle.snapshot()) })
        }
        // Answered when the pre_stop hooks are done. A client that hangs up before (its
        // --timeout, or the kubelet killing it) gives its place back at once; the drain
        // goes on.
        Request::Drain => tokio::select! {
            answer = handle.drain() => match answer {
                Ok(outcome) => json!({ "ok": true, "outcome": outcome }),
                Err(reason) => failure(reason),
            },
            () = hung_up(&stream) => {
                tracing::debug!("control socket: a drain client hung up before its answer");
                return;
            }
        },
    };
    reply(&mut stream, &answer).await;
}

/// Resolves once the client has closed the connection altogether. A client that only
/// shut down its writing side (`echo drain | nc -U PATH`) still waits for its answer:
/// then this never resolves. Bytes after the request are read and ignored.
async fn hung_up(stream: &UnixStream) {
    let mut ignored = [0u8; 64];
    loop {
        let Ok(ready) = stream.ready(Interest::READABLE).await else {
            return;
        };
        if ready.is_read_closed() {
            return end_of_requests(stream).await;
        }
        match stream.try_read(&mut ignored) {
            Ok(0) => return end_of_requests(stream).await,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Nothing more will be read: the client closed the connection (then POLLHUP: return),
/// or only its writing side (wait for ever: the answer is still wanted).
async fn end_of_requests(stream: &UnixStream) {
    let mut polled = [PollFd::new(stream.as_fd(), PollFlags::empty())];
    // A zero timeout: a look at the socket's state, not a wait.
    let hung_up = poll(&mut polled, PollTimeout::ZERO).is_ok_and(|n| n > 0)
        && polled[0]
            .revents()
            .is_some_and(|events| events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
    if !hung_up {
        std::future::pending::<()>().await;
    }
}

/// One request line (or what came before the client closed its side).
async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut buffer = [0u8; MAX_REQUEST];
    let mut len = 0;
    loop {
        let read = stream
            .read(&mut buffer[len..])
            .await
            .map_err(|e| format!("cannot read the request: {e}"))?;
        len += read;
        let end = buffer[..len].iter().position(|&b| b == b'\n');
        let request = match (end, read) {
            (Some(end), _) => &buffer[..end],
            (None, 0) => &buffer[..len],
            (None, _) if len == MAX_REQUEST => {
                return Err(format!("a request is at most {MAX_REQUEST} bytes"));
            }
            (None, _) => continue,
        };
        let text = String::from_utf8_lossy(request);
        return Request::parse(&text).ok_or_else(|| {
            format!(
                "unknown request `{}`: expected `drain` or `status`",
                text.trim().escape_debug()
            )
        });
    }
}

fn failure(error: String) -> Value {
    json!({ "ok": false, "error": error })
}

fn line(answer: &Value) -> Vec<u8> {
    let mut line = answer.to_string().into_bytes();
    line.push(b'\n');
    line
}

async fn reply(stream: &mut UnixStream, answer: &Value) {
    match timeout(ANSWER_DEADLINE, stream.write_all(&line(answer))).await {
        Ok(Ok(())) => {}
        // The client went away, or does not read: its loss.
        Ok(Err(e)) => tracing::debug!("control socket: cannot answer a client: {e}"),
        Err(_) => tracing::debug!("control socket: a client took no answer in {ANSWER_DEADLINE:?}"),
    }
}

/// The socket file graceinit bound, to remove when it exits.
pub struct SocketFile {
    path: PathBuf,
    /// The file's device and inode: it is removed only if still ours.
    file: (u64, u64),
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One unlink on /run or /tmp, the last thing graceinit does (as PID 1 the
    /// container's filesystem goes with it anyway; not PID 1, the next run would find a
    /// stale file and replace it, but tidier not to leave it).
    pub fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|now| (now.dev(), now.ino()) == self.file);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::debug!(
                    "cannot remove the control socket {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}
