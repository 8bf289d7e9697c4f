//! Group commit. SQLite has one writer at a time; letting every request open its own write
//! transaction makes them queue inside SQLite's busy handler (sleeps with back-off) and pay one
//! commit each. Instead one task owns writing: it takes every job waiting in its queue, runs each
//! inside a SAVEPOINT of one shared transaction (so one job's failure or panic undoes only
//! itself), commits once, and only then answers each caller. A 2xx still means committed. On
//! PostgreSQL the same writer stores the merged kinds (appends), one transaction per batch: one
//! commit (one WAL flush) for many appends.
//!
//! Jobs are of two kinds ([`Job`]): a [`Single`] write (a closure with a typed reply), or a
//! signal that items wait in a [`MergeLane`] (`merge.rs`): every item of one kind waiting in a
//! batch is stored by one call, with its own savepoints.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use futures_util::FutureExt;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::{
    error::{BatchFailure, StoreError, clone_err},
    merge::{Lane, Merge, MergeLane},
};
use crate::failpoint::Failpoint;

/// What a write closure asks for: keep its changes, or roll them back (e.g. a detected retry).
pub enum Write<T> {
    Commit(T),
    Discard(T),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a batch ended, as each of its jobs learns it.
pub(super) enum Fate {
    Committed,
    Db(DbErr),
    Batch(BatchFailure),
}

impl Fate {
    pub(super) fn error<E: StoreError>(&self) -> Option<E> {
        match self {
            Fate::Committed => None,
            Fate::Db(e) => Some(E::from(clone_err(e))),
            Fate::Batch(f) => Some(E::from(*f)),
        }
    }
}

/// A write's answer once its batch's fate is known: its own result if the batch committed; if
/// not, its own error, or the batch's error in place of a success that did not last.
pub(super) fn settle<T, E: StoreError>(fate: &Fate, result: Result<T, E>) -> Result<T, E> {
    match (fate.error::<E>(), result) {
        (None, result) => result,
        (Some(_), Err(own)) => Err(own),
        (Some(batch), Ok(_)) => Err(batch),
    }
}

pub(super) type Deliver = Box<dyn FnOnce(&Fate) + Send>;

/// What running a job produced.
pub(super) struct Outcome {
    /// Keep its changes (release the savepoint) or roll them back.
    pub(super) keep: bool,
    /// The connection failed under it: nothing the batch did can be trusted.
    pub(super) broken: bool,
    pub(super) deliver: Deliver,
}

type Run = Box<dyn for<'a> FnOnce(&'a DatabaseTransaction) -> BoxFuture<'a, Outcome> + Send>;

/// One write with its own typed reply, erased to the two things the writer does with it.
struct Single {
    run: Run,
    /// Answers the caller when `run` never gets to deliver (the batch did not start, or the
    /// write panicked).
    fail: Box<dyn FnOnce(&Fate) + Send>,
}

/// One queued job.
enum Job {
    /// A write in its own savepoint.
    Single(Single),
    /// Items wait in this lane: run them all (if an earlier signal has not already).
    Merged(Arc<dyn Lane>),
}

impl Job {
    fn fail(self, fate: &Fate) {
        match self {
            Job::Single(s) => (s.fail)(fate),
            Job::Merged(lane) => lane.fail_all(fate),
        }
    }
}

/// Most jobs committed together.
const MAX_BATCH: usize = 256;

/// The writer task's state, for `/readyz`.
#[derive(Default)]
pub struct WriterHealth {
    stopped: AtomicBool,
    panics: AtomicU64,
    /// Batches committed since start.
    commits: AtomicU64,
    /// Since when the writer has been waiting for work with an empty queue (microseconds after
    /// [`clock_base`], plus one); 0 while it works.
    idle_since: AtomicU64,
}

/// The instant idle times are counted from.
fn clock_base() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

fn micros_now() -> u64 {
    u64::try_from(clock_base().elapsed().as_micros()).unwrap_or(u64::MAX) + 1
}

impl WriterHealth {
    /// True while the writer task runs.
    pub fn is_running(&self) -> bool {
        !self.stopped.load(Ordering::Acquire)
    }

    /// How long the writer has had nothing to do (`None` while it works): background writers
    /// (the embedding pipeline) wait for a quiet moment so they do not slow a burst of appends.
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        match self.idle_since.load(Ordering::Acquire) {
            0 => None,
            since => Some(std::time::Duration::from_micros(
                micros_now().saturating_sub(since),
            )),
        }
    }

    /// Batches committed since start.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Jobs (or batches) that panicked since start; each was answered 500 and rolled back.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

