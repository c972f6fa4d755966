//! The capture browser's forward proxy: every connection Chromium makes goes through here, and
//! here the SSRF guard decides ([`Guard`], `monitor.allow_private_targets` and
//! `monitor.allowed_hosts`).
//!
//! Chromium is started with `--proxy-server=http://127.0.0.1:<port>` and
//! `--proxy-bypass-list=<-loopback>` (without it, loopback would bypass the proxy). With a proxy,
//! Chromium resolves no names itself: it hands the proxy the host name, and the proxy resolves it
//! through [`Guard::resolve`] and connects to exactly the address it checked, so a name cannot
//! answer differently between the check and the connection (DNS rebinding). What it serves:
//!
//! - plain HTTP requests in absolute form (`GET http://host/path`), forwarded one upstream
//!   connection per request (keep-alive on the browser's side only, so each request is checked);
//! - `CONNECT host:port` tunnels (https, wss; also ws, which Chromium tunnels through proxies);
//! - WebSocket upgrades over plain http (a GET with `Upgrade`): after the `101` both upgraded
//!   connections are joined both ways.
//!
//! A refused target gets `403`, an unreachable one `502`, a slow one `504`; anything else (an
//! origin-form request, another scheme) `400`. Bounds: at most [`MAX_CONNECTIONS`] browser
//! connections at once (more wait in the listen backlog), request heads within [`MAX_HEAD`] and
//! read within [`HEAD_TIMEOUT`], a connect timeout, a lifetime per connection and tunnel; bodies
//! and tunnels are streamed (hyper's backpressure, `copy_bidirectional`'s fixed buffers), never
//! buffered whole. Dropping the [`GuardProxy`] stops the listener and every connection.

use crate::guard::{Guard, ResolveError};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Browser connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// The largest request or response head (request line/status line and headers).
pub const MAX_HEAD: usize = 64 * 1024;
/// Time for a browser to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

type Body = BoxBody<Bytes, hyper::Error>;

/// Time limits of the proxy's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Resolving and connecting to a target.
    pub connect: Duration,
    /// The longest a browser connection, an upstream connection or a tunnel lives.
    pub lifetime: Duration,
}

/// A running proxy on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct GuardProxy {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    /// Dropped with the proxy: every connection task watches it and ends.
    _stop: watch::Sender<()>,
}

impl Drop for GuardProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl GuardProxy {
    /// Listens on 127.0.0.1 on a random port.
    pub async fn start(guard: Arc<Guard>, limits: Limits) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(());
        let shared = Arc::new(Shared {
            guard,
            limits,
            stopped,
        });
        let accept = tokio::spawn(accept(listener, shared));
        Ok(Self {
            addr,
            accept,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `--proxy-server` value for Chromium.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

struct Shared {
    guard: Arc<Guard>,
    limits: Limits,
    stopped: watch::Receiver<()>,
}

impl Shared {
    /// Runs a connection's work until it ends, its lifetime runs out or the proxy stops.
    fn bounded(self: &Arc<Self>, work: impl Future<Output = ()> + Send + 'static) {
        let mut stopped = self.stopped.clone();
        let lifetime = self.limits.lifetime;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::timeout(lifetime, work) => {}
                _ = stopped.changed() => {}
            }
        });
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "capture proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The slot is held until the connection and every tunnel it opened have ended.
        let permit = Arc::new(permit);
        shared.bounded(serve(stream, shared.clone(), permit));
    }
}

