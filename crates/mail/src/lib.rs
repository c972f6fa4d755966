//! Outgoing mail. A [`Message`] has a plain-text and an HTML part; a [`Mailer`] delivers it over
//! SMTP (STARTTLS or implicit TLS, pooled connections, timeouts) or, by default, to a file outbox
//! (`<data_dir>/outbox/*.eml`), so that a fresh clone shows its mail without an account anywhere.

pub mod templates;
pub mod unsubscribe;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Message {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Stable id, so that a retried job produces the same Message-ID.
    pub message_id: String,
    /// Extra headers, e.g. `List-Unsubscribe`.
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth retrying: the relay or the disk may be back in a moment (4xx replies, connection
    /// failures, timeouts).
    #[error("transient mail error: {0}")]
    Transient(String),
    /// Retrying will not help (5xx replies, invalid addresses).
    #[error("permanent mail error: {0}")]
    Permanent(String),
}

#[derive(Clone)]
enum Transport {
    Outbox {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        host: String,
    },
}

#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl Mailer {
    /// The file outbox.
    pub fn outbox(from: &str, dir: PathBuf) -> Result<Self, MailError> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            MailError::Permanent(format!("cannot create outbox {}: {e}", dir.display()))
        })?;
        Ok(Self {
            from: parse_from(from)?,
            transport: Transport::Outbox {
                transport: AsyncFileTransport::new(&dir),
                dir,
            },
        })
    }

    /// An SMTP relay. `smtp://user:pass@host:587` uses STARTTLS (required); `smtps://…:465`
    /// implicit TLS; `?tls=opportunistic` upgrades when offered; `?tls=none` sends in clear (for a
    /// relay on localhost only).
    pub fn smtp(from: &str, url: &str, timeout: Duration) -> Result<Self, MailError> {
        let (url, host) = normalise_smtp_url(url)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| MailError::Permanent(format!("invalid SMTP_URL: {e}")))?
            .timeout(Some(timeout))
            .build();
        Ok(Self {
            from: parse_from(from)?,
            transport: Transport::Smtp { transport, host },
        })
    }

    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Outbox { dir, .. } => format!("file outbox {}", dir.display()),
            Transport::Smtp { host, .. } => format!("SMTP relay {host}"),
        }
    }

    /// The Message-ID of logical message `key` (`welcome:42`, `digest:42:2024-05-01`) to `to`:
    /// the same for every attempt, so that a message sent again after an ambiguous failure shows
    /// once in the recipient's mailbox. The key, reduced to the characters a Message-ID allows,
    /// keeps it readable; a hash of the exact key and recipient keeps it unique (two deployments
    /// sharing a sender domain do not collide); the domain is the sender's (`mail.from`).
    pub fn message_id(&self, key: &str, to: &str) -> String {
        use sha2::{Digest, Sha256};
        let readable: String = key
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let digest = Sha256::new()
            .chain_update(key.as_bytes())
            .chain_update([0u8])
            .chain_update(to.trim().to_ascii_lowercase().as_bytes())
            .finalize();
        format!(
            "<{readable}.{}@{}>",
            hex::encode(&digest[..8]),
            self.from.email.domain()
        )
    }

    pub async fn send(&self, msg: &Message) -> Result<(), MailError> {
        let to: Mailbox = msg
            .to
            .parse()
            .map_err(|e| MailError::Permanent(format!("invalid recipient {:?}: {e}", msg.to)))?;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&msg.subject)
            .message_id(Some(msg.message_id.clone()));
        for (name, value) in &msg.headers {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(name),
                value.clone(),
            ));
        }
        let email = builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(msg.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(msg.html.clone()),
                    ),
            )
            .map_err(|e| MailError::Permanent(format!("cannot build message: {e}")))?;
        match &self.transport {
            Transport::Outbox { transport, dir } => {
                transport
                    .send(email)
                    .await
                    .map_err(|e| MailError::Transient(format!("outbox write failed: {e}")))?;
                tracing::info!(to = %msg.to, subject = %msg.subject, outbox = %dir.display(), "mail written to outbox");
            }
            Transport::Smtp { transport, host } => {
                transport.send(email).await.map_err(|e| {
                    if e.is_permanent() {
                        MailError::Permanent(format!("{host} refused the message: {e}"))
                    } else {
                        MailError::Transient(format!("{host}: {e}"))
                    }
                })?;
                tracing::info!(to = %msg.to, subject = %msg.subject, relay = %host, "mail sent");
            }
        }
        Ok(())
    }
}

