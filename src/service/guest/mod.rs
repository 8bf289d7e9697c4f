//! Guest chat: sessions, the write path (one SQL transaction, then L1), reads (L1, else SQL and
//! refill), and erasure.
//!
//! - `rules`: what is valid, who may write, expiry, titles, retry detection (shared with the
//!   account path).
//! - `single`: one append in its own transaction; `batch`: appends merged by the SQLite writer.
//! - `sql`: the rows and statements both paths are made of.

mod batch;
pub mod rules;
mod single;
mod sql;

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Duration, Utc};
use entity::{conversation_cache, message_cache};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use tracing::{instrument, warn};
use uuid::Uuid;

use super::{
    ServiceError,
    cache_metrics::{CacheMetrics, Layer, Op, Outcome},
    clock::{now, stored_precision},
    embeddings::{self, Embeddings, Text},
    tokens::GuestTokens,
    usage::{GUEST_TIER, UsageCounters},
};
use crate::{
    hot::{CachedMessage, HotCache, MessageList, is_complete},
    store::{MergeLane, Store, Write},
};
use batch::{AppendItem, GuestAppends};

const WRITE_RETRIES: u64 = 3;

/// A message as a guest (or a signed-in user) sends it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub role: String,
    pub content: String,
    pub timestamp: Option<DateTime<Utc>>,
    pub tokens: Option<i32>,
    pub content_type: Option<String>,
    pub idempotency_key: Option<String>,
}

/// The outcome of a guest write.
#[derive(Clone, Debug)]
pub struct Appended {
    pub message: Arc<CachedMessage>,
    /// True when the write was a retry of a stored message; `message` is the original.
    pub duplicate: bool,
    /// Set when this write claimed the guest id: the token the client must keep.
    pub issued_token: Option<String>,
}

/// What one guest write did inside its transaction.
pub struct Stored {
    message: CachedMessage,
    claimed: bool,
    duplicate: bool,
}

/// Where a history was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
}

#[derive(Clone, Debug)]
pub struct GuestHistory {
    pub conversation_id: Uuid,
    /// Shared with the hot cache on an L1 hit: no copy per read.
    pub messages: MessageList,
    pub source: Source,
    /// The account conversation this guest moved into, if migrated (known on SQL reads).
    pub migrated_to: Option<Uuid>,
}

/// A new server-chosen guest.
#[derive(Clone, Debug)]
pub struct GuestSession {
    pub guest_id: String,
    pub guest_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Guest chat over the store and the hot cache.
#[derive(Clone)]
pub struct GuestService {
    store: Store,
    hot: HotCache,
    tokens: GuestTokens,
    usage: Arc<UsageCounters>,
    metrics: Arc<CacheMetrics>,
    embeddings: Embeddings,
    max_message_bytes: usize,
    retention: Duration,
    session_ttl: Duration,
    /// Guests whose read was recorded lately: a read moves `accessed_at` and the expiry at most
    /// once per [`rules::expiry_slack`].
    recently_read: moka::future::Cache<String, ()>,
    /// SQLite: appends are merged in the group commit. PostgreSQL: each in its own transaction.
    appends: Option<Arc<MergeLane<GuestAppends>>>,
}

/// How long guests are kept.
#[derive(Clone, Copy, Debug)]
pub struct GuestLifetimes {
    /// After the last write or read.
    pub retention: std::time::Duration,
    /// A session that is never written to.
    pub session_ttl: std::time::Duration,
}

impl GuestService {
    pub fn new(
        store: Store,
        hot: HotCache,
        tokens: GuestTokens,
        usage: Arc<UsageCounters>,
        metrics: Arc<CacheMetrics>,
        max_message_bytes: usize,
        lifetimes: GuestLifetimes,
    ) -> Self {
        let chrono = |d: std::time::Duration| Duration::from_std(d).unwrap_or(Duration::MAX);
        let retention = chrono(lifetimes.retention);
        let appends = store.merge_lane(GuestAppends { retention });
        let recently_read = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(rules::expiry_slack(retention).to_std().unwrap_or_default())
            .build();
        Self {
            store,
            hot,
            tokens,
            usage,
            metrics,
            embeddings: Embeddings::disabled(),
            max_message_bytes,
            retention,
            session_ttl: chrono(lifetimes.session_ttl),
            recently_read,
            appends,
        }
    }

    /// Hands every stored message to `embeddings` after commit.
    pub fn with_embeddings(mut self, embeddings: Embeddings) -> Self {
        self.embeddings = embeddings;
        self
    }

    /// Checks `token` for `guest_id`: absent → `GuestTokenRequired`, wrong → `GuestTokenInvalid`.
    pub fn authorize(&self, guest_id: &str, token: Option<&str>) -> Result<(), ServiceError> {
        match token {
            None => Err(ServiceError::GuestTokenRequired),
            Some(t) if self.tokens.verify(guest_id, t) => Ok(()),
            Some(_) => Err(ServiceError::GuestTokenInvalid),
        }
    }

