//! The hot cache (L1): per-guest message lists with a TTL refreshed on every write. It is never
//! the only copy of anything — SQL is the truth — so every failure here is logged, counted and
//! answered from SQL by the caller.

mod changes;
mod memory;
mod redis;
mod transport;
mod upstash;

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use changes::OnChange;
pub use memory::MemoryCache;
pub use redis::RedisCache;

/// The longest history the hot cache holds for one guest (both backends): every append copies
/// or rewrites the list, so past this length the guest is read from SQL instead.
pub const MAX_CACHED_MESSAGES: usize = 1000;

/// One message as the hot cache holds it (one JSON object per list element in Redis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub sequence: i64,
    pub role: String,
    pub content: String,
    /// RFC 3339: the client's timestamp, or the server's receive time when none was sent.
    pub timestamp: String,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<i32>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A JSON array, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<String>,
}

impl CachedMessage {
    /// Approximate memory cost, used to bound the in-process cache: the struct behind its `Arc`
    /// and each string's heap buffer (with a little for the allocator's rounding).
    fn weight(&self) -> usize {
        const STRINGS: usize = 7;
        std::mem::size_of::<Self>()
            + 16
            + self.content.len()
            + self.tool_call_id.as_ref().map_or(0, String::len)
            + self.tool_calls.as_ref().map_or(0, String::len)
            + self.role.len()
            + self.timestamp.len()
            + self.content_type.len()
            + self.created_at.len()
            + STRINGS * 8
    }
}

/// One cached message, shared between the cache and readers without copying.
pub type SharedMessage = Arc<CachedMessage>;
/// A guest's cached history in sequence order.
pub type MessageList = Arc<Vec<SharedMessage>>;

/// A hot-cache failure (timeout, connection loss). Callers fall back to SQL.
#[derive(Debug, thiserror::Error)]
#[error("hot cache: {0}")]
pub struct HotError(pub String);

/// Whether a hot-cache backend is answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotState {
    Up,
    Down,
}

impl HotState {
    pub fn as_str(self) -> &'static str {
        match self {
            HotState::Up => "up",
            HotState::Down => "down",
        }
    }
}

/// The hot cache, over the closed set of backends. Callers never match on it.
#[derive(Clone)]
pub enum HotCache {
    Memory(MemoryCache),
    Redis(RedisCache),
}

impl HotCache {
    /// The in-process backend with `ttl` per key and about `capacity_bytes` of messages.
    pub fn memory(ttl: Duration, capacity_bytes: u64) -> Self {
        HotCache::Memory(MemoryCache::new(ttl, capacity_bytes))
    }

