//! Guest chat: sessions, the write path (one SQL transaction, then L1), reads (L1, else SQL and
//! refill), retry detection, and erasure. Rules from DESIGN.md "Who may do what" and dedup.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use entity::{cache_content_mapping, conversation_cache, message_cache, usage_metrics};
use md5::Md5;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, TransactionTrait,
    sea_query::{CaseStatement, Expr, ExprTrait, Func, OnConflict, Query},
};
use sha2::{Digest, Sha256};
use tracing::{instrument, warn};
use uuid::Uuid;

use super::{
    ServiceError,
    tokens::{GuestTokens, hex},
    usage::UsageCounters,
};
use crate::{
    hot::{CachedMessage, HotCache, MessageList, is_complete},
    store::{BoxFuture, Merge, Store, Write},
};

pub const ROLES: [&str; 3] = ["user", "assistant", "system"];
pub const CONTENT_TYPES: [&str; 3] = ["text", "markdown", "json"];
const MIGRATION_VERSION: &str = "1.0";
const TITLE_CHARS: usize = 80;
const WRITE_RETRIES: u64 = 3;
/// How far a guest conversation's expiry may lag behind "last write + retention" before a
/// merged write moves it.
const EXPIRY_SLACK: Duration = Duration::hours(1);

/// A message as a guest sends it.
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
    max_message_bytes: usize,
    retention: Duration,
    /// SQLite: appends are merged in the group commit. PostgreSQL: each in its own transaction.
    merged: Option<Arc<GuestAppends>>,
}

/// The rules for a guest id: `^[A-Za-z0-9_-]{1,128}$`.
pub fn validate_guest_id(guest_id: &str) -> Result<(), ServiceError> {
    let ok = (1..=128).contains(&guest_id.len())
        && guest_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "invalid_guest_id",
            "guest id must be 1-128 characters of A-Z, a-z, 0-9, '_' or '-'",
        ))
    }
}

/// MD5 of `content`, hex (the seeds' `message_hash`).
pub fn md5_hex(content: &str) -> String {
    hex(&Md5::digest(content.as_bytes()))
}

/// SHA-256 of `text`, hex.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

impl GuestService {
    pub fn new(
        store: Store,
        hot: HotCache,
        tokens: GuestTokens,
        usage: Arc<UsageCounters>,
        max_message_bytes: usize,
        retention_days: u32,
    ) -> Self {
        let retention = Duration::days(i64::from(retention_days));
        let merged = store
            .merges_writes()
            .then(|| Arc::new(GuestAppends { retention }));
        Self {
            store,
            hot,
            tokens,
            usage,
            max_message_bytes,
            retention,
            merged,
        }
    }

    /// Checks `token` for `guest_id`: absent → `GuestTokenRequired`, wrong → `GuestTokenInvalid`.
    pub fn authorize(&self, guest_id: &str, token: Option<&str>) -> Result<(), ServiceError> {
        match token {
            None => Err(ServiceError::GuestTokenRequired),
            Some(t) if self.tokens.verify(guest_id, t) => Ok(()),
            Some(_) => Err(ServiceError::GuestTokenInvalid),
        }
    }

