//! A channel's settings, parsed per kind from the JSON the API receives (`{kind, name, config}`)
//! into values that are valid by construction. Errors name the field as the client sent it
//! (`config.url`, `config.chat_id`…).
//!
//! The stored form ([`ChannelConfig::to_stored`]) keeps the secrets (webhook secret, Telegram bot
//! token, ntfy token); the public form ([`ChannelConfig::public`]) replaces each with `"set"`, so
//! nothing that reads a channel back (GET, the export) can leak them.

use pulseboard_domain::{Email, FieldError};
use serde_json::{json, Map, Value};
use std::fmt;

/// What a channel delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Discord,
    Telegram,
    Ntfy,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 6] = [
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Discord,
        ChannelKind::Telegram,
        ChannelKind::Ntfy,
        ChannelKind::Email,
    ];

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == raw.trim())
            .ok_or_else(|| {
                FieldError::new(
                    "kind",
                    "kind must be one of webhook, slack, discord, telegram, ntfy, email",
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Email => "email",
        }
    }
}

/// A channel's display name: 1 to 100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName(String);

impl ChannelName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let v = raw.trim();
        if v.is_empty() {
            return Err(FieldError::new("name", "name is required"));
        }
        if v.chars().count() > Self::MAX_LEN {
            return Err(FieldError::new(
                "name",
                "name is too long (at most 100 characters)",
            ));
        }
        if v.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "name must not contain control characters",
            ));
        }
        Ok(Self(v.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute http(s) URL with a host and no credentials in it.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl(url::Url);

impl HttpUrl {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let err = |m: &str| Err(FieldError::new(field, format!("{field} {m}")));
        let raw = raw.trim();
        if raw.is_empty() {
            return err("is required");
        }
        if raw.len() > 2048 {
            return err("is too long (at most 2048 characters)");
        }
        let Ok(u) = url::Url::parse(raw) else {
            return err("must be an absolute http:// or https:// URL");
        };
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
            return err("must be an absolute http:// or https:// URL");
        }
        if !u.username().is_empty() || u.password().is_some() {
            return err("must not contain a user name or password");
        }
        Ok(Self(u))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Never printed: `Debug` shows only that the URL exists (an incoming-webhook URL is a secret of
/// its own, and logs must not carry it).
impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpUrl({})", self.0.host_str().unwrap_or("?"))
    }
}

/// A secret the API accepts but never returns; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    fn parse(field: &'static str, raw: &str, max: usize) -> Result<Self, FieldError> {
        let v = raw.trim();
        if v.is_empty() {
            return Err(FieldError::new(field, format!("{field} must not be empty")));
        }
        if v.len() > max || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(FieldError::new(
                field,
                format!("{field} must be at most {max} characters without spaces"),
            ));
        }
        Ok(Self(v.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A Telegram bot token as BotFather issues it: `<digits>:<token>`.
fn bot_token(raw: &str) -> Result<Secret, FieldError> {
    const FIELD: &str = "config.bot_token";
    let s = Secret::parse(FIELD, raw, 128)?;
    let ok = s.0.split_once(':').is_some_and(|(id, rest)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !ok {
        return Err(FieldError::new(
            FIELD,
            "config.bot_token must look like 123456:ABC-DEF (the token BotFather gave)",
        ));
    }
    Ok(s)
}

/// A Telegram chat: a numeric id (negative for groups) or a public `@channelname`.
fn chat_id(raw: &str) -> Result<String, FieldError> {
    const FIELD: &str = "config.chat_id";
    let v = raw.trim();
    let digits = v.strip_prefix('-').unwrap_or(v);
    let numeric =
        !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit());
    let username = v.strip_prefix('@').is_some_and(|n| {
        (5..=32).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    if numeric || username {
        Ok(v.to_owned())
    } else {
        Err(FieldError::new(
            FIELD,
            "config.chat_id must be a numeric chat id (e.g. -1001234567890) or @channelname",
        ))
    }
}

/// An ntfy topic: one path segment of letters, digits, `_` and `-` (ntfy's own rule).
fn topic(raw: &str) -> Result<String, FieldError> {
    const FIELD: &str = "config.topic";
    let v = raw.trim();
    if v.is_empty()
        || v.len() > 64
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(FieldError::new(
            FIELD,
            "config.topic must be 1 to 64 letters, digits, _ or -",
        ));
    }
    Ok(v.to_owned())
}

/// A channel's settings, one variant per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelConfig {
    Webhook {
        url: HttpUrl,
        secret: Option<Secret>,
    },
    Slack {
        url: HttpUrl,
    },
    Discord {
        url: HttpUrl,
    },
    Telegram {
        bot_token: Secret,
        chat_id: String,
    },
    Ntfy {
        server: HttpUrl,
        topic: String,
        token: Option<Secret>,
    },
    Email {
        address: Email,
    },
}

/// The keys each kind accepts; anything else is refused (a typo would otherwise be ignored).
fn keys(kind: ChannelKind) -> &'static [&'static str] {
    match kind {
        ChannelKind::Webhook => &["url", "secret"],
        ChannelKind::Slack | ChannelKind::Discord => &["url"],
        ChannelKind::Telegram => &["bot_token", "chat_id"],
        ChannelKind::Ntfy => &["server", "topic", "token"],
        ChannelKind::Email => &["address"],
    }
}

/// The keys whose values are secrets (never returned; kept on PATCH when left out).
fn secret_keys(kind: ChannelKind) -> &'static [&'static str] {
    match kind {
        ChannelKind::Webhook => &["secret"],
        ChannelKind::Telegram => &["bot_token"],
        ChannelKind::Ntfy => &["token"],
        _ => &[],
    }
}

