//! The proxy against real sockets: an upstream that counts its connections shows what the
//! guard let through.

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
