//! The listener and its connections. Each accepted connection is served by hyper on a
//! task of its own, so a client that is slow, malformed or silent costs one task and one
//! of [`MAX_CONNECTIONS`] slots, and never delays the supervisor's loop (the same
//! thread, which hyper only ever gives back to) or another client.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use super::{Endpoints, routes};
use crate::supervisor::Handle;

/// Connections served at once; one more is closed as soon as it is accepted. The kubelet
/// and a Prometheus scraper need a few; the cap keeps a flood from costing memory.
pub const MAX_CONNECTIONS: usize = 64;

/// The most a request head (request line and headers) may take, in bytes: larger heads
/// are answered 431 by hyper. Probes and scrapers send a few hundred.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The time a client has to send a whole request head, counted from when the connection
/// waits for one (so an idle keep-alive connection is closed after it too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a connection may go without taking a byte of its answer: a client that
/// stops reading (or pipelines requests it never reads the answers to) gives its slot
/// back after it, rather than holding it as long as it likes.
pub const WRITE_STALL: Duration = Duration::from_secs(5);

/// Binds `address` now, synchronously: a taken port is an error before the app starts.
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    // Its connections are not the app's traffic: the drain's sampler counts them out.
    crate::traffic::own_listener(listener.try_clone()?.into());
    TcpListener::from_std(listener)
}

/// Accepts connections until graceinit exits.
pub async fn serve(listener: TcpListener, handle: Handle, endpoints: Endpoints) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let endpoints = Arc::new(endpoints);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => {
                // Not the app's traffic: the drain's sampler takes it out of the
                // namespace's count of opens.
                crate::traffic::accepted_one();
                stream
            }
            Err(e) => {
                // Out of file descriptors, most likely: the connections that hold them
                // must finish first, so pause rather than spin on the error.
                tracing::warn!("health endpoints: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed at once (dropping it), not queued behind the others.
            tracing::debug!("health endpoints: {MAX_CONNECTIONS} connections open, one closed");
            continue;
        };
        // The answers are small and written whole: no reason to let Nagle hold them.
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handle = handle.clone();
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(routes::answer(request, &handle, &endpoints).await) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .keep_alive(true)
                .serve_connection(TokioIo::new(StallGuard::new(stream)), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("health endpoints: connection ended: {e}");
            }
            drop(slot);
        });
    }
}

/// A stream whose writes fail once they have made no progress for [`WRITE_STALL`]:
/// hyper's own timeouts cover reading a request, not a peer that will not read.
struct StallGuard<S> {
    inner: S,
    /// Armed while a write waits; reset by every byte written.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    fn new(inner: S) -> Self {
        StallGuard {
            inner,
            stalled: None,
        }
    }

    /// After a write or flush returned `polled`: Pending arms the deadline (or checks it),
    /// progress disarms it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let deadline = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of its answer for 5s",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}
