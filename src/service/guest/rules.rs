//! The rules of a stored message, each written once and called by every path that needs it: what
//! a valid guest id and message are (guest and account writes), who may write to a guest id,
//! when a guest's expiry moves, what a first title is, and when a write repeats a stored message.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::NewMessage;
use crate::service::{ErrorCode, ServiceError};

pub const ROLES: [&str; 4] = ["user", "assistant", "system", "tool"];
pub const CONTENT_TYPES: [&str; 3] = ["text", "markdown", "json"];
const TITLE_CHARS: usize = 80;
/// How far a guest conversation's stored expiry may lag behind "last write + retention" before a
/// write moves it (the expiry is indexed: moving it on every message costs a B-tree write each).
const EXPIRY_SLACK: Duration = Duration::hours(1);

/// The rules for a guest id: `^[A-Za-z0-9_-]{1,128}$`.
pub fn validate_guest_id(guest_id: &str) -> Result<(), ServiceError> {
    let ok = (1..=128).contains(&guest_id.len())
        && guest_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            ErrorCode::InvalidGuestId,
            "guest id must be 1-128 characters of A-Z, a-z, 0-9, '_' or '-'",
        ))
    }
}

/// Text stored beside messages (titles, descriptions, model names, tags): any string but one
/// holding U+0000, which PostgreSQL cannot store. `field` names it in the answer (422).
pub fn validate_text(field: &str, value: &str) -> Result<(), ServiceError> {
    if value.contains('\0') {
        return Err(ServiceError::invalid(
            ErrorCode::Unprocessable,
            format!("{field} must not contain U+0000"),
        ));
    }
    Ok(())
}

/// The rules of a message's text (a new message's, or an edit's).
pub fn validate_content(content: &str, max_message_bytes: usize) -> Result<(), ServiceError> {
    if content.len() > max_message_bytes {
        return Err(ServiceError::TooLarge {
            size: content.len(),
            max: max_message_bytes,
        });
    }
    if content.trim().is_empty() {
        return Err(ServiceError::invalid(
            ErrorCode::ContentEmpty,
            "content must not be empty",
        ));
    }
    if content.contains('\0') {
        return Err(ServiceError::invalid(
            ErrorCode::ContentInvalid,
            "content must not contain U+0000",
        ));
    }
    Ok(())
}

/// The rules every stored message follows, guest or account.
pub fn validate_message(msg: &NewMessage, max_message_bytes: usize) -> Result<(), ServiceError> {
    if !ROLES.contains(&msg.role.as_str()) {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidRole,
            "role must be one of user, assistant, system, tool",
        ));
    }
    super::tool_calls::validate(msg, max_message_bytes)?;
    if let Some(ct) = &msg.content_type
        && !CONTENT_TYPES.contains(&ct.as_str())
    {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidContentType,
            "content_type must be one of text, markdown, json",
        ));
    }
    if msg.tokens.is_some_and(|t| t < 0) {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidTokens,
            "tokens must be 0 or more",
        ));
    }
    if let Some(key) = &msg.idempotency_key {
        let ok = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(ServiceError::invalid(
                ErrorCode::InvalidIdempotencyKey,
                "Idempotency-Key must be 1-255 visible ASCII characters",
            ));
        }
    }
    Ok(())
}

/// Who may write to a guest id: anyone while nobody holds it (the write claims it), only the
/// holder of its token once it is held. `held`: the id's conversation, if it has one; `holder`:
/// the conversation the request's token was verified for. A token outlives nothing: once its
/// conversation is erased or expired there is nothing to write to (404 — the write does not
/// bring the id back), and a re-claimed id's new conversation is not the old token's (401).
pub fn check_write_access(held: Option<Uuid>, holder: Option<Uuid>) -> Result<(), ServiceError> {
    match (held, holder) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(ServiceError::GuestNotFound),
        (Some(_), None) => Err(ServiceError::GuestTokenRequired),
        (Some(held), Some(holder)) if held == holder => Ok(()),
        (Some(_), Some(_)) => Err(ServiceError::GuestTokenInvalid),
    }
}

/// How much one guest may store; `0` = unlimited.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestLimits {
    /// Messages per day (`limits.guest_messages_per_day`).
    pub messages_per_day: u32,
    /// Messages in the conversation (`limits.guest_max_messages`).
    pub max_messages: u32,
}

