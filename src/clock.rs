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
