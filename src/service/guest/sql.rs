//! The SQL a guest write is made of: rows as they are stored (conversation, message, ledger), and
//! the statements both append paths and erasure use (claim, bump, unbump, find, erase, retry
//! lookup). The rules they apply come from [`super::rules`].

use chrono::{DateTime, Duration, Utc};
use entity::{cache_content_mapping, conversation_cache, message_cache, usage_metrics};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect,
    sea_query::{CaseStatement, Expr, ExprTrait, Func, OnConflict, Query, SimpleExpr},
};
use uuid::Uuid;

use super::{
    NewMessage,
    rules::{self, RetryKey},
};
use crate::{
    hot::CachedMessage,
    service::{
        ServiceError,
        clock::rfc3339,
        digest::{md5_hex, sha256_hex},
        embeddings,
        tokens::new_salt,
    },
    store::Write,
};

const MIGRATION_VERSION: &str = "1.0";

/// A guest's new conversation as it will be stored, kept until `expires_at`, with a new token
/// salt; its `message_count` messages count towards today's quota.
pub(super) fn new_conversation(
    guest_id: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    message_count: i64,
    title: Option<String>,
) -> conversation_cache::Model {
    conversation_cache::Model {
        id: Uuid::now_v7(),
        user_id: guest_id.to_string(),
        platform: "guest".into(),
        title,
        conversation_hash: sha256_hex(guest_id),
        message_count,
        migration_version: MIGRATION_VERSION.into(),
        created_at: now,
        accessed_at: now,
        expires_at: Some(expires_at),
        guest_id: guest_id.to_string(),
        main_conversation_id: None,
        token_salt: Some(new_salt()),
        day_started_at: (message_count > 0).then_some(now),
        day_messages: message_count,
        guest_root: None,
        latest_conversation_id: None,
    }
}

/// The `message_cache` row for `msg` at `sequence`.
pub(super) fn message_row(
    conversation_id: Uuid,
    sequence: i64,
    msg: NewMessage,
    now: DateTime<Utc>,
) -> message_cache::Model {
    message_cache::Model {
        id: Uuid::now_v7(),
        conversation_id,
        role: msg.role,
        message_hash: md5_hex(&msg.content),
        content: msg.content,
        tokens: msg.tokens,
        sequence,
        is_edited: false,
        quality_score: None,
        migration_version: MIGRATION_VERSION.into(),
        client_timestamp: msg.timestamp,
        created_at: now,
        updated_at: now,
        content_type: msg.content_type.unwrap_or_else(|| "text".into()),
        idempotency_key: msg.idempotency_key,
        tool_call_id: msg.tool_call_id,
        tool_calls: msg.tool_calls,
    }
}

/// The ledger row recording that `row` is in the cache tables and not yet in the main ones.
pub(super) fn mapping_row(
    row: &message_cache::Model,
    guest_id: String,
    now: DateTime<Utc>,
) -> cache_content_mapping::ActiveModel {
    cache_content_mapping::ActiveModel {
        id: Set(Uuid::now_v7()),
        cache_type: Set("message".into()),
        cache_id: Set(row.id),
        user_id: Set(guest_id),
        content_hash: Set(row.message_hash.clone()),
        main_id: Set(None),
        is_synced: Set(false),
        synced_at: Set(None),
        created_at: Set(now),
    }
}

/// A stored row as the hot cache and the API see it.
pub(super) fn to_cached(row: &message_cache::Model) -> CachedMessage {
    CachedMessage {
        id: row.id,
        conversation_id: row.conversation_id,
        sequence: row.sequence,
        role: row.role.clone(),
        content: row.content.clone(),
        timestamp: rfc3339(row.client_timestamp.unwrap_or(row.created_at)),
        content_type: row.content_type.clone(),
        tokens: row.tokens,
        created_at: rfc3339(row.created_at),
        tool_call_id: row.tool_call_id.clone(),
        tool_calls: row.tool_calls.clone(),
    }
}

