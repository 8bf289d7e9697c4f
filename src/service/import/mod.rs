//! Bringing conversations in: a `genesis.export` document (`genesis.rs`) or a ChatGPT data
//! export's `conversations.json` (`chatgpt.rs`), read into one neutral shape, checked whole, then
//! written in one transaction — a bad file imports nothing and its answer names the JSON path of
//! the first problem. A conversation already imported by the user (same source) is skipped.

mod chatgpt;
mod genesis;
mod json;

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{conversations, messages};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter,
};
use serde_json::Value;
use tracing::instrument;
use uuid::Uuid;

use self::json::At;
use super::{
    ErrorCode, ServiceError,
    clock::now,
    digest::md5_hex,
    embeddings::{Embeddings, Source, Text},
    guest::{NewMessage, rules},
    usage::{ACCOUNT_TIER, UsageCounters},
};
use crate::store::{Store, Write};

/// Rows per multi-row insert (far below SQLite's and PostgreSQL's bind-parameter limits).
const ROWS_PER_INSERT: usize = 500;

/// A conversation read from a file, checked, not yet stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    /// Where it came from (`genesis:{id}`, `chatgpt:{id}`): a second import of it is skipped.
    pub source: String,
    /// For a `genesis.export` conversation: its id, skipped when the user still owns it.
    pub original_id: Option<Uuid>,
    pub title: String,
    pub description: Option<String>,
    pub agent_type: String,
    pub model_used: Option<String>,
    pub system_prompt: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i32>,
    /// `active` or `archived`.
    pub status: String,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// In order; they get `message_index` 1, 2, …
    pub messages: Vec<IncomingMessage>,
}

/// A message read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingMessage {
    pub role: String,
    pub content: String,
    pub content_type: String,
    /// When it was written (kept as the message's client timestamp).
    pub timestamp: DateTime<Utc>,
    pub tokens_used: Option<i32>,
    pub model_used: Option<String>,
    pub user_rating: Option<i16>,
    pub is_edited: bool,
    pub is_regeneration: bool,
    pub flagged: bool,
    pub tool_call_id: Option<String>,
    /// A JSON array, as text.
    pub tool_calls: Option<String>,
}

impl Incoming {
    /// The conversation's own text follows the rules of stored text.
    fn check_text(&self, at: &At) -> Result<(), ServiceError> {
        for (field, value) in [
            ("title", Some(&self.title)),
            ("description", self.description.as_ref()),
            ("agent_type", Some(&self.agent_type)),
            ("model_used", self.model_used.as_ref()),
            ("system_prompt", self.system_prompt.as_ref()),
        ] {
            if let Some(value) = value {
                rules::validate_text(field, value).map_err(|e| at.key(field).explain(e))?;
            }
        }
        for (i, tag) in self.tags.iter().enumerate() {
            rules::validate_text("tags", tag).map_err(|e| at.key("tags").index(i).explain(e))?;
        }
        Ok(())
    }
}

impl IncomingMessage {
    /// The rules every stored message follows, with `at` named in the answer.
    fn check(&self, at: &At, max_message_bytes: usize) -> Result<(), ServiceError> {
        let probe = NewMessage {
            role: self.role.clone(),
            content: self.content.clone(),
            timestamp: None,
            tokens: self.tokens_used,
            content_type: Some(self.content_type.clone()),
            idempotency_key: None,
            tool_call_id: self.tool_call_id.clone(),
            tool_calls: self.tool_calls.clone(),
        };
        rules::validate_message(&probe, max_message_bytes).map_err(|e| {
            let field = match e.code() {
                ErrorCode::InvalidRole => "role",
                ErrorCode::InvalidContentType => "content_type",
                ErrorCode::InvalidTokens => "tokens_used",
                ErrorCode::InvalidToolCall if self.tool_calls.is_some() => "tool_calls",
                ErrorCode::InvalidToolCall => "tool_call_id",
                _ => "content",
            };
            at.key(field).explain(e)
        })?;
        if let Some(model) = &self.model_used {
            rules::validate_text("model_used", model)
                .map_err(|e| at.key("model_used").explain(e))?;
        }
        Ok(())
    }
}

/// One imported conversation, as the answer lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedSummary {
    pub conversation_id: Uuid,
    pub title: String,
    pub messages: usize,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportOutcome {
    pub imported: Vec<ImportedSummary>,
    /// Conversations left out: already imported (or, from a `genesis.export`, still owned), or
    /// with nothing to show (a ChatGPT conversation whose shown branch holds no text).
    pub skipped: usize,
}

/// Reads a file of either format into conversations (nothing stored); the second value counts
/// conversations with nothing to show. The first problem is a 422 `invalid_import` naming its
/// JSON path.
pub fn read(
    file: &Value,
    max_message_bytes: usize,
) -> Result<(Vec<Incoming>, usize), ServiceError> {
    let at = At::root();
    match file {
        Value::Object(map) if map.contains_key("format") => {
            Ok((genesis::read(file, &at, max_message_bytes)?, 0))
        }
        Value::Array(_) => chatgpt::read(file, &at, max_message_bytes),
        // One conversation of a ChatGPT export, as a file of its own.
        Value::Object(map) if map.contains_key("mapping") => {
            chatgpt::read(&Value::Array(vec![file.clone()]), &at, max_message_bytes)
        }
        _ => Err(at.invalid(
            "expected a genesis.export document (an object with \"format\") or a ChatGPT \
             conversations.json (an array of conversations)",
        )),
    }
}

