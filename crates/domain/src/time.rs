use ::time::OffsetDateTime;

/// Milliseconds since the Unix epoch, UTC. Stored as a 64-bit integer on every backend so that
/// comparisons in SQL are numeric and bound as parameters, never string comparisons of formatted
/// dates (which differ between SQLite and PostgreSQL).
pub type UnixMillis = i64;

/// Helpers to move between stored millis and `OffsetDateTime`.
pub struct Timestamp;

impl Timestamp {
    pub fn now() -> UnixMillis {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_datetime(dt: OffsetDateTime) -> UnixMillis {
        (dt.unix_timestamp_nanos() / 1_000_000) as i64
    }

    pub fn to_datetime(ms: UnixMillis) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339 text for JSON responses.
    pub fn rfc3339(ms: UnixMillis) -> String {
        Self::to_datetime(ms)
            .format(&::time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let ms = 1_700_000_000_123;
        assert_eq!(Timestamp::rfc3339(ms), "2023-11-14T22:13:20.123Z");
        assert_eq!(Timestamp::from_datetime(Timestamp::to_datetime(ms)), ms);
    }
}
