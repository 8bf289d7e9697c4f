//! `cache_metrics`: per layer (`l1` hot cache, `l2` cache tables, `main` account tables) and
//! operation, per one-minute window: hits, misses, errors, count, total and max latency in µs.
//! Counted in memory on the request path and written in one batch every
//! `metrics.flush_interval_secs` and at shutdown, like the usage counters.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::cache_metrics::{self, Column};
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbErr, EntityTrait,
    sea_query::{Alias, CaseStatement, Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use super::pending::{Absorb, Pending};
use crate::store::{BoxFuture, Store, WriteError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    L1,
    L2,
    Main,
    /// The semantic response cache (`POST /v1/cache/lookup`).
    Semantic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Read,
    Write,
    Fill,
    Migrate,
    Erase,
}

/// How one operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A read that found what it looked for.
    Hit,
    /// A read that did not (e.g. an L1 miss).
    Miss,
    /// A write or other operation that succeeded.
    Done,
    Error,
}

impl Layer {
    fn as_str(self) -> &'static str {
        match self {
            Layer::L1 => "l1",
            Layer::L2 => "l2",
            Layer::Main => "main",
            Layer::Semantic => "semantic",
        }
    }
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Fill => "fill",
            Op::Migrate => "migrate",
            Op::Erase => "erase",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counter {
    hits: i64,
    misses: i64,
    errors: i64,
    count: i64,
    total_us: i64,
    max_us: i64,
}

impl Absorb for Counter {
    fn absorb(&mut self, c: Counter) {
        self.hits += c.hits;
        self.misses += c.misses;
        self.errors += c.errors;
        self.count += c.count;
        self.total_us = self.total_us.saturating_add(c.total_us);
        self.max_us = Ord::max(self.max_us, c.max_us);
    }
}

type Key = (Layer, Op, DateTime<Utc>);

/// Rows per upsert.
const BATCH: usize = 200;

/// In-memory cache-metric counters.
#[derive(Default)]
pub struct CacheMetrics {
    pending: Pending<Key, Counter>,
}

/// The start of the minute `t` falls in.
fn window_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(60), 0).unwrap_or(t)
}

impl CacheMetrics {
    /// Counts one operation that took `latency`.
    pub fn record(&self, layer: Layer, op: Op, outcome: Outcome, latency: Duration) {
        let us = i64::try_from(latency.as_micros()).unwrap_or(i64::MAX);
        let key = (layer, op, window_of(Utc::now()));
        let mut pending = self.pending.lock();
        let c = pending.entry(key).or_default();
        match outcome {
            Outcome::Hit => c.hits += 1,
            Outcome::Miss => c.misses += 1,
            Outcome::Error => c.errors += 1,
            Outcome::Done => {}
        }
        c.count += 1;
        c.total_us = c.total_us.saturating_add(us);
        c.max_us = Ord::max(c.max_us, us);
        drop(pending);
        let result = match outcome {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Done => "ok",
            Outcome::Error => "error",
        };
        crate::metrics::global().observe_cache(
            layer.as_str(),
            op.as_str(),
            result,
            latency.as_secs_f64(),
        );
    }

    /// Counts the operation started at `started`, as `Done` or `Error` by its result.
    pub fn timed<T, E>(&self, layer: Layer, op: Op, started: Instant, result: &Result<T, E>) {
        let outcome = if result.is_ok() {
            Outcome::Done
        } else {
            Outcome::Error
        };
        self.record(layer, op, outcome, started.elapsed());
    }

    /// Writes everything pending in batched upserts; on failure the counts are kept for the next
    /// flush. Returns how many rows were written.
    pub async fn flush(&self, store: &Store) -> Result<usize, WriteError> {
        self.pending.flush(store, BATCH, upsert_batch).await
    }
}

fn upsert_batch<'a>(
    txn: &'a sea_orm::DatabaseTransaction,
    batch: &'a [(Key, Counter)],
) -> BoxFuture<'a, Result<(), DbErr>> {
    Box::pin(upsert(txn, batch))
}

async fn upsert<C: ConnectionTrait>(db: &C, batch: &[(Key, Counter)]) -> Result<(), DbErr> {
    let rows = batch
        .iter()
        .map(|((layer, op, window), c)| cache_metrics::ActiveModel {
            id: Set(Uuid::now_v7()),
            layer: Set(layer.as_str().into()),
            operation: Set(op.as_str().into()),
            window_start: Set(*window),
            hits: Set(c.hits),
            misses: Set(c.misses),
            errors: Set(c.errors),
            count: Set(c.count),
            total_latency_us: Set(c.total_us),
            max_latency_us: Set(c.max_us),
        });
    let stored = |col: Column| Expr::col((cache_metrics::Entity, col));
    let excluded = |col: Column| Expr::col((Alias::new("excluded"), col));
    let add = |col: Column| (col, stored(col).add(excluded(col)));
    let larger = CaseStatement::new()
        .case(
            excluded(Column::MaxLatencyUs).gt(stored(Column::MaxLatencyUs)),
            excluded(Column::MaxLatencyUs),
        )
        .finally(stored(Column::MaxLatencyUs));
    let on_conflict = OnConflict::columns([Column::Layer, Column::Operation, Column::WindowStart])
        .values([
            add(Column::Hits),
            add(Column::Misses),
            add(Column::Errors),
            add(Column::Count),
            add(Column::TotalLatencyUs),
            (Column::MaxLatencyUs, larger.into()),
        ])
        .to_owned();
    cache_metrics::Entity::insert_many(rows)
        .on_conflict(on_conflict)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_into_minute_windows_with_their_latencies() {
        let m = CacheMetrics::default();
        m.record(Layer::L1, Op::Read, Outcome::Hit, Duration::from_micros(10));
        m.record(
            Layer::L1,
            Op::Read,
            Outcome::Miss,
            Duration::from_micros(30),
        );
        let pending = m.pending.lock();
        let (key, c) = pending.iter().next().expect("one window");
        assert_eq!(key.2.timestamp() % 60, 0);
        assert_eq!((c.hits, c.misses, c.count), (1, 1, 2));
        assert_eq!((c.total_us, c.max_us), (40, 30));
    }
}
