//! The admin dashboard's live charts (`GET /v1/admin/live`): every few seconds a sample of what
//! the process is doing — requests per second and their latency percentiles over the interval,
//! the writer's queue and batch size, the embedding backlog, the hot cache's hit ratio — kept in
//! memory for the last minutes. Read from the metrics the process already keeps: the sampler adds
//! no work to a request.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};

use super::{clock::now, embeddings::Embeddings};
use crate::{
    metrics::{LATENCY_BUCKETS, Totals, global},
    store::Store,
};

/// Seconds between samples.
pub const INTERVAL_SECS: u64 = 2;
/// Samples kept: five minutes.
const KEPT: usize = 150;

/// What one interval looked like.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub requests_per_sec: f64,
    /// 5xx answers per second.
    pub errors_per_sec: f64,
    /// Latency percentiles of the interval's requests, in milliseconds (None without requests).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Jobs waiting for the SQLite writer when sampled.
    pub writer_queue: u64,
    /// Mean jobs per writer batch in the interval (None when it wrote none).
    pub writer_batch: Option<f64>,
    pub embedding_backlog: u64,
    /// The hot cache's hit ratio since start.
    pub l1_hit_ratio: f64,
}

/// The samples of the last minutes.
#[derive(Clone, Default)]
pub struct Live {
    inner: Arc<Mutex<Ring>>,
}

#[derive(Default)]
struct Ring {
    samples: VecDeque<Sample>,
    last: Option<(std::time::Instant, Totals)>,
}

impl Live {
    /// Samples every `INTERVAL_SECS` until the task is dropped.
    pub fn spawn(&self, store: Store, embeddings: Embeddings) -> tokio::task::JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(INTERVAL_SECS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                live.sample(&store, &embeddings);
            }
        })
    }

    /// Takes one sample (the first only sets the baseline).
    pub fn sample(&self, store: &Store, embeddings: &Embeddings) {
        let totals = global().totals();
        let taken = std::time::Instant::now();
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((then, before)) = ring.last.take() {
            let secs = taken.duration_since(then).as_secs_f64().max(0.001);
            let interval = Interval::between(&before, &totals);
            let sample = Sample {
                at: now(),
                requests_per_sec: interval.requests as f64 / secs,
                errors_per_sec: interval.errors as f64 / secs,
                p50_ms: interval.percentile(0.50),
                p95_ms: interval.percentile(0.95),
                p99_ms: interval.percentile(0.99),
                writer_queue: store.writer_queue_depth() as u64,
                writer_batch: interval.batch_mean(),
                embedding_backlog: embeddings.stats().backlog,
                l1_hit_ratio: global().l1_hit_ratio(),
            };
            if ring.samples.len() == KEPT {
                ring.samples.pop_front();
            }
            ring.samples.push_back(sample);
        }
        ring.last = Some((taken, totals));
    }

    /// The kept samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.samples.iter().cloned().collect()
    }
}

/// The difference of two totals.
struct Interval {
    requests: u64,
    errors: u64,
    buckets: Vec<u64>,
    batches: u64,
    jobs: f64,
}

impl Interval {
    fn between(before: &Totals, after: &Totals) -> Self {
        Self {
            requests: after.requests.saturating_sub(before.requests),
            errors: after.server_errors.saturating_sub(before.server_errors),
            buckets: after
                .latency_buckets
                .iter()
                .zip(before.latency_buckets.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            batches: after.writer_batches.saturating_sub(before.writer_batches),
            jobs: (after.writer_jobs - before.writer_jobs).max(0.0),
        }
    }

    /// The `q` quantile in milliseconds, interpolated inside its bucket (requests past the last
    /// bound count as at it).
    fn percentile(&self, q: f64) -> Option<f64> {
        let total = *self.buckets.last()?;
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut lower_bound = 0.0;
        let mut below = 0u64;
        for (i, &count) in self.buckets.iter().enumerate() {
            let upper = LATENCY_BUCKETS
                .get(i)
                .copied()
                .unwrap_or(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1]);
            if count as f64 >= rank && count > below {
                let share = (rank - below as f64) / (count - below) as f64;
                return Some((lower_bound + (upper - lower_bound) * share.clamp(0.0, 1.0)) * 1e3);
            }
            lower_bound = upper;
            below = count;
        }
        Some(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1] * 1e3)
    }

    fn batch_mean(&self) -> Option<f64> {
        (self.batches > 0).then(|| self.jobs / self.batches as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(buckets: Vec<u64>) -> Interval {
        Interval {
            requests: *buckets.last().unwrap_or(&0),
            errors: 0,
            buckets,
            batches: 0,
            jobs: 0.0,
        }
    }

    #[test]
    fn percentiles_fall_inside_the_bucket_that_holds_them() {
        // 100 requests: 50 at or under 1 ms, 90 under 2.5 ms, all under 5 ms.
        let mut b = vec![0, 0, 0, 50, 90, 100, 100, 100, 100, 100, 100, 100];
        b.push(100);
        let i = interval(b);
        let p50 = i.percentile(0.5).unwrap_or_default();
        assert!((p50 - 1.0).abs() < 1e-9, "{p50}");
        let p95 = i.percentile(0.95).unwrap_or_default();
        assert!(p95 > 2.5 && p95 <= 5.0, "{p95}");
        let p99 = i.percentile(0.99).unwrap_or_default();
        assert!(p99 > p95 && p99 <= 5.0, "{p99}");
    }

    #[test]
    fn no_requests_no_percentile_and_slow_ones_cap_at_the_last_bound() {
        assert_eq!(interval(vec![0; 13]).percentile(0.5), None);
        let mut slow = vec![0; 12];
        slow.push(10);
        assert_eq!(interval(slow).percentile(0.99), Some(1000.0));
    }

    #[test]
    fn an_interval_is_the_difference_of_two_totals() {
        let before = Totals {
            requests: 10,
            server_errors: 1,
            latency_buckets: vec![5, 10],
            writer_batches: 2,
            writer_jobs: 8.0,
        };
        let after = Totals {
            requests: 30,
            server_errors: 1,
            latency_buckets: vec![15, 30],
            writer_batches: 6,
            writer_jobs: 40.0,
        };
        let i = Interval::between(&before, &after);
        assert_eq!((i.requests, i.errors), (20, 0));
        assert_eq!(i.buckets, vec![10, 20]);
        assert_eq!(i.batch_mean(), Some(8.0));
    }
}