    /// [`authorize`](Self::authorize) for calls on a guest that must exist: without a token, an
    /// id nobody ever claimed is 404 `guest_not_found` (not "send its token").
    async fn authorize_existing(
        &self,
        guest_id: &str,
        token: Option<&str>,
    ) -> Result<(), ServiceError> {
        if token.is_none() {
            self.store.check_available()?;
            if sql::find_conversation(self.store.conn(), guest_id)
                .await?
                .is_none()
            {
                return Err(ServiceError::GuestNotFound);
            }
        }
        self.authorize(guest_id, token)
    }

    /// Creates a guest with a server-chosen, unguessable id.
    #[instrument(skip_all)]
    pub async fn create_session(&self) -> Result<GuestSession, ServiceError> {
        let guest_id = format!("g_{}", Uuid::new_v4().simple());
        let now = now();
        let expires_at = now + self.session_ttl;
        let row = sql::new_conversation(&guest_id, now, expires_at, 0, None).into_active_model();
        self.store
            .write(move |txn| {
                Box::pin(async move {
                    conversation_cache::Entity::insert(row)
                        .exec_without_returning(txn)
                        .await?;
                    Ok::<_, ServiceError>(Write::Commit(()))
                })
            })
            .await
            .inspect_err(|e| self.note(e))?;
        self.usage.record(&guest_id, GUEST_TIER, |_| {});
        Ok(GuestSession {
            guest_token: self.tokens.issue(&guest_id),
            guest_id,
            expires_at,
        })
    }

    /// Opens the database breaker when `err` says the database is unreachable.
    fn note(&self, err: &ServiceError) {
        if let ServiceError::Unavailable(e) = err {
            self.store.note_error(e);
        }
    }

    /// Stores one guest message: SQL first (one transaction), then L1. A transaction that loses
    /// a serialisation race is retried as a whole.
    #[instrument(skip_all, fields(guest_id = %guest_id))]
    pub async fn append(
        &self,
        guest_id: &str,
        token: Option<&str>,
        mut msg: NewMessage,
    ) -> Result<Appended, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        if let Some(t) = token
            && !self.tokens.verify(guest_id, t)
        {
            return Err(ServiceError::GuestTokenInvalid);
        }
        rules::validate_message(&msg, self.max_message_bytes)?;
        msg.timestamp = msg.timestamp.map(stored_precision);
        let has_token = token.is_some();
        let mut attempt = 0;
        let started = Instant::now();
        let stored = loop {
            let (id, m) = (guest_id.to_string(), msg.clone());
            let result = match &self.appends {
                Some(lane) => {
                    let item = AppendItem {
                        guest_id: id,
                        has_token,
                        msg: m,
                    };
                    self.store.write_merged(lane, item).await
                }
                None => {
                    let retention = self.retention;
                    self.store
                        .write(move |txn| {
                            Box::pin(single::append_in(txn, id, has_token, m, retention))
                        })
                        .await
                }
            };
            match result {
                Err(ServiceError::Contended(err)) if attempt < WRITE_RETRIES => {
                    attempt += 1;
                    warn!(error = %err, attempt, "write conflict; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
                }
                other => {
                    self.metrics.timed(Layer::L2, Op::Write, started, &other);
                    break other.inspect_err(|e| self.note(e))?;
                }
            }
        };
        let message = Arc::new(stored.message);
        // A repeat of the claiming write without a token gets the token again.
        let issued_token = (stored.claimed && !has_token).then(|| self.tokens.issue(guest_id));
        if stored.duplicate {
            self.usage.record(guest_id, GUEST_TIER, |_| {});
            return Ok(Appended {
                message,
                duplicate: true,
                issued_token,
            });
        }
        self.embeddings.enqueue(
            embeddings::Source::Cache,
            message.id,
            Text::Guest(message.clone()),
        );
        let started = Instant::now();
        let appended = self.hot.append_guest_message(guest_id, &message).await;
        self.metrics.timed(Layer::L1, Op::Write, started, &appended);
        if let Err(err) = appended {
            warn!(error = %err, "hot cache append failed; dropping the key");
            if let Err(err) = self.hot.remove_guest(guest_id).await {
                warn!(error = %err, "hot cache key could not be dropped");
            }
        }
        let tokens = i64::from(message.tokens.unwrap_or(0));
        self.usage.record(guest_id, GUEST_TIER, |d| {
            d.messages_stored += 1;
            d.tokens += tokens;
        });
        Ok(Appended {
            message,
            duplicate: false,
            issued_token,
        })
    }