fn field_name(key: &str) -> &'static str {
    match key {
        "url" => "config.url",
        "secret" => "config.secret",
        "bot_token" => "config.bot_token",
        "chat_id" => "config.chat_id",
        "server" => "config.server",
        "topic" => "config.topic",
        "token" => "config.token",
        "address" => "config.address",
        _ => "config",
    }
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        // A numeric Telegram chat id is commonly sent as a number.
        Some(Value::Number(_)) if key == "chat_id" => Ok(None),
        Some(_) => Err(FieldError::new(
            field_name(key),
            format!("{} must be a string", field_name(key)),
        )),
    }
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, FieldError> {
    string(obj, key)?
        .ok_or_else(|| FieldError::new(field_name(key), format!("{} is required", field_name(key))))
}

fn optional_secret(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<Secret>, FieldError> {
    match string(obj, key)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => Secret::parse(field_name(key), s, max).map(Some),
    }
}

impl ChannelConfig {
    /// Parses `config` for `kind`.
    pub fn parse(kind: ChannelKind, config: &Value) -> Result<Self, FieldError> {
        let Value::Object(obj) = config else {
            return Err(FieldError::new("config", "config must be an object"));
        };
        if let Some(unknown) = obj.keys().find(|k| !keys(kind).contains(&k.as_str())) {
            return Err(FieldError::new(
                "config",
                format!(
                    "config.{unknown} is not a setting of a {} channel (expected: {})",
                    kind.as_str(),
                    keys(kind).join(", ")
                ),
            ));
        }
        Ok(match kind {
            ChannelKind::Webhook => ChannelConfig::Webhook {
                url: HttpUrl::parse("config.url", required(obj, "url")?)?,
                secret: optional_secret(obj, "secret", 256)?,
            },
            ChannelKind::Slack => ChannelConfig::Slack {
                url: HttpUrl::parse("config.url", required(obj, "url")?)?,
            },
            ChannelKind::Discord => ChannelConfig::Discord {
                url: HttpUrl::parse("config.url", required(obj, "url")?)?,
            },
            ChannelKind::Telegram => {
                let chat = match obj.get("chat_id") {
                    Some(Value::Number(n)) => n.to_string(),
                    _ => required(obj, "chat_id")?.to_owned(),
                };
                ChannelConfig::Telegram {
                    bot_token: bot_token(required(obj, "bot_token")?)?,
                    chat_id: chat_id(&chat)?,
                }
            }
            ChannelKind::Ntfy => ChannelConfig::Ntfy {
                server: HttpUrl::parse("config.server", required(obj, "server")?)?,
                topic: topic(required(obj, "topic")?)?,
                token: optional_secret(obj, "token", 256)?,
            },
            ChannelKind::Email => ChannelConfig::Email {
                address: Email::parse(required(obj, "address")?)
                    .map_err(|e| FieldError::new("config.address", e.message))?,
            },
        })
    }

