//! Time as Genesis records it: microsecond precision (what every backend stores) and RFC 3339
//! UTC with a `Z` on the wire.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// The current time at the precision every backend stores (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `t` at the stored precision: a client timestamp compared with a stored one must match it.
pub fn stored_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// RFC 3339 in UTC with a `Z`, e.g. `2025-12-21T12:00:00Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_a_z() {
        let t = DateTime::parse_from_rfc3339("2025-12-21T13:00:00.1234567+01:00")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(rfc3339(stored_precision(t)), "2025-12-21T12:00:00.123456Z");
    }
}