    /// The guest's history in sequence order: L1 when it holds the complete list, else SQL
    /// (then L1 is refilled).
    #[instrument(skip_all, fields(guest_id = %guest_id))]
    pub async fn history(
        &self,
        guest_id: &str,
        token: Option<&str>,
    ) -> Result<GuestHistory, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        self.authorize_existing(guest_id, token).await?;
        let started = Instant::now();
        let cached = self.hot.guest_messages(guest_id).await;
        let outcome = match &cached {
            Ok(Some(messages)) if is_complete(messages) => Outcome::Hit,
            Ok(_) => Outcome::Miss,
            Err(_) => Outcome::Error,
        };
        self.metrics
            .record(Layer::L1, Op::Read, outcome, started.elapsed());
        match cached {
            Ok(Some(messages)) if is_complete(&messages) => {
                self.usage
                    .record(guest_id, GUEST_TIER, |d| d.cache_hits += 1);
                self.record_read(guest_id).await;
                return Ok(GuestHistory {
                    conversation_id: messages[0].conversation_id,
                    messages,
                    source: Source::L1,
                    migrated_to: None,
                });
            }
            Ok(_) => {}
            Err(err) => warn!(error = %err, "hot cache read failed; reading SQL"),
        }
        self.usage
            .record(guest_id, GUEST_TIER, |d| d.cache_misses += 1);
        let started = Instant::now();
        let read = self.read_from_sql(guest_id).await;
        self.metrics.timed(Layer::L2, Op::Read, started, &read);
        let (conversation, rows) = read.inspect_err(|e| self.note(e))?;
        let conversation = conversation.ok_or(ServiceError::GuestNotFound)?;
        if conversation.main_conversation_id.is_none() {
            self.record_read(guest_id).await;
        }
        let messages: Vec<Arc<CachedMessage>> =
            rows.iter().map(|r| Arc::new(sql::to_cached(r))).collect();
        if !messages.is_empty() && conversation.main_conversation_id.is_none() {
            let started = Instant::now();
            let filled = self.hot.fill_guest(guest_id, &messages).await;
            self.metrics.timed(Layer::L1, Op::Fill, started, &filled);
            if let Err(err) = filled {
                warn!(error = %err, "hot cache refill failed");
            }
        }
        Ok(GuestHistory {
            conversation_id: conversation.id,
            messages: Arc::new(messages),
            source: Source::L2,
            migrated_to: conversation.main_conversation_id,
        })
    }

    /// The id of the guest's own cache conversation, for reads that are scoped to it (search,
    /// the semantic cache): the token must be the guest's; a migrated guest's messages belong to
    /// the account (409).
    pub async fn owned_conversation(
        &self,
        guest_id: &str,
        token: Option<&str>,
    ) -> Result<Uuid, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        self.authorize_existing(guest_id, token).await?;
        self.store.check_available()?;
        let conversation = sql::find_conversation(self.store.conn(), guest_id)
            .await?
            .ok_or(ServiceError::GuestNotFound)?;
        match conversation.main_conversation_id {
            Some(conversation_id) => Err(ServiceError::GuestMigrated { conversation_id }),
            None => Ok(conversation.id),
        }
    }

    /// A read counts as access: `accessed_at` and the expiry move, at most once per
    /// [`rules::expiry_slack`] per guest, in a write of its own that the read does not wait for.
    async fn record_read(&self, guest_id: &str) {
        if self.recently_read.contains_key(guest_id) {
            return;
        }
        self.recently_read.insert(guest_id.to_string(), ()).await;
        let (store, id, retention) = (self.store.clone(), guest_id.to_string(), self.retention);
        tokio::spawn(async move {
            let touched = store
                .write(move |txn| {
                    Box::pin(async move {
                        sql::touch(txn, &id, now(), retention).await?;
                        Ok::<_, ServiceError>(Write::Commit(()))
                    })
                })
                .await;
            if let Err(err) = touched {
                warn!(error = %err, "could not record a guest read");
            }
        });
    }

    async fn read_from_sql(
        &self,
        guest_id: &str,
    ) -> Result<(Option<conversation_cache::Model>, Vec<message_cache::Model>), ServiceError> {
        self.store.check_available()?;
        let db = self.store.conn();
        let Some(conversation) = sql::find_conversation(db, guest_id).await? else {
            return Ok((None, Vec::new()));
        };
        let rows = message_cache::Entity::find()
            .filter(message_cache::Column::ConversationId.eq(conversation.id))
            .order_by_asc(message_cache::Column::Sequence)
            .all(db)
            .await?;
        Ok((Some(conversation), rows))
    }

    /// Erases the guest from every layer. A migrated guest belongs to its account: 409.
    #[instrument(skip_all, fields(guest_id = %guest_id))]
    pub async fn erase(&self, guest_id: &str, token: Option<&str>) -> Result<(), ServiceError> {
        rules::validate_guest_id(guest_id)?;
        self.authorize_existing(guest_id, token).await?;
        let id = guest_id.to_string();
        let started = Instant::now();
        let erased = self
            .store
            .write(move |txn| Box::pin(sql::erase_in(txn, id)))
            .await;
        self.metrics.timed(Layer::L2, Op::Erase, started, &erased);
        let conversation = erased.inspect_err(|e| self.note(e))?;
        self.usage.forget(guest_id);
        let started = Instant::now();
        let removed = self
            .hot
            .forget_conversation(guest_id, Some(conversation))
            .await;
        self.metrics.timed(Layer::L1, Op::Erase, started, &removed);
        if let Err(err) = removed {
            warn!(error = %err, "hot cache key could not be dropped after erase");
        }
        Ok(())
    }
}