    /// Parses a PATCH's `config` for a channel of the same kind: a secret left out keeps the
    /// channel's current one (the client never saw it); `null` or `""` removes an optional one.
    pub fn parse_update(
        kind: ChannelKind,
        config: &Value,
        current: &ChannelConfig,
    ) -> Result<Self, FieldError> {
        let Value::Object(obj) = config else {
            return Err(FieldError::new("config", "config must be an object"));
        };
        let mut merged = obj.clone();
        if current.kind() == kind {
            let stored = current.to_stored();
            for key in secret_keys(kind) {
                if !merged.contains_key(*key) {
                    if let Some(v) = stored.get(*key) {
                        merged.insert((*key).to_owned(), v.clone());
                    }
                }
            }
        }
        Self::parse(kind, &Value::Object(merged))
    }

    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelConfig::Webhook { .. } => ChannelKind::Webhook,
            ChannelConfig::Slack { .. } => ChannelKind::Slack,
            ChannelConfig::Discord { .. } => ChannelKind::Discord,
            ChannelConfig::Telegram { .. } => ChannelKind::Telegram,
            ChannelConfig::Ntfy { .. } => ChannelKind::Ntfy,
            ChannelConfig::Email { .. } => ChannelKind::Email,
        }
    }

    /// The form stored in the database, secrets included.
    pub fn to_stored(&self) -> Value {
        match self {
            ChannelConfig::Webhook { url, secret } => {
                let mut v = json!({ "url": url.as_str() });
                if let Some(s) = secret {
                    v["secret"] = s.expose().into();
                }
                v
            }
            ChannelConfig::Slack { url } | ChannelConfig::Discord { url } => {
                json!({ "url": url.as_str() })
            }
            ChannelConfig::Telegram { bot_token, chat_id } => {
                json!({ "bot_token": bot_token.expose(), "chat_id": chat_id })
            }
            ChannelConfig::Ntfy {
                server,
                topic,
                token,
            } => {
                let mut v = json!({ "server": server.as_str(), "topic": topic });
                if let Some(t) = token {
                    v["token"] = t.expose().into();
                }
                v
            }
            ChannelConfig::Email { address } => json!({ "address": address.as_str() }),
        }
    }

    /// The form the API shows: each secret that is set reads `"set"`.
    pub fn public(&self) -> Value {
        let mut v = self.to_stored();
        for key in secret_keys(self.kind()) {
            if let Some(slot) = v.get_mut(*key) {
                *slot = Value::String("set".into());
            }
        }
        v
    }

    /// Reads the stored form back (rows written by [`ChannelConfig::to_stored`]).
    pub fn from_stored(kind: &str, config: &str) -> Result<Self, String> {
        let kind = ChannelKind::parse(kind).map_err(|e| e.message)?;
        let value: Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
        Self::parse(kind, &value).map_err(|e| e.message)
    }

    /// The HTTP target the delivery goes to, for the SSRF guard (None for email).
    pub fn target(&self) -> Option<&url::Url> {
        match self {
            ChannelConfig::Webhook { url, .. }
            | ChannelConfig::Slack { url }
            | ChannelConfig::Discord { url } => Some(url.as_url()),
            ChannelConfig::Ntfy { server, .. } => Some(server.as_url()),
            ChannelConfig::Telegram { .. } | ChannelConfig::Email { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: &str, config: Value) -> Result<ChannelConfig, FieldError> {
        ChannelConfig::parse(ChannelKind::parse(kind)?, &config)
    }

    fn field(kind: &str, config: Value) -> &'static str {
        parse(kind, config).unwrap_err().field
    }

    #[test]
    fn each_kind_parses_and_bad_values_name_the_field() {
        assert!(parse(
            "webhook",
            json!({"url": "https://h.example/x", "secret": "s3"})
        )
        .is_ok());
        assert_eq!(
            field("webhook", json!({"url": "ftp://h.example/"})),
            "config.url"
        );
        assert_eq!(field("webhook", json!({"url": "not a url"})), "config.url");
        assert_eq!(field("webhook", json!({})), "config.url");
        assert_eq!(field("slack", json!({"url": 5})), "config.url");
        assert_eq!(
            field("discord", json!({"url": "https://u:p@h.example/"})),
            "config.url"
        );
        assert_eq!(
            field("slack", json!({"url": "https://h.example", "x": 1})),
            "config"
        );
        assert!(parse(
            "telegram",
            json!({"bot_token": "123:AbC_d-e", "chat_id": -100})
        )
        .is_ok());
        assert!(parse(
            "telegram",
            json!({"bot_token": "123:AbC", "chat_id": "@my_channel"})
        )
        .is_ok());
        assert_eq!(
            field("telegram", json!({"bot_token": "nope", "chat_id": "1"})),
            "config.bot_token"
        );
        assert_eq!(
            field("telegram", json!({"bot_token": "1:a", "chat_id": "abc"})),
            "config.chat_id"
        );
        assert_eq!(
            field("telegram", json!({"bot_token": "1:a"})),
            "config.chat_id"
        );
        assert!(parse(
            "ntfy",
            json!({"server": "https://ntfy.sh", "topic": "alerts-1"})
        )
        .is_ok());
        assert_eq!(
            field("ntfy", json!({"server": "https://ntfy.sh", "topic": "a/b"})),
            "config.topic"
        );
        assert_eq!(field("ntfy", json!({"topic": "a"})), "config.server");
        assert_eq!(field("email", json!({"address": "nope"})), "config.address");
        assert_eq!(field("sms", json!({})), "kind");
        assert_eq!(field("email", json!([])), "config");
    }

    #[test]
    fn secrets_are_shown_as_set_and_kept_when_a_patch_leaves_them_out() {
        let c = parse(
            "ntfy",
            json!({"server": "https://ntfy.sh", "topic": "t", "token": "tk_1"}),
        )
        .unwrap();
        assert_eq!(c.public()["token"], "set");
        assert_eq!(c.to_stored()["token"], "tk_1");
        assert!(!format!("{c:?}").contains("tk_1"));
        let kept = ChannelConfig::parse_update(
            ChannelKind::Ntfy,
            &json!({"server": "https://ntfy.sh", "topic": "u"}),
            &c,
        )
        .unwrap();
        assert_eq!(kept.to_stored()["token"], "tk_1");
        let removed = ChannelConfig::parse_update(
            ChannelKind::Ntfy,
            &json!({"server": "https://ntfy.sh", "topic": "u", "token": null}),
            &c,
        )
        .unwrap();
        assert_eq!(removed.to_stored().get("token"), None);
        let back = ChannelConfig::from_stored("ntfy", &c.to_stored().to_string()).unwrap();
        assert_eq!(back, c);
    }
}
