//! An account's conversations and messages (the main database). Another user's conversation is
//! "not found": nobody learns that it exists.

use std::sync::Arc;

use entity::{conversations, messages};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use tracing::{instrument, warn};
use uuid::Uuid;

use super::{
    ErrorCode, Page, ServiceError,
    cache_metrics::{CacheMetrics, Layer, Op},
    clock::{now, stored_precision},
    digest::md5_hex,
    embeddings::{Embeddings, Source, Text},
    guest::{
        NewMessage,
        rules::{self, RetryKey},
    },
    page::page_size,
    usage::{ACCOUNT_TIER, UsageCounters},
};
use crate::store::{Store, Write};

/// Fields of a new conversation.
#[derive(Clone, Debug, Default)]
pub struct NewConversation {
    pub title: Option<String>,
    pub description: Option<String>,
    pub agent_type: Option<String>,
    pub model_used: Option<String>,
    pub system_prompt: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i32>,
    pub tags: Vec<String>,
}

/// A message a signed-in user adds: the guest fields plus the model that wrote it.
#[derive(Clone, Debug)]
pub struct NewAccountMessage {
    pub message: NewMessage,
    pub model_used: Option<String>,
}

#[derive(Clone)]
pub struct ConversationService {
    store: Store,
    usage: Arc<UsageCounters>,
    metrics: Arc<CacheMetrics>,
    embeddings: Embeddings,
    max_message_bytes: usize,
}

