//! Sending mail from a job: once per message key in practice, with relay errors mapped to retry or
//! dead-letter.

use crate::{Context, JobError};
use pulseboard_domain::Timestamp;
use pulseboard_mail::{MailError, Message};
use pulseboard_storage::mail_log::{self, Earlier};

/// Sends `msg` as the logical message `key` (`welcome:USER`, `digest:USER:DAY`…), unless it was
/// sent already (a job retried or delivered again after a crash).
///
/// The send is recorded before the relay is asked (`sending`) and after it accepted (`sent`), and
/// the Message-ID is derived from the key (whatever `msg.message_id` says), the same for every
/// attempt. A retry that finds `sent` skips; one that finds `sending` (the worker died, timed out
/// or lost the connection between the two records, so the relay may have the message) sends again
/// with the same Message-ID: at least once, and the recipient's mailbox shows it once.
pub async fn send_once(ctx: &Context, key: &str, msg: &Message) -> Result<(), JobError> {
    let message_id = ctx.mailer.message_id(key, &msg.to);
    match mail_log::begin(&ctx.db, key, &message_id, Timestamp::now()).await? {
        Earlier::Sent => {
            tracing::info!(key, "message already sent; skipping");
            return Ok(());
        }
        Earlier::Sending => tracing::warn!(
            key,
            message_id,
            "an earlier attempt at this message ended without a known outcome; sending it again \
             with the same Message-ID"
        ),
        Earlier::None => {}
    }
    let msg = Message {
        message_id,
        ..msg.clone()
    };
    match ctx.mailer.send(&msg).await {
        Ok(()) => {}
        Err(MailError::Transient(m)) => return Err(JobError::Retry(m)),
        Err(MailError::Permanent(m)) => {
            // Refused outright: nothing was delivered.
            if let Err(e) = mail_log::abandon(&ctx.db, key).await {
                tracing::warn!(key, error = %e, "could not clear the record of a refused message");
            }
            return Err(JobError::Fatal(m));
        }
    }
    mail_log::mark_sent(&ctx.db, key, Timestamp::now()).await?;
    Ok(())
}