type Begin = dyn Fn(DatabaseConnection) -> BoxFuture<'static, Result<DatabaseTransaction, DbErr>>
    + Send
    + Sync;

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    health: Arc<WriterHealth>,
}

impl Writer {
    /// Starts the writer task; `begin` opens the batch transaction.
    pub fn spawn(db: DatabaseConnection, begin: Box<Begin>) -> Self {
        let (queue, rx) = mpsc::channel::<Job>(8192);
        let health = Arc::new(WriterHealth::default());
        let task = BatchRunner {
            db,
            begin,
            health: health.clone(),
            panic_point: Failpoint::from_env("writer_job_panic"),
        };
        tokio::spawn(task.serve(rx));
        Self { queue, health }
    }

    pub fn health(&self) -> &WriterHealth {
        &self.health
    }

    pub fn health_handle(&self) -> Arc<WriterHealth> {
        self.health.clone()
    }

    /// Jobs waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Runs `f` inside the next batch, in its own savepoint; its result arrives after the batch
    /// committed.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: StoreError,
        F: for<'a> FnOnce(&'a DatabaseTransaction) -> BoxFuture<'a, Result<Write<T>, E>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let reply = Arc::new(Mutex::new(Some(tx)));
        let fail_reply = reply.clone();
        let fail = Box::new(move |fate: &Fate| {
            let tx = fail_reply.lock().ok().and_then(|mut t| t.take());
            if let (Some(tx), Some(err)) = (tx, fate.error::<E>()) {
                let _ = tx.send(Err(err));
            }
        });
        let run: Run = Box::new(move |txn| {
            Box::pin(async move {
                let (keep, result) = match f(txn).await {
                    Ok(Write::Commit(v)) => (true, Ok(v)),
                    Ok(Write::Discard(v)) => (false, Ok(v)),
                    Err(e) => (false, Err(e)),
                };
                let broken = matches!(&result, Err(e) if e.breaks_batch());
                let deliver: Deliver = Box::new(move |fate| {
                    if let Some(tx) = reply.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(settle(fate, result));
                    }
                });
                Outcome {
                    keep,
                    broken,
                    deliver,
                }
            })
        });
        self.submit(Job::Single(Single { run, fail }), rx).await
    }

    /// Queues `item` in `lane`, to be stored with the other items of its kind in the next batch;
    /// the result arrives after the batch committed.
    pub async fn write_merged<M: Merge>(
        &self,
        lane: &Arc<MergeLane<M>>,
        item: M::Item,
    ) -> Result<M::Output, M::Error> {
        let rx = lane.push(item);
        let lane: Arc<dyn Lane> = lane.clone();
        self.submit(Job::Merged(lane), rx).await
    }

    /// Queues `job` and waits for its answer on `rx`.
    async fn submit<T, E: StoreError>(
        &self,
        job: Job,
        rx: oneshot::Receiver<Result<T, E>>,
    ) -> Result<T, E> {
        if self.queue.send(job).await.is_err() {
            return Err(E::from(BatchFailure::Stopped));
        }
        // The reply is only ever dropped unsent when the write panicked.
        rx.await
            .unwrap_or_else(|_| Err(E::from(BatchFailure::Panicked)))
    }
}

/// Runs batches on the writer's own connection.
struct BatchRunner {
    db: DatabaseConnection,
    begin: Box<Begin>,
    health: Arc<WriterHealth>,
    panic_point: Failpoint,
}

