//! Sending mail from a job: at most once per message key, with relay errors mapped to retry or
//! dead-letter.

use crate::{Context, JobError};
use pulseboard_domain::Timestamp;
use pulseboard_mail::{MailError, Message};
use pulseboard_storage::mail_log;

/// Sends `msg` unless a message with `key` was already sent (a job retried after a crash between
/// sending and finishing). A crash in the instant between the relay's 250 and the record below can
/// still send twice: that window is as small as we can make it without the relay's help.
pub async fn send_once(ctx: &Context, key: &str, msg: &Message) -> Result<(), JobError> {
    if mail_log::already_sent(ctx.db.pool(), key).await? {
        tracing::info!(key, "message already sent; skipping");
        return Ok(());
    }
    ctx.mailer.send(msg).await.map_err(|e| match e {
        MailError::Transient(m) => JobError::Retry(m),
        MailError::Permanent(m) => JobError::Fatal(m),
    })?;
    mail_log::record_sent(ctx.db.pool(), key, Timestamp::now()).await?;
    Ok(())
}
