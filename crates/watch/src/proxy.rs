//! The capture browser's forward proxy: every connection Chromium makes goes through here, and
//! here the SSRF guard decides (the checker's [`Guard`], `monitor.allow_private_targets` and
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

use crate::checker::{Guard, ResolveError};
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
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A TCP server that counts connections; each connection gets `reply` once its request head
    /// has arrived (with the head's first line substituted for `{line}`), then echoes.
    struct Upstream {
        addr: SocketAddr,
        connections: Arc<std::sync::atomic::AtomicUsize>,
        heads: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Upstream {
        async fn start(ip: &str, reply: &'static str) -> Upstream {
            let listener = TcpListener::bind((ip, 0)).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
            let (count, seen) = (connections.clone(), heads.clone());
            tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let head = read_head(&mut s).await;
                        if head.is_empty() {
                            return;
                        }
                        let line = head.lines().next().unwrap_or_default().to_owned();
                        seen.lock().unwrap().push(head);
                        let reply = reply.replace("{line}", &line);
                        s.write_all(reply.as_bytes()).await.unwrap();
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
            Upstream {
                addr,
                connections,
                heads,
            }
        }

        fn connections(&self) -> usize {
            self.connections.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    async fn read_head(s: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    const SWITCH: &str =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

    async fn proxy(allowed: &[&str]) -> GuardProxy {
        let guard = Guard {
            allow_private: false,
            allowed_hosts: allowed.iter().map(|h| h.to_string()).collect(),
        };
        let limits = Limits {
            connect: Duration::from_secs(5),
            lifetime: Duration::from_secs(30),
        };
        GuardProxy::start(Arc::new(guard), limits).await.unwrap()
    }

    /// Sends a raw request head to the proxy; returns its response head and the connection.
    async fn ask(proxy: &GuardProxy, head: String) -> (String, TcpStream) {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let answer = read_head(&mut s).await;
        (answer, s)
    }

    fn status(head: &str) -> u16 {
        head.split_whitespace()
            .nth(1)
            .unwrap_or("0")
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn plain_requests_reach_allowed_hosts_in_origin_form() {
        let up = Upstream::start("127.0.0.1", OK).await;
        let p = proxy(&["127.0.0.1"]).await;
        let (head, mut s) = ask(
            &p,
            format!(
                "GET http://{}/a/b?c=d HTTP/1.1\r\nHost: {}\r\nProxy-Connection: keep-alive\r\n\r\n",
                up.addr, up.addr
            ),
        )
        .await;
        assert_eq!(status(&head), 200, "{head}");
        let mut body = [0u8; 2];
        s.read_exact(&mut body).await.unwrap();
        assert_eq!(&body, b"ok");
        let seen = up.heads.lock().unwrap()[0].clone();
        assert!(seen.starts_with("GET /a/b?c=d HTTP/1.1\r\n"), "{seen}");
        assert!(!seen.to_lowercase().contains("proxy-connection"), "{seen}");
    }

    #[tokio::test]
    async fn forbidden_targets_get_403_and_are_never_connected() {
        // 127.0.0.2 is loopback too (all of 127/8 is), but not the allowed 127.0.0.1.
        let up = Upstream::start("127.0.0.2", OK).await;
        let port = up.addr.port();
        let p = proxy(&["127.0.0.1"]).await;
        for head in [
            format!("GET http://127.0.0.2:{port}/ HTTP/1.1\r\nHost: 127.0.0.2:{port}\r\n\r\n"),
            format!("CONNECT 127.0.0.2:{port} HTTP/1.1\r\nHost: 127.0.0.2:{port}\r\n\r\n"),
            // A name is resolved by the proxy and judged by its addresses.
            format!("GET http://localhost:{port}/ HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
            format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
            // IPv6 spellings of IPv4 loopback.
            format!("CONNECT [::ffff:127.0.0.2]:{port} HTTP/1.1\r\nHost: x\r\n\r\n"),
            format!("CONNECT [64:ff9b::7f00:2]:{port} HTTP/1.1\r\nHost: x\r\n\r\n"),
            // A WebSocket upgrade over plain http.
            format!(
                "GET http://127.0.0.2:{port}/ws HTTP/1.1\r\nHost: 127.0.0.2:{port}\r\n\
                 Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            ),
        ] {
            let (answer, _) = ask(&p, head.clone()).await;
            assert_eq!(status(&answer), 403, "{head} -> {answer}");
        }
        assert_eq!(
            up.connections(),
            0,
            "the forbidden address was never reached"
        );
    }

    #[tokio::test]
    async fn connect_tunnels_to_allowed_hosts_carry_bytes_both_ways() {
        // The upstream answers its "request head" (here: the client's first bytes) and echoes.
        let up = Upstream::start("127.0.0.1", "hello {line}\r\n").await;
        let p = proxy(&["127.0.0.1"]).await;
        let (answer, mut s) = ask(
            &p,
            format!("CONNECT {} HTTP/1.1\r\nHost: {}\r\n\r\n", up.addr, up.addr),
        )
        .await;
        assert_eq!(status(&answer), 200, "{answer}");
        s.write_all(b"PING\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; "hello PING\r\n".len()];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, b"hello PING\r\n");
        s.write_all(b"echo").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"echo");
    }

    #[tokio::test]
    async fn websocket_upgrades_over_plain_http_are_joined_both_ways() {
        let up = Upstream::start("127.0.0.1", SWITCH).await;
        let p = proxy(&["127.0.0.1"]).await;
        let (answer, mut s) = ask(
            &p,
            format!(
                "GET http://{}/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nProxy-Connection: keep-alive\r\n\r\n",
                up.addr, up.addr
            ),
        )
        .await;
        assert_eq!(status(&answer), 101, "{answer}");
        let seen = up.heads.lock().unwrap()[0].to_lowercase();
        assert!(seen.starts_with("get /ws http/1.1\r\n"), "{seen}");
        assert!(seen.contains("upgrade: websocket"), "{seen}");
        assert!(seen.contains("connection: upgrade"), "{seen}");
        s.write_all(b"frame").await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"frame");
    }

    #[tokio::test]
    async fn other_requests_are_refused_and_the_proxy_stops_when_dropped() {
        let up = Upstream::start("127.0.0.1", SWITCH).await;
        let p = proxy(&["127.0.0.1"]).await;
        let (answer, _) = ask(&p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n".into()).await;
        assert_eq!(status(&answer), 400, "origin form: not a proxy request");
        let (answer, _) = ask(
            &p,
            format!("GET ftp://{}/ HTTP/1.1\r\nHost: x\r\n\r\n", up.addr),
        )
        .await;
        assert_eq!(status(&answer), 400);
        let (answer, _) = ask(
            &p,
            "GET http://nonexistent.invalid/ HTTP/1.1\r\nHost: nonexistent.invalid\r\n\r\n".into(),
        )
        .await;
        assert_eq!(status(&answer), 502);

        // An open tunnel ends with the proxy, and the port is closed.
        let (answer, mut tunnel) = ask(
            &p,
            format!("CONNECT {} HTTP/1.1\r\nHost: x\r\n\r\n", up.addr),
        )
        .await;
        assert_eq!(status(&answer), 200);
        let addr = p.addr();
        drop(p);
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), async {
            tunnel.write_all(b"x\r\n\r\n").await.ok();
            // The upstream's reply may or may not have made it before the cut; then EOF.
            loop {
                match tunnel.read(&mut buf).await {
                    Ok(0) | Err(_) => break 0,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .expect("the tunnel was closed");
        assert_eq!(n, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }
}
