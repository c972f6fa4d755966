//! Defence in depth: fields named like secrets are written as `[redacted]`, whatever their value.
//! (No code logs a secret on purpose; this stops one added by mistake, e.g. `password = %p`.)

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;

const NAMES: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "token",
    "secret",
    "cookie",
    "cookies",
    "authorization",
    "smtp_url",
    "api_key",
    "jwt",
];
const SUFFIXES: &[&str] = &["_password", "_token", "_secret", "_cookie", "_key"];

/// Whether a field with this name must never show its value.
pub fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    NAMES.contains(&name.as_str()) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

pub(crate) const REDACTED: &str = "[redacted]";

/// Field formatting for the console and file layers: like the default, with secret-named fields
/// redacted.
pub fn redacting_fields(
) -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let name = field.name();
            if name == "message" {
                write!(w, "{value:?}")
            } else if is_secret_field(name) {
                write!(w, "{name}={REDACTED}")
            } else {
                write!(w, "{name}={value:?}")
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::is_secret_field;

    #[test]
    fn secret_names() {
        for n in [
            "password",
            "Password",
            "refresh_token",
            "smtp_url",
            "signing_key",
        ] {
            assert!(is_secret_field(n), "{n}");
        }
        for n in ["tokens_pruned", "user_id", "status", "key"] {
            assert!(!is_secret_field(n), "{n}");
        }
    }
}
