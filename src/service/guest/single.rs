//! One guest append in its own transaction (PostgreSQL, and the SQLite writer's fallback for what
//! a merged batch leaves to it): claim the id or bump the conversation's counter (which also locks
//! its row), apply the rules, detect a retry, store the message and its ledger row.

use chrono::Duration;
use entity::{cache_content_mapping, message_cache};
use sea_orm::{DatabaseTransaction, EntityTrait, IntoActiveModel};

use super::{
    NewMessage, Stored, rules,
    sql::{
        bump, claim, claiming_write, find_conversation, find_retry, mapping_row, message_row,
        to_cached, unbump,
    },
};
use crate::{
    service::{ServiceError, clock::now},
    store::Write,
};

/// The guest's conversation, its counter bumped (and row locked), or a new one this write claims
/// (`true`). The row can vanish and reappear under a racing erase and re-claim (PostgreSQL, read
/// committed): then the bump is simply tried again, on the row that is there now.
async fn bump_or_claim(
    txn: &DatabaseTransaction,
    guest_id: &str,
    now: chrono::DateTime<chrono::Utc>,
    retention: Duration,
    title: Option<String>,
) -> Result<(entity::conversation_cache::Model, bool), ServiceError> {
    for _ in 0..3 {
        if let Some(found) = bump(txn, guest_id, now, retention, title.clone()).await? {
            return Ok((found, false));
        }
        match find_conversation(txn, guest_id).await? {
            Some(found) => {
                if let Some(conversation_id) = found.main_conversation_id {
                    return Err(ServiceError::GuestMigrated { conversation_id });
                }
                // Re-created since the bump looked (an erase, then a re-claim): bump again.
            }
            // A valid token for an id with no conversation (e.g. after an erase): claim it.
            None => {
                if let Some(created) = claim(txn, guest_id, now, retention, title.clone()).await? {
                    return Ok((created, true));
                }
            }
        }
    }
    Err(ServiceError::GuestNotFound)
}

/// Stores `msg` for `guest_id`. `has_token`: the request carried a token already verified for
/// this id. On `Err` or `Write::Discard` it leaves nothing behind (a bump is undone).
pub(super) async fn append_in(
    txn: &DatabaseTransaction,
    guest_id: String,
    has_token: bool,
    msg: NewMessage,
    retention: Duration,
) -> Result<Write<Stored>, ServiceError> {
    let now = now();
    let title = rules::first_title(&msg);
    let (conversation, claimed) = if has_token {
        bump_or_claim(txn, &guest_id, now, retention, title).await?
    } else {
        // Without a token the only way in is claiming an id nobody holds — or repeating, with
        // its `Idempotency-Key`, the write that claimed it (whose answer, token and all, may
        // have been lost on the way back).
        match claim(txn, &guest_id, now, retention, title).await? {
            Some(created) => (created, true),
            None => {
                if let Some(original) = claiming_write(txn, &guest_id, &msg).await? {
                    return Ok(Write::Discard(Stored {
                        message: original,
                        claimed: true,
                        duplicate: true,
                    }));
                }
                rules::check_write_access(true, has_token)?;
                return Err(ServiceError::Internal(
                    "a held id passed the token rule".into(),
                ));
            }
        }
    };
    if !claimed {
        let retry = find_retry(txn, conversation.id, &msg).await;
        if !matches!(retry, Ok(None)) {
            unbump(txn, conversation.id).await?;
        }
        if let Some(original) = retry? {
            return Ok(Write::Discard(Stored {
                message: original,
                claimed: false,
                duplicate: true,
            }));
        }
    }
    let row = message_row(conversation.id, conversation.message_count, msg, now);
    message_cache::Entity::insert(row.clone().into_active_model())
        .exec_without_returning(txn)
        .await?;
    cache_content_mapping::Entity::insert(mapping_row(&row, guest_id, now))
        .exec_without_returning(txn)
        .await?;
    Ok(Write::Commit(Stored {
        message: to_cached(&row),
        claimed,
        duplicate: false,
    }))
}