/// The length of a guest's quota window.
pub const QUOTA_DAY: Duration = Duration::days(1);

/// True when a quota window that began at `started` is still open at `now`.
pub fn day_is_open(started: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    started.is_some_and(|at| now - at < QUOTA_DAY)
}

/// The guest counters a new message leaves behind, or why it may not be stored: `count` messages
/// held, `day` (window start, messages in it) before this one.
pub fn count_message(
    limits: GuestLimits,
    count: i64,
    day: (Option<DateTime<Utc>>, i64),
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, i64), ServiceError> {
    if limits.max_messages > 0 && count >= i64::from(limits.max_messages) {
        return Err(ServiceError::GuestHistoryFull {
            limit: limits.max_messages,
        });
    }
    let (start, in_day) = match day {
        (Some(start), n) if day_is_open(Some(start), now) => (start, n),
        _ => (now, 0),
    };
    if limits.messages_per_day > 0 && in_day >= i64::from(limits.messages_per_day) {
        let wait = QUOTA_DAY - (now - start);
        let wait = wait
            .num_milliseconds()
            .clamp(0, QUOTA_DAY.num_milliseconds());
        return Err(ServiceError::GuestQuotaExceeded {
            limit: limits.messages_per_day,
            retry_after_secs: (wait as u64).div_ceil(1000).max(1),
        });
    }
    Ok((start, in_day.saturating_add(1)))
}

/// When a guest written to (or read) at `now` expires.
pub fn expiry(now: DateTime<Utc>, retention: Duration) -> DateTime<Utc> {
    now + retention
}

/// How far a stored expiry may be from [`expiry`] before an access moves it, and how often a
/// guest's reads are recorded: an hour, or a tenth of the retention when that is shorter (the
/// expiry is indexed, so it is not moved on every message).
pub fn expiry_slack(retention: Duration) -> Duration {
    EXPIRY_SLACK.min(retention / 10)
}

/// The stored expiries an access at `now` leaves alone: `[floor, ceiling]` around [`expiry`]. One
/// outside (e.g. a never-written session's shorter or longer time to live) is moved to it.
pub fn expiry_window(now: DateTime<Utc>, retention: Duration) -> (DateTime<Utc>, DateTime<Utc>) {
    let target = expiry(now, retention);
    let slack = expiry_slack(retention);
    (target - slack, target + slack)
}

/// True when an access at `now` must move the stored expiry `stored`.
pub fn expiry_is_stale(
    stored: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    retention: Duration,
) -> bool {
    let (floor, ceiling) = expiry_window(now, retention);
    stored.is_none_or(|at| at < floor || at > ceiling)
}

/// A title from the first user message: its first line, at most 80 characters.
pub fn title_from(content: &str) -> String {
    let line = content.trim().lines().next().unwrap_or_default().trim();
    let mut title: String = line.chars().take(TITLE_CHARS).collect();
    if line.chars().count() > TITLE_CHARS {
        title.push('…');
    }
    title
}

/// The title a message gives a conversation that has none: user messages only.
pub fn first_title(msg: &NewMessage) -> Option<String> {
    (msg.role == "user").then(|| title_from(&msg.content))
}

/// A stored message as retry detection sees it (guest cache rows and account rows alike).
pub trait StoredMessage {
    fn role(&self) -> &str;
    fn content(&self) -> &str;
    fn idempotency_key(&self) -> Option<&str>;
    fn client_timestamp(&self) -> Option<DateTime<Utc>>;
    /// The tool call a `tool` message answers, and the calls an assistant message makes.
    fn tool_parts(&self) -> (Option<&str>, Option<&str>);
}

/// What identifies the stored message a write could repeat; `None` when it cannot repeat any.
/// Without a timestamp or key, the same words twice are two messages.
pub enum RetryKey<'a> {
    /// The `Idempotency-Key` header: the stored message with this key.
    Key(&'a str),
    /// Role, content (found by its MD5, decided on the text) and client timestamp.
    Same {
        role: &'a str,
        content_md5: String,
        timestamp: DateTime<Utc>,
    },
}

