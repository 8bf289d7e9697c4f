//! An account's conversations (the main database): create, list (most recent activity first,
//! filtered by status, tag or title), read, change and soft-delete. Their messages are in
//! `messages.rs`; erasing one for good is `erasure::ErasureService::erase_conversation`. Another
//! user's conversation, or a deleted one, is "not found": nobody learns that it exists.

mod batch;
mod edits;
mod messages;

pub use edits::MessageEdit;
pub(crate) use messages::not_superseded;

use std::sync::Arc;

use entity::conversations;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use tracing::instrument;
use uuid::Uuid;

use super::{
    ErrorCode, Page, ServiceError,
    cache_metrics::CacheMetrics,
    clock::now,
    embeddings::Embeddings,
    guest::{NewMessage, rules},
    page::page_size,
    usage::{ACCOUNT_TIER, UsageCounters},
};
use crate::store::{Backend, MergeLane, Store, Write};
use batch::AccountAppends;

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

/// A change to a conversation: each `Some` field is set. `description` and `system_prompt` may
/// be cleared with `Some(None)`.
#[derive(Clone, Debug, Default)]
pub struct ConversationPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub system_prompt: Option<Option<String>>,
    pub model_used: Option<Option<String>>,
    pub temperature: Option<Option<f64>>,
    pub max_tokens: Option<Option<i32>>,
    pub tags: Option<Vec<String>>,
    /// `active` or `archived`.
    pub status: Option<String>,
    pub is_public: Option<bool>,
    pub is_shared: Option<bool>,
}

/// Which conversations a list shows (deleted ones never).
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// `active` or `archived`; none: both.
    pub status: Option<String>,
    /// Conversations carrying this tag.
    pub tag: Option<String>,
    /// Conversations whose title holds this text (case-insensitive).
    pub q: Option<String>,
}

/// A message a signed-in user adds: the guest fields plus the model that wrote it, and where it
/// sits in the thread.
#[derive(Clone, Debug)]
pub struct NewAccountMessage {
    pub message: NewMessage,
    pub model_used: Option<String>,
    /// The message this one answers, or (a regeneration) replaces; of the same conversation.
    pub parent_message_id: Option<Uuid>,
    /// A new answer replacing `parent_message_id`, which lists then leave out.
    pub is_regeneration: bool,
}

#[derive(Clone)]
pub struct ConversationService {
    store: Store,
    /// Appends, merged in the group commit.
    appends: Arc<MergeLane<AccountAppends>>,
    usage: Arc<UsageCounters>,
    metrics: Arc<CacheMetrics>,
    embeddings: Embeddings,
    max_message_bytes: usize,
}

/// The rules of a conversation's settings, for creating and changing one.
fn check_settings(
    texts: &[(&str, Option<&str>)],
    tags: Option<&[String]>,
    temperature: Option<f64>,
    max_tokens: Option<i32>,
) -> Result<(), ServiceError> {
    if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidTemperature,
            "temperature must be between 0 and 2",
        ));
    }
    for (field, value) in texts {
        rules::validate_text(field, value.unwrap_or_default())?;
    }
    for tag in tags.unwrap_or_default() {
        rules::validate_text("tags", tag)?;
    }
    if max_tokens.is_some_and(|t| t <= 0) {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidMaxTokens,
            "max_tokens must be positive",
        ));
    }
    Ok(())
}

/// The user's conversations that are not deleted: where every read and write of an account
/// conversation starts (a deleted one is gone from lists, reads, writes, exports and search).
pub fn live(user_id: Uuid) -> Condition {
    Condition::all()
        .add(conversations::Column::UserId.eq(user_id))
        .add(conversations::Column::Status.ne("deleted"))
}

/// One of them.
pub fn live_one(user_id: Uuid, id: Uuid) -> Condition {
    live(user_id).add(conversations::Column::Id.eq(id))
}

/// When a conversation was last active: its last message, else its creation.
fn activity() -> SimpleExpr {
    Expr::cust("COALESCE(last_message_at, created_at)")
}

