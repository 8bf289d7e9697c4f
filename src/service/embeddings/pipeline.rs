//! The embedding worker: takes queued messages (or, when a scan is wanted, pages of messages
//! without a vector), embeds each distinct content once, and stores the vectors in one write.
//! A failed batch is logged at ERROR, counted, and retried after a backoff that doubles up to
//! five minutes; a batch that keeps failing is split, so one bad message cannot hold up the rest.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{sync::mpsc, time::Instant};
use tracing::{error, info};
use uuid::Uuid;

use super::{Job, Source, Status, Text, sql};
use crate::{
    embed::{Embedder, clip, to_bytes},
    service::{ServiceError, digest::md5_hex},
    store::{Store, Write},
};

/// The messages that carry one content.
type Carriers = Vec<(Source, Uuid)>;

const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Embedding batches stored per write when the queue is deep.
const WRITE_BATCHES: usize = 8;
/// The longest the pipeline waits for the SQLite writer to be idle before writing anyway.
const MAX_DEFER: Duration = Duration::from_secs(2);
/// How long the writer must have been idle for the pipeline to write without waiting longer.
const QUIET: Duration = Duration::from_millis(3);

struct Retry {
    jobs: Vec<Job>,
    attempts: u32,
    due: Instant,
}

/// Where the current scan has got to.
#[derive(Clone, Copy)]
struct Scan {
    source: Source,
    after: Option<Uuid>,
}

pub struct Worker {
    embedder: Embedder,
    store: Store,
    status: Arc<Status>,
    rx: mpsc::Receiver<Job>,
    batch_size: usize,
    max_input_chars: usize,
    retries: VecDeque<Retry>,
    scan: Option<Scan>,
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(1 << attempts.min(16))
        .min(MAX_BACKOFF)
}

impl Worker {
    pub fn new(
        embedder: Embedder,
        store: Store,
        status: Arc<Status>,
        rx: mpsc::Receiver<Job>,
        batch_size: usize,
        max_input_chars: usize,
    ) -> Self {
        Self {
            embedder,
            store,
            status,
            rx,
            batch_size,
            max_input_chars,
            retries: VecDeque::new(),
            scan: None,
        }
    }

