//! Search over the caller's own messages (semantic: cosine similarity of stored vectors; text:
//! the database's full-text index) and the semantic response cache (an earlier prompt of the same
//! caller, near enough, that an assistant answered). Every query is scoped to one owner — a
//! guest's cache conversation or a user's conversations — before anything is ranked.

use std::{collections::HashMap, sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use entity::conversations;
mod scope;

use scope::{fts5_query, scope, top};
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QueryResult, Statement, Value};
use uuid::Uuid;

use super::{
    ErrorCode, ServiceError,
    cache_metrics::{CacheMetrics, Layer, Op, Outcome},
    embeddings::Embeddings,
    usage::{ACCOUNT_TIER, GUEST_TIER, UsageCounters},
};
use crate::{
    embed::{cosine, from_bytes},
    store::{Backend, Store},
};

/// Whose messages a query may see.
#[derive(Clone, Debug)]
pub enum Owner {
    /// A guest: its cache conversation.
    Guest {
        guest_id: String,
        conversation: Uuid,
    },
    User(Uuid),
}

impl Owner {
    fn subject(&self) -> (String, &'static str) {
        match self {
            Owner::Guest { guest_id, .. } => (guest_id.clone(), GUEST_TIER),
            Owner::User(id) => (id.to_string(), ACCOUNT_TIER),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Semantic,
    Text,
}

/// One stored message, as search and the cache return it.
#[derive(Clone, Debug)]
pub struct FoundMessage {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub role: String,
    pub content: String,
    pub content_type: String,
    pub timestamp: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Scored {
    pub message: FoundMessage,
    pub score: f64,
}

#[derive(Clone, Debug)]
pub enum Lookup {
    Hit {
        similarity: f64,
        prompt_message_id: Uuid,
        response: FoundMessage,
    },
    Miss {
        best_similarity: Option<f64>,
    },
}

pub const MAX_QUERY_CHARS: usize = 1000;

#[derive(Clone)]
pub struct SearchService {
    store: Store,
    embeddings: Embeddings,
    usage: Arc<UsageCounters>,
    metrics: Arc<CacheMetrics>,
}

impl SearchService {
    pub fn new(
        store: Store,
        embeddings: Embeddings,
        usage: Arc<UsageCounters>,
        metrics: Arc<CacheMetrics>,
    ) -> Self {
        Self {
            store,
            embeddings,
            usage,
            metrics,
        }
    }

    async fn rows(
        &self,
        sql: String,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>, ServiceError> {
        self.store.check_available()?;
        let db = self.store.conn();
        let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
        Ok(db.query_all_raw(stmt).await?)
    }

    /// A conversation named in a query must be the owner's: anyone else's is 404, as everywhere.
    async fn check_conversation(
        &self,
        owner: &Owner,
        conversation: Option<Uuid>,
    ) -> Result<(), ServiceError> {
        let owned = match (owner, conversation) {
            (_, None) => true,
            (
                Owner::Guest {
                    conversation: own,
                    guest_id,
                },
                Some(named),
            ) => {
                *own == named
                    || entity::conversation_cache::Entity::find_by_id(named)
                        .filter(sea_orm::ColumnTrait::eq(
                            &entity::conversation_cache::Column::GuestRoot,
                            guest_id.as_str(),
                        ))
                        .one(self.store.conn())
                        .await?
                        .is_some()
            }
            (Owner::User(user), Some(named)) => conversations::Entity::find()
                .filter(super::conversations::live_one(*user, named))
                .one(self.store.conn())
                .await?
                .is_some(),
        };
        owned
            .then_some(())
            .ok_or(ServiceError::ConversationNotFound)
    }

    /// The owner's messages best matching `q`, best first.
    pub async fn search(
        &self,
        owner: &Owner,
        q: &str,
        mode: Mode,
        limit: usize,
        conversation: Option<Uuid>,
    ) -> Result<Vec<Scored>, ServiceError> {
        let embedder = self.embeddings.embedder()?;
        if q.trim().is_empty() || q.chars().count() > MAX_QUERY_CHARS || q.contains('\0') {
            return Err(ServiceError::invalid(
                ErrorCode::InvalidQuery,
                format!("q must be 1 to {MAX_QUERY_CHARS} characters, without U+0000"),
            ));
        }
        let q = q.trim();
        self.check_conversation(owner, conversation).await?;
        let backend = self.store.backend();
        let ranked: Vec<(Uuid, f64)> = match mode {
            Mode::Semantic => {
                let query = self.embeddings.embed_query(q).await?;
                let s = scope(backend, owner, conversation, 2);
                let sql = format!(
                    "SELECT m.id AS id, e.vector AS vector FROM {} JOIN cache_embeddings e ON \
                     e.content_hash = m.{} AND e.model = {} WHERE {}",
                    s.from,
                    s.hash,
                    backend.param(1),
                    s.condition
                );
                let mut values = vec![Value::from(embedder.model_id().to_string())];
                values.extend(s.values);
                let rows = self.rows(sql, values).await?;
                let mut scored = Vec::with_capacity(rows.len());
                for row in rows {
                    let id: Uuid = row.try_get("", "id")?;
                    let bytes: Vec<u8> = row.try_get("", "vector")?;
                    if let Some(v) = from_bytes(&bytes) {
                        scored.push((id, f64::from(cosine(&query, &v))));
                    }
                }
                top(scored, limit)
            }
            Mode::Text => self.text_ranks(owner, q, limit, conversation).await?,
        };
        let found = self
            .fetch(owner, ranked.iter().map(|(id, _)| *id).collect())
            .await?;
        Ok(ranked
            .into_iter()
            .filter_map(|(id, score)| {
                found.get(&id).map(|m| Scored {
                    message: m.clone(),
                    score,
                })
            })
            .collect())
    }

    async fn text_ranks(
        &self,
        owner: &Owner,
        q: &str,
        limit: usize,
        conversation: Option<Uuid>,
    ) -> Result<Vec<(Uuid, f64)>, ServiceError> {
        let backend = self.store.backend();
        let s = scope(backend, owner, conversation, 2);
        let limit_value = Value::from(i64::try_from(limit).unwrap_or(100));
        let words = fts5_query(q).ok_or_else(|| {
            ServiceError::invalid(ErrorCode::InvalidQuery, "q has no words to search for")
        })?;
        let (sql, query) = match backend {
            Backend::Sqlite => {
                let query = words;
                (
                    format!(
                        "WITH hits AS MATERIALIZED (SELECT rowid AS r, bm25(search_fts) AS s \
                         FROM search_fts WHERE search_fts MATCH ?) \
                         SELECT m.id AS id, -hits.s AS score FROM {} \
                         JOIN search_text t ON t.content_hash = m.{} \
                         JOIN hits ON hits.r = t.id WHERE {} ORDER BY hits.s, m.{} DESC LIMIT ?",
                        s.from, s.hash, s.condition, s.order
                    ),
                    query,
                )
            }
            Backend::Postgres => (
                format!(
                    "SELECT m.id AS id, ts_rank(t.tsv, q)::float8 AS score FROM {} \
                     JOIN search_text t ON t.content_hash = m.{}, \
                     plainto_tsquery('english', $1) q WHERE t.tsv @@ q AND {} \
                     ORDER BY score DESC, m.{} DESC LIMIT ${}",
                    s.from,
                    s.hash,
                    s.condition,
                    s.order,
                    2 + s.values.len()
                ),
                q.to_string(),
            ),
        };
        let mut values = vec![Value::from(query)];
        values.extend(s.values);
        values.push(limit_value);
        let rows = self.rows(sql, values).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "score")?)))
            .collect()
    }

