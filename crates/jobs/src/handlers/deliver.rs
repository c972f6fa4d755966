//! Notification channels' jobs: [`ChannelDelivery`] (one event to one channel, on the `alerts`
//! queue so that slow or failing services never hold up the monitor or the mail) and
//! [`ChannelConfirmation`] (the link that confirms an email channel's address).
//!
//! The formatting and the HTTP send are Watch's (`pulseboard_watch::alerts`); an email channel's
//! mail comes from the mail templates instead, in its owner's language and time zone, like the
//! account's own alert mail. This handler reads the channel, sends, and records the attempt's
//! outcome on the channel (`ok`, `retrying` or `failed` with the error), which is what the channel
//! list shows.

use super::send::send_once;
use crate::{Context, Job, JobError, Queue};
use pulseboard_domain::Timestamp;
use pulseboard_mail::{templates, Message};
use pulseboard_storage::checks::StatusChange;
use pulseboard_storage::{channels, users, Conn};
use pulseboard_watch::alerts::{
    self, format, AlertEvent, ChannelConfig, DeliveryError, EventResource,
};
use serde::{Deserialize, Serialize};

/// One event to one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelDelivery {
    pub channel_id: i64,
    /// What caused it, unique per event: `alert:<uuid>:<checked_at>` or `test:<random>`. Keys the
    /// job (one delivery per event and channel) and an email channel's message.
    pub key: String,
    pub event: AlertEvent,
}

impl Job for ChannelDelivery {
    const KIND: &'static str = "channel_delivery";
    const QUEUE: &'static str = super::ALERTS_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("channel:{}:{}", self.channel_id, self.key))
    }
}

/// The confirmation mail of an email channel to another address than the account's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelConfirmation {
    pub channel_id: i64,
}

impl Job for ChannelConfirmation {
    const KIND: &'static str = "channel_confirmation";
    const QUEUE: &'static str = super::EMAIL_QUEUE;
}

pub async fn handle(ctx: &Context, job: ChannelDelivery, attempt: i64) -> Result<(), JobError> {
    let Some(channel) = channels::by_id(&ctx.db, job.channel_id).await? else {
        // Deleted since: nothing to deliver to.
        return Ok(());
    };
    // A test is asked for explicitly and goes to a disabled channel too; nothing goes to an
    // address that has not confirmed it wants these messages.
    if !channel.confirmed || (!channel.enabled && job.event.event != "test") {
        return Ok(());
    }
    let result = match ChannelConfig::from_stored(&channel.kind, &channel.config) {
        Err(e) => Err(JobError::Fatal(format!("unreadable channel settings: {e}"))),
        Ok(ChannelConfig::Email { address }) => {
            send_email(ctx, &job, &channel, address.as_str()).await
        }
        Ok(config) => ctx
            .notifier
            .deliver(&config, &job.event, &channel.name)
            .await
            .map_err(|e| match e {
                DeliveryError::Retry(m) => JobError::Retry(m),
                DeliveryError::Fatal(m) => JobError::Fatal(m),
            }),
    };
    let (status, error) = match &result {
        Ok(()) => ("ok", None),
        Err(JobError::Retry(m)) if attempt < i64::from(ctx.max_attempts) => ("retrying", Some(m)),
        Err(JobError::Retry(m) | JobError::Fatal(m)) => ("failed", Some(m)),
    };
    channels::record_delivery(
        &ctx.db,
        channel.id,
        Timestamp::now(),
        status,
        error.map(String::as_str),
    )
    .await?;
    if let Some(error) = error {
        tracing::warn!(
            channel_id = channel.id,
            kind = %channel.kind,
            event = %job.event.event,
            attempt,
            status,
            error = %error,
            "channel delivery failed"
        );
    }
    result
}

async fn send_email(
    ctx: &Context,
    job: &ChannelDelivery,
    channel: &channels::Channel,
    to: &str,
) -> Result<(), JobError> {
    // The address may not be the owner's, but the owner chose it and their language and clock are
    // the best guess for who reads it.
    let Some(owner) = users::by_id(&ctx.db, channel.user_id).await? else {
        return Ok(());
    };
    let event = &job.event;
    let at = local_time(&event.at, &owner.time_zone);
    let lang = templates::language(&owner.locale);
    let check = |field: &str| {
        (event.check.as_ref())
            .and_then(|c| c.get(field))
            .cloned()
            .unwrap_or_default()
    };
    let public = ctx.public_url.trim_end_matches('/');
    let (template, ctx_json) = match (event.event.as_str(), &event.resource) {
        ("down" | "up", Some(r)) => (
            if event.event == "up" {
                "alert_up"
            } else {
                "alert_down"
            },
            serde_json::json!({
                "url": r.url,
                "status_code": check("status_code"),
                "error_kind": check("error_kind"),
                "checked_at": at,
                "link": format!("{public}/#/resources/{}", r.uuid),
                "channel": channel.name,
            }),
        ),
        ("tls_expiring", Some(r)) => (
            "alert_tls",
            serde_json::json!({
                "url": r.url,
                "at": at,
                "link": format!("{public}/#/resources/{}", r.uuid),
                "channel": channel.name,
            }),
        ),
        ("test", _) => (
            "channel_test",
            serde_json::json!({ "channel": channel.name, "at": at }),
        ),
        (other, _) => {
            return Err(JobError::Fatal(format!(
                "cannot mail the event {other:?}: unknown, or without its resource"
            )))
        }
    };
    let (text, html) = templates::render(template, lang, ctx_json).map_err(JobError::Fatal)?;
    let url = event.resource.as_ref().map_or("", |r| r.url.as_str());
    // English subjects are the chat services' titles, so every channel says the same.
    let subject = match (lang, event.event.as_str()) {
        ("ru", "down") => format!("Недоступен: {url}"),
        ("ru", "up") => format!("Снова доступен: {url}"),
        ("ru", "tls_expiring") => format!("Истекает TLS-сертификат: {url}"),
        ("ru", _) => "Тестовое уведомление Pulseboard".to_owned(),
        _ => format::title(event),
    };
    // Keyed per event and channel; an alert's key starts with `alert:<uuid>`, so deleting the
    // account clears these records with the alert mails'.
    let key = format!("{}:channel:{}", job.key, job.channel_id);
    mail_once(ctx, &key, to, subject, text, html).await
}