    pub async fn run(mut self) {
        loop {
            self.publish_backlog();
            if let Some(retry) = self.take_due_retry() {
                self.attempt(retry.jobs, retry.attempts).await;
                continue;
            }
            // Under load, take several embedding batches per write: the vectors of up to
            // `WRITE_BATCHES` × `batch_size` messages are stored in one transaction.
            let mut jobs = Vec::new();
            while jobs.len() < self.batch_size * WRITE_BATCHES {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            if jobs.is_empty() {
                jobs = self.next_scan_page().await;
            }
            if !jobs.is_empty() {
                self.attempt(jobs, 0).await;
                continue;
            }
            let next_due = self.retries.iter().map(|r| r.due).min();
            tokio::select! {
                job = self.rx.recv() => match job {
                    Some(job) => self.attempt(vec![job], 0).await,
                    None => return,
                },
                () = self.status.wake.notified() => {}
                () = sleep_until(next_due) => {}
            }
        }
    }

    fn publish_backlog(&self) {
        let queued = self.rx.len() as u64;
        let backlog = queued
            + self.status.in_flight.load(Ordering::Acquire)
            + self.status.retrying.load(Ordering::Acquire)
            + self.status.scan_remaining.load(Ordering::Acquire);
        crate::metrics::global()
            .embedding_backlog
            .with_label_values(&[] as &[&str])
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
    }

    fn take_due_retry(&mut self) -> Option<Retry> {
        let now = Instant::now();
        let position = self.retries.iter().position(|r| r.due <= now)?;
        let retry = self.retries.remove(position);
        self.count_retrying();
        retry
    }

    fn count_retrying(&self) {
        let n: usize = self.retries.iter().map(|r| r.jobs.len()).sum();
        self.status.retrying.store(n as u64, Ordering::Release);
    }

    /// The next page of the scan for messages without a vector, starting one if it is wanted.
    async fn next_scan_page(&mut self) -> Vec<Job> {
        if self.scan.is_none() {
            if !self.status.scan_wanted.swap(false, Ordering::AcqRel) {
                return Vec::new();
            }
            let model = self.embedder.model_id().to_string();
            let db = self.store.conn();
            match sql::count_missing(db, self.store.backend(), &model).await {
                Ok(n) => {
                    if n > 0 {
                        info!(
                            messages = n,
                            model, "embedding messages stored without a vector"
                        );
                    }
                    self.status.scan_remaining.store(n, Ordering::Release);
                }
                Err(err) => error!(error = %err, "could not count messages without a vector"),
            }
            self.scan = Some(Scan {
                source: Source::Cache,
                after: None,
            });
        }
        while let Some(scan) = self.scan {
            let model = self.embedder.model_id().to_string();
            let limit = (self.batch_size * WRITE_BATCHES) as u64;
            let page =
                sql::missing(self.store.conn(), scan.source, &model, scan.after, limit).await;
            let page = match page {
                Ok(page) => page,
                Err(err) => {
                    error!(error = %err, "scan for messages without a vector failed; retrying");
                    self.status.failures.fetch_add(1, Ordering::AcqRel);
                    self.status.scan_wanted.store(true, Ordering::Release);
                    self.scan = None;
                    tokio::time::sleep(backoff(2)).await;
                    return Vec::new();
                }
            };
            match page.last() {
                Some((id, _, _)) => {
                    self.scan = Some(Scan {
                        source: scan.source,
                        after: Some(*id),
                    });
                    let n = page.len() as u64;
                    let _ = self.status.scan_remaining.fetch_update(
                        Ordering::AcqRel,
                        Ordering::Acquire,
                        |r| Some(r.saturating_sub(n)),
                    );
                    return page
                        .into_iter()
                        .map(|(id, _, content)| Job {
                            source: scan.source,
                            id,
                            text: Text::Owned(content),
                        })
                        .collect();
                }
                None if scan.source == Source::Cache => {
                    self.scan = Some(Scan {
                        source: Source::Main,
                        after: None,
                    });
                }
                None => {
                    self.scan = None;
                    self.status.scan_remaining.store(0, Ordering::Release);
                }
            }
        }
        Vec::new()
    }

    /// Embeds and stores `jobs`; on failure, schedules them again.
    async fn attempt(&mut self, jobs: Vec<Job>, attempts: u32) {
        let n = jobs.len() as u64;
        self.status.in_flight.fetch_add(n, Ordering::AcqRel);
        let result = self.embed_and_store(&jobs).await;
        match result {
            Ok(stored) => {
                self.status.in_flight.fetch_sub(n, Ordering::AcqRel);
                self.status.stored.fetch_add(stored, Ordering::AcqRel);
                crate::metrics::global()
                    .embeddings
                    .with_label_values(&["stored"])
                    .inc_by(stored);
            }
            Err(err) => {
                self.status.in_flight.fetch_sub(n, Ordering::AcqRel);
                let wait = backoff(attempts);
                error!(
                    error = %err,
                    messages = jobs.len(),
                    attempt = attempts + 1,
                    retry_in_secs = wait.as_secs(),
                    "embedding failed; the messages will be retried"
                );
                self.status.failures.fetch_add(1, Ordering::AcqRel);
                crate::metrics::global()
                    .embeddings
                    .with_label_values(&["failed"])
                    .inc();
                let due = Instant::now() + wait;
                let mut jobs = jobs;
                if attempts >= 1 && jobs.len() > 1 {
                    let rest = jobs.split_off(jobs.len() / 2);
                    self.retries.push_back(Retry {
                        jobs: rest,
                        attempts: attempts + 1,
                        due,
                    });
                }
                self.retries.push_back(Retry {
                    jobs,
                    attempts: attempts + 1,
                    due,
                });
                self.count_retrying();
            }
        }
    }

    /// One vector per distinct content not yet embedded, for messages that still exist.
    async fn embed_and_store(&self, jobs: &[Job]) -> Result<u64, String> {
        let model = self.embedder.model_id().to_string();
        // Distinct contents, each with the messages that carry it.
        let mut by_hash: HashMap<String, (&Text, Carriers)> = HashMap::new();
        for job in jobs {
            let hash = md5_hex(job.text.as_str());
            by_hash
                .entry(hash)
                .or_insert_with(|| (&job.text, Vec::new()))
                .1
                .push((job.source, job.id));
        }
        let hashes: Vec<String> = by_hash.keys().cloned().collect();
        let done = sql::embedded(self.store.conn(), &model, hashes)
            .await
            .map_err(|e| e.to_string())?;
        for hash in done {
            by_hash.remove(&hash);
        }
        if by_hash.is_empty() {
            return Ok(0);
        }
        let entries: Vec<(String, String, Carriers)> = by_hash
            .into_iter()
            .map(|(hash, (text, owners))| (hash, text.as_str().to_string(), owners))
            .collect();
        let texts: Vec<String> = entries
            .iter()
            .map(|(_, content, _)| clip(content, self.max_input_chars).to_string())
            .collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size) {
            let embedded = self.embedder.embed(chunk.to_vec()).await;
            vectors.extend(embedded.map_err(|e| e.to_string())?);
        }
        self.yield_to_appends().await;
        let backend = self.store.backend();
        let model_id = model.clone();
        self.store
            .write(move |txn| {
                Box::pin(async move {
                    let mut cache_ids = Vec::new();
                    let mut main_ids = Vec::new();
                    for (_, _, owners) in &entries {
                        for (source, id) in owners {
                            match source {
                                Source::Cache => cache_ids.push(*id),
                                Source::Main => main_ids.push(*id),
                            }
                        }
                    }
                    let mut alive: HashSet<Uuid> =
                        sql::still_stored(txn, backend, Source::Cache, cache_ids)
                            .await?
                            .into_iter()
                            .collect();
                    alive.extend(sql::still_stored(txn, backend, Source::Main, main_ids).await?);
                    let rows: Vec<(String, String, Vec<u8>)> = entries
                        .into_iter()
                        .zip(vectors)
                        .filter(|((_, _, owners), _)| {
                            owners.iter().any(|(_, id)| alive.contains(id))
                        })
                        .map(|((hash, content, _), vector)| (hash, content, to_bytes(&vector)))
                        .collect();
                    let n = rows.len() as u64;
                    sql::insert(txn, &model_id, rows).await?;
                    Ok::<_, ServiceError>(Write::Commit(n))
                })
            })
            .await
            .map_err(|e| e.to_string())
    }
}

impl Worker {
    /// Stored messages come first: while the SQLite group-commit writer is busy, the vectors
    /// wait until it has been idle for [`QUIET`] (at most [`MAX_DEFER`]), so a burst of
    /// appends is not slowed by them; the backlog catches up when the burst ends, in bigger
    /// writes.
    async fn yield_to_appends(&self) {
        let deadline = Instant::now() + MAX_DEFER;
        while !self.store.writer_quiet_for(QUIET) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
