//! The in-process hot-cache backend (moka): bounded by the weight of the cached text, with a
//! time-to-live that restarts on every write. Per process only: several instances need Redis.

use std::{sync::Arc, time::Duration};

use moka::{future::Cache, ops::compute::Op};

use super::{CachedMessage, MAX_CACHED_MESSAGES, MessageList, SharedMessage, merge_sorted};

type Entry = MessageList;

/// What one cache entry costs besides its messages: the cache's own bookkeeping for the entry,
/// the key's buffer, and the list's `Arc` and `Vec`. An estimate; with it, 100k one-message
/// guests at 128 MiB vs 16 MiB capacity differed in RSS by about what the weights predict.
const ENTRY_OVERHEAD: usize = 256;

#[derive(Clone)]
pub struct MemoryCache {
    cache: Cache<String, Entry>,
    /// Conversations erased or migrated within the TTL: their messages are never cached again.
    gone: Cache<uuid::Uuid, ()>,
}

/// Most remembered gone conversations (each a few dozen bytes).
const GONE_CAPACITY: u64 = 1_000_000;

impl MemoryCache {
    pub fn new(ttl: Duration, capacity_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &String, value: &Entry| {
                let bytes = ENTRY_OVERHEAD
                    + key.len()
                    + value
                        .iter()
                        .map(|m| CachedMessage::weight(m))
                        .sum::<usize>();
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            .build();
        let gone = Cache::builder()
            .max_capacity(GONE_CAPACITY)
            .time_to_live(ttl)
            .build();
        Self { cache, gone }
    }

    /// The key's list, shared (no copy).
    pub async fn get(&self, key: &str) -> Option<Entry> {
        self.cache.get(key).await
    }

    /// Atomically merges `messages` into the key's list (creating it), restarting its TTL.
    /// Messages of a gone conversation are refused; a newer conversation of the key replaces
    /// an older one's list, and an older one's messages are refused.
    pub async fn merge(&self, key: &str, messages: &[SharedMessage]) {
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|current| {
                // A conversation already gone is refused here; one marked gone meanwhile is
                // caught by the check after the merge.
                let fresh: Vec<SharedMessage> = messages
                    .iter()
                    .filter(|m| !self.gone.contains_key(&m.conversation_id))
                    .cloned()
                    .collect();
                let Some(newest) = fresh.iter().map(|m| m.conversation_id).max() else {
                    return std::future::ready(Op::Nop);
                };
                let fresh: Vec<SharedMessage> = fresh
                    .into_iter()
                    .filter(|m| m.conversation_id == newest)
                    .collect();
                let current_conversation = current
                    .as_ref()
                    .and_then(|e| e.value().first())
                    .map(|m| m.conversation_id);
                let merged = match (current, current_conversation) {
                    // An older conversation's copy must not be mixed in: keep the newer.
                    (Some(_), Some(c)) if c > newest => {
                        return std::future::ready(Op::Nop);
                    }
                    (Some(entry), Some(c)) if c == newest => merge_sorted(entry.value(), &fresh),
                    _ => merge_sorted(&[], &fresh),
                };
                // Every merge copies the list (pointers only); past this length the guest is
                // served from SQL instead, so one very long chat cannot make appends quadratic.
                std::future::ready(if merged.len() > MAX_CACHED_MESSAGES {
                    Op::Remove
                } else {
                    Op::Put(Arc::new(merged))
                })
            })
            .await;
        // A `forget` that marked a conversation gone while this merge ran may have dropped the
        // key before the merge put it back: look again, after, and drop it then. (The check
        // above alone left erased messages served in about one test run in six.)
        if messages
            .iter()
            .any(|m| self.gone.contains_key(&m.conversation_id))
        {
            self.cache.invalidate(key).await;
        }
    }

    pub async fn remove(&self, key: &str) {
        self.cache.invalidate(key).await;
    }

    /// Marks `conversation` gone, then drops the key.
    pub async fn forget(&self, key: &str, conversation: uuid::Uuid) {
        self.gone.insert(conversation, ()).await;
        self.cache.invalidate(key).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(sequence: i64) -> SharedMessage {
        Arc::new(CachedMessage {
            id: uuid::Uuid::now_v7(),
            conversation_id: uuid::Uuid::nil(),
            sequence,
            role: "user".into(),
            content: "x".into(),
            timestamp: "2025-12-21T12:00:00Z".into(),
            content_type: "text".into(),
            tokens: None,
            created_at: "2025-12-21T12:00:00Z".into(),
            tool_call_id: None,
            tool_calls: None,
        })
    }

    #[tokio::test]
    async fn a_history_longer_than_the_cap_is_left_to_sql() {
        let cache = MemoryCache::new(Duration::from_secs(60), 64 * 1024 * 1024);
        let all: Vec<SharedMessage> = (1..=MAX_CACHED_MESSAGES as i64).map(msg).collect();
        cache.merge("g", &all).await;
        assert_eq!(
            cache.get("g").await.map(|l| l.len()),
            Some(MAX_CACHED_MESSAGES)
        );
        cache
            .merge("g", &[msg(MAX_CACHED_MESSAGES as i64 + 1)])
            .await;
        assert!(cache.get("g").await.is_none());
    }
}
