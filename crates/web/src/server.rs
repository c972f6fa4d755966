//! The connection loop: accepts TCP connections and serves HTTP/1.1 on them with hyper, with the
//! limits `axum::serve` lacks, so that half-sent requests and idle connections cannot pile up:
//!
//! - `http.max_connections`: a semaphore of that many permits. A permit is taken *before*
//!   `accept`, so at the cap the loop simply stops accepting until a connection closes; new
//!   connections wait in the kernel's listen backlog and are served when a slot frees (or time out
//!   on the client's side). We chose that over accepting and closing at once: a burst of honest
//!   clients is delayed rather than refused, and a flood costs no file descriptors beyond the cap.
//! - `http.header_read_timeout_secs`: a connection must deliver a whole request head (request line
//!   and headers) within this long of being accepted, or of the first byte of a later request on a
//!   kept-alive connection. Trickling bytes does not extend it.
//! - `http.keep_alive_timeout_secs`: a kept-alive connection idle between requests this long is
//!   closed.
//!
//! Both timeouts are kept here rather than with hyper's `header_read_timeout`: hyper (1.x) starts
//! that timer as soon as it waits for a head, so on a kept-alive connection it also runs during the
//! idle time between requests, and idle connections would be cut at the header timeout. Instead, a
//! small per-connection [`Activity`] records what the connection is doing (fed by the socket
//! wrapper, the service and the response body) and the connection task closes it when the deadline
//! of its current phase passes. While a request is being handled no deadline applies here: the
//! app's own `http.request_timeout_secs` / `http.upload_timeout_secs` do.
//!
//! Graceful shutdown is `axum::serve`'s: once `shutdown` resolves, no new connection is accepted,
//! every connection is asked to finish (idle ones close, in-flight requests complete) and `run`
//! returns when all have closed.

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;

/// The application as served: the router behind the trailing-slash normalisation.
pub(crate) type App = NormalizePath<Router>;

/// The connection limits, from the `http` section of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
}

impl Limits {
    pub fn from_config(http: &pulseboard_config::Http) -> Self {
        Self {
            max_connections: http.max_connections,
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            keep_alive_timeout: Duration::from_secs(http.keep_alive_timeout_secs),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub(crate) async fn run(
    listener: TcpListener,
    app: App,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // As in axum::serve: the signal drops `signal_rx`, which every connection task watches for;
    // each task holds a `close_rx`, so `close_tx.closed()` resolves when the last one has ended.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    let (close_tx, close_rx) = watch::channel(());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut warned_at: Option<Instant> = None;

    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: stop accepting until a connection closes (see the module comment).
                // Said at most once a minute, so that a flood does not flood the log too.
                if warned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    warned_at = Some(Instant::now());
                    tracing::warn!(
                        max = limits.max_connections,
                        "connection limit reached (http.max_connections); new connections wait until one closes"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => {
                        permit.expect("the connection semaphore is never closed")
                    }
                    _ = signal_tx.closed() => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e, &signal_tx).await;
                    continue;
                }
            },
            _ = signal_tx.closed() => break,
        };
        tokio::spawn(connection(
            stream,
            remote,
            permit,
            app.clone(),
            limits,
            signal_tx.clone(),
            close_rx.clone(),
        ));
    }

    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
    Ok(())
}

/// As axum::serve: a client that gave up before we accepted it is no error; anything else (such as
/// running out of file descriptors) is logged, and accepting pauses for a second.
async fn accept_error(e: io::Error, signal_tx: &watch::Sender<()>) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        _ = signal_tx.closed() => {}
    }
}

/// One connection, from accept to close. The permit travels inside the socket wrapper, so it is
/// released when the socket closes (after a WebSocket upgrade too, which outlives this task).
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    permit: OwnedSemaphorePermit,
    app: App,
    limits: Limits,
    signal_tx: watch::Sender<()>,
    close_rx: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new(limits));
    let io = TokioIo::new(Tracked {
        stream,
        activity: activity.clone(),
        _permit: permit,
    });
    let service = ConnService {
        app,
        remote,
        activity: activity.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Ours replace it (see the module comment); without a timer hyper would not run it anyway.
    builder.header_read_timeout(None);
    let mut conn = pin!(builder.serve_connection(io, service).with_upgrades());
    let mut signal = pin!(signal_tx.closed());
    let mut shutting_down = false;
    let mut timer = pin!(tokio::time::sleep_until(Instant::now()));

    let timed_out = poll_fn(|cx| {
        if !shutting_down && signal.as_mut().poll(cx).is_ready() {
            shutting_down = true;
            conn.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            if let Err(e) = result {
                tracing::trace!(%remote, "connection ended: {e}");
            }
            return Poll::Ready(false);
        }
        // Every change of phase happens while `conn` is polled, so the deadline read here is
        // current; while a request is being handled there is none, and `conn` wakes us when the
        // response is done.
        match activity.deadline() {
            None => Poll::Pending,
            Some(deadline) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer.as_mut().poll(cx).map(|()| true)
            }
        }
    })
    .await;
    if timed_out {
        // No request is in flight: dropping the connection closes the socket.
        tracing::debug!(%remote, "closing a connection that sent no complete request in time or sat idle");
    }
    drop(close_rx);
}

/// Where a connection is, as far as its timeouts go.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for the first byte of a request: since the accept (`first`), or since the last
    /// response of a kept-alive connection.
    Waiting { since: Instant, first: bool },
    /// Part of a request head has arrived; the rest is due `header_read_timeout` after `since`.
    Head { since: Instant },
    /// Requests handed to the app whose responses are not finished yet.
    Busy(usize),
}

#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    limits: Limits,
}

impl Activity {
    fn new(limits: Limits) -> Self {
        Self {
            phase: Mutex::new(Phase::Waiting {
                since: Instant::now(),
                first: true,
            }),
            limits,
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived from the client.
    fn read(&self) {
        let mut phase = self.phase();
        if let Phase::Waiting { since, first } = *phase {
            // The first request's head is due from the accept: connecting and waiting before
            // the first byte does not buy more time.
            let since = if first { since } else { Instant::now() };
            *phase = Phase::Head { since };
        }
    }

    /// A request head was parsed and handed to the app.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        InFlight(self.clone())
    }

    fn request_finished(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Waiting {
                since: Instant::now(),
                first: false,
            },
        };
    }

    /// When the connection is to be closed if nothing changes; None while a request is handled
    /// (or if the timeout is too large to be a point in time).
    fn deadline(&self) -> Option<Instant> {
        let Limits {
            header_read_timeout,
            keep_alive_timeout,
            ..
        } = self.limits;
        match *self.phase() {
            Phase::Waiting { since, first: true } | Phase::Head { since } => {
                since.checked_add(header_read_timeout)
            }
            Phase::Waiting { since, .. } => since.checked_add(keep_alive_timeout),
            Phase::Busy(_) => None,
        }
    }
}

/// A request in flight: from the parsed head until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The socket, reporting the bytes it reads, and holding the connection's permit.
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The app for one connection: adds `ConnectInfo<SocketAddr>` (as axum's
/// `into_make_service_with_connect_info` does) and marks the request in flight until its
/// response body is done.
#[derive(Clone)]
struct ConnService {
    app: App,
    remote: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request_started();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.remote));
        let response = self.app.clone().oneshot(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that ends the request's "in flight" phase when hyper is done with it.
pub(crate) struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