    /// The messages `ids` of the owner, by id.
    async fn fetch(
        &self,
        owner: &Owner,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, FoundMessage>, ServiceError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let backend = self.store.backend();
        let s = scope(backend, owner, None, 1);
        let first = 1 + s.values.len();
        let list: Vec<String> = (0..ids.len()).map(|i| backend.param(first + i)).collect();
        let sql = format!(
            "SELECT m.id AS id, m.conversation_id AS conversation_id, m.role AS role, \
             m.content AS content, m.content_type AS content_type, \
             m.client_timestamp AS client_timestamp, m.created_at AS created_at \
             FROM {} WHERE {} AND m.id IN ({})",
            s.from,
            s.condition,
            list.join(", ")
        );
        let mut values = s.values;
        values.extend(ids.into_iter().map(Value::from));
        let rows = self.rows(sql, values).await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let created: DateTime<Utc> = row.try_get("", "created_at")?;
            let client: Option<DateTime<Utc>> = row.try_get("", "client_timestamp")?;
            let m = FoundMessage {
                message_id: row.try_get("", "id")?,
                conversation_id: row.try_get("", "conversation_id")?,
                role: row.try_get("", "role")?,
                content: row.try_get("", "content")?,
                content_type: row.try_get("", "content_type")?,
                timestamp: client.unwrap_or(created),
            };
            out.insert(m.message_id, m);
        }
        Ok(out)
    }

    /// An earlier prompt of the owner at least `threshold` similar to `prompt` that an assistant
    /// message answered (the next message of its conversation), with that answer.
    pub async fn lookup(
        &self,
        owner: &Owner,
        prompt: &str,
        threshold: Option<f64>,
        conversation: Option<Uuid>,
    ) -> Result<Lookup, ServiceError> {
        let embedder = self.embeddings.embedder()?;
        let threshold = threshold.unwrap_or(f64::from(self.embeddings.cache_threshold()));
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(ServiceError::invalid(
                ErrorCode::InvalidThreshold,
                "threshold must be in (0, 1]",
            ));
        }
        if prompt.trim().is_empty() {
            return Err(ServiceError::invalid(
                ErrorCode::ContentEmpty,
                "prompt is empty",
            ));
        }
        if prompt.contains('\0') {
            return Err(ServiceError::invalid(
                ErrorCode::ContentInvalid,
                "prompt must not contain U+0000",
            ));
        }
        self.check_conversation(owner, conversation).await?;
        let started = Instant::now();
        let query = self.embeddings.embed_query(prompt).await?;
        let backend = self.store.backend();
        let s = scope(backend, owner, conversation, 2);
        let next = if s.guest {
            "a.conversation_id = m.conversation_id AND a.sequence = m.sequence + 1"
        } else {
            "a.conversation_id = m.conversation_id AND a.message_index = m.message_index + 1"
        };
        let answers = if s.guest {
            "message_cache a"
        } else {
            "messages a"
        };
        let sql = format!(
            "SELECT m.id AS id, a.id AS answer, e.vector AS vector FROM {} \
             JOIN {answers} ON {next} AND a.role = 'assistant' \
             JOIN cache_embeddings e ON e.content_hash = m.{} AND e.model = {} \
             WHERE m.role = 'user' AND {}",
            s.from,
            s.hash,
            backend.param(1),
            s.condition
        );
        let mut values = vec![Value::from(embedder.model_id().to_string())];
        values.extend(s.values);
        let rows = self.rows(sql, values).await;
        let rows = rows.inspect_err(|_| {
            self.metrics
                .record(Layer::Semantic, Op::Read, Outcome::Error, started.elapsed());
        })?;
        let mut best: Option<(f64, Uuid, Uuid)> = None;
        for row in rows {
            let bytes: Vec<u8> = row.try_get("", "vector")?;
            let Some(v) = from_bytes(&bytes) else {
                continue;
            };
            let similarity = f64::from(cosine(&query, &v));
            if best.is_none_or(|(b, _, _)| similarity > b) {
                best = Some((
                    similarity,
                    row.try_get("", "id")?,
                    row.try_get("", "answer")?,
                ));
            }
        }
        let (subject, tier) = owner.subject();
        let hit = best.filter(|(similarity, _, _)| *similarity >= threshold - 1e-6);
        let outcome = if hit.is_some() {
            Outcome::Hit
        } else {
            Outcome::Miss
        };
        self.metrics
            .record(Layer::Semantic, Op::Read, outcome, started.elapsed());
        self.usage.record(&subject, tier, |d| match outcome {
            Outcome::Hit => d.cache_hits += 1,
            _ => d.cache_misses += 1,
        });
        let Some((similarity, prompt_id, answer_id)) = hit else {
            return Ok(Lookup::Miss {
                best_similarity: best.map(|(s, _, _)| s),
            });
        };
        let mut found = self.fetch(owner, vec![answer_id]).await?;
        let response = found
            .remove(&answer_id)
            .ok_or_else(|| ServiceError::Internal("the cached answer vanished".into()))?;
        Ok(Lookup::Hit {
            similarity,
            prompt_message_id: prompt_id,
            response,
        })
    }
}
