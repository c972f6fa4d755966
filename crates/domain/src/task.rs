use crate::FieldError;

/// A task title: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldError::new("title", "Title must not be empty"));
        }
        if value.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "title",
                format!("Title must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(FieldError::new(
                "title",
                "Title must be a single line of text",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A multi-line task description, at most 10,000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskDescription(String);

impl TaskDescription {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "description",
                format!("Description must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err(FieldError::new(
                "description",
                "Description contains control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Ordering key of a task in its list. Bounded so that clients cannot push values that overflow
/// arithmetic done on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskPosition(i64);

impl TaskPosition {
    pub const LIMIT: i64 = 1 << 50;

    pub fn parse(raw: i64) -> Result<Self, FieldError> {
        if !(-Self::LIMIT..=Self::LIMIT).contains(&raw) {
            return Err(FieldError::new(
                "position",
                format!("Position must be between -{0} and {0}", Self::LIMIT),
            ));
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_rules() {
        assert_eq!(
            TaskTitle::parse("  Buy milk ").unwrap().as_str(),
            "Buy milk"
        );
        assert!(TaskTitle::parse("   ").is_err());
        assert!(TaskTitle::parse(&"я".repeat(200)).is_ok());
        assert!(TaskTitle::parse(&"я".repeat(201)).is_err());
        assert!(TaskTitle::parse("a\nb").is_err());
    }

    #[test]
    fn description_rules() {
        assert!(TaskDescription::parse("line 1\nline 2\ttab").is_ok());
        assert!(TaskDescription::parse("bell\u{7}").is_err());
        assert!(TaskDescription::parse(&"x".repeat(10_001)).is_err());
    }

    #[test]
    fn position_bounds() {
        assert!(TaskPosition::parse(0).is_ok());
        assert!(TaskPosition::parse(i64::MAX).is_err());
    }
}