fn parse_from(from: &str) -> Result<Mailbox, MailError> {
    from.parse()
        .map_err(|e| MailError::Permanent(format!("invalid sender {from:?}: {e}")))
}

/// Makes `smtp://` mean STARTTLS unless the URL says otherwise, and returns the host for logs.
fn normalise_smtp_url(url: &str) -> Result<(String, String), MailError> {
    let parsed =
        url::Url::parse(url).map_err(|e| MailError::Permanent(format!("invalid SMTP_URL: {e}")))?;
    let host = parsed.host_str().unwrap_or("").to_owned();
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let mut out = parsed.clone();
    if parsed.scheme() == "smtp" {
        let others: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| k != "tls")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        out.set_query(None);
        {
            let mut q = out.query_pairs_mut();
            for (k, v) in &others {
                q.append_pair(k, v);
            }
            match tls.as_deref() {
                None | Some("required") => {
                    q.append_pair("tls", "required");
                }
                Some("opportunistic") => {
                    q.append_pair("tls", "opportunistic");
                }
                Some("none") => {}
                Some(other) => {
                    return Err(MailError::Permanent(format!(
                        "invalid SMTP_URL: tls={other}; use required, opportunistic or none"
                    )))
                }
            }
        }
        if out.query() == Some("") {
            out.set_query(None);
        }
    }
    Ok((out.to_string(), host))
}

/// Escapes text for inclusion in HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_defaults_to_starttls() {
        let (u, host) = normalise_smtp_url("smtp://u:p@relay.example:587").unwrap();
        assert_eq!(u, "smtp://u:p@relay.example:587?tls=required");
        assert_eq!(host, "relay.example");
        let (u, _) = normalise_smtp_url("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(u, "smtp://127.0.0.1:2525");
        let (u, _) = normalise_smtp_url("smtps://u:p@in-v3.mailjet.com:465").unwrap();
        assert_eq!(u, "smtps://u:p@in-v3.mailjet.com:465");
        assert!(normalise_smtp_url("smtp://h?tls=maybe").is_err());
    }

    #[test]
    fn message_ids_are_stable_valid_and_distinct() {
        let dir = std::env::temp_dir().join(format!("pb-mail-{}", uuid::Uuid::new_v4()));
        let mailer = Mailer::outbox("Pulseboard <noreply@mail.example>", dir.clone()).unwrap();
        let id = mailer.message_id("welcome:42", "a@example.com");
        assert!(id.starts_with("<welcome-42."), "{id}");
        assert!(id.ends_with("@mail.example>"), "{id}");
        assert_eq!(id, mailer.message_id("welcome:42", "A@Example.com "));
        assert_ne!(id, mailer.message_id("welcome:42", "b@example.com"));
        assert_ne!(id, mailer.message_id("welcome-42", "a@example.com"));
        let left = id[1..id.find('@').unwrap()].to_owned();
        assert!(
            left.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{id}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn writes_eml_with_both_parts_and_extra_headers() {
        let dir = std::env::temp_dir().join(format!("pb-mail-{}", uuid::Uuid::new_v4()));
        let mailer = Mailer::outbox("Pulseboard <noreply@localhost>", dir.clone()).unwrap();
        mailer
            .send(&Message {
                to: "a@example.com".into(),
                subject: "Hello".into(),
                text: "plain body".into(),
                html: "<p>html body</p>".into(),
                message_id: "<1@pulseboard>".into(),
                headers: vec![("List-Unsubscribe", "<http://x/u>".into())],
            })
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(text.contains("To: a@example.com"), "{text}");
        assert!(text.contains("List-Unsubscribe: <http://x/u>"), "{text}");
        assert!(
            text.contains("text/plain") && text.contains("text/html"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
