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

/// Parses a request's `Date` header as S3 does: an IMF-fixdate (`Wed, 07 Jul 2010 21:53:04
/// GMT`) whose zone may also be written `+0000`, `-0000` (Python's `email.utils.formatdate`, which
/// botocore uses) or `UTC`, and whose weekday is not checked (S3 accepts a wrong one, and then
/// judges the instant: a skewed date is refused as skewed, not as malformed); else the obsolete
/// forms `httpdate` reads. Instants before 1970 are `None`.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let fixdate = || {
        let (weekday, rest) = s.split_once(", ")?;
        if weekday.len() != 3 || !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let rest = ["GMT", "UTC", "+0000", "-0000"]
            .iter()
            .find_map(|zone| rest.strip_suffix(zone)?.strip_suffix(' '))?;
        let mut fields = rest.split(' ');
        let (day, month, year, hms) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if fields.next().is_some() || day.len() != 2 || year.len() != 4 {
            return None;
        }
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS.iter().position(|m| *m == month)?;
        let mut hms = hms.split(':');
        let mut two = || -> Option<u8> {
            let f = hms.next()?;
            (f.len() == 2).then_some(())?;
            f.parse().ok()
        };
        let (hour, minute, second) = (two()?, two()?, two()?);
        if hms.next().is_some() {
            return None;
        }
        from_utc_fields(
            year.parse().ok()?,
            u8::try_from(month + 1).ok()?,
            day.parse().ok()?,
            hour,
            minute,
            second,
        )
    };
    fixdate().or_else(|| httpdate::parse_http_date(s).ok())
}

/// Parses an RFC 3339 timestamp (`2026-11-23T10:00:00Z`, a fraction and an offset allowed) as
/// POST policy expirations and `/v1` time filters use them. Impossible dates (31 February) and
/// instants before 1970 are `None`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    // Seconds and the fraction apart: nanoseconds since 1970 overflow a u64 after 2554.
    let secs = u64::try_from(dt.unix_timestamp()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, dt.nanosecond()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_timestamps_parse() {
        let t = parse_rfc3339("2999-01-01T00:00:00.250Z").expect("parses");
        assert_eq!(to_ms(t), 32_472_144_000_250);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
    }

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
    fn http_dates_are_read_as_s3_reads_them() {
        let t = from_utc_fields(2010, 7, 7, 21, 53, 4);
        assert!(t.is_some());
        // 7 July 2010 was a Wednesday: the right and a wrong weekday, every zone spelling.
        for s in [
            "Wed, 07 Jul 2010 21:53:04 GMT",
            "Tue, 07 Jul 2010 21:53:04 GMT",
            "Wed, 07 Jul 2010 21:53:04 +0000",
            "Wed, 07 Jul 2010 21:53:04 -0000",
            "Wed, 07 Jul 2010 21:53:04 UTC",
            "Wednesday, 07-Jul-10 21:53:04 GMT",
        ] {
            assert_eq!(parse_http_date(s), t, "{s}");
        }
        for s in [
            "Wed, 07 Jul 2010 21:53:04 +0200",
            "Wed, 7 Jul 2010 21:53:04 GMT",
            "Wed, 07 Jly 2010 21:53:04 GMT",
            "Wed, 31 Feb 2010 21:53:04 GMT",
            "Wed, 07 Jul 2010 24:53:04 GMT",
            "Tue, 07 Jul 1950 21:53:04 GMT",
            "20100707T215304Z",
            "",
        ] {
            assert_eq!(parse_http_date(s), None, "{s}");
        }
    }

    #[test]
    fn rfc3339_round_trips_through_iso8601() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_000_000_250);
        assert_eq!(parse_rfc3339(&iso8601(t)), Some(t));
    }
}
