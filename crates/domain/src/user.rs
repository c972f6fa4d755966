use crate::FieldError;
use std::fmt;

/// A normalised email address: trimmed and lower-cased, so that uniqueness is case-insensitive
/// with a plain unique index on every backend.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim().to_lowercase();
        let err = |m: &str| Err(FieldError::new("email", m));
        if value.is_empty() {
            return err("Email is required");
        }
        if value.chars().count() > Self::MAX_LEN {
            return err("Email is too long (at most 254 characters)");
        }
        let Some((local, domain)) = value.split_once('@') else {
            return err("Email must look like name@example.com");
        };
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '@' || c == ',';
        if local.is_empty()
            || local.len() > 64
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || value.chars().filter(|c| *c == '@').count() != 1
            || local.chars().any(bad_char)
            || domain.chars().any(bad_char)
        {
            return err("Email must look like name@example.com");
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For values read back from storage, which were parsed on the way in.
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that meets the policy. Its `Debug` never shows the secret, so it cannot leak into a
/// log line by accident.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 1024;

    /// Parses a new password (registration, change). `email` is refused as a password.
    pub fn parse_new(raw: &str, email: Option<&Email>) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(FieldError::new(
                "password",
                format!("Password must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        if n > Self::MAX_CHARS {
            return Err(FieldError::new(
                "password",
                format!("Password must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if let Some(email) = email {
            if raw.trim().to_lowercase() == email.as_str() {
                return Err(FieldError::new(
                    "password",
                    "Password must not be your email address",
                ));
            }
        }
        if let Some(why) = Self::guessable(raw, email) {
            return Err(FieldError::new("password", why));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Why a password is among those an attacker tries first (NIST SP 800-63B: commonly used,
    /// expected or breached values, and words from the context such as the email), if it is.
    /// zxcvbn's frequency lists hold the most common passwords, English words, names and keyboard
    /// patterns; anything it estimates at under a million guesses is refused. Past 64 characters
    /// the estimate is skipped: its matching grows quadratically and such a passphrase is safe.
    fn guessable(raw: &str, email: Option<&Email>) -> Option<String> {
        if raw.chars().count() > 64 {
            return None;
        }
        let mut context = vec!["pulseboard"];
        if let Some(email) = email {
            let address = email.as_str();
            context.push(address);
            context.extend(
                address
                    .split(['@', '.', '_', '-', '+'])
                    .filter(|p| p.len() > 2),
            );
        }
        let estimate = zxcvbn::zxcvbn(raw, &context);
        if (estimate.score() as u8) >= 2 {
            return None;
        }
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" ({})", w.to_string().trim_end_matches('.').to_lowercase()))
            .unwrap_or_default();
        Some(format!(
            "This password is too common or too easy to guess{hint}: choose a longer one, such as \
             a few unrelated words"
        ))
    }

    /// A password typed at login: only bounded, never judged against the policy (the policy may
    /// have changed since the account was made).
    pub fn parse_login(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new("password", "Password is required"));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new("password", "Password is too long"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn from_db(s: &str) -> Self {
        if s == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Me@Example.COM ").unwrap().as_str(),
            "me@example.com"
        );
    }

    #[test]
    fn common_and_guessable_passwords_are_refused_with_a_reason() {
        let email = Email::parse("alice.smith@example.com").unwrap();
        for weak in [
            "password123",
            "12345678",
            "qwertyuiop",
            "iloveyou1",
            "Password1",
            "alicesmith1",
            "pulseboard1",
            "aaaaaaaaaa",
        ] {
            let e = Password::parse_new(weak, Some(&email)).expect_err(weak);
            assert_eq!(e.field, "password");
            assert!(e.message.contains("too common"), "{weak}: {}", e.message);
        }
        for fine in [
            "correct horse battery",
            "benchmark password",
            "Zebra-7f3a9c-Пароль",
            "tangerine quasar 41",
        ] {
            Password::parse_new(fine, Some(&email)).expect(fine);
        }
        // Long passphrases are not estimated (the estimate is quadratic), and are fine.
        Password::parse_new(&"password ".repeat(10), Some(&email)).unwrap();
    }

    #[test]
    fn email_rejects_garbage() {
        for bad in [
            "",
            "plain",
            "a@b",
            "@x.com",
            "a@.com",
            "a b@x.com",
            "a@x..com",
            "a@@x.com",
            "a@x.com.",
        ] {
            let e = Email::parse(bad).unwrap_err();
            assert_eq!(e.field, "email", "{bad}");
        }
        let long = format!("{}@x.com", "a".repeat(300));
        assert!(Email::parse(&long)
            .unwrap_err()
            .message
            .contains("too long"));
    }

    #[test]
    fn password_policy() {
        let email = Email::parse("me@example.com").unwrap();
        assert!(Password::parse_new("short", None)
            .unwrap_err()
            .message
            .contains("at least 8"));
        assert!(Password::parse_new(&"x".repeat(1025), None)
            .unwrap_err()
            .message
            .contains("at most"));
        assert!(Password::parse_new("ME@example.com", Some(&email)).is_err());
        assert!(Password::parse_new("correct horse", Some(&email)).is_ok());
        // Multi-byte characters count as characters, not bytes.
        assert!(Password::parse_new("пароль12", None).is_ok());
    }

    #[test]
    fn password_debug_hides_secret() {
        let p = Password::parse_new("plum violet ocean", None).unwrap();
        assert!(!format!("{p:?}").contains("violet"));
    }
}
