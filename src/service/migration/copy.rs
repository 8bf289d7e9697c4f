//! One guest conversation copied into the account (conversation row, messages in sequence order,
//! ledger marked synced), the guest's cache rows closed, and the copies verified — the parts of
//! the migration transaction that run once per conversation a guest holds.

use chrono::{DateTime, Utc};
use entity::{cache_content_mapping, conversation_cache, conversations, message_cache, messages};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QueryTrait, UpdateMany,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

use crate::{
    service::{ServiceError, checksum, digest::sha256_hex},
    store::Backend,
};

/// A conversation copied into the account.
pub(super) struct Copied {
    /// The account's new conversation.
    pub conversation_id: Uuid,
    /// The guest's cache conversation it came from, and its hot-cache key.
    pub cache_id: Uuid,
    pub cache_key: String,
    /// `(sequence, content md5)` of its messages, in order.
    pub lines: Vec<(i64, String)>,
}

/// Copies `cached` and its messages into a new conversation of `user_id`; `None` (and nothing
/// written) when it holds no message.
pub(super) async fn copy_one(
    txn: &DatabaseTransaction,
    backend: Backend,
    user_id: Uuid,
    cached: &conversation_cache::Model,
    at: DateTime<Utc>,
) -> Result<Option<Copied>, ServiceError> {
    let rows = message_cache::Entity::find()
        .filter(message_cache::Column::ConversationId.eq(cached.id))
        .order_by_asc(message_cache::Column::Sequence)
        .all(txn)
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let conversation_id = Uuid::now_v7();
    let tokens: i64 = rows.iter().map(|m| i64::from(m.tokens.unwrap_or(0))).sum();
    let db = txn.get_database_backend();
    // The writes go together (one call on SQLite: one round trip instead of one each).
    let mut writes = vec![
        conversations::Entity::insert(conversations::ActiveModel {
            id: Set(conversation_id),
            user_id: Set(user_id),
            title: Set(cached
                .title
                .clone()
                .unwrap_or_else(|| "Guest conversation".into())),
            description: Set(None),
            agent_type: Set("text-generation".into()),
            model_used: Set(None),
            system_prompt: Set(None),
            temperature: Set(None),
            max_tokens: Set(None),
            status: Set("active".into()),
            message_count: Set(rows.len() as i64),
            last_index: Set(rows.last().map_or(0, |m| m.sequence)),
            token_count: Set(tokens),
            is_public: Set(false),
            is_shared: Set(false),
            tags: Set(serde_json::json!([])),
            last_message_at: Set(rows.last().map(|m| m.created_at)),
            created_at: Set(cached.created_at),
            updated_at: Set(at),
            // The guest's id for its first conversation; `{guest_id}~{conversation}` for one it
            // started later (unique: each cache conversation moves once).
            origin_guest_id: Set(Some(cached.guest_id.clone())),
            imported_from: Set(None),
        })
        .build(db),
    ];
    // The account's message keeps the id the guest was given: retries and links still work.
    for chunk in rows.chunks(200) {
        let copies = messages::Entity::insert_many(chunk.iter().map(|m| messages::ActiveModel {
            id: Set(m.id),
            conversation_id: Set(conversation_id),
            user_id: Set(user_id),
            role: Set(m.role.clone()),
            content: Set(m.content.clone()),
            content_type: Set(m.content_type.clone()),
            message_index: Set(m.sequence),
            tokens_used: Set(m.tokens),
            model_used: Set(None),
            user_rating: Set(None),
            is_edited: Set(m.is_edited),
            is_regeneration: Set(false),
            parent_message_id: Set(None),
            flagged: Set(false),
            created_at: Set(m.created_at),
            updated_at: Set(at),
            content_hash: Set(m.message_hash.clone()),
            origin_cache_message_id: Set(Some(m.id)),
            client_timestamp: Set(m.client_timestamp),
            idempotency_key: Set(m.idempotency_key.clone()),
            tool_call_id: Set(m.tool_call_id.clone()),
            tool_calls: Set(m.tool_calls.clone()),
        }));
        writes.push(copies.build(db));
    }
    let user = user_id.to_string();
    let cache_ids = Query::select()
        .column(message_cache::Column::Id)
        .from(message_cache::Entity)
        .and_where(Expr::col(message_cache::Column::ConversationId).eq(cached.id))
        .to_owned();
    let synced = cache_content_mapping::Entity::update_many()
        .col_expr(
            cache_content_mapping::Column::MainId,
            Expr::col(cache_content_mapping::Column::CacheId),
        )
        .col_expr(cache_content_mapping::Column::IsSynced, Expr::value(true))
        .col_expr(
            cache_content_mapping::Column::SyncedAt,
            Expr::value(Some(at)),
        )
        .col_expr(cache_content_mapping::Column::UserId, Expr::value(user))
        .filter(cache_content_mapping::Column::CacheType.eq("message"))
        .filter(cache_content_mapping::Column::CacheId.in_subquery(cache_ids));
    writes.push(synced.build(db));
    writes.push(reown(cached.id, user_id, conversation_id, at).build(db));
    backend.execute_all(txn, writes).await?;
    Ok(Some(Copied {
        conversation_id,
        cache_id: cached.id,
        cache_key: cached.guest_id.clone(),
        lines: rows
            .into_iter()
            .map(|m| (m.sequence, m.message_hash))
            .collect(),
    }))
}

