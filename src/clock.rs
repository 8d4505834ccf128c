//! Wall-clock helpers. Expiry and skew decisions use wall time (they compare with timestamps
//! that clients signed); timeouts use tokio's monotonic clock elsewhere.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// `t` as milliseconds since the Unix epoch (0 before it).
pub fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch back to a `SystemTime` (negative clamps to the epoch).
pub fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The UTC calendar fields of `t` (whole seconds; before 1970 counts as the epoch).
fn utc(t: SystemTime) -> time::OffsetDateTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let nanos = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|dt| dt.replace_nanosecond(nanos).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// `t` as an ISO 8601 timestamp with milliseconds, UTC: `2026-11-23T10:00:00.000Z` (the form S3
/// XML and the control API use). Times before 1970 format as the epoch: upgate never creates
/// such records, and a negative year would confuse clients more than 1970 does.
pub fn iso8601(t: SystemTime) -> String {
    let dt = utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// `t` as an ISO 8601 basic UTC timestamp, `YYYYMMDDTHHMMSSZ` (SigV4's `X-Amz-Date`), truncated
/// to whole seconds.
pub fn amz_date(t: SystemTime) -> String {
    let dt = utc(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// The instant of a UTC calendar date and time, or `None` for an impossible one (month 13,
/// 31 February, hour 24, second 60) or one before 1970.
pub fn from_utc_fields(
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
) -> Option<SystemTime> {
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let time = time::Time::from_hms(hour, minute, second).ok()?;
    let secs = u64::try_from(date.with_time(time).assume_utc().unix_timestamp()).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Parses an RFC 3339 timestamp (`2026-11-23T10:00:00Z`, a fraction and an offset allowed) as
/// POST policy expirations and `/v1` time filters use them. Impossible dates (31 February) and
/// instants before 1970 are `None`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = u64::try_from(dt.unix_timestamp_nanos()).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_in_utc() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_440_938_160_123);
        assert_eq!(iso8601(t), "2015-08-30T12:36:00.123Z");
        assert_eq!(amz_date(t), "20150830T123600Z");
        // Leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_868_799);
        assert_eq!(amz_date(leap), "20000229T235959Z");
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert!(from_utc_fields(2026, 2, 31, 0, 0, 0).is_none());
        assert!(from_utc_fields(2025, 2, 29, 0, 0, 0).is_none());
        assert!(from_utc_fields(2024, 2, 29, 0, 0, 0).is_some());
        assert!(from_utc_fields(2026, 13, 1, 0, 0, 0).is_none());
        assert!(from_utc_fields(2026, 1, 1, 24, 0, 0).is_none());
        assert!(from_utc_fields(2026, 1, 1, 0, 0, 60).is_none());
        assert!(from_utc_fields(1969, 12, 31, 23, 59, 59).is_none());
        assert!(parse_rfc3339("2026-02-31T00:00:00Z").is_none());
        assert!(parse_rfc3339("2026-02-28T00:00:00Z").is_some());
        assert!(parse_rfc3339("2026-02-28T00:00:00.5Z").is_some());
        assert!(parse_rfc3339("2026-02-28").is_none());
    }

    #[test]
    fn rfc3339_round_trips_through_iso8601() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_000_000_250);
        assert_eq!(parse_rfc3339(&iso8601(t)), Some(t));
    }
}
