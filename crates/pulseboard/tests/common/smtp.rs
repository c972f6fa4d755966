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
        super::serve_each(listener, server.clone(), |s, stream| async move {
            s.session(stream).await
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

/// The value of header `name` in a raw message, unfolded, with RFC 2047 words
/// (`=?utf-8?b?…?=`, how lettre writes a non-ASCII subject) decoded.
pub fn decoded_header(data: &str, name: &str) -> Option<String> {
    use base64::Engine;
    let mut lines = data
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{name}: ")));
    let mut raw = lines.next()?[name.len() + 2..].to_owned();
    raw.extend(
        lines
            .take_while(|l| l.starts_with([' ', '\t']))
            .map(|l| l.to_owned()),
    );
    let mut out = Vec::new();
    for word in raw.split_whitespace() {
        let b64 = word
            .strip_prefix("=?utf-8?b?")
            .or_else(|| word.strip_prefix("=?UTF-8?B?"))
            .and_then(|w| w.strip_suffix("?="));
        match b64 {
            Some(b) => out.extend(base64::engine::general_purpose::STANDARD.decode(b).unwrap()),
            None => {
                if !out.is_empty() {
                    out.push(b' ');
                }
                out.extend(word.as_bytes());
            }
        }
    }
    Some(String::from_utf8(out).unwrap())
}

/// The decoded body of the part of type `content_type` of a raw multipart message.
pub fn part(data: &str, content_type: &str) -> String {
    use base64::Engine;
    let part = data
        .split(&format!("Content-Type: {content_type}"))
        .nth(1)
        .expect("a part of that type");
    let (head, rest) = part.split_once("\n\n").expect("part headers");
    let body = rest.split("\n--").next().unwrap();
    if head.contains("Content-Transfer-Encoding: base64") {
        let joined: String = body.split_whitespace().collect();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .unwrap(),
        )
        .unwrap()
    } else if head.contains("Content-Transfer-Encoding: quoted-printable") {
        let bytes = body.replace("=\n", "").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    } else {
        body.to_owned()
    }
}