/// Creates the guest's conversation holding its first message; `None` if the id is taken.
pub(super) async fn claim(
    txn: &DatabaseTransaction,
    guest_id: &str,
    now: DateTime<Utc>,
    retention: Duration,
    title: Option<String>,
) -> Result<Option<conversation_cache::Model>, ServiceError> {
    let expires_at = rules::expiry(now, retention);
    let row = new_conversation(guest_id, now, expires_at, 1, title).into_active_model();
    let inserted = conversation_cache::Entity::insert(row)
        .on_conflict(
            OnConflict::column(conversation_cache::Column::GuestId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    find_conversation(txn, guest_id).await
}

/// `ExpiresAt` as an access at `now` leaves it: moved only when [`rules::expiry_is_stale`].
pub(super) fn moved_expiry(now: DateTime<Utc>, retention: Duration) -> SimpleExpr {
    let column = || Expr::col(conversation_cache::Column::ExpiresAt);
    let (floor, ceiling) = rules::expiry_window(now, retention);
    CaseStatement::new()
        .case(
            column()
                .is_null()
                .or(column().lt(floor))
                .or(column().gt(ceiling)),
            Expr::value(Some(rules::expiry(now, retention))),
        )
        .finally(column())
        .into()
}

/// Records a read of the guest at `now`: access time, and the expiry of a guest that holds
/// messages (a never-written session keeps its own time to live).
pub(super) async fn touch(
    txn: &DatabaseTransaction,
    guest_id: &str,
    now: DateTime<Utc>,
    retention: Duration,
) -> Result<(), ServiceError> {
    let expiry = CaseStatement::new()
        .case(
            Expr::col(conversation_cache::Column::MessageCount)
                .gt(0)
                .or(Expr::col(conversation_cache::Column::LatestConversationId).is_not_null()),
            moved_expiry(now, retention),
        )
        .finally(Expr::col(conversation_cache::Column::ExpiresAt));
    conversation_cache::Entity::update_many()
        .col_expr(conversation_cache::Column::AccessedAt, Expr::value(now))
        .col_expr(conversation_cache::Column::ExpiresAt, expiry.into())
        .filter(conversation_cache::Column::GuestId.eq(guest_id))
        .filter(conversation_cache::Column::MainConversationId.is_null())
        .exec(txn)
        .await?;
    Ok(())
}

/// `message_count + 1` (and access time, expiry, first title) on the guest's open conversation,
/// returning the row as it is now (which also locks it); `None` when the guest has no open
/// conversation (none yet, or migrated).
pub(super) async fn bump(
    txn: &DatabaseTransaction,
    guest_id: &str,
    now: DateTime<Utc>,
    retention: Duration,
    title: Option<String>,
) -> Result<Option<conversation_cache::Model>, ServiceError> {
    let mut update = conversation_cache::Entity::update_many()
        .col_expr(
            conversation_cache::Column::MessageCount,
            Expr::col(conversation_cache::Column::MessageCount).add(1),
        )
        .col_expr(conversation_cache::Column::AccessedAt, Expr::value(now))
        .col_expr(
            conversation_cache::Column::ExpiresAt,
            moved_expiry(now, retention),
        );
    let (day_messages, day_started_at) = counted_day(now);
    update = update
        .col_expr(conversation_cache::Column::DayMessages, day_messages)
        .col_expr(conversation_cache::Column::DayStartedAt, day_started_at);
    if let Some(title) = title {
        update = update.col_expr(
            conversation_cache::Column::Title,
            Func::coalesce([
                Expr::col(conversation_cache::Column::Title),
                Expr::value(title),
            ])
            .into(),
        );
    }
    let rows = update
        .filter(conversation_cache::Column::GuestId.eq(guest_id))
        .filter(conversation_cache::Column::MainConversationId.is_null())
        .exec_with_returning(txn)
        .await?;
    Ok(rows.into_iter().next())
}

/// Undoes [`bump`]'s counter step (a retry or a refused write stores nothing).
/// `(day_messages, day_started_at)` after one more message at `now`: counted in the open day
/// window, or a new window from `now` ([`rules::day_is_open`], in SQL).
pub(super) fn counted_day(now: DateTime<Utc>) -> (SimpleExpr, SimpleExpr) {
    let started = || Expr::col(conversation_cache::Column::DayStartedAt);
    let open = || {
        started()
            .is_not_null()
            .and(started().gt(now - rules::QUOTA_DAY))
    };
    let messages = CaseStatement::new()
        .case(
            open(),
            Expr::col(conversation_cache::Column::DayMessages).add(1),
        )
        .finally(Expr::value(1i64));
    let start = CaseStatement::new()
        .case(open(), started())
        .finally(Expr::value(Some(now)));
    (messages.into(), start.into())
}

/// One more message in the day of `guest_id` (its first conversation, which also stays alive):
/// the day's `(start, messages)` after it. The guest's row is locked until the transaction ends.
pub(super) async fn count_day(
    txn: &DatabaseTransaction,
    guest_id: &str,
    now: DateTime<Utc>,
    retention: Duration,
) -> Result<(Option<DateTime<Utc>>, i64), ServiceError> {
    let (day_messages, day_started_at) = counted_day(now);
    let rows = conversation_cache::Entity::update_many()
        .col_expr(conversation_cache::Column::DayMessages, day_messages)
        .col_expr(conversation_cache::Column::DayStartedAt, day_started_at)
        .col_expr(conversation_cache::Column::AccessedAt, Expr::value(now))
        .col_expr(
            conversation_cache::Column::ExpiresAt,
            moved_expiry(now, retention),
        )
        .filter(conversation_cache::Column::GuestId.eq(guest_id))
        .filter(conversation_cache::Column::MainConversationId.is_null())
        .exec_with_returning(txn)
        .await?;
    if let Some(guest) = rows.into_iter().next() {
        return Ok((guest.day_started_at, guest.day_messages));
    }
    Err(match find_conversation(txn, guest_id).await? {
        Some(c) => match c.main_conversation_id {
            Some(conversation_id) => ServiceError::GuestMigrated { conversation_id },
            None => ServiceError::RolledBack,
        },
        None => ServiceError::GuestNotFound,
    })
}

pub(super) async fn unbump(
    txn: &DatabaseTransaction,
    conversation_id: Uuid,
) -> Result<(), ServiceError> {
    conversation_cache::Entity::update_many()
        .col_expr(
            conversation_cache::Column::MessageCount,
            Expr::col(conversation_cache::Column::MessageCount).sub(1),
        )
        .col_expr(
            conversation_cache::Column::DayMessages,
            Expr::col(conversation_cache::Column::DayMessages).sub(1),
        )
        .filter(conversation_cache::Column::Id.eq(conversation_id))
        .exec(txn)
        .await?;
    Ok(())
}

pub(super) async fn find_conversation<C: ConnectionTrait>(
    db: &C,
    guest_id: &str,
) -> Result<Option<conversation_cache::Model>, ServiceError> {
    Ok(conversation_cache::Entity::find()
        .filter(conversation_cache::Column::GuestId.eq(guest_id))
        .one(db)
        .await?)
}

/// The stored messages of `conversation_id` that `msg` could repeat, as a filter; `None` when it
/// cannot repeat any (see [`rules::retry_key`]).
pub(super) fn retry_probe(conversation_id: Uuid, msg: &NewMessage) -> Option<Condition> {
    let same_conversation = message_cache::Column::ConversationId.eq(conversation_id);
    Some(match rules::retry_key(msg)? {
        RetryKey::Key(key) => Condition::all()
            .add(same_conversation)
            .add(message_cache::Column::IdempotencyKey.eq(key)),
        RetryKey::Same {
            role,
            content_md5,
            timestamp,
        } => Condition::all()
            .add(same_conversation)
            .add(message_cache::Column::Role.eq(role))
            .add(message_cache::Column::MessageHash.eq(content_md5))
            .add(message_cache::Column::ClientTimestamp.eq(timestamp)),
    })
}

/// The stored message this write repeats, if any (see [`rules::repeated`]).
pub(super) async fn find_retry(
    txn: &DatabaseTransaction,
    conversation_id: Uuid,
    msg: &NewMessage,
) -> Result<Option<CachedMessage>, ServiceError> {
    let Some(probe) = retry_probe(conversation_id, msg) else {
        return Ok(None);
    };
    let candidates = message_cache::Entity::find().filter(probe).all(txn).await?;
    rules::repeated(&candidates, msg)
        .transpose()
        .map(|found| found.map(to_cached))
}

/// The message that claimed `guest_id` (its first), when `msg` repeats it with the same
/// `Idempotency-Key`, role and content; never for a migrated guest.
pub(super) async fn claiming_write(
    txn: &DatabaseTransaction,
    guest_id: &str,
    msg: &NewMessage,
) -> Result<Option<(CachedMessage, Option<String>)>, ServiceError> {
    let Some(key) = &msg.idempotency_key else {
        return Ok(None);
    };
    let Some(conversation) = find_conversation(txn, guest_id).await? else {
        return Ok(None);
    };
    if conversation.main_conversation_id.is_some() {
        return Ok(None);
    }
    let first = message_cache::Entity::find()
        .filter(message_cache::Column::ConversationId.eq(conversation.id))
        .filter(message_cache::Column::Sequence.eq(1))
        .one(txn)
        .await?;
    Ok(first
        .filter(|m| {
            m.idempotency_key.as_deref() == Some(key.as_str())
                && m.role == msg.role
                && m.content == msg.content
        })
        .map(|m| (to_cached(&m), conversation.token_salt)))
}

/// Deletes the guest's ledger rows, messages, conversation and counters.
/// Returns the erased conversation's id.
pub(super) async fn erase_in(
    txn: &DatabaseTransaction,
    guest_id: String,
    holder: Uuid,
) -> Result<Write<(Uuid, Vec<(Uuid, String)>)>, ServiceError> {
    let conversation = find_conversation(txn, &guest_id)
        .await?
        .ok_or(ServiceError::GuestNotFound)?;
    // Erased and re-claimed since the token was checked: not the token's conversation.
    rules::check_write_access(Some(conversation.id), Some(holder))?;
    if let Some(conversation_id) = conversation.main_conversation_id {
        return Err(ServiceError::GuestMigrated { conversation_id });
    }
    // The guest's further conversations go with it.
    let further: Vec<(Uuid, String)> = conversation_cache::Entity::find()
        .select_only()
        .column(conversation_cache::Column::Id)
        .column(conversation_cache::Column::GuestId)
        .filter(conversation_cache::Column::GuestRoot.eq(guest_id.as_str()))
        .into_tuple()
        .all(txn)
        .await?;
    let mut ids = vec![conversation.id];
    ids.extend(further.iter().map(|(id, _)| *id));
    let mut hashes = Vec::new();
    for id in &ids {
        hashes.extend(embeddings::sql::hashes_of_conversation(txn, *id).await?);
    }
    let message_ids = Query::select()
        .column(message_cache::Column::Id)
        .from(message_cache::Entity)
        .and_where(Expr::col(message_cache::Column::ConversationId).is_in(ids.clone()))
        .to_owned();
    cache_content_mapping::Entity::delete_many()
        .filter(cache_content_mapping::Column::CacheType.eq("message"))
        .filter(cache_content_mapping::Column::CacheId.in_subquery(message_ids))
        .exec(txn)
        .await?;
    message_cache::Entity::delete_many()
        .filter(message_cache::Column::ConversationId.is_in(ids.clone()))
        .exec(txn)
        .await?;
    conversation_cache::Entity::delete_many()
        .filter(conversation_cache::Column::Id.is_in(ids))
        .exec(txn)
        .await?;
    usage_metrics::Entity::delete_many()
        .filter(usage_metrics::Column::UserId.eq(guest_id.as_str()))
        .exec(txn)
        .await?;
    embeddings::sql::forget_unreferenced(txn, hashes).await?;
    Ok(Write::Commit((conversation.id, further)))
}
