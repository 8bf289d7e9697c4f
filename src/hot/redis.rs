//! The Redis hot-cache backend. Guest keys are lists `{prefix}guest:{guest_id}` holding one JSON
//! message per element, as the seeds show, so `LRANGE` in redis-cli shows the chat.
//!
//! Failure handling: the connection is lazy (start-up never waits for Redis); every call has a
//! short timeout; a failed call marks Redis down and from then on calls fail fast while a probe
//! task pings it. A key that a write could not update is remembered as dirty and deleted before
//! Redis is used again, so a returning Redis never serves a history that misses a message.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{
    AsyncCommands, Client, RedisError, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{
    transport::{LazyCluster, Transport, bounded},
    upstash::UpstashRest,
};
use tracing::{info, warn};

use super::{
    CachedMessage, HotError, MAX_CACHED_MESSAGES, SharedMessage,
    changes::{KeyChanges, OnChange},
    merge_sorted,
};

/// Dirty keys kept individually; past this, recovery deletes every guest key of this prefix.
const MAX_DIRTY_KEYS: usize = 100_000;
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Marks conversation ARGV[1] gone for ARGV[2] seconds (the set at KEYS[2]) and drops the list
/// at KEYS[1], atomically.
const FORGET_SCRIPT: &str = r#"
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
"#;

/// Merges snapshot items (ARGV[3..]) into the list at KEYS[1] by `sequence`, rewrites it in
/// order, and sets its TTL (ARGV[1]) — atomically, so a key never exists without a TTL and an
/// append that raced the refill is kept. A list longer than the cap (ARGV[2]) is dropped: that
/// guest is read from SQL, as with the in-process cache.
/// Messages of a conversation in the gone set at KEYS[2] (erased or migrated) are left out.
const FILL_SCRIPT: &str = r#"
local items = {}
local seen = {}
local function add(raw)
  local decoded = cjson.decode(raw)
  local seq = decoded['sequence']
  if redis.call('SISMEMBER', KEYS[2], tostring(decoded['conversation_id'])) == 1 then return end
  if seq ~= nil and not seen[seq] then
    seen[seq] = true
    table.insert(items, {seq, raw})
  end
end
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do add(raw) end
for i = 3, #ARGV do add(ARGV[i]) end
table.sort(items, function(a, b) return a[1] < b[1] end)
redis.call('DEL', KEYS[1])
if #items > tonumber(ARGV[2]) then return 0 end
local batch = {}
for _, item in ipairs(items) do
  table.insert(batch, item[2])
  if #batch == 500 then redis.call('RPUSH', KEYS[1], unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('RPUSH', KEYS[1], unpack(batch)) end
if #items > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return #items
"#;

/// Appends ARGV[2] to the list at KEYS[1] and restarts its TTL (ARGV[1]); past the cap (ARGV[3])
/// the list is dropped instead. A message of a gone conversation (ARGV[4] in the set at KEYS[2])
/// is refused. Atomic, like the fill.
const APPEND_SCRIPT: &str = r#"
if redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 1 then return 0 end
local n = redis.call('RPUSH', KEYS[1], ARGV[2])
if n > tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
"#;

#[derive(Clone)]
pub struct RedisCache {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Transport,
    prefix: String,
    timeout: Duration,
    ttl_secs: i64,
    up: AtomicBool,
    dirty: Mutex<Dirty>,
    fill: Script,
    append: Script,
    forget: Script,
    /// Other instances' key changes: None over REST, which cannot subscribe.
    changes: Option<KeyChanges>,
}

#[derive(Default)]
struct Dirty {
    keys: HashSet<String>,
    overflow: bool,
}