#[derive(Clone)]
pub struct ImportService {
    store: Store,
    usage: Arc<UsageCounters>,
    embeddings: Embeddings,
    max_message_bytes: usize,
}

impl ImportService {
    pub fn new(
        store: Store,
        usage: Arc<UsageCounters>,
        embeddings: Embeddings,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            store,
            usage,
            embeddings,
            max_message_bytes,
        }
    }

    /// Imports `file` into the user's account in one transaction.
    #[instrument(skip_all, fields(user_id = %user_id))]
    pub async fn import(&self, user_id: Uuid, file: &Value) -> Result<ImportOutcome, ServiceError> {
        let (incoming, empty) = read(file, self.max_message_bytes)?;
        let (mut outcome, stored) = self
            .store
            .write(move |txn| Box::pin(import_in(txn, user_id, incoming)))
            .await?;
        outcome.skipped += empty;
        let mut tokens = 0;
        for m in &stored {
            tokens += i64::from(m.tokens_used.unwrap_or(0));
            self.embeddings
                .enqueue(Source::Main, m.id, Text::Owned(m.content.clone()));
        }
        let count = stored.len() as i64;
        self.usage.record(&user_id.to_string(), ACCOUNT_TIER, |d| {
            d.messages_stored += count;
            d.tokens += tokens;
        });
        Ok(outcome)
    }
}

/// Stores every conversation not already there; all or nothing.
async fn import_in(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    incoming: Vec<Incoming>,
) -> Result<Write<(ImportOutcome, Vec<messages::Model>)>, ServiceError> {
    let mut outcome = ImportOutcome::default();
    let mut stored = Vec::new();
    let mut seen = HashSet::new();
    for c in incoming {
        if !seen.insert(c.source.clone()) || already_there(txn, user_id, &c).await? {
            outcome.skipped += 1;
            continue;
        }
        let id = Uuid::now_v7();
        let at = now();
        let rows: Vec<messages::Model> = c
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| message_row(id, user_id, i as i64 + 1, m, at))
            .collect();
        let tokens: i64 = rows
            .iter()
            .map(|m| i64::from(m.tokens_used.unwrap_or(0)))
            .sum();
        let conversation = conversations::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            title: Set(c.title.clone()),
            description: Set(c.description),
            agent_type: Set(c.agent_type),
            model_used: Set(c.model_used),
            system_prompt: Set(c.system_prompt),
            temperature: Set(c.temperature),
            max_tokens: Set(c.max_tokens),
            status: Set(c.status),
            message_count: Set(rows.len() as i64),
            last_index: Set(rows.len() as i64),
            token_count: Set(tokens),
            is_public: Set(false),
            is_shared: Set(false),
            tags: Set(serde_json::json!(c.tags)),
            last_message_at: Set(c.messages.last().map(|m| m.timestamp)),
            created_at: Set(c.created_at),
            updated_at: Set(c.updated_at),
            origin_guest_id: Set(None),
            imported_from: Set(Some(c.source)),
        };
        conversations::Entity::insert(conversation)
            .exec_without_returning(txn)
            .await?;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            messages::Entity::insert_many(
                chunk
                    .iter()
                    .cloned()
                    .map(IntoActiveModel::into_active_model),
            )
            .exec_without_returning(txn)
            .await?;
        }
        outcome.imported.push(ImportedSummary {
            conversation_id: id,
            title: c.title,
            messages: rows.len(),
        });
        stored.extend(rows);
    }
    Ok(Write::Commit((outcome, stored)))
}

/// True when the user already has this conversation: imported from the same source, or (for a
/// `genesis.export` one) the original itself.
async fn already_there(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    c: &Incoming,
) -> Result<bool, ServiceError> {
    let mut same = Condition::any().add(conversations::Column::ImportedFrom.eq(c.source.as_str()));
    if let Some(original) = c.original_id {
        same = same.add(conversations::Column::Id.eq(original));
    }
    let found = conversations::Entity::find()
        .filter(conversations::Column::UserId.eq(user_id))
        .filter(same)
        .one(txn)
        .await?;
    Ok(found.is_some())
}

fn message_row(
    conversation_id: Uuid,
    user_id: Uuid,
    index: i64,
    m: &IncomingMessage,
    at: DateTime<Utc>,
) -> messages::Model {
    messages::Model {
        id: Uuid::now_v7(),
        conversation_id,
        user_id,
        role: m.role.clone(),
        content_hash: md5_hex(&m.content),
        content: m.content.clone(),
        content_type: m.content_type.clone(),
        message_index: index,
        tokens_used: m.tokens_used,
        model_used: m.model_used.clone(),
        user_rating: m.user_rating,
        is_edited: m.is_edited,
        is_regeneration: m.is_regeneration,
        parent_message_id: None,
        flagged: m.flagged,
        created_at: at,
        updated_at: at,
        origin_cache_message_id: None,
        client_timestamp: Some(m.timestamp),
        idempotency_key: None,
        tool_call_id: m.tool_call_id.clone(),
        tool_calls: m.tool_calls.clone(),
    }
}