impl ConversationService {
    pub fn new(
        store: Store,
        usage: Arc<UsageCounters>,
        metrics: Arc<CacheMetrics>,
        embeddings: Embeddings,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            store,
            usage,
            metrics,
            embeddings,
            max_message_bytes,
        }
    }

    #[instrument(skip_all, fields(user_id = %user_id))]
    pub async fn create(
        &self,
        user_id: Uuid,
        new: NewConversation,
    ) -> Result<conversations::Model, ServiceError> {
        if new.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(ServiceError::invalid(
                ErrorCode::InvalidTemperature,
                "temperature must be between 0 and 2",
            ));
        }
        let texts = [
            ("title", &new.title),
            ("description", &new.description),
            ("agent_type", &new.agent_type),
            ("model_used", &new.model_used),
            ("system_prompt", &new.system_prompt),
        ];
        for (field, value) in texts {
            rules::validate_text(field, value.as_deref().unwrap_or_default())?;
        }
        for tag in &new.tags {
            rules::validate_text("tags", tag)?;
        }
        if new.max_tokens.is_some_and(|t| t <= 0) {
            return Err(ServiceError::invalid(
                ErrorCode::InvalidMaxTokens,
                "max_tokens must be positive",
            ));
        }
        let at = now();
        let row = conversations::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            title: Set(new
                .title
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "New conversation".into())),
            description: Set(new.description),
            agent_type: Set(new.agent_type.unwrap_or_else(|| "text-generation".into())),
            model_used: Set(new.model_used),
            system_prompt: Set(new.system_prompt),
            temperature: Set(new.temperature),
            max_tokens: Set(new.max_tokens),
            status: Set("active".into()),
            message_count: Set(0),
            token_count: Set(0),
            is_public: Set(false),
            is_shared: Set(false),
            tags: Set(serde_json::json!(new.tags)),
            last_message_at: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            origin_guest_id: Set(None),
            imported_from: Set(None),
        };
        let created = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    let created = conversations::Entity::insert(row)
                        .exec_with_returning(txn)
                        .await?;
                    Ok::<_, ServiceError>(Write::Commit(created))
                })
            })
            .await?;
        self.usage
            .record(&user_id.to_string(), ACCOUNT_TIER, |_| {});
        Ok(created)
    }

    /// The user's conversations, newest first; `after` is the `next_cursor` of the previous page
    /// (the last id it held).
    pub async fn list(
        &self,
        user_id: Uuid,
        limit: Option<u64>,
        after: Option<Uuid>,
    ) -> Result<Page<conversations::Model>, ServiceError> {
        let limit = page_size(limit)?;
        let mut query = conversations::Entity::find()
            .filter(conversations::Column::UserId.eq(user_id))
            .filter(conversations::Column::Status.ne("deleted"))
            .order_by_desc(conversations::Column::Id)
            .limit(limit + 1);
        if let Some(after) = after {
            query = query.filter(conversations::Column::Id.lt(after));
        }
        let rows = query.all(self.store.conn()).await?;
        Ok(Page::from_rows(rows, limit, |c| c.id.to_string()))
    }

    /// One of the user's conversations, or `ConversationNotFound` (also for other users' ones).
    pub async fn get(&self, user_id: Uuid, id: Uuid) -> Result<conversations::Model, ServiceError> {
        conversations::Entity::find_by_id(id)
            .filter(conversations::Column::UserId.eq(user_id))
            .one(self.store.conn())
            .await?
            .ok_or(ServiceError::ConversationNotFound)
    }

    /// Messages in `message_index` order; `after` is the `next_cursor` of the previous page (the
    /// last index it held).
    pub async fn messages(
        &self,
        user_id: Uuid,
        id: Uuid,
        limit: Option<u64>,
        after: Option<i64>,
    ) -> Result<Page<messages::Model>, ServiceError> {
        self.get(user_id, id).await?;
        let limit = page_size(limit)?;
        let mut query = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(id))
            .order_by_asc(messages::Column::MessageIndex)
            .limit(limit + 1);
        if let Some(after) = after {
            query = query.filter(messages::Column::MessageIndex.gt(after));
        }
        let rows = query.all(self.store.conn()).await?;
        self.usage
            .record(&user_id.to_string(), ACCOUNT_TIER, |_| {});
        Ok(Page::from_rows(rows, limit, |m| {
            m.message_index.to_string()
        }))
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
        let mut attempt = 0;
        loop {
            match self.add_message_once(user_id, id, &msg).await {
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
    ) -> Result<(messages::Model, bool), ServiceError> {
        let owned = msg.clone();
        let started = std::time::Instant::now();
        let written = self
            .store
            .write(move |txn| Box::pin(add_message_in(txn, user_id, id, owned)))
            .await;
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
async fn add_message_in(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    id: Uuid,
    msg: NewAccountMessage,
) -> Result<Write<(messages::Model, bool)>, ServiceError> {
    let at = now();
    let m = msg.message;
    let tokens = i64::from(m.tokens.unwrap_or(0));
    let bumped = conversations::Entity::update_many()
        .col_expr(
            conversations::Column::MessageCount,
            Expr::col(conversations::Column::MessageCount).add(1),
        )
        .col_expr(
            conversations::Column::TokenCount,
            Expr::col(conversations::Column::TokenCount).add(tokens),
        )
        .col_expr(conversations::Column::LastMessageAt, Expr::value(Some(at)))
        .col_expr(conversations::Column::UpdatedAt, Expr::value(at))
        .filter(conversations::Column::Id.eq(id))
        .filter(conversations::Column::UserId.eq(user_id))
        .exec_with_returning(txn)
        .await?;
    let conversation = bumped
        .into_iter()
        .next()
        .ok_or(ServiceError::ConversationNotFound)?;
    if let Some(original) = find_retry(txn, id, &m).await? {
        return Ok(Write::Discard((original, true)));
    }
    let row = messages::Model {
        id: Uuid::now_v7(),
        conversation_id: id,
        user_id,
        content_hash: md5_hex(&m.content),
        role: m.role,
        content: m.content,
        content_type: m.content_type.unwrap_or_else(|| "text".into()),
        message_index: conversation.message_count,
        tokens_used: m.tokens,
        model_used: msg.model_used,
        user_rating: None,
        is_edited: false,
        is_regeneration: false,
        parent_message_id: None,
        flagged: false,
        created_at: at,
        updated_at: at,
        origin_cache_message_id: None,
        client_timestamp: m.timestamp,
        idempotency_key: m.idempotency_key,
    };
    messages::Entity::insert(row.clone().into_active_model())
        .exec_without_returning(txn)
        .await?;
    Ok(Write::Commit((row, false)))
}

/// The stored message this write repeats, if any (see [`rules::repeated`]).
async fn find_retry(
    txn: &DatabaseTransaction,
    id: Uuid,
    msg: &NewMessage,
) -> Result<Option<messages::Model>, ServiceError> {
    let same_conversation = messages::Column::ConversationId.eq(id);
    let probe = match rules::retry_key(msg) {
        None => return Ok(None),
        Some(RetryKey::Key(key)) => Condition::all()
            .add(same_conversation)
            .add(messages::Column::IdempotencyKey.eq(key)),
        Some(RetryKey::Same {
            role,
            content_md5,
            timestamp,
        }) => Condition::all()
            .add(same_conversation)
            .add(messages::Column::Role.eq(role))
            .add(messages::Column::ContentHash.eq(content_md5))
            .add(messages::Column::ClientTimestamp.eq(timestamp)),
    };
    let candidates = messages::Entity::find().filter(probe).all(txn).await?;
    rules::repeated(&candidates, msg)
        .transpose()
        .map(|found| found.cloned())
}
