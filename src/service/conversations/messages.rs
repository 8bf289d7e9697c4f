//! An account conversation's messages: reading them (pages, the newest, a time range) and adding
//! one at the next `message_index` (a retry answers the original).

use entity::{conversations, messages};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use tracing::{instrument, warn};
use uuid::Uuid;

use super::{ConversationService, NewAccountMessage, batch::AccountItem};
use crate::{
    service::{
        Page, ServiceError,
        cache_metrics::{Layer, Op},
        clock::{now, stored_precision},
        digest::md5_hex,
        embeddings::{Source, Text},
        guest::{
            NewMessage,
            rules::{self, RetryKey},
        },
        page::MessageQuery,
        tokenize::Encoding,
        usage::ACCOUNT_TIER,
    },
    store::Write,
};

/// A message no regeneration has replaced.
pub(crate) fn not_superseded() -> SimpleExpr {
    Expr::cust(
        "NOT EXISTS (SELECT 1 FROM messages r WHERE r.parent_message_id = messages.id \
         AND r.is_regeneration = TRUE)",
    )
}

/// The time a message is listed under.
fn written_at() -> SimpleExpr {
    Expr::cust("COALESCE(messages.client_timestamp, messages.created_at)")
}

/// The messages of `conversation` that `query` asks for.
async fn run(
    query: &MessageQuery,
    db: &DatabaseConnection,
    conversation: Uuid,
) -> Result<Page<messages::Model>, ServiceError> {
    let shape = query.shape()?;
    let mut select = messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(conversation))
        .limit(shape.limit + 1);
    select = if shape.newest_first {
        select.order_by_desc(messages::Column::MessageIndex)
    } else {
        select.order_by_asc(messages::Column::MessageIndex)
    };
    if let Some(before) = shape.before {
        select = select.filter(messages::Column::MessageIndex.lt(before));
    }
    if let Some(after) = shape.after {
        select = select.filter(messages::Column::MessageIndex.gt(after));
    }
    if !query.include_superseded {
        select = select.filter(not_superseded());
    }
    if let Some(since) = query.since {
        select = select.filter(written_at().gte(since));
    }
    if let Some(until) = query.until {
        select = select.filter(written_at().lt(until));
    }
    let rows = select.all(db).await?;
    Ok(query.page(rows, shape.limit, |m| m.message_index))
}

impl ConversationService {
    /// Messages of one of the user's conversations, as `query` asks.
    pub async fn messages(
        &self,
        user_id: Uuid,
        id: Uuid,
        query: MessageQuery,
    ) -> Result<Page<messages::Model>, ServiceError> {
        self.get(user_id, id).await?;
        let page = run(&query, self.store.conn(), id).await?;
        self.usage
            .record(&user_id.to_string(), ACCOUNT_TIER, |_| {});
        Ok(page)
    }

    /// Adds a message at the next `message_index`. A retry (same role, content and timestamp, or
    /// the same `Idempotency-Key`) returns the original with `true`.
    #[instrument(skip_all, fields(user_id = %user_id, conversation_id = %id))]
    pub async fn add_message(
        &self,
        user_id: Uuid,
        id: Uuid,
        mut msg: NewAccountMessage,
    ) -> Result<(messages::Model, bool), ServiceError> {
        rules::validate_message(&msg.message, self.max_message_bytes)?;
        rules::validate_text("model_used", msg.model_used.as_deref().unwrap_or_default())?;
        msg.message.timestamp = msg.message.timestamp.map(stored_precision);
        // Counted here, not in the writer, with the message's model; the conversation's is
        // checked under its lock (`add_message_in`).
        let counted_with = msg
            .message
            .tokens
            .is_none()
            .then(|| Encoding::for_model(msg.model_used.as_deref()));
        if let Some(encoding) = counted_with {
            let m = &msg.message;
            msg.message.tokens = Some(encoding.count_message(&m.content, m.tool_calls.as_deref()));
        }
        let mut attempt = 0;
        loop {
            match self.add_message_once(user_id, id, &msg, counted_with).await {
                Err(ServiceError::Contended(err)) if attempt < 3 => {
                    attempt += 1;
                    warn!(error = %err, attempt, "write conflict; retrying");
                }
                Err(ServiceError::Unavailable(err)) => {
                    self.store.note_error(&err);
                    return Err(ServiceError::Unavailable(err));
                }
                other => return other,
            }
        }
    }

    async fn add_message_once(
        &self,
        user_id: Uuid,
        id: Uuid,
        msg: &NewAccountMessage,
        counted_with: Option<Encoding>,
    ) -> Result<(messages::Model, bool), ServiceError> {
        let owned = msg.clone();
        let started = std::time::Instant::now();
        let item = AccountItem {
            user_id,
            conversation_id: id,
            msg: owned,
            counted_with,
        };
        let written = self.store.write_merged(&self.appends, item).await;
        self.metrics
            .timed(Layer::Main, Op::Write, started, &written);
        let (stored, duplicate) = written?;
        if duplicate {
            return Ok((stored, true));
        }
        self.embeddings
            .enqueue(Source::Main, stored.id, Text::Owned(stored.content.clone()));
        let tokens = i64::from(stored.tokens_used.unwrap_or(0));
        self.usage.record(&user_id.to_string(), ACCOUNT_TIER, |d| {
            d.messages_stored += 1;
            d.tokens += tokens;
        });
        Ok((stored, false))
    }
}

