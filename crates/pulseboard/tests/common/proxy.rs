//! A TCP proxy a test can cut: the broker "goes down" for the application (every connection
//! dropped, new ones refused) without stopping the RabbitMQ that other test runs share.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Bumped on every cut: live connections watch it and close.
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let (target, up2, gen2) = (target.to_owned(), up.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused, as a stopped broker would
                    continue;
                }
                let mut cut = gen2.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
            task,
        }
    }

    /// The broker URL through this proxy, for a URL like amqp://user:pass@host:port/vhost.
    pub fn url_for(&self, amqp_url: &str) -> String {
        let (scheme, rest) = amqp_url.split_once("://").unwrap();
        let (auth, after) = match rest.split_once('@') {
            Some((a, r)) => (format!("{a}@"), r),
            None => (String::new(), rest),
        };
        let vhost = after.split_once('/').map(|(_, v)| v).unwrap_or("%2f");
        format!("{scheme}://{auth}127.0.0.1:{}/{vhost}", self.port)
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// host:port of an amqp:// URL.
pub fn target_of(amqp_url: &str) -> String {
    let rest = amqp_url.split_once("://").unwrap().1;
    let after = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let hostport = after.split('/').next().unwrap();
    if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5672")
    }
}