    /// The Redis backend (lazy: start-up never waits for Redis). Call [`HotCache::start`].
    pub fn redis(
        url: &str,
        key_prefix: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<Self, HotError> {
        Ok(HotCache::Redis(RedisCache::new(
            url, key_prefix, timeout, ttl,
        )?))
    }

    /// The Redis backend on a Redis Cluster (`nodes`: some of its nodes' URLs).
    pub fn redis_cluster(
        nodes: &[String],
        key_prefix: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<Self, HotError> {
        Ok(HotCache::Redis(RedisCache::cluster(
            nodes, key_prefix, timeout, ttl,
        )?))
    }

    /// The Redis backend over Upstash's REST API (`url` https://…, `token` its bearer).
    pub fn upstash(
        url: &str,
        token: &str,
        key_prefix: &str,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<Self, HotError> {
        Ok(HotCache::Redis(RedisCache::upstash(
            url, token, key_prefix, timeout, ttl,
        )?))
    }

    /// Starts background work (the Redis health probe).
    pub async fn start(&self) {
        if let HotCache::Redis(r) = self {
            r.start().await;
        }
    }

    /// Whether other instances may share this cache (and so change guests' keys): Redis.
    pub fn shared(&self) -> bool {
        matches!(self, HotCache::Redis(_))
    }

    /// Tells the other instances that `guest_id`'s key changed (Redis; nothing in process).
    pub async fn announce_key_change(&self, guest_id: &str) {
        if let HotCache::Redis(r) = self {
            r.announce(guest_id).await;
        }
    }

    /// Follows the other instances' key changes (Redis; None in process, where there are none).
    pub fn follow_key_changes(&self, on_change: OnChange) -> Option<tokio::task::JoinHandle<()>> {
        match self {
            HotCache::Redis(r) => r.follow_changes(on_change),
            HotCache::Memory(_) => None,
        }
    }

    /// Whether keys kept in memory can be trusted: always in process; with Redis, while this
    /// instance hears every change.
    pub fn keys_trustworthy(&self) -> bool {
        match self {
            HotCache::Redis(r) => r.changes_live(),
            HotCache::Memory(_) => true,
        }
    }

    /// The backend's name, for `/readyz` and logs.
    pub fn backend(&self) -> &'static str {
        match self {
            HotCache::Memory(_) => "memory",
            HotCache::Redis(_) => "redis",
        }
    }

    pub fn state(&self) -> HotState {
        match self {
            HotCache::Memory(_) => HotState::Up,
            HotCache::Redis(r) if r.is_up() => HotState::Up,
            HotCache::Redis(_) => HotState::Down,
        }
    }

    /// The guest's cached messages in sequence order, or `None` when nothing is cached.
    pub async fn guest_messages(&self, guest_id: &str) -> Result<Option<MessageList>, HotError> {
        match self {
            HotCache::Memory(m) => Ok(m.get(guest_id).await),
            HotCache::Redis(r) => Ok(r
                .get(guest_id)
                .await?
                .map(|list| Arc::new(list.into_iter().map(Arc::new).collect()))),
        }
    }

    /// Adds one committed message to the guest's list and refreshes the TTL.
    pub async fn append_guest_message(
        &self,
        guest_id: &str,
        message: &SharedMessage,
    ) -> Result<(), HotError> {
        match self {
            HotCache::Memory(m) => {
                m.merge(guest_id, std::slice::from_ref(message)).await;
                Ok(())
            }
            HotCache::Redis(r) => r.append(guest_id, message).await,
        }
    }

    /// Refills the guest's list from SQL, merging with anything appended meanwhile.
    pub async fn fill_guest(
        &self,
        guest_id: &str,
        messages: &[SharedMessage],
    ) -> Result<(), HotError> {
        match self {
            HotCache::Memory(m) => {
                m.merge(guest_id, messages).await;
                Ok(())
            }
            HotCache::Redis(r) => r.fill(guest_id, messages).await,
        }
    }

    /// Seconds the guest's entry has left, where the backend can tell (Redis); `None` for the
    /// in-process cache, or when nothing is cached.
    pub async fn ttl_secs(&self, guest_id: &str) -> Result<Option<i64>, HotError> {
        match self {
            HotCache::Memory(_) => Ok(None),
            HotCache::Redis(r) => r.ttl_secs(guest_id).await,
        }
    }

    /// Drops the guest's entry for good after an erase or a migration: copies of
    /// `conversation`'s messages that arrive later — an append that committed just before, a
    /// refill read just before — are refused for the cache's TTL. A later conversation of the same
    /// id (a re-claimed client-chosen id) is cached as usual.
    pub async fn forget_conversation(
        &self,
        guest_id: &str,
        conversation: Option<Uuid>,
    ) -> Result<(), HotError> {
        match (self, conversation) {
            (HotCache::Memory(m), Some(c)) => {
                m.forget(guest_id, c).await;
                Ok(())
            }
            (HotCache::Redis(r), Some(c)) => r.forget(guest_id, c).await,
            (_, None) => self.remove_guest(guest_id).await,
        }
    }

    pub async fn remove_guest(&self, guest_id: &str) -> Result<(), HotError> {
        match self {
            HotCache::Memory(m) => {
                m.remove(guest_id).await;
                Ok(())
            }
            HotCache::Redis(r) => r.remove(guest_id).await,
        }
    }
}

/// True when `messages` is exactly sequences 1..=n: a complete history. A list with a gap is
/// partial (an append that raced a refill, or a failed append) and must be read from SQL.
pub fn is_complete(messages: &[SharedMessage]) -> bool {
    !messages.is_empty()
        && messages
            .iter()
            .enumerate()
            .all(|(i, m)| m.sequence == i as i64 + 1)
}

/// Merges `incoming` into `existing` by sequence, keeping order and dropping repeats.
pub(crate) fn merge_sorted(
    existing: &[SharedMessage],
    incoming: &[SharedMessage],
) -> Vec<SharedMessage> {
    let mut merged: Vec<SharedMessage> = Vec::with_capacity(existing.len() + incoming.len());
    merged.extend_from_slice(existing);
    for message in incoming {
        match merged.binary_search_by_key(&message.sequence, |m| m.sequence) {
            Ok(_) => {}
            Err(at) => merged.insert(at, message.clone()),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(sequence: i64) -> SharedMessage {
        Arc::new(CachedMessage {
            id: Uuid::now_v7(),
            conversation_id: Uuid::nil(),
            sequence,
            role: "user".into(),
            content: format!("m{sequence}"),
            timestamp: "2025-12-21T12:00:00Z".into(),
            content_type: "text".into(),
            tokens: None,
            created_at: "2025-12-21T12:00:00Z".into(),
            tool_call_id: None,
            tool_calls: None,
        })
    }

    #[test]
    fn merge_orders_by_sequence_and_drops_repeats() {
        let merged = merge_sorted(&[msg(3)], &[msg(1), msg(2), msg(3)]);
        let seqs: Vec<i64> = merged.iter().map(|m| m.sequence).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert!(is_complete(&merged));
    }

    #[test]
    fn a_list_with_a_gap_is_not_complete() {
        assert!(!is_complete(&[msg(1), msg(3)]));
        assert!(!is_complete(&[msg(2)]));
        assert!(!is_complete(&[]));
    }
}
