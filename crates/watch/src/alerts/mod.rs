//! Notification channels: the typed settings of each kind ([`config`]), the request each service
//! expects ([`format`]), and [`Notifier`], which sends it through the checker's SSRF guard.
//!
//! Deliveries run as jobs (`jobs::handlers::deliver`): this module only says whether an attempt
//! worked and, if not, whether another attempt can help ([`DeliveryError`]). A 4xx answer other
//! than 429 means the channel's settings are wrong (a revoked webhook, an unknown chat): retrying
//! cannot help. 429, 5xx, timeouts and connection errors are worth retrying. A target the guard
//! refuses is not.
//!
//! Secrets never reach a log line or a stored error: request errors are described without their
//! URL (a Telegram URL carries the bot token, a Slack or Discord URL is a credential of its own).

pub mod config;
pub mod format;

pub use config::{ChannelConfig, ChannelKind, ChannelName, HttpUrl, Secret};

use crate::checker::{classify, ErrorKind, USER_AGENT};
use crate::guard::{Guard, ResolveError};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// A delivery's payload: what a webhook receives as JSON, and what the other kinds format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// `down`, `up`, `test` or `tls_expiring`.
    pub event: String,
    /// The resource concerned (None for a test event).
    pub resource: Option<EventResource>,
    /// The check that caused it: status_code, error_kind, response_time_ms, checked_at.
    pub check: Option<serde_json::Value>,
    /// RFC 3339.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventResource {
    pub uuid: String,
    pub url: String,
}

/// Hex HMAC-SHA256 of `body` under `key`: the webhook's `X-Pulseboard-Signature: sha256=<this>`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn confirm_mac(key: &[u8], channel_id: i64, address: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("channel-confirm:{channel_id}:{address}").as_bytes());
    mac
}

/// The token of an email channel's confirmation link (as `mail::unsubscribe`): signed for the
/// channel and the address, so that a link stops working once the address is changed.
pub fn confirm_token(key: &[u8], channel_id: i64, address: &str) -> String {
    hex::encode(
        confirm_mac(key, channel_id, address)
            .finalize()
            .into_bytes(),
    )
}

pub fn verify_confirm_token(key: &[u8], channel_id: i64, address: &str, token: &str) -> bool {
    let Ok(bytes) = hex::decode(token) else {
        return false;
    };
    confirm_mac(key, channel_id, address)
        .verify_slice(&bytes)
        .is_ok()
}

/// The confirmation link mailed to an email channel's address.
pub fn confirm_link(public_url: &str, key: &[u8], channel_id: i64, address: &str) -> String {
    format!(
        "{}/channels/{channel_id}/confirm?t={}",
        public_url.trim_end_matches('/'),
        confirm_token(key, channel_id, address)
    )
}

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Another attempt later may work (429, 5xx, timeout, connection).
    #[error("{0}")]
    Retry(String),
    /// It will not (the service refused the settings, or the guard refused the target).
    #[error("{0}")]
    Fatal(String),
}

/// How long one delivery may take; services answer webhooks in well under a second.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error answer is kept for the channel's status.
const ERROR_BODY: usize = 200;

/// Sends deliveries. One per process: it owns the connection pool.
pub struct Notifier {
    client: reqwest::Client,
    guard: Arc<Guard>,
    telegram_api: url::Url,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("guard", &self.guard)
            .finish()
    }
}

/// The checker's guarded resolution, for this client: a name that resolves only to addresses
/// the guard forbids is refused, and the connection goes to the addresses it checked.
#[derive(Clone)]
struct Resolver(Arc<Guard>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match guard.resolve(&host, 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(ResolveError::Dns(h)) => Err(format!("cannot resolve {h}").into()),
                Err(ResolveError::Blocked(b)) => Err(Box::new(b) as Box<_>),
            }
        })
    }
}