    /// Creates a guest with a server-chosen, unguessable id.
    #[instrument(skip_all)]
    pub async fn create_session(&self) -> Result<GuestSession, ServiceError> {
        let guest_id = format!("g_{}", Uuid::new_v4().simple());
        let now = now();
        let row = new_conversation(&guest_id, now, self.retention, 0, None).into_active_model();
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
        self.usage.record(&guest_id, "guest", |_| {});
        Ok(GuestSession {
            guest_token: self.tokens.issue(&guest_id),
            guest_id,
            expires_at: now + self.retention,
        })
    }

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
        validate_guest_id(guest_id)?;
        if let Some(t) = token
            && !self.tokens.verify(guest_id, t)
        {
            return Err(ServiceError::GuestTokenInvalid);
        }
        validate_message(&msg, self.max_message_bytes)?;
        // PostgreSQL keeps microseconds: compare retries at the precision that is stored.
        msg.timestamp = msg.timestamp.map(|t| t.trunc_subsecs(6));
        let mut attempt = 0;
        let stored = loop {
            let (id, m, retention) = (guest_id.to_string(), msg.clone(), self.retention);
            let has_token = token.is_some();
            let result = match &self.merged {
                Some(merged) => {
                    let item = AppendItem {
                        guest_id: id,
                        has_token,
                        msg: m,
                    };
                    self.store.write_merged(merged.clone(), item).await
                }
                None => {
                    self.store
                        .write_unguarded(move |txn| {
                            Box::pin(append_in(txn, id, has_token, m, retention))
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
                other => break other.inspect_err(|e| self.note(e))?,
            }
        };
        if stored.duplicate {
            self.usage.record(guest_id, "guest", |_| {});
            return Ok(Appended {
                message: Arc::new(stored.message),
                duplicate: true,
                issued_token: None,
            });
        }
        let message = Arc::new(stored.message);
        if let Err(err) = self.hot.append_guest_message(guest_id, &message).await {
            warn!(error = %err, "hot cache append failed; dropping the key");
            if let Err(err) = self.hot.remove_guest(guest_id).await {
                warn!(error = %err, "hot cache key could not be dropped");
            }
        }
        let tokens = i64::from(message.tokens.unwrap_or(0));
        self.usage.record(guest_id, "guest", |d| {
            d.messages_stored += 1;
            d.tokens += tokens;
        });
        Ok(Appended {
            message,
            duplicate: false,
            issued_token: (stored.claimed && token.is_none()).then(|| self.tokens.issue(guest_id)),
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
        validate_guest_id(guest_id)?;
        self.authorize(guest_id, token)?;
        match self.hot.guest_messages(guest_id).await {
            Ok(Some(messages)) if is_complete(&messages) => {
                self.usage.record(guest_id, "guest", |d| d.cache_hits += 1);
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
            .record(guest_id, "guest", |d| d.cache_misses += 1);
        let (conversation, rows) = self
            .read_from_sql(guest_id)
            .await
            .inspect_err(|e| self.store.note_error(e))?;
        let conversation = conversation.ok_or(ServiceError::GuestNotFound)?;
        let messages: Vec<Arc<CachedMessage>> =
            rows.iter().map(|r| Arc::new(to_cached(r))).collect();
        if !messages.is_empty()
            && conversation.main_conversation_id.is_none()
            && let Err(err) = self.hot.fill_guest(guest_id, &messages).await
        {
            warn!(error = %err, "hot cache refill failed");
        }
        Ok(GuestHistory {
            conversation_id: conversation.id,
            messages: Arc::new(messages),
            source: Source::L2,
            migrated_to: conversation.main_conversation_id,
        })
    }

    async fn read_from_sql(
        &self,
        guest_id: &str,
    ) -> Result<(Option<conversation_cache::Model>, Vec<message_cache::Model>), sea_orm::DbErr>
    {
        self.store.check_available()?;
        let db = self.store.conn();
        let Some(conversation) = conversation_cache::Entity::find()
            .filter(conversation_cache::Column::GuestId.eq(guest_id))
            .one(db)
            .await?
        else {
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
        validate_guest_id(guest_id)?;
        self.authorize(guest_id, token)?;
        let id = guest_id.to_string();
        self.store
            .write(move |txn| Box::pin(erase_in(txn, id)))
            .await
            .inspect_err(|e| self.note(e))?;
        self.usage.forget(guest_id);
        if let Err(err) = self.hot.remove_guest(guest_id).await {
            warn!(error = %err, "hot cache key could not be dropped after erase");
        }
        Ok(())
    }
}

/// The rules every stored message follows, guest or account.
pub fn validate_message(msg: &NewMessage, max_message_bytes: usize) -> Result<(), ServiceError> {
    if !ROLES.contains(&msg.role.as_str()) {
        return Err(ServiceError::invalid(
            "invalid_role",
            "role must be one of user, assistant, system",
        ));
    }
    if msg.content.len() > max_message_bytes {
        return Err(ServiceError::TooLarge {
            size: msg.content.len(),
            max: max_message_bytes,
        });
    }
    if msg.content.trim().is_empty() {
        return Err(ServiceError::invalid(
            "content_empty",
            "content must not be empty",
        ));
    }
    if msg.content.contains('\0') {
        return Err(ServiceError::invalid(
            "content_invalid",
            "content must not contain U+0000",
        ));
    }
    if let Some(ct) = &msg.content_type
        && !CONTENT_TYPES.contains(&ct.as_str())
    {
        return Err(ServiceError::invalid(
            "invalid_content_type",
            "content_type must be one of text, markdown, json",
        ));
    }
    if msg.tokens.is_some_and(|t| t < 0) {
        return Err(ServiceError::invalid(
            "invalid_tokens",
            "tokens must be 0 or more",
        ));
    }
    if let Some(key) = &msg.idempotency_key {
        let ok = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(ServiceError::invalid(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            ));
        }
    }
    Ok(())
}

/// What one guest write did inside its transaction.
pub struct Stored {
    message: CachedMessage,
    claimed: bool,
    duplicate: bool,
}

/// A guest's new conversation as it will be stored.
fn new_conversation(
    guest_id: &str,
    now: DateTime<Utc>,
    retention: Duration,
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
        expires_at: Some(now + retention),
        guest_id: guest_id.to_string(),
        main_conversation_id: None,
    }
}

/// One guest write, inside a transaction or a group commit: claim the id or bump the
/// conversation's counter (which also locks its row), check the rules, detect a retry, store the
/// message and its ledger row. On `Err` or `Write::Discard` it leaves nothing behind (a bump is
/// undone), so the group commit needs no savepoint for it.
async fn append_in(
    txn: &DatabaseTransaction,
    guest_id: String,
    has_token: bool,
    msg: NewMessage,
    retention: Duration,
) -> Result<Write<Stored>, ServiceError> {
    let now = now();
    let title = (msg.role == "user").then(|| title_from(&msg.content));
    let (conversation, claimed) = if has_token {
        match bump(txn, &guest_id, now, retention, title.clone()).await? {
            Some(found) => (found, false),
            None => match find_conversation(txn, &guest_id).await? {
                Some(found) => {
                    let conversation_id = found
                        .main_conversation_id
                        .ok_or_else(|| ServiceError::Internal("guest row not bumped".into()))?;
                    return Err(ServiceError::GuestMigrated { conversation_id });
                }
                // A valid token for an id with no conversation (e.g. after an erase): claim it.
                None => match claim(txn, &guest_id, now, retention, title.clone()).await? {
                    Some(created) => (created, true),
                    None => {
                        let bumped = bump(txn, &guest_id, now, retention, title).await?;
                        (bumped.ok_or(ServiceError::GuestNotFound)?, false)
                    }
                },
            },
        }
    } else {
        // Without a token the only way in is claiming an id nobody has.
        match claim(txn, &guest_id, now, retention, title).await? {
            Some(created) => (created, true),
            None => return Err(ServiceError::GuestTokenRequired),
        }
    };
    if !claimed {
        let retry = find_retry(txn, conversation.id, &msg).await;
        if !matches!(retry, Ok(None)) {
            unbump(txn, conversation.id).await?;
        }
        if let Some(original) = retry? {
            return Ok(Write::Discard(Stored {
                message: original,
                claimed: false,
                duplicate: true,
            }));
        }
    }
    let row = message_row(conversation.id, conversation.message_count, msg, now);
    message_cache::Entity::insert(row.clone().into_active_model())
        .exec_without_returning(txn)
        .await?;
    cache_content_mapping::Entity::insert(mapping_row(&row, guest_id, now))
        .exec_without_returning(txn)
        .await?;
    Ok(Write::Commit(Stored {
        message: to_cached(&row),
        claimed,
        duplicate: false,
    }))
}

/// The `message_cache` row for `msg` at `sequence`.
fn message_row(
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
    }
}

/// The ledger row recording that `row` is in the cache tables and not yet in the main ones.
fn mapping_row(
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

/// Guest appends stored together: the SQLite writer hands every append waiting in its batch to
/// one call, which stores them with a handful of statements instead of three or four each.
pub struct GuestAppends {
    retention: Duration,
}

/// One guest append waiting for the writer.
pub struct AppendItem {
    guest_id: String,
    has_token: bool,
    msg: NewMessage,
}

impl Merge for GuestAppends {
    type Item = AppendItem;
    type Output = Stored;
    type Error = ServiceError;

    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<AppendItem>,
    ) -> BoxFuture<'a, Vec<Result<Stored, ServiceError>>> {
        Box::pin(async move {
            let mut results: Vec<Option<Result<Stored, ServiceError>>> =
                items.iter().map(|_| None).collect();
            // The common case together, in a savepoint so that a failure leaves nothing behind.
            match txn.begin().await {
                Ok(savepoint) => match append_many(&savepoint, &items, self.retention).await {
                    Ok(done) => match savepoint.commit().await {
                        Ok(()) => done.into_iter().for_each(|(i, r)| results[i] = Some(r)),
                        Err(err) => warn!(error = %err, "merged guest appends not kept"),
                    },
                    Err(err) => {
                        warn!(error = %err, "merged guest appends failed; storing one by one");
                        let _ = savepoint.rollback().await;
                    }
                },
                Err(err) => warn!(error = %err, "savepoint for merged guest appends failed"),
            }
            // The rest (writes to migrated guests, or all after a failed merge) one by one.
            let mut answers = Vec::with_capacity(items.len());
            for (item, result) in items.into_iter().zip(results) {
                answers.push(match result {
                    Some(result) => result,
                    None => append_in(txn, item.guest_id, item.has_token, item.msg, self.retention)
                        .await
                        .map(|w| match w {
                            Write::Commit(s) | Write::Discard(s) => s,
                        }),
                });
            }
            answers
        })
    }
}

/// Stores the items with the rules of [`append_in`]: a write to an open conversation needs the
/// token (checked before queueing), a write to an id nobody holds claims it. One query for the
/// conversations, one for what the items could repeat, one multi-row `INSERT` for conversations
/// claimed here, one `UPDATE` for every other counter, and one multi-row `INSERT` each for the
/// messages and their ledger rows. The writer holds SQLite's write lock for the whole batch, so
/// rows read here cannot change underneath. Returns `(index, result)` for the items it decided;
/// writes to migrated guests are left to [`append_in`].
async fn append_many(
    txn: &DatabaseTransaction,
    items: &[AppendItem],
    retention: Duration,
) -> Result<Vec<(usize, Result<Stored, ServiceError>)>, DbErr> {
    let now = now();
    let mut guest_ids: Vec<&str> = items.iter().map(|i| i.guest_id.as_str()).collect();
    guest_ids.sort_unstable();
    guest_ids.dedup();
    if guest_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut guests: HashMap<String, Batched> = conversation_cache::Entity::find()
        .filter(conversation_cache::Column::GuestId.is_in(guest_ids))
        .all(txn)
        .await?
        .into_iter()
        .map(|row| (row.guest_id.clone(), Batched::stored(row, now, retention)))
        .collect();
    let probes: Vec<Condition> = items
        .iter()
        .filter(|i| i.has_token)
        .filter_map(|i| retry_probe(guests.get(&i.guest_id)?.row.id, &i.msg))
        .collect();
    let mut earlier = if probes.is_empty() {
        Vec::new()
    } else {
        let any = probes.into_iter().fold(Condition::any(), Condition::add);
        message_cache::Entity::find().filter(any).all(txn).await?
    };
    let mut done = Vec::with_capacity(items.len());
    let mut rows = Vec::with_capacity(items.len());
    let mut ledger = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let claimed = !guests.contains_key(&item.guest_id);
        let guest = guests.entry(item.guest_id.clone()).or_insert_with(|| {
            // Nobody holds this id: this write claims it, as the one-at-a-time path would.
            Batched::new(new_conversation(&item.guest_id, now, retention, 0, None))
        });
        if guest.row.main_conversation_id.is_some() {
            continue; // read-only: the one-at-a-time path gives the answer (409 or 401)
        }
        if !claimed && !item.has_token {
            done.push((i, Err(ServiceError::GuestTokenRequired)));
            continue;
        }
        match repeated(&earlier, guest.row.id, &item.msg) {
            Some(Ok(original)) => {
                let message = to_cached(original);
                let stored = Stored {
                    message,
                    claimed: false,
                    duplicate: true,
                };
                done.push((i, Ok(stored)));
                continue;
            }
            Some(Err(err)) => {
                done.push((i, Err(err)));
                continue;
            }
            None => {}
        }
        guest.row.message_count += 1;
        guest.written = true;
        if guest.row.title.is_none() && item.msg.role == "user" {
            guest.row.title = Some(title_from(&item.msg.content));
            guest.titled = true;
        }
        let row = message_row(guest.row.id, guest.row.message_count, item.msg.clone(), now);
        ledger.push(mapping_row(&row, item.guest_id.clone(), now));
        let stored = Stored {
            message: to_cached(&row),
            claimed,
            duplicate: false,
        };
        done.push((i, Ok(stored)));
        if row.idempotency_key.is_some() || row.client_timestamp.is_some() {
            earlier.push(row.clone());
        }
        rows.push(row.into_active_model());
    }
    if rows.is_empty() {
        return Ok(done);
    }
    // Batches are at most the writer's MAX_BATCH items: well under SQLite's variable limit.
    let (new, known): (Vec<&Batched>, Vec<&Batched>) = guests
        .values()
        .filter(|g| g.written)
        .partition(|g| g.is_new);
    if !new.is_empty() {
        // Inserted with their final count and title; before their messages (foreign key).
        conversation_cache::Entity::insert_many(
            new.iter().map(|g| g.row.clone().into_active_model()),
        )
        .exec_without_returning(txn)
        .await?;
    }
    if !known.is_empty() {
        update_counters(txn, &known, now, retention).await?;
    }
    message_cache::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    cache_content_mapping::Entity::insert_many(ledger)
        .exec_without_returning(txn)
        .await?;
    Ok(done)
}

/// A guest conversation as a merged batch changes it.
struct Batched {
    /// The row with this batch's changes applied.
    row: conversation_cache::Model,
    /// Claimed in this batch: inserted rather than updated.
    is_new: bool,
    /// This batch stored messages in it.
    written: bool,
    /// This batch gave it its title.
    titled: bool,
    /// Its stored expiry lags by more than EXPIRY_SLACK.
    stale: bool,
}

impl Batched {
    fn stored(row: conversation_cache::Model, now: DateTime<Utc>, retention: Duration) -> Self {
        let stale = row
            .expires_at
            .is_none_or(|at| at + EXPIRY_SLACK < now + retention);
        Self {
            row,
            is_new: false,
            written: false,
            titled: false,
            stale,
        }
    }

    fn new(row: conversation_cache::Model) -> Self {
        Self {
            row,
            is_new: true,
            written: false,
            titled: false,
            stale: false,
        }
    }
}

/// One `UPDATE` for the counters (and first titles) of the stored conversations a batch wrote
/// to, and one for the expiries that lag by more than EXPIRY_SLACK (the expiry is indexed: it is
/// not moved on every message).
async fn update_counters(
    txn: &DatabaseTransaction,
    written: &[&Batched],
    now: DateTime<Utc>,
    retention: Duration,
) -> Result<(), DbErr> {
    let id = || Expr::col(conversation_cache::Column::Id);
    let counts = written
        .iter()
        .fold(CaseStatement::new(), |case, g| {
            case.case(id().eq(g.row.id), g.row.message_count)
        })
        .finally(Expr::col(conversation_cache::Column::MessageCount));
    let mut update = conversation_cache::Entity::update_many()
        .col_expr(conversation_cache::Column::MessageCount, counts.into())
        .col_expr(conversation_cache::Column::AccessedAt, Expr::value(now));
    let titled: Vec<&&Batched> = written.iter().filter(|g| g.titled).collect();
    if !titled.is_empty() {
        let case = titled
            .into_iter()
            .fold(CaseStatement::new(), |case, g| {
                case.case(id().eq(g.row.id), g.row.title.clone())
            })
            .finally(Expr::col(conversation_cache::Column::Title));
        update = update.col_expr(conversation_cache::Column::Title, case.into());
    }
    update
        .filter(conversation_cache::Column::Id.is_in(written.iter().map(|g| g.row.id)))
        .exec(txn)
        .await?;
    let stale: Vec<Uuid> = written
        .iter()
        .filter(|g| g.stale)
        .map(|g| g.row.id)
        .collect();
    if !stale.is_empty() {
        conversation_cache::Entity::update_many()
            .col_expr(
                conversation_cache::Column::ExpiresAt,
                Expr::value(Some(now + retention)),
            )
            .filter(conversation_cache::Column::Id.is_in(stale))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Creates the guest's conversation holding its first message; `None` if the id is taken.
async fn claim(
    txn: &DatabaseTransaction,
    guest_id: &str,
    now: DateTime<Utc>,
    retention: Duration,
    title: Option<String>,
) -> Result<Option<conversation_cache::Model>, ServiceError> {
    let row = new_conversation(guest_id, now, retention, 1, title).into_active_model();
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

/// Undoes [`bump`]'s counter step (a retry or a refused write stores nothing).
async fn unbump(txn: &DatabaseTransaction, conversation_id: Uuid) -> Result<(), ServiceError> {
    conversation_cache::Entity::update_many()
        .col_expr(
            conversation_cache::Column::MessageCount,
            Expr::col(conversation_cache::Column::MessageCount).sub(1),
        )
        .filter(conversation_cache::Column::Id.eq(conversation_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Deletes the guest's ledger rows, messages, conversation and counters.
async fn erase_in(txn: &DatabaseTransaction, guest_id: String) -> Result<Write<()>, ServiceError> {
    let conversation = find_conversation(txn, &guest_id)
        .await?
        .ok_or(ServiceError::GuestNotFound)?;
    if let Some(conversation_id) = conversation.main_conversation_id {
        return Err(ServiceError::GuestMigrated { conversation_id });
    }
    let message_ids = Query::select()
        .column(message_cache::Column::Id)
        .from(message_cache::Entity)
        .and_where(Expr::col(message_cache::Column::ConversationId).eq(conversation.id))
        .to_owned();
    cache_content_mapping::Entity::delete_many()
        .filter(cache_content_mapping::Column::CacheType.eq("message"))
        .filter(cache_content_mapping::Column::CacheId.in_subquery(message_ids))
        .exec(txn)
        .await?;
    message_cache::Entity::delete_many()
        .filter(message_cache::Column::ConversationId.eq(conversation.id))
        .exec(txn)
        .await?;
    conversation_cache::Entity::delete_by_id(conversation.id)
        .exec(txn)
        .await?;
    usage_metrics::Entity::delete_many()
        .filter(usage_metrics::Column::UserId.eq(guest_id.as_str()))
        .exec(txn)
        .await?;
    Ok(Write::Commit(()))
}

/// `message_count + 1` (and access time, expiry, first title) on the guest's conversation,
/// returning the row as it is now; `None` when the guest has no conversation yet.
async fn bump(
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
            Expr::value(Some(now + retention)),
        );
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

async fn find_conversation<C: ConnectionTrait>(
    db: &C,
    guest_id: &str,
) -> Result<Option<conversation_cache::Model>, ServiceError> {
    Ok(conversation_cache::Entity::find()
        .filter(conversation_cache::Column::GuestId.eq(guest_id))
        .one(db)
        .await?)
}

/// The stored message this write repeats, if any: same `Idempotency-Key`, or the same role,
/// content and client timestamp. Without a timestamp or key, equal words are a new message.
async fn find_retry(
    txn: &DatabaseTransaction,
    conversation_id: Uuid,
    msg: &NewMessage,
) -> Result<Option<CachedMessage>, ServiceError> {
    let Some(probe) = retry_probe(conversation_id, msg) else {
        return Ok(None);
    };
    let candidates = message_cache::Entity::find().filter(probe).all(txn).await?;
    repeated(&candidates, conversation_id, msg)
        .transpose()
        .map(|found| found.map(to_cached))
}

/// The stored messages `msg` could repeat, as a filter; `None` when it cannot repeat any.
/// MD5 narrows the search; [`repeated`] decides on the content itself.
fn retry_probe(conversation_id: Uuid, msg: &NewMessage) -> Option<Condition> {
    let same_conversation = message_cache::Column::ConversationId.eq(conversation_id);
    if let Some(key) = &msg.idempotency_key {
        return Some(
            Condition::all()
                .add(same_conversation)
                .add(message_cache::Column::IdempotencyKey.eq(key.as_str())),
        );
    }
    let timestamp = msg.timestamp?;
    Some(
        Condition::all()
            .add(same_conversation)
            .add(message_cache::Column::Role.eq(msg.role.as_str()))
            .add(message_cache::Column::MessageHash.eq(md5_hex(&msg.content)))
            .add(message_cache::Column::ClientTimestamp.eq(timestamp)),
    )
}

/// Which of `candidates` `msg` repeats: the one with its `Idempotency-Key` (an error if that
/// one holds other words), else one with the same role, content and client timestamp.
fn repeated<'a>(
    candidates: &'a [message_cache::Model],
    conversation_id: Uuid,
    msg: &NewMessage,
) -> Option<Result<&'a message_cache::Model, ServiceError>> {
    let mut mine = candidates
        .iter()
        .filter(|m| m.conversation_id == conversation_id);
    if let Some(key) = &msg.idempotency_key {
        return mine
            .find(|m| m.idempotency_key.as_deref() == Some(key.as_str()))
            .map(|found| {
                if found.role == msg.role && found.content == msg.content {
                    Ok(found)
                } else {
                    Err(ServiceError::IdempotencyKeyReused)
                }
            });
    }
    let timestamp = msg.timestamp?;
    mine.find(|m| {
        m.client_timestamp == Some(timestamp) && m.role == msg.role && m.content == msg.content
    })
    .map(Ok)
}

/// The current time at the precision every backend stores (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// RFC 3339 in UTC with a `Z`, e.g. `2025-12-21T12:00:00Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A title from the first user message: its first line, at most 80 characters.
fn title_from(content: &str) -> String {
    let line = content.trim().lines().next().unwrap_or_default().trim();
    let mut title: String = line.chars().take(TITLE_CHARS).collect();
    if line.chars().count() > TITLE_CHARS {
        title.push('…');
    }
    title
}

fn to_cached(row: &message_cache::Model) -> CachedMessage {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_ids_follow_the_documented_pattern() {
        assert!(validate_guest_id("test-guest-001").is_ok());
        assert!(validate_guest_id(&"a".repeat(128)).is_ok());
        assert!(validate_guest_id(&"a".repeat(129)).is_err());
        assert!(validate_guest_id("").is_err());
        assert!(validate_guest_id("a b").is_err());
        assert!(validate_guest_id("é").is_err());
    }

    #[test]
    fn titles_take_the_first_line_and_cut_long_ones() {
        assert_eq!(title_from("  Hello there\nsecond line"), "Hello there");
        let long = "x".repeat(200);
        assert_eq!(title_from(&long).chars().count(), TITLE_CHARS + 1);
    }

    #[test]
    fn hashes_are_hex() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
