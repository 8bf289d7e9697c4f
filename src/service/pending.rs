//! Counters merged in memory per key and written in batches, so the request path never writes a
//! counter row: the usage counters and the cache metrics both keep theirs here. A failed write
//! puts its counts back for the next flush.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Mutex, MutexGuard},
};

use sea_orm::{DatabaseTransaction, DbErr};

use crate::store::{BoxFuture, Store, Write, WriteError};

/// A count that can take in another of its kind.
pub trait Absorb {
    fn absorb(&mut self, other: Self);
}

/// Writes one batch of counts (an upsert that adds them to what is stored).
pub type Upsert<K, V> =
    for<'a> fn(&'a DatabaseTransaction, &'a [(K, V)]) -> BoxFuture<'a, Result<(), DbErr>>;

pub struct Pending<K, V> {
    map: Mutex<HashMap<K, V>>,
}

impl<K, V> Default for Pending<K, V> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, V> Pending<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Absorb + Clone + Send + Sync + 'static,
{
    /// The counts, for an update in place.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn restore(&self, items: impl IntoIterator<Item = (K, V)>) {
        let mut map = self.lock();
        for (key, value) in items {
            match map.get_mut(&key) {
                Some(into) => into.absorb(value),
                None => {
                    map.insert(key, value);
                }
            }
        }
    }

    /// Writes everything pending, `batch` keys per transaction, with `upsert`; what could not be
    /// written waits for the next flush. Returns how many keys were written.
    pub async fn flush(
        &self,
        store: &Store,
        batch: usize,
        upsert: Upsert<K, V>,
    ) -> Result<usize, WriteError> {
        // Taken whole, so a burst of keys does not leave a large table behind.
        let taken: Vec<(K, V)> = std::mem::take(&mut *self.lock()).into_iter().collect();
        let mut written = 0;
        let mut rest = taken.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<(K, V)> = rest.by_ref().take(batch).collect();
            let rows = chunk.clone();
            let result = store
                .write(move |txn| {
                    Box::pin(async move {
                        upsert(txn, &rows).await?;
                        Ok::<_, WriteError>(Write::Commit(()))
                    })
                })
                .await;
            if let Err(err) = result {
                self.restore(chunk.into_iter().chain(rest));
                return Err(err);
            }
            written += chunk.len();
        }
        Ok(written)
    }
}
