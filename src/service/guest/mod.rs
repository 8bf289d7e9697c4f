//! Guest chat: sessions, the write path (one SQL transaction, then L1), reads (L1, else SQL and
//! refill), and erasure.
//!
//! - `rules`: what is valid, who may write, expiry, titles, retry detection (shared with the
//!   account path).
//! - `single`: one append in its own transaction; `batch`: appends merged by the group commit.
//! - `sql`: the rows and statements both paths are made of.

mod access;
mod batch;
mod read;
pub mod rules;
mod select;
mod single;
mod sql;
mod threads;
mod tool_calls;

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Duration, Utc};
use entity::conversation_cache;
use sea_orm::{EntityTrait, IntoActiveModel};
use tracing::{instrument, warn};
use uuid::Uuid;

use super::{
    ErrorCode, ServiceError,
    cache_metrics::{CacheMetrics, Layer, Op},
    clock::{now, stored_precision},
    embeddings::{self, Embeddings, Text},
    tokenize::Encoding,
    tokens::GuestTokens,
    usage::{GUEST_TIER, UsageCounters},
};
use crate::{
    hot::{CachedMessage, HotCache},
    store::{MergeLane, Store, Write},
};
use access::Access;
use batch::{AppendItem, GuestAppends};
pub use read::{GuestHistory, HistoryPage, Source};
pub use rules::GuestLimits;
pub use threads::{GuestThread, MAX_CONVERSATIONS};

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
    /// On a `tool` message: the call it answers.
    pub tool_call_id: Option<String>,
    /// On an assistant message: the calls it asks for, a JSON array (as text).
    pub tool_calls: Option<String>,
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
    session_ttl: Duration,
    /// Guests whose read was recorded lately: a read moves `accessed_at` and the expiry at most
    /// once per [`rules::expiry_slack`].
    recently_read: moka::future::Cache<String, ()>,
    /// Appends, merged in the group commit.
    appends: Arc<MergeLane<GuestAppends>>,
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
            backend: store.backend(),
        });
        let recently_read = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(rules::expiry_slack(retention).to_std().unwrap_or_default())
            .build();
        Self {
            access: Access::new(tokens, store.clone(), hot.clone()),
            store,
            hot,
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

    /// The guest's current conversation, for a caller trusted without its token (the admin
    /// API); 404 when there is none.
    pub async fn conversation_of(&self, guest_id: &str) -> Result<Uuid, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        self.store.check_available()?;
        sql::find_conversation(self.store.conn(), guest_id)
            .await
            .inspect_err(|e| self.note(e))?
            .map(|c| c.id)
            .ok_or(ServiceError::GuestNotFound)
    }

    /// Forgets what is kept in memory of a guest that was just migrated (on every instance).
    pub async fn forget_key(&self, guest_id: &str) {
        self.access.forget(guest_id).await;
    }

    /// Follows the other instances' changes to guests' keys (with Redis; see `access`).
    pub fn follow_key_changes(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.access.follow_changes()
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
        conversation: Option<Uuid>,
        mut msg: NewMessage,
    ) -> Result<Appended, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        // Where it goes: with a token, the conversation named (or the newest) of the guest;
        // without, the id's first conversation, which this write may claim.
        let target = match token {
            Some(token) => {
                let key = self.access.check(guest_id, Some(token)).await;
                let key = key.inspect_err(|e| self.note(e))?;
                if let Some(conversation_id) = key.migrated_to {
                    return Err(ServiceError::GuestMigrated { conversation_id });
                }
                Some(self.target(guest_id, &key, conversation).await?)
            }
            None if conversation.is_some() => return Err(ServiceError::GuestTokenRequired),
            None => None,
        };
        let holder = target.as_ref().map(|t| t.conversation_id);
        let key = target.map_or_else(|| guest_id.to_string(), |t| t.key);
        rules::validate_message(&msg, self.max_message_bytes)?;
        msg.timestamp = msg.timestamp.map(stored_precision);
        // Counted here, on the request's task, not in the writer. A guest names no model.
        msg.tokens = msg.tokens.or_else(|| {
            Some(Encoding::for_model(None).count_message(&msg.content, msg.tool_calls.as_deref()))
        });
        let mut attempt = 0;
        let started = Instant::now();
        let stored = loop {
            let (id, m) = (key.clone(), msg.clone());
            let item = AppendItem {
                guest_id: id,
                holder,
                msg: m,
            };
            let result = self.store.write_merged(&self.appends, item).await;
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
        let appended = self.hot.append_guest_message(&key, &message).await;
        self.metrics.timed(Layer::L1, Op::Write, started, &appended);
        if let Err(err) = appended {
            warn!(error = %err, "hot cache append failed; dropping the key");
            if let Err(err) = self.hot.remove_guest(&key).await {
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
        self.access.forget(guest_id).await;
        self.metrics.timed(Layer::L2, Op::Erase, started, &erased);
        let (conversation, further) = erased.inspect_err(|e| self.note(e))?;
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
        for (id, key) in further {
            if let Err(err) = self.hot.forget_conversation(&key, Some(id)).await {
                warn!(error = %err, "hot cache key could not be dropped after erase");
            }
        }
        Ok(())
    }
}