impl Notifier {
    /// `guard` is the process's SSRF guard (`Checker::guard`: `monitor.allow_private_targets`
    /// and `allowed_hosts`, as for checks); `telegram_api` is `alerts.telegram_api_url`.
    pub fn new(guard: Arc<Guard>, telegram_api: &str) -> Result<Self, String> {
        let telegram_api = url::Url::parse(telegram_api).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5))
            .timeout(TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .no_proxy()
            .dns_resolver(Arc::new(Resolver(guard.clone())))
            // A service that answers a delivery with a redirect is misconfigured; following it
            // would also let a public host bounce us to a private one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client configuration is valid");
        Ok(Self {
            client,
            guard,
            telegram_api,
        })
    }

    /// Checks a channel's target against the guard without connecting: a literal private address
    /// is refused here (names are judged when resolved).
    pub fn check_target(&self, config: &ChannelConfig) -> Result<(), DeliveryError> {
        let target = match config {
            ChannelConfig::Telegram { .. } => Some(&self.telegram_api),
            other => other.target(),
        };
        match target {
            Some(url) => self
                .guard
                .check_url(url)
                .map_err(|b| DeliveryError::Fatal(format!("refused by the SSRF guard: {b}"))),
            None => Ok(()),
        }
    }

    /// Delivers `event` to an HTTP channel (every kind but email).
    pub async fn deliver(
        &self,
        config: &ChannelConfig,
        event: &AlertEvent,
        channel_name: &str,
    ) -> Result<(), DeliveryError> {
        let Some(out) = format::request(config, event, channel_name, &self.telegram_api) else {
            return Err(DeliveryError::Fatal(format!(
                "{} channels are not delivered over HTTP",
                config.kind().as_str()
            )));
        };
        self.guard
            .check_url(&out.url)
            .map_err(|b| DeliveryError::Fatal(format!("refused by the SSRF guard: {b}")))?;
        let mut req = self
            .client
            .post(out.url)
            .header(reqwest::header::CONTENT_TYPE, out.content_type)
            .body(out.body);
        for (name, value) in out.headers {
            req = req.header(name, value);
        }
        let response = req.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = error_detail(response).await;
        let msg = format!("HTTP {}{detail}", status.as_u16());
        if status.as_u16() == 429 || status.is_server_error() {
            Err(DeliveryError::Retry(msg))
        } else {
            Err(DeliveryError::Fatal(msg))
        }
    }
}

/// A transport failure, described without the URL (it may carry a token).
fn transport_error(e: reqwest::Error) -> DeliveryError {
    match classify(&e) {
        ErrorKind::Blocked => DeliveryError::Fatal(
            "refused by the SSRF guard: the target is a private address".into(),
        ),
        ErrorKind::Timeout => DeliveryError::Retry("timed out".into()),
        ErrorKind::Dns => DeliveryError::Retry("the host name does not resolve".into()),
        ErrorKind::Connect => DeliveryError::Retry("cannot connect".into()),
        ErrorKind::Tls => DeliveryError::Retry("TLS error".into()),
        ErrorKind::TooManyRedirects | ErrorKind::Other => {
            DeliveryError::Retry(format!("request failed: {}", e.without_url()))
        }
    }
}

/// A short excerpt of an error answer: Telegram's `description`, or the start of the body.
async fn error_detail(response: reqwest::Response) -> String {
    let Ok(bytes) = response.bytes().await else {
        return String::new();
    };
    let body = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
    let text = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            ["description", "message", "error"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|d| d.as_str()).map(str::to_owned))
        })
        .unwrap_or(body);
    let text: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(ERROR_BODY)
        .collect();
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_tokens_hold_only_for_their_channel_address_and_key() {
        let t = confirm_token(b"k", 7, "a@example.com");
        assert!(verify_confirm_token(b"k", 7, "a@example.com", &t));
        assert!(!verify_confirm_token(b"k", 8, "a@example.com", &t));
        assert!(!verify_confirm_token(b"k", 7, "b@example.com", &t));
        assert!(!verify_confirm_token(b"other", 7, "a@example.com", &t));
        assert!(!verify_confirm_token(b"k", 7, "a@example.com", "zz"));
    }
}
