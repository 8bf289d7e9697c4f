//! Where a search looks: every query starts from its owner's rows (`scope`); the FTS5 form of a
//! text query; the best of a scored list.

use std::cmp::Ordering;

use sea_orm::Value;
use uuid::Uuid;

use super::Owner;
use crate::store::Backend;

/// The table and columns of an owner's messages, and the condition that scopes them.
pub(super) struct Scope {
    /// `FROM …` joining the owner's messages as `m`.
    pub(super) from: &'static str,
    pub(super) hash: &'static str,
    pub(super) order: &'static str,
    pub(super) condition: String,
    pub(super) values: Vec<Value>,
    pub(super) guest: bool,
}

/// A user's conversation that is not deleted.
const LIVE: &str = "c.status <> 'deleted'";

pub(super) fn scope(
    backend: Backend,
    owner: &Owner,
    conversation: Option<Uuid>,
    first: usize,
) -> Scope {
    let p = |n: usize| backend.param(first + n);
    match owner {
        Owner::Guest { guest_id, .. } => Scope {
            from: "message_cache m",
            hash: "message_hash",
            order: "sequence",
            // Every conversation of the guest (its first and the ones it started since).
            condition: {
                let all = format!(
                    "m.conversation_id IN (SELECT id FROM conversation_cache WHERE guest_id = {} \
                     OR guest_root = {})",
                    p(0),
                    p(1)
                );
                match conversation {
                    Some(_) => format!("{all} AND m.conversation_id = {}", p(2)),
                    None => all,
                }
            },
            values: [Value::from(guest_id.clone()), Value::from(guest_id.clone())]
                .into_iter()
                .chain(conversation.map(Value::from))
                .collect(),
            guest: true,
        },
        Owner::User(user) => Scope {
            from: "conversations c JOIN messages m ON m.conversation_id = c.id",
            hash: "content_hash",
            order: "message_index",
            condition: match conversation {
                // A deleted conversation is not searched.
                Some(_) => format!("c.user_id = {} AND {LIVE} AND c.id = {}", p(0), p(1)),
                None => format!("c.user_id = {} AND {LIVE}", p(0)),
            },
            values: std::iter::once(Value::from(*user))
                .chain(conversation.map(Value::from))
                .collect(),
            guest: false,
        },
    }
}

/// The words of a text query as an FTS5 expression: each word quoted (no operators reach the
/// engine), all required.
pub(super) fn fts5_query(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The `limit` best (highest score) of `scored`, best first.
pub(super) fn top(mut scored: Vec<(Uuid, f64)>, limit: usize) -> Vec<(Uuid, f64)> {
    let by_score =
        |a: &(Uuid, f64), b: &(Uuid, f64)| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal);
    if scored.len() > limit {
        scored.select_nth_unstable_by(limit, by_score);
        scored.truncate(limit);
    }
    scored.sort_by(by_score);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_queries_reach_fts5_as_quoted_words_only() {
        assert_eq!(
            fts5_query("reset my password").as_deref(),
            Some("\"reset\" \"my\" \"password\"")
        );
        assert_eq!(
            fts5_query("a\" OR x:*").as_deref(),
            Some("\"a\" \"OR\" \"x\"")
        );
        assert_eq!(fts5_query(" -*- "), None);
    }

    #[test]
    fn top_keeps_the_best_in_order() {
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        let scored = ids
            .iter()
            .zip([0.1, 0.9, 0.5, 0.7, 0.2])
            .map(|(i, s)| (*i, s))
            .collect();
        let best = top(scored, 2);
        assert_eq!(best, vec![(ids[1], 0.9), (ids[3], 0.7)]);
    }
}