/// One account write inside a transaction (or group-commit savepoint): bump the counter (which
/// locks the row), detect a retry (discarded), insert at the new index.
pub(super) async fn add_message_in(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    id: Uuid,
    mut msg: NewAccountMessage,
    counted_with: Option<Encoding>,
) -> Result<Write<(messages::Model, bool)>, ServiceError> {
    let at = now();
    let tokens = i64::from(msg.message.tokens.unwrap_or(0));
    let bumped = conversations::Entity::update_many()
        .col_expr(
            conversations::Column::MessageCount,
            Expr::col(conversations::Column::MessageCount).add(1),
        )
        .col_expr(
            conversations::Column::LastIndex,
            Expr::col(conversations::Column::LastIndex).add(1),
        )
        .col_expr(
            conversations::Column::TokenCount,
            Expr::col(conversations::Column::TokenCount).add(tokens),
        )
        // Never backwards: a concurrent write that read the clock earlier may commit later.
        .col_expr(
            conversations::Column::LastMessageAt,
            Expr::case(
                Expr::col(conversations::Column::LastMessageAt)
                    .is_null()
                    .or(Expr::col(conversations::Column::LastMessageAt).lt(at)),
                Expr::value(Some(at)),
            )
            .finally(Expr::col(conversations::Column::LastMessageAt))
            .into(),
        )
        .col_expr(conversations::Column::UpdatedAt, Expr::value(at))
        .filter(super::live_one(user_id, id))
        .exec_with_returning(txn)
        .await?;
    let conversation = bumped
        .into_iter()
        .next()
        .ok_or(ServiceError::ConversationNotFound)?;
    if let Some(original) = find_retry(txn, id, &msg.message).await? {
        return Ok(Write::Discard((original, true)));
    }
    if let Some(parent) = msg.parent_message_id {
        let found = messages::Entity::find_by_id(parent)
            .filter(messages::Column::ConversationId.eq(id))
            .one(txn)
            .await?;
        if found.is_none() {
            // Another conversation's message, or none: not found, as every foreign id.
            return Err(ServiceError::MessageNotFound);
        }
    }
    // Counted before the write with the message's model; a message naming none is the
    // conversation's, whose model (read under the lock) may count otherwise (GPT-4/3.5): then
    // count again and correct the sum. Usually nothing to do here.
    let wanted = Encoding::for_model(conversation.model_used.as_deref());
    if counted_with.is_some_and(|used| used != wanted) && msg.model_used.is_none() {
        let counted = wanted.count_message(&msg.message.content, msg.message.tool_calls.as_deref());
        let delta = i64::from(counted) - i64::from(msg.message.tokens.unwrap_or(0));
        conversations::Entity::update_many()
            .col_expr(
                conversations::Column::TokenCount,
                Expr::col(conversations::Column::TokenCount).add(delta),
            )
            .filter(conversations::Column::Id.eq(id))
            .exec(txn)
            .await?;
        msg.message.tokens = Some(counted);
    }
    let row = message_row(user_id, id, conversation.last_index, msg, at);
    messages::Entity::insert(row.clone().into_active_model())
        .exec_without_returning(txn)
        .await?;
    Ok(Write::Commit((row, false)))
}

/// The row of `msg` at `index` in conversation `id`.
pub(super) fn message_row(
    user_id: Uuid,
    id: Uuid,
    index: i64,
    msg: NewAccountMessage,
    at: chrono::DateTime<chrono::Utc>,
) -> messages::Model {
    let m = msg.message;
    messages::Model {
        id: Uuid::now_v7(),
        conversation_id: id,
        user_id,
        content_hash: md5_hex(&m.content),
        role: m.role,
        content: m.content,
        content_type: m.content_type.unwrap_or_else(|| "text".into()),
        message_index: index,
        tokens_used: m.tokens,
        model_used: msg.model_used,
        user_rating: None,
        is_edited: false,
        is_regeneration: msg.is_regeneration,
        parent_message_id: msg.parent_message_id,
        flagged: false,
        created_at: at,
        updated_at: at,
        origin_cache_message_id: None,
        client_timestamp: m.timestamp,
        idempotency_key: m.idempotency_key,
        tool_call_id: m.tool_call_id,
        tool_calls: m.tool_calls,
    }
}

/// The stored messages of conversation `id` that `msg` may repeat (`None`: it cannot repeat
/// one — no retry key, no client timestamp).
pub(super) fn retry_probe(id: Uuid, msg: &NewMessage) -> Option<Condition> {
    let same_conversation = messages::Column::ConversationId.eq(id);
    Some(match rules::retry_key(msg)? {
        RetryKey::Key(key) => Condition::all()
            .add(same_conversation)
            .add(messages::Column::IdempotencyKey.eq(key)),
        RetryKey::Same {
            role,
            content_md5,
            timestamp,
        } => Condition::all()
            .add(same_conversation)
            .add(messages::Column::Role.eq(role))
            .add(messages::Column::ContentHash.eq(content_md5))
            .add(messages::Column::ClientTimestamp.eq(timestamp)),
    })
}

/// The stored message this write repeats, if any (see [`rules::repeated`]).
async fn find_retry(
    txn: &DatabaseTransaction,
    id: Uuid,
    msg: &NewMessage,
) -> Result<Option<messages::Model>, ServiceError> {
    let Some(probe) = retry_probe(id, msg) else {
        return Ok(None);
    };
    let candidates = messages::Entity::find().filter(probe).all(txn).await?;
    rules::repeated(&candidates, msg)
        .transpose()
        .map(|found| found.cloned())
}