impl RedisCache {
    /// Prepares a lazy connection; nothing is sent until [`RedisCache::start`].
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<Self, HotError> {
        let client = Client::open(url).map_err(|e| HotError(format!("bad Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let changes = KeyChanges::new(vec![client.clone()], prefix);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| HotError(format!("Redis client: {e}")))?;
        Ok(Self::over(
            Transport::Tcp(conn),
            Some(changes),
            prefix,
            timeout,
            ttl,
        ))
    }

    /// A Redis Cluster from its nodes' URLs (lazy, like a single server). A guest's keys carry
    /// its id as their hash tag, so every command and script touches one slot.
    pub fn cluster(
        nodes: &[String],
        prefix: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<Self, HotError> {
        let clients = nodes
            .iter()
            .map(|url| Client::open(url.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HotError(format!("bad Redis Cluster node URL: {e}")))?;
        let changes = KeyChanges::new(clients, prefix);
        let conn = LazyCluster::new(nodes, timeout)?;
        Ok(Self::over(
            Transport::Cluster(conn),
            Some(changes),
            prefix,
            timeout,
            ttl,
        ))
    }

    /// Redis over Upstash's REST API (`url` https://…, its `token`). REST cannot subscribe, so
    /// this instance does not hear other instances' key changes (see `changes`).
    pub fn upstash(
        url: &str,
        token: &str,
        prefix: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<Self, HotError> {
        let rest = UpstashRest::new(url, token, timeout)?;
        Ok(Self::over(
            Transport::Rest(rest),
            None,
            prefix,
            timeout,
            ttl,
        ))
    }

    fn over(
        conn: Transport,
        changes: Option<KeyChanges>,
        prefix: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                conn,
                prefix: prefix.to_string(),
                timeout,
                ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
                up: AtomicBool::new(false),
                dirty: Mutex::new(Dirty::default()),
                fill: Script::new(FILL_SCRIPT),
                append: Script::new(APPEND_SCRIPT),
                forget: Script::new(FORGET_SCRIPT),
                changes,
            }),
        }
    }

    /// One connection attempt (so `/readyz` is right from the start), then the probe task.
    pub async fn start(&self) {
        if self.ping().await.is_ok() {
            self.inner.up.store(true, Ordering::Release);
            info!("hot cache: Redis is up");
        } else {
            warn!("hot cache: Redis is not reachable; serving from SQL until it is");
        }
        let this = self.clone();
        tokio::spawn(async move { this.probe_forever().await });
    }

    /// Tells every instance (this one too) that `guest_id`'s key changed.
    pub async fn announce(&self, guest_id: &str) {
        let Some(changes) = &self.inner.changes else {
            return;
        };
        let channel = changes.channel().to_string();
        let mut conn = self.inner.conn.clone();
        let sent: Result<i64, HotError> = self
            .call(async move { conn.publish(channel, guest_id).await })
            .await;
        if let Err(e) = sent {
            // The others' keys of this guest go stale until they read them again (RECHECK_SHARED).
            warn!(error = %e, "hot cache: could not announce a guest's key change");
        }
    }

    /// Follows the other instances' key changes (see `changes`; not over REST).
    pub fn follow_changes(&self, on_change: OnChange) -> Option<tokio::task::JoinHandle<()>> {
        let changes = self.inner.changes.as_ref()?;
        Some(changes.follow(on_change, self.inner.timeout))
    }

    /// Whether kept keys can be trusted: while this instance hears every key change; over REST,
    /// which hears none, always (keys are then read again after 10 s: see `guest::access`).
    pub fn changes_live(&self) -> bool {
        self.inner.changes.as_ref().is_none_or(KeyChanges::live)
    }

    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// The guest's list: `{prefix}guest:{guest_id}`, on a cluster `{prefix}guest:{{guest_id}}`
    /// (the id as hash tag, the slot it shares with its gone set).
    fn key(&self, guest_id: &str) -> String {
        self.named("guest", guest_id)
    }

    /// The set of the guest's erased or migrated conversations.
    fn gone_key(&self, guest_id: &str) -> String {
        self.named("gone", guest_id)
    }

    fn named(&self, kind: &str, guest_id: &str) -> String {
        let prefix = &self.inner.prefix;
        if matches!(self.inner.conn, Transport::Cluster(_)) {
            format!("{prefix}{kind}:{{{guest_id}}}")
        } else {
            format!("{prefix}{kind}:{guest_id}")
        }
    }

    async fn ping(&self) -> Result<(), HotError> {
        let mut conn = self.inner.conn.clone();
        let _: String = bounded(
            self.inner.timeout,
            redis::cmd("PING").query_async(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// Runs one Redis call with the timeout; a failure marks Redis down.
    async fn call<T, F>(&self, f: F) -> Result<T, HotError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        if !self.is_up() {
            return Err(HotError("Redis is down".into()));
        }
        match tokio::time::timeout(self.inner.timeout, f).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                Err(HotError(e.to_string()))
            }
            Err(_) => {
                self.mark_down("timed out");
                Err(HotError("Redis timed out".into()))
            }
        }
    }

    fn mark_down(&self, why: &str) {
        if self.inner.up.swap(false, Ordering::AcqRel) {
            warn!(reason = why, "hot cache: Redis is down; serving from SQL");
        }
    }

    fn mark_dirty(&self, key: String) {
        let mut dirty = self.inner.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if dirty.keys.len() >= MAX_DIRTY_KEYS {
            dirty.overflow = true;
        } else {
            dirty.keys.insert(key);
        }
    }

    fn is_dirty(&self, key: &str) -> bool {
        let dirty = self.inner.dirty.lock().unwrap_or_else(|p| p.into_inner());
        dirty.overflow || dirty.keys.contains(key)
    }

    pub async fn get(&self, guest_id: &str) -> Result<Option<Vec<CachedMessage>>, HotError> {
        let key = self.key(guest_id);
        if self.is_dirty(&key) {
            return Ok(None);
        }
        let mut conn = self.inner.conn.clone();
        let raw: Vec<String> = self.call(conn.lrange(&key, 0, -1)).await?;
        if raw.is_empty() {
            return Ok(None);
        }
        let mut parsed = Vec::with_capacity(raw.len());
        for item in &raw {
            match serde_json::from_str::<CachedMessage>(item) {
                Ok(m) => parsed.push(m),
                // Not ours or damaged: treat as a miss; the refill rewrites it from SQL.
                Err(_) => return Ok(None),
            }
        }
        parsed.sort_by_key(|m| m.sequence);
        parsed.dedup_by_key(|m| m.sequence);
        Ok(Some(parsed))
    }

    /// RPUSH + EXPIRE (or drop past the cap) in one script. On failure the key is remembered
    /// as dirty.
    pub async fn append(&self, guest_id: &str, message: &SharedMessage) -> Result<(), HotError> {
        let key = self.key(guest_id);
        let json = serde_json::to_string(message).map_err(|e| HotError(e.to_string()))?;
        let mut conn = self.inner.conn.clone();
        let mut invocation = self.inner.append.key(&key);
        invocation
            .key(self.gone_key(guest_id))
            .arg(self.inner.ttl_secs)
            .arg(json)
            .arg(MAX_CACHED_MESSAGES)
            .arg(message.conversation_id.to_string());
        let result = self.call(invocation.invoke_async::<i64>(&mut conn)).await;
        self.dirty_on_error(key, result.map(|_| ()))
    }

    /// A write to `key` that failed leaves the key dirty (see [`Self::mark_dirty`]).
    fn dirty_on_error(&self, key: String, result: Result<(), HotError>) -> Result<(), HotError> {
        if result.is_err() {
            self.mark_dirty(key);
        }
        result
    }

    /// Merges `messages` into the list (see [`FILL_SCRIPT`]). Skipped for dirty keys.
    pub async fn fill(&self, guest_id: &str, messages: &[SharedMessage]) -> Result<(), HotError> {
        let key = self.key(guest_id);
        if self.is_dirty(&key) || messages.is_empty() {
            return Ok(());
        }
        let mut invocation = self.inner.fill.key(&key);
        invocation
            .key(self.gone_key(guest_id))
            .arg(self.inner.ttl_secs)
            .arg(MAX_CACHED_MESSAGES);
        for m in merge_sorted(&[], messages) {
            invocation.arg(serde_json::to_string(m.as_ref()).map_err(|e| HotError(e.to_string()))?);
        }
        let mut conn = self.inner.conn.clone();
        let _: i64 = self.call(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Seconds the guest's key has left; `None` when there is no key.
    pub async fn ttl_secs(&self, guest_id: &str) -> Result<Option<i64>, HotError> {
        let key = self.key(guest_id);
        let mut conn = self.inner.conn.clone();
        let ttl: i64 = self.call(conn.ttl(&key)).await?;
        Ok((ttl >= 0).then_some(ttl))
    }

    /// Marks `conversation` gone (see [`FORGET_SCRIPT`]) and drops the guest's list.
    pub async fn forget(&self, guest_id: &str, conversation: uuid::Uuid) -> Result<(), HotError> {
        let key = self.key(guest_id);
        let mut invocation = self.inner.forget.key(&key);
        invocation
            .key(self.gone_key(guest_id))
            .arg(conversation.to_string())
            .arg(self.inner.ttl_secs);
        let mut conn = self.inner.conn.clone();
        let result = self.call(invocation.invoke_async::<i64>(&mut conn)).await;
        self.dirty_on_error(key, result.map(|_| ()))
    }

    pub async fn remove(&self, guest_id: &str) -> Result<(), HotError> {
        let key = self.key(guest_id);
        let mut conn = self.inner.conn.clone();
        let result: Result<(), HotError> = self.call(conn.del(&key)).await;
        self.dirty_on_error(key, result)
    }

    /// Pings Redis; when it answers, deletes every dirty key, and only then uses it again.
    async fn probe_forever(&self) {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.ping().await.is_err() {
                self.mark_down("ping failed");
                continue;
            }
            match self.clean_dirty().await {
                Ok(()) => {
                    if !self.inner.up.swap(true, Ordering::AcqRel) {
                        info!("hot cache: Redis is back");
                    }
                }
                Err(e) => warn!(error = %e, "hot cache: could not drop stale keys yet"),
            }
        }
    }

    async fn clean_dirty(&self) -> Result<(), HotError> {
        let (keys, overflow) = {
            let dirty = self.inner.dirty.lock().unwrap_or_else(|p| p.into_inner());
            (
                dirty.keys.iter().cloned().collect::<Vec<_>>(),
                dirty.overflow,
            )
        };
        let timeout = self.inner.timeout * 4;
        self.inner.conn.delete_keys(&keys, timeout).await?;
        if overflow {
            let pattern = format!("{}guest:*", self.inner.prefix);
            self.inner.conn.delete_matching(&pattern, timeout).await?;
        }
        let mut dirty = self.inner.dirty.lock().unwrap_or_else(|p| p.into_inner());
        for key in &keys {
            dirty.keys.remove(key);
        }
        if overflow {
            dirty.overflow = false;
        }
        Ok(())
    }
}
