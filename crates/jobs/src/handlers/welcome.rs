use crate::{Context, Job, JobError};
use pulseboard_mail::{html_escape, MailError, Message};
use pulseboard_storage::users;
use serde::{Deserialize, Serialize};

/// The welcome email of a newly registered user.
#[derive(Debug, Serialize, Deserialize)]
pub struct WelcomeEmail {
    pub user_id: i64,
}

impl Job for WelcomeEmail {
    const KIND: &'static str = "welcome_email";
    const QUEUE: &'static str = super::EMAIL_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("welcome:{}", self.user_id))
    }
}

pub async fn handle(ctx: &Context, job: WelcomeEmail) -> Result<(), JobError> {
    let Some(user) = users::by_id(ctx.db.pool(), job.user_id).await? else {
        // The account was deleted before we got to it: nothing to send.
        return Ok(());
    };
    let link = ctx.public_url.trim_end_matches('/');
    let msg = Message {
        to: user.email.to_string(),
        subject: "Welcome to Pulseboard".into(),
        text: format!(
            "Hello {email},\n\nyour Pulseboard account is ready. Add your first task at {link}/\n\n\
             Every night at midnight we send you a short digest of what you completed and what is \
             left; you can turn it off in your settings.\n\n— Pulseboard\n",
            email = user.email
        ),
        html: format!(
            "<p>Hello {email},</p><p>your Pulseboard account is ready. \
             <a href=\"{link}/\">Add your first task</a>.</p>\
             <p>Every night at midnight we send you a short digest of what you completed and what \
             is left; you can turn it off in your settings.</p><p>— Pulseboard</p>",
            email = html_escape(user.email.as_str()),
            link = html_escape(link)
        ),
        message_id: format!("<welcome-{}@pulseboard>", user.id),
    };
    ctx.mailer.send(&msg).await.map_err(|e| match e {
        MailError::Transient(m) => JobError::Retry(m),
        MailError::Permanent(m) => JobError::Fatal(m),
    })
}