async fn mail_once(
    ctx: &Context,
    key: &str,
    to: &str,
    subject: String,
    text: String,
    html: String,
) -> Result<(), JobError> {
    let msg = Message {
        to: to.to_owned(),
        subject,
        text,
        html,
        message_id: String::new(),
        headers: vec![],
    };
    send_once(ctx, key, &msg).await
}

/// An RFC 3339 instant as the reader's clock shows it, with the zone named (UTC if the zone is
/// unknown; the instant as given if it does not parse).
fn local_time(rfc3339: &str, time_zone: &str) -> String {
    let tz: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| {
            let local = t.with_timezone(&tz);
            format!("{} ({})", local.format("%Y-%m-%d %H:%M:%S"), tz.name())
        },
    )
}

pub async fn handle_confirmation(ctx: &Context, job: ChannelConfirmation) -> Result<(), JobError> {
    let Some(channel) = channels::by_id(&ctx.db, job.channel_id).await? else {
        return Ok(());
    };
    if channel.confirmed {
        return Ok(());
    }
    let Ok(ChannelConfig::Email { address }) =
        ChannelConfig::from_stored(&channel.kind, &channel.config)
    else {
        return Ok(());
    };
    let Some(owner) = users::by_id(&ctx.db, channel.user_id).await? else {
        return Ok(());
    };
    let link = alerts::confirm_link(
        &ctx.public_url,
        &ctx.signing_key,
        channel.id,
        address.as_str(),
    );
    // Whoever reads it may not be the owner, but the owner's language is the best guess.
    let (text, html) = templates::render(
        "channel_confirm",
        &owner.locale,
        serde_json::json!({ "channel": channel.name, "link": link }),
    )
    .map_err(JobError::Fatal)?;
    let subject = match templates::language(&owner.locale) {
        "ru" => "Подтвердите уведомления от Pulseboard",
        _ => "Confirm alerts from Pulseboard",
    };
    let key = format!("channel-confirm:{}:{}", channel.id, channel.updated_at);
    mail_once(ctx, &key, address.as_str(), subject.into(), text, html).await
}

/// Enqueues, in the transaction that records `change`, one delivery of it to each channel of the
/// resource's owner that takes alerts. Returns how many.
pub async fn enqueue_for_change(
    queue: &Queue,
    tx: &mut Conn,
    change: &StatusChange,
) -> Result<usize, JobError> {
    // The resource's own channel list (or all the owner's), resolved when the check was recorded.
    let ids = &change.channel_ids;
    if ids.is_empty() {
        return Ok(0);
    }
    let c = &change.check;
    let event = AlertEvent {
        event: if change.is_available { "up" } else { "down" }.into(),
        resource: Some(EventResource {
            uuid: change.resource_uuid.clone(),
            url: change.url.clone(),
        }),
        check: Some(serde_json::json!({
            "status_code": c.status_code,
            "error_kind": c.error_kind,
            "response_time_ms": c.response_time_ms,
            "final_url": c.final_url,
            "checked_at": Timestamp::rfc3339(c.checked_at),
        })),
        at: Timestamp::rfc3339(c.checked_at),
    };
    let key = format!("alert:{}:{}", change.resource_uuid, c.checked_at);
    for &channel_id in ids {
        let job = ChannelDelivery {
            channel_id,
            key: key.clone(),
            event: event.clone(),
        };
        queue.enqueue_in(tx, &job).await?;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::local_time;

    #[test]
    fn event_times_are_shown_on_the_readers_clock() {
        assert_eq!(
            local_time("2026-11-30T03:00:00Z", "Europe/Moscow"),
            "2026-11-30 06:00:00 (Europe/Moscow)"
        );
        // An unknown zone reads as UTC rather than failing the mail.
        assert_eq!(
            local_time("2026-11-30T03:00:00+01:00", "Mars/Base"),
            "2026-11-30 02:00:00 (UTC)"
        );
        assert_eq!(local_time("yesterday", "UTC"), "yesterday");
    }
}
