//! What each kind of channel is sent for one event: the request's path, headers and body in the
//! shape of that service's API (as Uptime Kuma sends them), built without any I/O so that it can be
//! tested on its own.

use super::config::ChannelConfig;
use super::AlertEvent;
use serde_json::json;

/// One HTTP request to a service, ready to send.
#[derive(Debug)]
pub struct Outgoing {
    pub url: url::Url,
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A one-line summary for chat services and the email subject.
pub fn title(event: &AlertEvent) -> String {
    match (event.event.as_str(), &event.resource) {
        ("down", Some(r)) => format!("Down: {}", r.url),
        ("up", Some(r)) => format!("Back up: {}", r.url),
        ("tls_expiring", Some(r)) => format!("TLS certificate expiring: {}", r.url),
        ("test", _) => "Pulseboard test notification".to_owned(),
        (other, _) => format!("Pulseboard: {other}"),
    }
}

/// The message body for chat services and email: the title and what the check saw.
pub fn text(event: &AlertEvent, channel_name: &str) -> String {
    let check = event.check.as_ref();
    let status = check
        .and_then(|c| c.get("status_code"))
        .and_then(|v| v.as_i64());
    let error = check
        .and_then(|c| c.get("error_kind"))
        .and_then(|v| v.as_str());
    match (event.event.as_str(), &event.resource) {
        ("down", Some(r)) => {
            let why = match (status, error) {
                (Some(code), _) => format!("status {code}"),
                (None, Some(kind)) => format!("error: {kind}"),
                (None, None) => "no response".to_owned(),
            };
            format!("🔴 {} is unavailable ({why}) at {}.", r.url, event.at)
        }
        ("up", Some(r)) => {
            let status = status.map_or_else(|| "-".to_owned(), |c| c.to_string());
            format!(
                "🟢 {} is available again (status {status}) at {}.",
                r.url, event.at
            )
        }
        ("test", _) => format!(
            "🔔 Test notification from Pulseboard: the channel \"{channel_name}\" works ({}).",
            event.at
        ),
        _ => format!("{} ({})", title(event), event.at),
    }
}

/// The request for `config`; `telegram_api` is the Bot API base URL (`alerts.telegram_api_url`).
/// Email is not HTTP: None.
pub fn request(
    config: &ChannelConfig,
    event: &AlertEvent,
    channel_name: &str,
    telegram_api: &url::Url,
) -> Option<Outgoing> {
    let json_body = |v: serde_json::Value| serde_json::to_vec(&v).expect("JSON serialises");
    Some(match config {
        ChannelConfig::Webhook { url, secret } => {
            let body = serde_json::to_vec(event).expect("events serialise");
            let mut headers = vec![("X-Pulseboard-Event", event.event.clone())];
            if let Some(secret) = secret {
                headers.push((
                    "X-Pulseboard-Signature",
                    format!("sha256={}", super::sign(secret.expose().as_bytes(), &body)),
                ));
            }
            Outgoing {
                url: url.as_url().clone(),
                headers,
                content_type: "application/json",
                body,
            }
        }
        ChannelConfig::Slack { url } => Outgoing {
            url: url.as_url().clone(),
            headers: vec![],
            content_type: "application/json",
            body: json_body(json!({ "text": text(event, channel_name) })),
        },
        ChannelConfig::Discord { url } => Outgoing {
            url: url.as_url().clone(),
            headers: vec![],
            content_type: "application/json",
            body: json_body(json!({ "content": text(event, channel_name) })),
        },
        ChannelConfig::Telegram { bot_token, chat_id } => {
            let base = telegram_api.as_str().trim_end_matches('/');
            let url =
                url::Url::parse(&format!("{base}/bot{}/sendMessage", bot_token.expose())).ok()?;
            Outgoing {
                url,
                headers: vec![],
                content_type: "application/json",
                body: json_body(json!({
                    "chat_id": chat_id,
                    "text": text(event, channel_name),
                    "disable_web_page_preview": true,
                })),
            }
        }
        ChannelConfig::Ntfy {
            server,
            topic,
            token,
        } => {
            let mut url = server.as_url().clone();
            url.path_segments_mut().ok()?.pop_if_empty().push(topic);
            // ntfy's priorities: 1 min .. 5 max; tags are emoji short codes shown with the title.
            let (priority, tags) = match event.event.as_str() {
                "down" => ("5", "red_circle"),
                "up" => ("3", "green_circle"),
                "tls_expiring" => ("4", "warning"),
                _ => ("2", "bell"),
            };
            let mut headers = vec![
                ("Title", title(event)),
                ("Priority", priority.to_owned()),
                ("Tags", tags.to_owned()),
            ];
            if let Some(t) = token {
                headers.push(("Authorization", format!("Bearer {}", t.expose())));
            }
            if let Some(r) = &event.resource {
                headers.push(("Click", r.url.clone()));
            }
            Outgoing {
                url,
                headers,
                content_type: "text/plain; charset=utf-8",
                body: text(event, channel_name).into_bytes(),
            }
        }
        ChannelConfig::Email { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{config::ChannelKind, EventResource};
    use super::*;

    fn event(kind: &str) -> AlertEvent {
        AlertEvent {
            event: kind.into(),
            resource: Some(EventResource {
                uuid: "u-1".into(),
                url: "https://site.example/".into(),
            }),
            check: Some(json!({"status_code": 503, "error_kind": null})),
            at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn config(kind: ChannelKind, v: serde_json::Value) -> ChannelConfig {
        ChannelConfig::parse(kind, &v).unwrap()
    }

    #[test]
    fn each_service_gets_its_own_shape() {
        let tg = url::Url::parse("http://127.0.0.1:9/tg/").unwrap();
        let slack = config(
            ChannelKind::Slack,
            json!({"url": "https://hooks.example/T/1"}),
        );
        let r = request(&slack, &event("down"), "n", &tg).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body["text"].as_str().unwrap().contains("status 503"));

        let discord = config(
            ChannelKind::Discord,
            json!({"url": "https://d.example/api/x"}),
        );
        let r = request(&discord, &event("up"), "n", &tg).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body["content"]
            .as_str()
            .unwrap()
            .contains("available again"));

        let telegram = config(
            ChannelKind::Telegram,
            json!({"bot_token": "42:abc", "chat_id": "-100"}),
        );
        let r = request(&telegram, &event("test"), "n", &tg).unwrap();
        assert_eq!(
            r.url.as_str(),
            "http://127.0.0.1:9/tg/bot42:abc/sendMessage"
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["chat_id"], "-100");

        let ntfy = config(
            ChannelKind::Ntfy,
            json!({"server": "https://ntfy.example/base/", "topic": "t1", "token": "tk"}),
        );
        let r = request(&ntfy, &event("down"), "n", &tg).unwrap();
        assert_eq!(r.url.as_str(), "https://ntfy.example/base/t1");
        assert!(r.headers.contains(&("Authorization", "Bearer tk".into())));
        assert!(r.headers.contains(&("Priority", "5".into())));

        let hook = config(
            ChannelKind::Webhook,
            json!({"url": "https://h.example/in", "secret": "k"}),
        );
        let r = request(&hook, &event("down"), "n", &tg).unwrap();
        let sig = r
            .headers
            .iter()
            .find(|(h, _)| *h == "X-Pulseboard-Signature")
            .unwrap();
        assert_eq!(
            sig.1,
            format!("sha256={}", super::super::sign(b"k", &r.body))
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["event"], "down");
        assert_eq!(body["resource"]["uuid"], "u-1");
    }
}