/// A list cursor: the last row's activity time and id (`page::time_cursor`).
fn list_cursor(c: &conversations::Model) -> String {
    super::page::time_cursor(c.last_message_at.unwrap_or(c.created_at), c.id)
}

/// Conversations whose tags hold `tag`.
fn has_tag(backend: Backend, tag: &str) -> SimpleExpr {
    match backend {
        Backend::Sqlite => Expr::cust_with_values(
            "EXISTS (SELECT 1 FROM json_each(conversations.tags) WHERE json_each.value = ?)",
            [tag.to_string()],
        ),
        Backend::Postgres => Expr::cust_with_values(
            "conversations.tags::jsonb @> jsonb_build_array($1::text)",
            [tag.to_string()],
        ),
    }
}

/// Conversations whose title holds `q`, case-insensitively (`%` and `_` are plain text).
fn title_has(backend: Backend, q: &str) -> SimpleExpr {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    match backend {
        Backend::Sqlite => {
            Expr::cust_with_values("conversations.title LIKE ? ESCAPE '\\'", [pattern])
        }
        Backend::Postgres => {
            Expr::cust_with_values("conversations.title ILIKE $1 ESCAPE '\\'", [pattern])
        }
    }
}

impl ConversationService {
    pub fn new(
        store: Store,
        usage: Arc<UsageCounters>,
        metrics: Arc<CacheMetrics>,
        embeddings: Embeddings,
        max_message_bytes: usize,
    ) -> Self {
        let appends = store.merge_lane(AccountAppends {
            backend: store.backend(),
        });
        Self {
            store,
            appends,
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
        check_settings(
            &[
                ("title", new.title.as_deref()),
                ("description", new.description.as_deref()),
                ("agent_type", new.agent_type.as_deref()),
                ("model_used", new.model_used.as_deref()),
                ("system_prompt", new.system_prompt.as_deref()),
            ],
            Some(&new.tags),
            new.temperature,
            new.max_tokens,
        )?;
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
            last_index: Set(0),
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

    /// The user's conversations, most recently active first (last message, else creation);
    /// `cursor` is the `next_cursor` of the previous page.
    pub async fn list(
        &self,
        user_id: Uuid,
        filter: ListFilter,
        limit: Option<u64>,
        cursor: Option<&str>,
    ) -> Result<Page<conversations::Model>, ServiceError> {
        let limit = page_size(limit)?;
        rules::validate_text("tag", filter.tag.as_deref().unwrap_or_default())?;
        rules::validate_text("q", filter.q.as_deref().unwrap_or_default())?;
        let backend = self.store.backend();
        let mut query = conversations::Entity::find()
            .filter(live(user_id))
            .order_by_desc(activity())
            .order_by_desc(conversations::Column::Id)
            .limit(limit + 1);
        if let Some(status) = &filter.status {
            query = query.filter(conversations::Column::Status.eq(status.as_str()));
        }
        if let Some(tag) = &filter.tag {
            query = query.filter(has_tag(backend, tag));
        }
        if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
            query = query.filter(title_has(backend, q));
        }
        if let Some(cursor) = cursor {
            let (at, id) = super::page::parse_time_cursor(cursor)?;
            query = query.filter(
                Condition::any().add(activity().lt(at)).add(
                    Condition::all()
                        .add(activity().eq(at))
                        .add(conversations::Column::Id.lt(id)),
                ),
            );
        }
        let rows = query.all(self.store.conn()).await?;
        Ok(Page::from_rows(rows, limit, list_cursor))
    }

    /// The database, for reads.
    pub(crate) fn db(&self) -> &sea_orm::DatabaseConnection {
        self.store.conn()
    }

    /// One of the user's conversations, or `ConversationNotFound` (also for other users' ones
    /// and deleted ones).
    pub async fn get(&self, user_id: Uuid, id: Uuid) -> Result<conversations::Model, ServiceError> {
        conversations::Entity::find()
            .filter(live_one(user_id, id))
            .one(self.store.conn())
            .await?
            .ok_or(ServiceError::ConversationNotFound)
    }

    /// Changes the set fields of one of the user's conversations; returns it as it now is.
    #[instrument(skip_all, fields(user_id = %user_id, conversation_id = %id))]
    pub async fn update(
        &self,
        user_id: Uuid,
        id: Uuid,
        patch: ConversationPatch,
    ) -> Result<conversations::Model, ServiceError> {
        fn flat(v: &Option<Option<String>>) -> Option<&str> {
            v.as_ref().and_then(|v| v.as_deref())
        }
        check_settings(
            &[
                ("title", patch.title.as_deref()),
                ("description", flat(&patch.description)),
                ("model_used", flat(&patch.model_used)),
                ("system_prompt", flat(&patch.system_prompt)),
            ],
            patch.tags.as_deref(),
            patch.temperature.flatten(),
            patch.max_tokens.flatten(),
        )?;
        if let Some(status) = &patch.status
            && !["active", "archived"].contains(&status.as_str())
        {
            return Err(ServiceError::invalid(
                ErrorCode::Unprocessable,
                "status must be active or archived (DELETE removes a conversation)",
            ));
        }
        let mut update = conversations::Entity::update_many()
            .col_expr(conversations::Column::UpdatedAt, Expr::value(now()));
        if let Some(title) = patch.title.filter(|t| !t.trim().is_empty()) {
            update = update.col_expr(conversations::Column::Title, Expr::value(title));
        }
        if let Some(v) = patch.description {
            update = update.col_expr(conversations::Column::Description, Expr::value(v));
        }
        if let Some(v) = patch.system_prompt {
            update = update.col_expr(conversations::Column::SystemPrompt, Expr::value(v));
        }
        if let Some(v) = patch.model_used {
            update = update.col_expr(conversations::Column::ModelUsed, Expr::value(v));
        }
        if let Some(v) = patch.temperature {
            update = update.col_expr(conversations::Column::Temperature, Expr::value(v));
        }
        if let Some(v) = patch.max_tokens {
            update = update.col_expr(conversations::Column::MaxTokens, Expr::value(v));
        }
        if let Some(tags) = patch.tags {
            update = update.col_expr(
                conversations::Column::Tags,
                Expr::value(serde_json::json!(tags)),
            );
        }
        if let Some(v) = patch.status {
            update = update.col_expr(conversations::Column::Status, Expr::value(v));
        }
        if let Some(v) = patch.is_public {
            update = update.col_expr(conversations::Column::IsPublic, Expr::value(v));
        }
        if let Some(v) = patch.is_shared {
            update = update.col_expr(conversations::Column::IsShared, Expr::value(v));
        }
        let update = update.filter(live_one(user_id, id));
        self.store
            .write(move |txn| {
                Box::pin(async move {
                    let changed = update.exec_with_returning(txn).await?;
                    let row = changed
                        .into_iter()
                        .next()
                        .ok_or(ServiceError::ConversationNotFound)?;
                    Ok::<_, ServiceError>(Write::Commit(row))
                })
            })
            .await
    }

    /// Marks one of the user's conversations deleted: it leaves lists, reads and writes; its
    /// rows stay until it is erased (`?hard=true`, or erasing the account).
    #[instrument(skip_all, fields(user_id = %user_id, conversation_id = %id))]
    pub async fn delete(&self, user_id: Uuid, id: Uuid) -> Result<(), ServiceError> {
        self.store
            .write(move |txn| {
                Box::pin(async move {
                    let done = conversations::Entity::update_many()
                        .col_expr(conversations::Column::Status, Expr::value("deleted"))
                        .col_expr(conversations::Column::UpdatedAt, Expr::value(now()))
                        .filter(live_one(user_id, id))
                        .exec(txn)
                        .await?;
                    if done.rows_affected == 0 {
                        return Err(ServiceError::ConversationNotFound);
                    }
                    Ok::<_, ServiceError>(Write::Commit(()))
                })
            })
            .await
    }
}
