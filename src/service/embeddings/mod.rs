//! Every stored message gets its vector, off the request path: an append hands the message to a
//! bounded queue after commit; one worker embeds in batches and stores one `cache_embeddings` row
//! per distinct (content hash, model), with the content's text for full-text search. Nothing is
//! lost: a failure is logged at ERROR, counted and retried with backoff; a full queue, a restart
//! or a crash leaves messages that a scan of "messages without a vector" finds again (at start-up
//! and after an overflow).

mod pipeline;
pub mod sql;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

pub use sql::Source;

use crate::{
    config::EmbeddingSettings, embed::Embedder, hot::CachedMessage, service::ServiceError,
    store::Store,
};

/// A message's text as the append path has it, without a copy where it can be shared.
#[derive(Clone)]
pub enum Text {
    Guest(Arc<CachedMessage>),
    Owned(String),
}

impl Text {
    pub fn as_str(&self) -> &str {
        match self {
            Text::Guest(m) => &m.content,
            Text::Owned(s) => s,
        }
    }
}

/// One message waiting for its vector.
#[derive(Clone)]
pub struct Job {
    pub source: Source,
    pub id: Uuid,
    pub text: Text,
}

/// Counters behind `/readyz`, admin stats and `/metrics`.
#[derive(Default)]
pub struct Status {
    /// Taken by the worker and not yet stored (including batches waiting to be retried).
    in_flight: AtomicU64,
    /// In failed batches waiting for their retry.
    retrying: AtomicU64,
    /// Messages the current scan has still to reach (an estimate from a count at its start).
    scan_remaining: AtomicU64,
    /// A scan is wanted (start-up, or the queue overflowed).
    scan_wanted: AtomicBool,
    stored: AtomicU64,
    failures: AtomicU64,
    wake: Notify,
}

/// The embedding side of the service layer: the embedder (if any), the queue and its status.
#[derive(Clone)]
pub struct Embeddings {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    embedder: Embedder,
    tx: mpsc::Sender<Job>,
    status: Arc<Status>,
    max_input_chars: usize,
    pub cache_threshold: f32,
}

/// A snapshot of the pipeline.
#[derive(Clone, Debug, Default)]
pub struct PipelineStats {
    pub model: Option<String>,
    pub backlog: u64,
    pub stored: u64,
    pub failures: u64,
}

impl Embeddings {
    /// Embeddings off (`provider = "none"`).
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Starts the worker for `embedder` (its first act is the scan for messages without a
    /// vector).
    pub fn start(embedder: Embedder, store: Store, settings: &EmbeddingSettings) -> Self {
        let (tx, rx) = mpsc::channel(settings.queue_capacity);
        let status = Arc::new(Status::default());
        status.scan_wanted.store(true, Ordering::Release);
        let worker = pipeline::Worker::new(
            embedder.clone(),
            store,
            status.clone(),
            rx,
            settings.batch_size,
            settings.max_input_chars,
        );
        tokio::spawn(worker.run());
        Self {
            inner: Some(Arc::new(Inner {
                embedder,
                tx,
                status,
                max_input_chars: settings.max_input_chars,
                cache_threshold: settings.cache_threshold,
            })),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Hands a committed message to the pipeline; never waits. A full queue leaves it for the
    /// next scan (counted as `overflow`).
    pub fn enqueue(&self, source: Source, id: Uuid, text: Text) {
        let Some(inner) = &self.inner else { return };
        if inner.tx.try_send(Job { source, id, text }).is_err() {
            crate::metrics::global()
                .embeddings
                .with_label_values(&["overflow"])
                .inc();
            if !inner.status.scan_wanted.swap(true, Ordering::AcqRel) {
                inner.status.wake.notify_one();
            }
        }
    }

    /// Messages waiting for their vector.
    pub fn backlog(&self) -> u64 {
        let Some(inner) = &self.inner else { return 0 };
        let queued = (inner.tx.max_capacity() - inner.tx.capacity()) as u64;
        queued
            + inner.status.in_flight.load(Ordering::Acquire)
            + inner.status.retrying.load(Ordering::Acquire)
            + inner.status.scan_remaining.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> PipelineStats {
        match &self.inner {
            None => PipelineStats::default(),
            Some(inner) => PipelineStats {
                model: Some(inner.embedder.model_id().to_string()),
                backlog: self.backlog(),
                stored: inner.status.stored.load(Ordering::Acquire),
                failures: inner.status.failures.load(Ordering::Acquire),
            },
        }
    }

    /// The embedder and its model id, or 409 `embeddings_disabled`.
    pub fn embedder(&self) -> Result<&Embedder, ServiceError> {
        self.inner
            .as_ref()
            .map(|i| &i.embedder)
            .ok_or(ServiceError::EmbeddingsDisabled)
    }

    /// The vector of one query text, on the request path (search, cache lookup).
    pub async fn embed_query(&self, text: &str) -> Result<Vec<f32>, ServiceError> {
        let inner = self
            .inner
            .as_ref()
            .ok_or(ServiceError::EmbeddingsDisabled)?;
        let clipped = crate::embed::clip(text, inner.max_input_chars).to_string();
        let mut vectors = inner
            .embedder
            .embed(vec![clipped])
            .await
            .map_err(|e| ServiceError::EmbeddingUnavailable(e.to_string()))?;
        vectors
            .pop()
            .ok_or_else(|| ServiceError::Internal("the embedder returned no vector".into()))
    }

    /// The similarity a cache lookup needs when the request names none.
    pub fn cache_threshold(&self) -> f32 {
        self.inner.as_ref().map_or(1.0, |i| i.cache_threshold)
    }
}
