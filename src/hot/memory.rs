//! The in-process hot-cache backend (moka): bounded by the weight of the cached text, with a
//! time-to-live that restarts on every write. Per process only: several instances need Redis.

use std::{sync::Arc, time::Duration};

use moka::{future::Cache, ops::compute::Op};

use super::{CachedMessage, MessageList, SharedMessage, merge_sorted};

type Entry = MessageList;

#[derive(Clone)]
pub struct MemoryCache {
    cache: Cache<String, Entry>,
}

impl MemoryCache {
    pub fn new(ttl: Duration, capacity_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &String, value: &Entry| {
                let bytes = key.len()
                    + value
                        .iter()
                        .map(|m| CachedMessage::weight(m))
                        .sum::<usize>();
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            .build();
        Self { cache }
    }

    /// The key's list, shared (no copy).
    pub async fn get(&self, key: &str) -> Option<Entry> {
        self.cache.get(key).await
    }

    /// Atomically merges `messages` into the key's list (creating it), restarting its TTL.
    pub async fn merge(&self, key: &str, messages: &[SharedMessage]) {
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let merged = match current {
                    Some(entry) => merge_sorted(entry.value(), messages),
                    None => merge_sorted(&[], messages),
                };
                std::future::ready(Op::Put(Arc::new(merged)))
            })
            .await;
    }

    pub async fn remove(&self, key: &str) {
        self.cache.invalidate(key).await;
    }
}