impl BatchRunner {
    /// Takes batches from `rx` until every sender is gone.
    async fn serve(self, mut rx: mpsc::Receiver<Job>) {
        let mut carried: Vec<Job> = Vec::new();
        loop {
            let mut batch = std::mem::take(&mut carried);
            if batch.is_empty() {
                let since = if rx.is_empty() { micros_now() } else { 0 };
                self.health.idle_since.store(since, Ordering::Release);
                let next = rx.recv().await;
                self.health.idle_since.store(0, Ordering::Release);
                match next {
                    Some(first) => batch.push(first),
                    None => break,
                }
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            // Supervision: a panic outside any job's savepoint loses this batch's answers
            // (its callers see `Panicked`), never the writer.
            match AssertUnwindSafe(self.run(batch)).catch_unwind().await {
                Ok(rest) => carried = rest,
                Err(_) => {
                    self.health.panics.fetch_add(1, Ordering::Relaxed);
                    error!("a write batch panicked; it was rolled back and the writer goes on");
                }
            }
        }
        self.health.stopped.store(true, Ordering::Release);
    }

    /// Runs one batch; returns the jobs that did not get to run (they go into the next batch).
    async fn run(&self, mut batch: Vec<Job>) -> Vec<Job> {
        // A signal whose lane is empty is stale: an earlier drain took its item (an item is
        // queued before its signal). A batch of only stale signals needs no transaction.
        batch.retain(|job| !matches!(job, Job::Merged(lane) if lane.is_empty()));
        if batch.is_empty() {
            return Vec::new();
        }
        crate::metrics::global()
            .writer_batch
            .with_label_values::<&str>(&[])
            .observe(batch.len() as f64);
        let txn = match (self.begin)(self.db.clone()).await {
            Ok(txn) => txn,
            Err(err) => {
                error!(error = %err, jobs = batch.len(), "could not begin a write batch");
                let fate = Fate::Db(err);
                batch.into_iter().for_each(|job| job.fail(&fate));
                return Vec::new();
            }
        };
        let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            if let Job::Merged(lane) = &job
                && lane.is_empty()
            {
                continue; // an earlier signal of this lane already ran its items
            }
            if matches!(job, Job::Merged(_)) {
                // A lane opens its own savepoints: one more around it would only add two
                // statements and a copy of every page it changes. Without it, a panic in the
                // lane (whose items kept so far nobody can be told about) or a broken
                // connection undoes the whole batch.
                match self.run_job(job, &txn).await {
                    Some(outcome) if !outcome.broken => delivers.push(outcome.deliver),
                    failed => {
                        let _ = txn.rollback().await;
                        let fate = Fate::Batch(BatchFailure::RolledBack);
                        delivers.extend(failed.map(|o| o.deliver));
                        delivers.into_iter().for_each(|d| d(&fate));
                        return jobs.collect();
                    }
                }
                continue;
            }
            let savepoint = match txn.begin().await {
                Ok(sp) => sp,
                Err(err) => {
                    error!(error = %err, "savepoint failed; abandoning the batch");
                    let fate = Fate::Db(err);
                    job.fail(&fate);
                    delivers.into_iter().for_each(|d| d(&fate));
                    return jobs.collect();
                }
            };
            let outcome = self.run_job(job, &savepoint).await;
            let (keep, broken) = outcome
                .as_ref()
                .map_or((false, false), |o| (o.keep, o.broken));
            delivers.extend(outcome.map(|o| o.deliver));
            if broken {
                // The connection failed mid-write: what this batch did is unknown, so none of
                // it is kept and nobody is told it was. The jobs that did not run go next.
                let _ = savepoint.rollback().await;
                let _ = txn.rollback().await;
                let fate = Fate::Batch(BatchFailure::RolledBack);
                delivers.into_iter().for_each(|d| d(&fate));
                return jobs.collect();
            }
            let ended = if keep {
                savepoint.commit().await
            } else {
                savepoint.rollback().await
            };
            if let Err(err) = ended {
                error!(error = %err, "savepoint end failed; abandoning the batch");
                let fate = Fate::Db(err);
                delivers.into_iter().for_each(|d| d(&fate));
                return jobs.collect();
            }
        }
        let fate = match txn.commit().await {
            Ok(()) => {
                self.health.commits.fetch_add(1, Ordering::Relaxed);
                Fate::Committed
            }
            Err(err) => Fate::Db(err),
        };
        delivers.into_iter().for_each(|d| d(&fate));
        Vec::new()
    }

    /// Runs one job in `savepoint`. `None` when it panicked: it was answered `Panicked` (a
    /// single write) or its callers see their replies dropped (a merged call), and the
    /// savepoint is rolled back by the caller like any refused write.
    async fn run_job(&self, job: Job, savepoint: &DatabaseTransaction) -> Option<Outcome> {
        let ran = match job {
            Job::Single(Single { run, fail }) => {
                let panic_now = self.panic_point.fire();
                let ran = AssertUnwindSafe(async move {
                    if panic_now {
                        panic!("failpoint writer_job_panic");
                    }
                    run(savepoint).await
                })
                .catch_unwind()
                .await;
                if ran.is_err() {
                    fail(&Fate::Batch(BatchFailure::Panicked));
                }
                ran
            }
            Job::Merged(lane) => AssertUnwindSafe(lane.run(savepoint)).catch_unwind().await,
        };
        match ran {
            Ok(outcome) => Some(outcome),
            Err(_) => {
                self.health.panics.fetch_add(1, Ordering::Relaxed);
                error!("a write panicked; it was rolled back and the writer goes on");
                None
            }
        }
    }
}
