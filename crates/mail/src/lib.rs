//! Outgoing mail. A [`Message`] has a plain-text and an HTML part; a [`Mailer`] delivers it. The
//! default transport is a file outbox (`<data_dir>/outbox/*.eml`), so a fresh clone shows its mail
//! without an account anywhere.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Message {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Stable id, so that a retried job produces the same Message-ID.
    pub message_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth retrying: the relay or the disk may be back in a moment.
    #[error("transient mail error: {0}")]
    Transient(String),
    /// Retrying will not help (bad address, rejected by the relay).
    #[error("permanent mail error: {0}")]
    Permanent(String),
}

#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    outbox: AsyncFileTransport<Tokio1Executor>,
    outbox_dir: PathBuf,
}

impl Mailer {
    pub fn outbox(from: &str, dir: PathBuf) -> Result<Self, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailError::Permanent(format!("invalid sender {from:?}: {e}")))?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            MailError::Permanent(format!("cannot create outbox {}: {e}", dir.display()))
        })?;
        Ok(Self {
            from,
            outbox: AsyncFileTransport::new(&dir),
            outbox_dir: dir,
        })
    }

    pub fn outbox_dir(&self) -> &std::path::Path {
        &self.outbox_dir
    }

    pub async fn send(&self, msg: &Message) -> Result<(), MailError> {
        let to: Mailbox = msg
            .to
            .parse()
            .map_err(|e| MailError::Permanent(format!("invalid recipient {:?}: {e}", msg.to)))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&msg.subject)
            .message_id(Some(msg.message_id.clone()))
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
        self.outbox
            .send(email)
            .await
            .map_err(|e| MailError::Transient(format!("outbox write failed: {e}")))?;
        tracing::info!(to = %msg.to, subject = %msg.subject, outbox = %self.outbox_dir.display(), "mail written to outbox");
        Ok(())
    }
}

/// Escapes text for inclusion in an HTML part.
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

    #[tokio::test]
    async fn writes_eml_with_both_parts() {
        let dir = std::env::temp_dir().join(format!("pb-mail-{}", uuid::Uuid::new_v4()));
        let mailer = Mailer::outbox("Pulseboard <noreply@localhost>", dir.clone()).unwrap();
        mailer
            .send(&Message {
                to: "a@example.com".into(),
                subject: "Hello".into(),
                text: "plain body".into(),
                html: "<p>html body</p>".into(),
                message_id: "<1@pulseboard>".into(),
            })
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(text.contains("To: a@example.com"), "{text}");
        assert!(
            text.contains("text/plain") && text.contains("text/html"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }
}