/// How to look up the stored messages `msg` could repeat (the caller turns it into a query).
pub fn retry_key(msg: &NewMessage) -> Option<RetryKey<'_>> {
    if let Some(key) = &msg.idempotency_key {
        return Some(RetryKey::Key(key));
    }
    Some(RetryKey::Same {
        role: &msg.role,
        content_md5: crate::service::digest::md5_hex(&msg.content),
        timestamp: msg.timestamp?,
    })
}

/// Which of `candidates` `msg` repeats: the one with its `Idempotency-Key` (an error if that one
/// holds other words), else one with the same role, content and client timestamp.
pub fn repeated<'a, M: StoredMessage>(
    candidates: impl IntoIterator<Item = &'a M>,
    msg: &NewMessage,
) -> Option<Result<&'a M, ServiceError>> {
    let mut candidates = candidates.into_iter();
    if let Some(key) = &msg.idempotency_key {
        return candidates
            .find(|m| m.idempotency_key() == Some(key.as_str()))
            .map(|found| {
                if found.role() == msg.role && found.content() == msg.content {
                    Ok(found)
                } else {
                    Err(ServiceError::IdempotencyKeyReused)
                }
            });
    }
    let timestamp = msg.timestamp?;
    candidates
        .find(|m| {
            m.client_timestamp() == Some(timestamp)
                && m.role() == msg.role
                && m.content() == msg.content
                && m.tool_parts() == (msg.tool_call_id.as_deref(), msg.tool_calls.as_deref())
        })
        .map(Ok)
}

macro_rules! stored_message {
    ($model:ty) => {
        impl StoredMessage for $model {
            fn role(&self) -> &str {
                &self.role
            }
            fn content(&self) -> &str {
                &self.content
            }
            fn idempotency_key(&self) -> Option<&str> {
                self.idempotency_key.as_deref()
            }
            fn client_timestamp(&self) -> Option<DateTime<Utc>> {
                self.client_timestamp
            }
            fn tool_parts(&self) -> (Option<&str>, Option<&str>) {
                (self.tool_call_id.as_deref(), self.tool_calls.as_deref())
            }
        }
    };
}

