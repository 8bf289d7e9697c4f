//! Guest chat: sessions, the write path (one SQL transaction, then L1), reads (L1, else SQL and
//! refill), and erasure.
//!
//! - `rules`: what is valid, who may write, expiry, titles, retry detection (shared with the
//!   account path).
//! - `single`: one append in its own transaction; `batch`: appends merged by the SQLite writer.
//! - `sql`: the rows and statements both paths are made of.

mod access;
mod batch;
pub mod rules;
mod single;
mod sql;

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Duration, Utc};
use entity::{conversation_cache, message_cache};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use tracing::{instrument, warn};
use uuid::Uuid;

use super::{
    ErrorCode, ServiceError,
    cache_metrics::{CacheMetrics, Layer, Op, Outcome},
    clock::{now, stored_precision},
    embeddings::{self, Embeddings, Text},
    page::{Page, page_size},
    tokens::GuestTokens,
    usage::{GUEST_TIER, UsageCounters},
};
use crate::{
    hot::{CachedMessage, HotCache, MessageList, is_complete},
    store::{MergeLane, Store, Write},
};
use access::Access;
use batch::{AppendItem, GuestAppends};
pub use rules::GuestLimits;

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
    /// The claimed conversation's token salt (when `claimed`).
    salt: Option<String>,
}

/// Where a history was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
}

/// One page of a guest's history.
#[derive(Clone, Debug)]
pub struct GuestHistory {
    pub conversation_id: Uuid,
    /// Shared with the hot cache on an L1 hit: no copy per read; the page is `range` of it.
    messages: MessageList,
    range: std::ops::Range<usize>,
    pub source: Source,
    /// The `sequence` to pass as `cursor` for the next page, when more follow.
    pub next_cursor: Option<i64>,
}

impl GuestHistory {
    /// The messages of this page, in sequence order.
    pub fn messages(&self) -> &[Arc<CachedMessage>] {
        &self.messages[self.range.clone()]
    }

    /// The page of `messages` (a complete history, sequences 1..=n) after sequence `after`.
    fn page_of(
        conversation_id: Uuid,
        messages: MessageList,
        after: i64,
        limit: u64,
        source: Source,
    ) -> Self {
        let start = usize::try_from(after).unwrap_or(0).min(messages.len());
        let end = start.saturating_add(limit as usize).min(messages.len());
        let next_cursor = (end < messages.len()).then(|| messages[end - 1].sequence);
        Self {
            conversation_id,
            messages,
            range: start..end,
            source,
            next_cursor,
        }
    }
}

/// Which page of a guest's history to read: messages after `sequence` `after`, at most `limit`
/// (default and bounds from `service::page`).
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryPage {
    pub after: i64,
    pub limit: Option<u64>,
}

