//! Prometheus metrics for `GET /metrics`, kept by the `prometheus` crate in one process-wide
//! registry. Labels are bounded: HTTP routes are the spec's path templates (never a raw path, so
//! no guest or conversation id ever becomes a label), layers and operations are fixed words.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every series Genesis exports.
pub struct Metrics {
    registry: Registry,
    http_duration: HistogramVec,
    cache_duration: HistogramVec,
    pub writer_batch: HistogramVec,
    pub writer_queue: IntGaugeVec,
    pub migrations: IntCounterVec,
    pub retention_removed: IntCounterVec,
    pub db_pool: IntGaugeVec,
    pub embeddings: IntCounterVec,
    pub embedding_backlog: IntGaugeVec,
}

/// What `Metrics::totals` reads: counts since start.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub requests: u64,
    pub server_errors: u64,
    /// Requests at or under each of `LATENCY_BUCKETS`, then all of them.
    pub latency_buckets: Vec<u64>,
    pub writer_batches: u64,
    pub writer_jobs: f64,
}

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let h = HistogramVec::new(opts, labels).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(h.clone()));
    h
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(g.clone()));
    g
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        Self {
            http_duration: histogram(
                &r,
                "genesis_http_request_duration_seconds",
                "HTTP requests by method, route template and status: latency (its _count is \
                 the request count).",
                &["method", "route", "status"],
                &LATENCY_BUCKETS,
            ),
            cache_duration: histogram(
                &r,
                "genesis_cache_operation_duration_seconds",
                "Operations per layer (l1, l2, main, semantic), operation and result (hit, miss, ok, \
                 error): latency (its _count is the operation count).",
                &["layer", "operation", "result"],
                &LATENCY_BUCKETS,
            ),
            writer_batch: histogram(
                &r,
                "genesis_writer_batch_jobs",
                "Jobs per SQLite group-commit batch.",
                &[],
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            ),
            writer_queue: gauge(
                &r,
                "genesis_writer_queue_depth",
                "Jobs waiting for the SQLite group-commit writer.",
                &[],
            ),
            migrations: counter(
                &r,
                "genesis_migrations_total",
                "Guest migrations by result (completed, already_migrated, refused, failed).",
                &["result"],
            ),
            retention_removed: counter(
                &r,
                "genesis_retention_removed_total",
                "Rows removed by retention: expired guests and their messages.",
                &["kind"],
            ),
            db_pool: gauge(
                &r,
                "genesis_db_pool_connections",
                "Database pool connections by state (in_use, idle).",
                &["state"],
            ),
            embeddings: counter(
                &r,
                "genesis_embeddings_total",
                "Embedding pipeline outcomes: `stored` vectors, `failed` batches (each logged at \
                 ERROR and retried), `overflow` messages left for the next scan when the queue \
                 was full.",
                &["result"],
            ),
            embedding_backlog: gauge(
                &r,
                "genesis_embedding_backlog",
                "Messages waiting for their vector (queued, in flight, retrying, or found by the \
                 start-up scan).",
                &[],
            ),
            registry: r,
        }
    }

    /// One answered HTTP request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let digits = itoa_status(status);
        let status = std::str::from_utf8(&digits).unwrap_or("0");
        self.http_duration
            .with_label_values(&[method, route, status])
            .observe(seconds);
    }

    /// One cache or table operation.
    pub fn observe_cache(&self, layer: &str, operation: &str, result: &str, seconds: f64) {
        self.cache_duration
            .with_label_values(&[layer, operation, result])
            .observe(seconds);
    }

    /// The share of guest reads since start that the hot cache answered (0 before any read).
    pub fn l1_hit_ratio(&self) -> f64 {
        let reads = |result: &str| {
            self.cache_duration
                .with_label_values(&["l1", "read", result])
                .get_sample_count() as f64
        };
        let hits = reads("hit");
        let all = hits + reads("miss") + reads("error");
        if all == 0.0 { 0.0 } else { hits / all }
    }

    /// Running totals for the dashboard's live charts (`service::live`): requests outside the
    /// admin API, their latency buckets summed over every route, and the writer's batches.
    pub fn totals(&self) -> Totals {
        use prometheus::core::Collector;
        let mut t = Totals {
            latency_buckets: vec![0; LATENCY_BUCKETS.len() + 1],
            ..Totals::default()
        };
        for family in self.http_duration.collect() {
            for metric in family.get_metric() {
                let label = |name: &str| {
                    metric
                        .get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                if label("route").starts_with("/v1/admin") {
                    continue;
                }
                let h = metric.get_histogram();
                t.requests += h.get_sample_count();
                if label("status").starts_with('5') {
                    t.server_errors += h.get_sample_count();
                }
                for (i, b) in h.get_bucket().iter().enumerate() {
                    if let Some(slot) = t.latency_buckets.get_mut(i) {
                        *slot += b.cumulative_count();
                    }
                }
                if let Some(last) = t.latency_buckets.last_mut() {
                    *last += h.get_sample_count();
                }
            }
        }
        let batches = self.writer_batch.with_label_values::<&str>(&[]);
        t.writer_batches = batches.get_sample_count();
        t.writer_jobs = batches.get_sample_sum();
        t
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %err, "could not encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A status code's three digits, without allocating.
fn itoa_status(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}
