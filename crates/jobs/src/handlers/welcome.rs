use super::send::send_once;
use crate::{Context, Job, JobError};
use pulseboard_mail::{templates, Message};
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
    let Some(user) = users::by_id(&ctx.db, job.user_id).await? else {
        // The account was deleted before we got to it: nothing to send.
        return Ok(());
    };
    let app_url = format!("{}/", ctx.public_url.trim_end_matches('/'));
    let (text, html) = templates::render(
        "welcome",
        &user.locale,
        serde_json::json!({ "email": user.email.as_str(), "app_url": app_url }),
    )
    .map_err(JobError::Fatal)?;
    let subject = match templates::language(&user.locale) {
        "ru" => "Добро пожаловать в Pulseboard",
        _ => "Welcome to Pulseboard",
    };
    let msg = Message {
        to: user.email.to_string(),
        subject: subject.into(),
        text,
        html,
        message_id: format!("<welcome-{}@pulseboard>", user.id),
        headers: vec![],
    };
    send_once(ctx, &format!("welcome:{}", user.id), &msg).await
}