/// The cache conversation `id` now belongs to the user and points at its copy.
fn reown(
    id: Uuid,
    user_id: Uuid,
    main: Uuid,
    at: DateTime<Utc>,
) -> UpdateMany<conversation_cache::Entity> {
    let user = user_id.to_string();
    conversation_cache::Entity::update_many()
        .col_expr(
            conversation_cache::Column::UserId,
            Expr::value(user.clone()),
        )
        .col_expr(
            conversation_cache::Column::Platform,
            Expr::value("authenticated"),
        )
        .col_expr(
            conversation_cache::Column::ConversationHash,
            Expr::value(sha256_hex(&user)),
        )
        .col_expr(
            conversation_cache::Column::MainConversationId,
            Expr::value(Some(main)),
        )
        .col_expr(conversation_cache::Column::AccessedAt, Expr::value(at))
        .filter(conversation_cache::Column::Id.eq(id))
}

/// After the copies: the guest's record (its first conversation, `moving[0]`) is closed even
/// when it held nothing itself — it points at the first copy — and conversations that held
/// nothing are deleted.
pub(super) async fn close_guest(
    txn: &DatabaseTransaction,
    moving: &[conversation_cache::Model],
    copied: &[Copied],
    user_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let is_copied = |id: Uuid| copied.iter().any(|c| c.cache_id == id);
    let (Some(record), Some(first)) = (moving.first(), copied.first()) else {
        return Ok(());
    };
    if !is_copied(record.id) {
        reown(record.id, user_id, first.conversation_id, at)
            .exec(txn)
            .await?;
    }
    let empty: Vec<Uuid> = moving[1..]
        .iter()
        .map(|c| c.id)
        .filter(|id| !is_copied(*id))
        .collect();
    if !empty.is_empty() {
        conversation_cache::Entity::delete_many()
            .filter(conversation_cache::Column::Id.is_in(empty))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Checks the copies against the main tables before commit: every message there, in order, with
/// its content. Returns the migration's checksum (over its conversations in id order, as
/// [`checksum::of_migrated`] reads them) and message count.
pub(super) async fn verify(
    txn: &DatabaseTransaction,
    copied: &[Copied],
) -> Result<(String, i64), ServiceError> {
    let mut ordered: Vec<&Copied> = copied.iter().collect();
    ordered.sort_by_key(|c| c.conversation_id);
    let lines = ordered
        .iter()
        .flat_map(|c| c.lines.iter().map(|(i, h)| (*i, h.as_str())));
    let expected = checksum::checksum(lines);
    let expected_count: i64 = copied.iter().map(|c| c.lines.len() as i64).sum();
    let ids = ordered.iter().map(|c| c.conversation_id).collect();
    let (count, got) = checksum::of_migrated(txn, ids).await?;
    if count != expected_count || got != expected {
        return Err(ServiceError::Internal(format!(
            "verification failed: {count} of {expected_count} messages, checksum {got} != {expected}"
        )));
    }
    Ok((expected, count))
}
