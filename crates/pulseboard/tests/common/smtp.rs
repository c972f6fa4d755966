//! A small but real SMTP server on 127.0.0.1 for tests: it speaks the protocol over TCP, stores
//! what it accepts, and can be told to answer the next messages with a given code (451, 550…).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone, Default)]
pub struct SmtpServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<VecDeque<u16>>>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SmtpServer {
            port: listener.local_addr().unwrap().port(),
            ..Default::default()
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(stream).await;
                });
            }
        });
        server
    }

    /// `smtp://127.0.0.1:PORT?tls=none`, for `mail.smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// The next messages get these replies at the end of DATA instead of 250.
    pub fn reply_next(&self, codes: &[u16]) {
        self.replies.lock().unwrap().extend(codes);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn session(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 test.local ESMTP\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        while let Some(line) = lines.next_line().await? {
            let upper = line.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") {
                "250-test.local\r\n250-8BITMIME\r\n250 SMTPUTF8".into()
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                "250 OK".into()
            } else if upper.starts_with("MAIL FROM:") {
                from = line[10..].trim().trim_matches(['<', '>']).to_owned();
                to.clear();
                "250 OK".into()
            } else if upper.starts_with("RCPT TO:") {
                to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                "250 OK".into()
            } else if upper.starts_with("RSET") {
                to.clear();
                "250 OK".into()
            } else if upper.starts_with("DATA") {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                while let Some(l) = lines.next_line().await? {
                    if l == "." {
                        break;
                    }
                    data.push_str(
                        l.strip_prefix('.')
                            .filter(|_| l.starts_with(".."))
                            .unwrap_or(&l),
                    );
                    data.push('\n');
                }
                let code = self.replies.lock().unwrap().pop_front().unwrap_or(250);
                if code == 250 {
                    self.received.lock().unwrap().push(Received {
                        from: from.clone(),
                        to: to.clone(),
                        data,
                    });
                    "250 OK: queued".into()
                } else if code >= 500 {
                    format!("{code} 5.7.1 Message rejected by test server")
                } else {
                    format!("{code} 4.3.0 Try again later")
                }
            } else if upper.starts_with("QUIT") {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            } else {
                "502 Command not implemented".into()
            };
            write.write_all(format!("{reply}\r\n").as_bytes()).await?;
        }
        Ok(())
    }
}