/// A history longer than this is read from SQL one page at a time (and not put in L1 by a read).
const WHOLE_READ_MAX: i64 = crate::service::page::MAX_PAGE as i64;

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
    access: Access,
    usage: Arc<UsageCounters>,
    metrics: Arc<CacheMetrics>,
    embeddings: Embeddings,
    max_message_bytes: usize,
    retention: Duration,
    limits: GuestLimits,
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
    /// How much one guest may store.
    pub limits: GuestLimits,
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
        let appends = store.merge_lane(GuestAppends {
            retention,
            limits: lifetimes.limits,
        });
        let recently_read = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(rules::expiry_slack(retention).to_std().unwrap_or_default())
            .build();
        Self {
            access: Access::new(tokens, store.clone()),
            store,
            hot,
            usage,
            metrics,
            embeddings: Embeddings::disabled(),
            max_message_bytes,
            retention,
            limits: lifetimes.limits,
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

    /// Checks `token` for `guest_id` and returns the conversation it opens (migrated or not):
    /// absent → 401 `guest_token_required` (404 `guest_not_found` for an id nobody holds), wrong
    /// → 401 `guest_token_invalid`, the guest gone (erased, expired) → 404.
    pub async fn authorize(
        &self,
        guest_id: &str,
        token: Option<&str>,
    ) -> Result<Uuid, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        let key = self.access.check(guest_id, token).await;
        Ok(key.inspect_err(|e| self.note(e))?.conversation_id)
    }

    /// Forgets what is kept in memory of a guest that was just migrated.
    pub fn forget_key(&self, guest_id: &str) {
        self.access.forget(guest_id);
    }

    /// Creates a guest with a server-chosen, unguessable id.
    #[instrument(skip_all)]
    pub async fn create_session(&self) -> Result<GuestSession, ServiceError> {
        let guest_id = format!("g_{}", Uuid::new_v4().simple());
        let now = now();
        let expires_at = now + self.session_ttl;
        let row = sql::new_conversation(&guest_id, now, expires_at, 0, None);
        let guest_token = self.access.issue(&guest_id, row.token_salt.as_deref());
        self.access.remember(&guest_id, &row);
        let row = row.into_active_model();
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
            guest_token,
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
        let holder = match token {
            Some(token) => {
                let key = self.access.check(guest_id, Some(token)).await;
                let key = key.inspect_err(|e| self.note(e))?;
                if let Some(conversation_id) = key.migrated_to {
                    return Err(ServiceError::GuestMigrated { conversation_id });
                }
                Some(key.conversation_id)
            }
            None => None,
        };
        rules::validate_message(&msg, self.max_message_bytes)?;
        msg.timestamp = msg.timestamp.map(stored_precision);
        let mut attempt = 0;
        let started = Instant::now();
        let stored = loop {
            let (id, m) = (guest_id.to_string(), msg.clone());
            let result = match &self.appends {
                Some(lane) => {
                    let item = AppendItem {
                        guest_id: id,
                        holder,
                        msg: m,
                    };
                    self.store.write_merged(lane, item).await
                }
                None => {
                    let rules = GuestAppends {
                        retention: self.retention,
                        limits: self.limits,
                    };
                    self.store
                        .write(move |txn| {
                            Box::pin(
                                async move { single::append_in(txn, id, holder, m, &rules).await },
                            )
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
        let issued_token = (stored.claimed && holder.is_none())
            .then(|| self.access.issue(guest_id, stored.salt.as_deref()));
        if stored.claimed && !stored.duplicate {
            self.access
                .remember_claim(guest_id, message.conversation_id, stored.salt);
        }
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

    /// One page of the guest's history in sequence order: L1 when it holds the complete list,
    /// else SQL (then L1 is refilled). A migrated guest's messages belong to the account: 409.
    #[instrument(skip_all, fields(guest_id = %guest_id))]
    pub async fn history(
        &self,
        guest_id: &str,
        token: Option<&str>,
        page: HistoryPage,
    ) -> Result<GuestHistory, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        let limit = page_size(page.limit)?;
        let key = self.access.check(guest_id, token).await;
        let key = key.inspect_err(|e| self.note(e))?;
        if let Some(conversation_id) = key.migrated_to {
            return Err(ServiceError::GuestMigrated { conversation_id });
        }
        let started = Instant::now();
        let cached = self.hot.guest_messages(guest_id).await;
        // A list of another conversation than the token's is not this token's to read.
        let cached = cached.map(|list| {
            list.filter(|m| is_complete(m) && m[0].conversation_id == key.conversation_id)
        });
        let outcome = match &cached {
            Ok(Some(_)) => Outcome::Hit,
            Ok(None) => Outcome::Miss,
            Err(_) => Outcome::Error,
        };
        self.metrics
            .record(Layer::L1, Op::Read, outcome, started.elapsed());
        match cached {
            Ok(Some(messages)) => {
                self.usage
                    .record(guest_id, GUEST_TIER, |d| d.cache_hits += 1);
                self.record_read(guest_id).await;
                let id = key.conversation_id;
                return Ok(GuestHistory::page_of(
                    id,
                    messages,
                    page.after,
                    limit,
                    Source::L1,
                ));
            }
            Ok(None) => {}
            Err(err) => warn!(error = %err, "hot cache read failed; reading SQL"),
        }
        self.usage
            .record(guest_id, GUEST_TIER, |d| d.cache_misses += 1);
        let started = Instant::now();
        let read = self.read_from_sql(guest_id, token, page.after, limit).await;
        self.metrics.timed(Layer::L2, Op::Read, started, &read);
        let (conversation, rows) = read.inspect_err(|e| self.note(e))?;
        self.record_read(guest_id).await;
        let messages: Vec<Arc<CachedMessage>> =
            rows.iter().map(|r| Arc::new(sql::to_cached(r))).collect();
        if conversation.message_count > WHOLE_READ_MAX {
            let page = Page::from_rows(messages, limit, |m| m.sequence.to_string());
            let next_cursor = page.next_cursor.and_then(|c| c.parse().ok());
            let len = page.items.len();
            return Ok(GuestHistory {
                conversation_id: conversation.id,
                messages: Arc::new(page.items),
                range: 0..len,
                source: Source::L2,
                next_cursor,
            });
        }
        if !messages.is_empty() {
            let started = Instant::now();
            let filled = self.hot.fill_guest(guest_id, &messages).await;
            self.metrics.timed(Layer::L1, Op::Fill, started, &filled);
            if let Err(err) = filled {
                warn!(error = %err, "hot cache refill failed");
            }
        }
        let messages = Arc::new(messages);
        let id = conversation.id;
        Ok(GuestHistory::page_of(
            id,
            messages,
            page.after,
            limit,
            Source::L2,
        ))
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
        let key = self.access.check(guest_id, token).await;
        let key = key.inspect_err(|e| self.note(e))?;
        match key.migrated_to {
            Some(conversation_id) => Err(ServiceError::GuestMigrated { conversation_id }),
            None => Ok(key.conversation_id),
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

    /// The guest's conversation, checked against `token` afresh, and its messages after
    /// `after`: all of them when it is short enough to be read whole (and put in L1), else one
    /// page (`limit` + 1 rows, to tell whether more follow).
    async fn read_from_sql(
        &self,
        guest_id: &str,
        token: Option<&str>,
        after: i64,
        limit: u64,
    ) -> Result<(conversation_cache::Model, Vec<message_cache::Model>), ServiceError> {
        self.store.check_available()?;
        let db = self.store.conn();
        let conversation = sql::find_conversation(db, guest_id)
            .await?
            .ok_or(ServiceError::GuestNotFound)?;
        if !token.is_some_and(|t| self.access.opens(guest_id, &conversation, t)) {
            self.access.forget(guest_id);
            return Err(ServiceError::GuestTokenInvalid);
        }
        self.access.remember(guest_id, &conversation);
        if let Some(conversation_id) = conversation.main_conversation_id {
            return Err(ServiceError::GuestMigrated { conversation_id });
        }
        let mut query = message_cache::Entity::find()
            .filter(message_cache::Column::ConversationId.eq(conversation.id))
            .order_by_asc(message_cache::Column::Sequence);
        if conversation.message_count > WHOLE_READ_MAX {
            query = query
                .filter(message_cache::Column::Sequence.gt(after))
                .limit(limit + 1);
        }
        let rows = query.all(db).await?;
        Ok((conversation, rows))
    }

    /// Erases the guest from every layer. A migrated guest belongs to its account: 409.
    #[instrument(skip_all, fields(guest_id = %guest_id))]
    pub async fn erase(&self, guest_id: &str, token: Option<&str>) -> Result<(), ServiceError> {
        rules::validate_guest_id(guest_id)?;
        if token.is_none() {
            // Whether or not the id is held: nothing is erased without its token.
            return Err(ServiceError::invalid(
                ErrorCode::GuestTokenRequired,
                "erasing a guest needs its guest token (Authorization: Bearer or X-Guest-Token)",
            ));
        }
        let key = self.access.check(guest_id, token).await;
        let holder = key.inspect_err(|e| self.note(e))?.conversation_id;
        let id = guest_id.to_string();
        let started = Instant::now();
        let erased = self
            .store
            .write(move |txn| Box::pin(sql::erase_in(txn, id, holder)))
            .await;
        self.access.forget(guest_id);
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