stored_message!(entity::message_cache::Model);
stored_message!(entity::messages::Model);

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_guest_id_is_accepted_exactly_when_it_matches_the_pattern(id in ".{0,140}") {
            let expected = (1..=128).contains(&id.len())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert_eq!(validate_guest_id(&id).is_ok(), expected);
        }

        #[test]
        fn any_message_is_judged_without_a_panic(
            role in "[a-z]{0,10}",
            content in any::<String>(),
            content_type in proptest::option::of("[a-z]{0,9}"),
            key in proptest::option::of(any::<String>()),
            tokens in proptest::option::of(any::<i32>()),
        ) {
            let msg = NewMessage {
                role,
                content,
                timestamp: None,
                tokens,
                content_type,
                idempotency_key: key,
                tool_call_id: None,
                tool_calls: None,
            };
            let _ = validate_message(&msg, 64);
            let _ = retry_key(&msg);
            let _ = first_title(&msg);
        }

        #[test]
        fn the_quota_rule_never_panics_and_never_waits_past_a_day(
            per_day in any::<u32>(),
            max in any::<u32>(),
            count in any::<i64>(),
            in_day in any::<i64>(),
            offset_secs in -400_000_000_000i64..400_000_000_000i64,
        ) {
            let now = crate::service::clock::now();
            let start = DateTime::<Utc>::from_timestamp(now.timestamp() + offset_secs / 1000, 0);
            let limits = GuestLimits { messages_per_day: per_day, max_messages: max };
            match count_message(limits, count, (start, in_day), now) {
                Ok((_, after)) => prop_assert!(after >= 1 || in_day < 0),
                Err(ServiceError::GuestQuotaExceeded { retry_after_secs, .. }) => {
                    prop_assert!((1..=86_400).contains(&retry_after_secs));
                }
                Err(ServiceError::GuestHistoryFull { .. }) => prop_assert!(max > 0),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> NewMessage {
        NewMessage {
            role: role.into(),
            content: content.into(),
            timestamp: None,
            tokens: None,
            content_type: None,
            idempotency_key: None,
            tool_call_id: None,
            tool_calls: None,
        }
    }

    #[test]
    fn guest_ids_follow_the_documented_pattern() {
        assert!(validate_guest_id("test-guest-001").is_ok());
        assert!(validate_guest_id(&"a".repeat(128)).is_ok());
        assert!(validate_guest_id(&"a".repeat(129)).is_err());
        assert!(validate_guest_id("").is_err());
        assert!(validate_guest_id("a b").is_err());
        assert!(validate_guest_id("é").is_err());
    }

    #[test]
    fn titles_take_the_first_line_and_cut_long_ones() {
        assert_eq!(title_from("  Hello there\nsecond line"), "Hello there");
        let long = "x".repeat(200);
        assert_eq!(title_from(&long).chars().count(), TITLE_CHARS + 1);
        assert_eq!(first_title(&msg("assistant", "hi")), None);
    }

    #[test]
    fn a_held_id_needs_the_token_of_its_own_conversation() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(check_write_access(None, None).is_ok());
        assert!(check_write_access(Some(a), Some(a)).is_ok());
        assert!(matches!(
            check_write_access(Some(a), None),
            Err(ServiceError::GuestTokenRequired)
        ));
        assert!(matches!(
            check_write_access(Some(b), Some(a)),
            Err(ServiceError::GuestTokenInvalid)
        ));
        assert!(matches!(
            check_write_access(None, Some(a)),
            Err(ServiceError::GuestNotFound)
        ));
    }

    #[test]
    fn the_daily_quota_and_the_history_cap() {
        let now = crate::service::clock::now();
        let limits = GuestLimits {
            messages_per_day: 3,
            max_messages: 10,
        };
        assert_eq!(
            count_message(limits, 0, (None, 0), now).ok(),
            Some((now, 1))
        );
        let start = now - Duration::hours(23);
        assert_eq!(
            count_message(limits, 5, (Some(start), 2), now).ok(),
            Some((start, 3))
        );
        match count_message(limits, 5, (Some(start), 3), now) {
            Err(ServiceError::GuestQuotaExceeded {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 3600),
            other => panic!("expected the quota, got {other:?}"),
        }
        // A day later the window starts again.
        let old = now - Duration::hours(25);
        assert_eq!(
            count_message(limits, 5, (Some(old), 3), now).ok(),
            Some((now, 1))
        );
        assert!(matches!(
            count_message(limits, 10, (None, 0), now),
            Err(ServiceError::GuestHistoryFull { limit: 10 })
        ));
        let unlimited = GuestLimits::default();
        assert!(count_message(unlimited, 1 << 40, (Some(start), 1 << 40), now).is_ok());
        // Found by the property test's inputs: counters at their bounds and windows at the ends
        // of time neither overflow nor wait longer than a day.
        assert!(count_message(unlimited, i64::MAX, (Some(start), i64::MAX), now).is_ok());
        let far = DateTime::<Utc>::MAX_UTC;
        match count_message(limits, 0, (Some(far), 3), now) {
            Err(ServiceError::GuestQuotaExceeded {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 86_400),
            other => panic!("expected the quota, got {other:?}"),
        }
    }

    #[test]
    fn the_expiry_moves_only_when_it_lags_by_more_than_the_slack() {
        let now = crate::service::clock::now();
        let retention = Duration::days(7);
        assert!(expiry_is_stale(None, now, retention));
        assert!(!expiry_is_stale(Some(now + retention), now, retention));
        assert!(!expiry_is_stale(
            Some(now + retention - Duration::minutes(59)),
            now,
            retention
        ));
        assert!(expiry_is_stale(
            Some(now + retention - Duration::minutes(61)),
            now,
            retention
        ));
        // A session's time to live beyond the retention is moved down by a write too.
        assert!(expiry_is_stale(
            Some(now + retention + Duration::minutes(61)),
            now,
            retention
        ));
        // Short retentions (tests) scale the slack down.
        let short = Duration::seconds(3);
        assert!(expiry_is_stale(
            Some(now + Duration::seconds(2)),
            now,
            short
        ));
        assert!(!expiry_is_stale(Some(now + short), now, short));
    }

    #[test]
    fn equal_words_without_a_timestamp_or_key_are_not_a_retry() {
        assert!(retry_key(&msg("user", "ok")).is_none());
    }
}