/// Serves one browser connection (HTTP/1.1, keep-alive, upgrades).
async fn serve(stream: TcpStream, shared: Arc<Shared>, permit: Arc<OwnedSemaphorePermit>) {
    let service = hyper::service::service_fn(move |req| {
        let (shared, permit) = (shared.clone(), permit.clone());
        async move {
            let response = match handle(req, &shared, permit).await {
                Ok(r) => r,
                Err(refusal) => refusal.response(),
            };
            Ok::<_, Infallible>(response)
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "capture proxy: browser connection ended");
    }
}

/// Why the proxy answers a request itself.
#[derive(Debug)]
enum Refusal {
    /// The guard refused the target.
    Blocked(String),
    BadRequest(String),
    Unreachable(String),
    Timeout(String),
}

impl Refusal {
    fn response(self) -> Response<Body> {
        let (status, text) = match self {
            Refusal::Blocked(why) => (StatusCode::FORBIDDEN, format!("blocked: {why}")),
            Refusal::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            Refusal::Unreachable(why) => (StatusCode::BAD_GATEWAY, why),
            Refusal::Timeout(why) => (StatusCode::GATEWAY_TIMEOUT, why),
        };
        let mut r = Response::new(
            Full::new(Bytes::from(text + "\n"))
                .map_err(|never| match never {})
                .boxed(),
        );
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    permit: Arc<OwnedSemaphorePermit>,
) -> Result<Response<Body>, Refusal> {
    if req.method() == Method::CONNECT {
        tunnel(req, shared, permit).await
    } else {
        forward(req, shared, permit).await
    }
}

/// `CONNECT host:port`: connect to the checked address, answer 200, then join the two.
async fn tunnel(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    permit: Arc<OwnedSemaphorePermit>,
) -> Result<Response<Body>, Refusal> {
    let authority = req
        .uri()
        .authority()
        .ok_or_else(|| Refusal::BadRequest("CONNECT needs host:port".into()))?;
    let port = authority
        .port_u16()
        .ok_or_else(|| Refusal::BadRequest("CONNECT needs a port".into()))?;
    let mut upstream = connect(shared, authority.host(), port).await?;
    let browser = hyper::upgrade::on(req);
    shared.bounded(async move {
        let _slot = permit;
        match browser.await {
            Ok(browser) => {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(browser), &mut upstream).await;
            }
            Err(e) => tracing::debug!(error = %e, "capture proxy: CONNECT upgrade failed"),
        }
    });
    Ok(Response::new(empty()))
}

/// An absolute-form request: sent on its own connection to the checked address, in origin
/// form; a `101 Switching Protocols` (WebSocket) joins the two upgraded connections.
async fn forward(
    mut req: Request<Incoming>,
    shared: &Arc<Shared>,
    permit: Arc<OwnedSemaphorePermit>,
) -> Result<Response<Body>, Refusal> {
    let uri = req.uri().clone();
    let (Some("http" | "ws"), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Refusal::BadRequest(
            "a forward proxy: absolute http:// URIs and CONNECT only".into(),
        ));
    };
    let upstream = connect(shared, authority.host(), authority.port_u16().unwrap_or(80)).await?;
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let browser_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    parts.uri = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse::<Uri>()
        .map_err(|e| Refusal::BadRequest(e.to_string()))?;
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if !parts.headers.contains_key(header::HOST) {
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        parts.headers.insert(header::HOST, host);
    }

    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .handshake::<_, Incoming>(TokioIo::new(upstream))
        .await
        .map_err(|e| Refusal::Unreachable(e.to_string()))?;
    let slot = permit.clone();
    shared.bounded(async move {
        let _slot = slot;
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "capture proxy: upstream connection ended");
        }
    });
    let mut response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| Refusal::Unreachable(e.to_string()))?;

    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(browser)) = (switching, browser_upgrade) {
        let server = hyper::upgrade::on(&mut response);
        shared.bounded(async move {
            let _slot = permit;
            match tokio::try_join!(browser, server) {
                Ok((browser, server)) => {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(browser),
                        &mut TokioIo::new(server),
                    )
                    .await;
                }
                Err(e) => tracing::debug!(error = %e, "capture proxy: upgrade failed"),
            }
        });
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, switching);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// Resolves through the guard and connects to one of the addresses it let through.
async fn connect(shared: &Shared, host: &str, port: u16) -> Result<TcpStream, Refusal> {
    let target = format!("{host}:{port}");
    let refused = |why: String| {
        tracing::warn!(target = %target, reason = %why, "capture proxy: connection refused");
        Refusal::Blocked(format!("{target}: {why}"))
    };
    let connecting = async {
        let addrs = match shared.guard.resolve(host, port).await {
            Ok(addrs) => addrs,
            Err(ResolveError::Blocked(b)) => {
                return Err(refused(format!("{} is not allowed", b.0)))
            }
            Err(e @ ResolveError::Dns(_)) => return Err(Refusal::Unreachable(e.to_string())),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        Err(Refusal::Unreachable(format!(
            "cannot connect to {target} ({})",
            last.unwrap_or_default()
        )))
    };
    tokio::time::timeout(shared.limits.connect, connecting)
        .await
        .map_err(|_| Refusal::Timeout(format!("connecting to {target} took too long")))?
}

/// Drops the headers that belong to one hop (and those it names), keeping `Upgrade` for an
/// upgrade.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| *name != header::UPGRADE)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "keep-alive",
        "te",
        "trailer",
    ] {
        headers.remove(name);
    }
    headers.remove(header::CONNECTION);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests;
