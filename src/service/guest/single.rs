//! One guest append in its own transaction (PostgreSQL, and the SQLite writer's fallback for what
//! a merged batch leaves to it): claim the id or bump the conversation's counter (which also locks
//! its row), apply the rules, detect a retry, store the message and its ledger row.

use chrono::Duration;
use entity::{cache_content_mapping, message_cache};
use sea_orm::{DatabaseTransaction, EntityTrait, IntoActiveModel};

use uuid::Uuid;

use super::{
    NewMessage, Stored,
    batch::GuestAppends,
    rules,
    sql::{
        bump, claim, claiming_write, count_day, find_conversation, find_retry, mapping_row,
        message_row, to_cached, unbump,
    },
    threads::guest_of_key,
};
use crate::{
    service::{ServiceError, clock::now},
    store::Write,
};

/// The holder's conversation, its counter bumped (and row locked). Refused when the id's
/// conversation is not the one the token was checked for (erased, or erased and re-claimed).
async fn bump_as_holder(
    txn: &DatabaseTransaction,
    guest_id: &str,
    holder: Uuid,
    now: chrono::DateTime<chrono::Utc>,
    retention: Duration,
    title: Option<String>,
) -> Result<entity::conversation_cache::Model, ServiceError> {
    if let Some(found) = bump(txn, guest_id, now, retention, title).await? {
        // On `Err` the transaction (or savepoint) is rolled back, the bump with it.
        rules::check_write_access(Some(found.id), Some(holder))?;
        return Ok(found);
    }
    let found = find_conversation(txn, guest_id).await?;
    rules::check_write_access(found.as_ref().map(|c| c.id), Some(holder))?;
    match found.and_then(|c| c.main_conversation_id) {
        Some(conversation_id) => Err(ServiceError::GuestMigrated { conversation_id }),
        // Not bumped, yet open and the holder's: only a concurrent change explains it; the
        // write is tried again as a whole.
        None => Err(ServiceError::RolledBack),
    }
}

/// Stores `msg` for `guest_id`. `holder`: the conversation the request's token was verified
/// for (none: the write may only claim the id). On `Err` or `Write::Discard` it leaves nothing
/// behind (a bump is undone).
pub(super) async fn append_in(
    txn: &DatabaseTransaction,
    guest_id: String,
    holder: Option<Uuid>,
    msg: NewMessage,
    rules: &GuestAppends,
) -> Result<Write<Stored>, ServiceError> {
    let now = now();
    let (retention, limits) = (rules.retention, rules.limits);
    let title = rules::first_title(&msg);
    // A further conversation's messages count in the guest's day: its first conversation is
    // counted (and locked) first, in the order a migration locks them.
    let guest_day = match guest_of_key(&guest_id) {
        Some(guest) if holder.is_some() => Some(count_day(txn, guest, now, retention).await?),
        _ => None,
    };
    let (conversation, claimed) = if let Some(holder) = holder {
        let bumped = bump_as_holder(txn, &guest_id, holder, now, retention, title).await?;
        (bumped, false)
    } else {
        // Without a token the only way in is claiming an id nobody holds — or repeating, with
        // its `Idempotency-Key`, the write that claimed it (whose answer, token and all, may
        // have been lost on the way back).
        match claim(txn, &guest_id, now, retention, title).await? {
            Some(created) => (created, true),
            None => {
                if let Some((original, salt)) = claiming_write(txn, &guest_id, &msg).await? {
                    return Ok(Write::Discard(Stored {
                        message: original,
                        claimed: true,
                        duplicate: true,
                        salt,
                    }));
                }
                return Err(ServiceError::GuestTokenRequired);
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
                salt: None,
            }));
        }
        // The counters as they were before the bump, through the one quota rule. A further
        // conversation's messages count against the guest's day, kept on its first one.
        let day = guest_day.unwrap_or((conversation.day_started_at, conversation.day_messages));
        let before = (day.0, day.1.saturating_sub(1));
        rules::count_message(limits, conversation.message_count - 1, before, now)?;
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
        salt: if claimed {
            conversation.token_salt
        } else {
            None
        },
    }))
}
