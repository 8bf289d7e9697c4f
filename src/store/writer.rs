//! Group commit for SQLite. SQLite has one writer at a time; letting every request open its own
//! write transaction makes them queue inside SQLite's busy handler (sleeps with back-off) and pay
//! one commit each. Instead one task owns writing: it takes every write waiting in its queue,
//! runs each inside a SAVEPOINT of one shared transaction (so one write's failure undoes only
//! itself), commits once, and only then answers each caller. A 2xx still means committed.
//!
//! Writes of a [`Merge`] kind go further: every queued write of that kind in a batch is handed to
//! one call, which can store them all with a few multi-row statements instead of a few
//! statements each (each statement is a round trip to the SQLite connection's thread).

use std::{
    any::{Any, TypeId},
    future::Future,
    pin::Pin,
    sync::Arc,
};

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

/// What a write closure asks for: keep its changes, or roll them back (e.g. a detected retry).
pub enum Write<T> {
    Commit(T),
    Discard(T),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Called once the batch's fate is known: `Ok` when it committed.
type Deliver = Box<dyn FnOnce(Result<(), DbErr>) + Send>;
type Run = Box<dyn for<'a> FnOnce(&'a DatabaseTransaction) -> BoxFuture<'a, Outcome> + Send>;

/// What running a job produced.
struct Outcome {
    /// Keep its changes (release the savepoint) or roll them back.
    keep: bool,
    /// The database failed under it: the batch cannot be trusted.
    broken: bool,
    deliver: Deliver,
}

/// One queued write: `run` inside the batch, or `reject` if the batch could not start.
/// A guarded job runs in a savepoint; an unguarded one promises that on `Err` or
/// `Write::Discard` it has left nothing behind, and saves the two savepoint statements.
enum Job {
    One {
        run: Run,
        reject: Box<dyn FnOnce(DbErr) + Send>,
        guarded: bool,
    },
    /// An item of a [`Merge`] kind: run together with the batch's other items of its kind.
    Merged {
        kind: TypeId,
        item: Box<dyn Any + Send>,
        run: RunMerged,
        reject: fn(Box<dyn Any + Send>, DbErr),
    },
}

type RunMerged = fn(&DatabaseTransaction, Vec<Box<dyn Any + Send>>) -> BoxFuture<'_, Outcome>;

/// A kind of write that the writer merges: all items of one kind waiting in a batch go to one
/// `run` call.
pub trait Merge: Send + Sync + 'static {
    type Item: Send + 'static;
    type Output: Send + 'static;
    type Error: StoreError;

    /// Stores `items`, answering each in order. For an item that fails it must leave nothing
    /// behind; the other items' changes are kept.
    fn run<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: Vec<Self::Item>,
    ) -> BoxFuture<'a, Vec<Result<Self::Output, Self::Error>>>;
}

/// A queued item of kind `M`, with whom to answer.
struct MergedItem<M: Merge> {
    merge: Arc<M>,
    item: M::Item,
    reply: oneshot::Sender<Result<M::Output, M::Error>>,
}

/// The error callers get when a failing write forced its whole batch to roll back.
pub const BATCH_ROLLED_BACK: &str = "the write batch was rolled back; retry";

/// Errors that can say whether they came from the database itself.
pub trait StoreError: From<DbErr> + Send + 'static {
    fn is_database_failure(&self) -> bool;
}

impl StoreError for DbErr {
    fn is_database_failure(&self) -> bool {
        true
    }
}

/// Most writes committed together.
const MAX_BATCH: usize = 256;

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task; `begin` opens the batch transaction.
    pub fn spawn<B>(db: DatabaseConnection, begin: B) -> Self
    where
        B: Fn(DatabaseConnection) -> BoxFuture<'static, Result<DatabaseTransaction, DbErr>>
            + Send
            + Sync
            + 'static,
    {
        let (queue, mut rx) = mpsc::channel::<Job>(8192);
        tokio::spawn(async move {
            let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
            let mut carried: Vec<Job> = Vec::new();
            loop {
                if carried.is_empty() {
                    match rx.recv().await {
                        Some(first) => batch.push(first),
                        None => break,
                    }
                } else {
                    batch.append(&mut carried);
                }
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                carried = run_batch(&db, &begin, std::mem::take(&mut batch)).await;
            }
        });
        Self { queue }
    }

    /// Runs `f` inside the next batch; its result arrives after the batch committed.
    pub async fn write<T, E, F>(&self, guarded: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: StoreError,
        F: for<'a> FnOnce(&'a DatabaseTransaction) -> BoxFuture<'a, Result<Write<T>, E>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
        let reject_tx = tx.clone();
        let reject = Box::new(move |err: DbErr| {
            if let Some(tx) = reject_tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(Err(E::from(err)));
            }
        });
        let run: Run = Box::new(move |txn| {
            Box::pin(async move {
                let (keep, result) = match f(txn).await {
                    Ok(Write::Commit(v)) => (true, Ok(v)),
                    Ok(Write::Discard(v)) => (false, Ok(v)),
                    Err(e) => (false, Err(e)),
                };
                let broken = matches!(&result, Err(e) if e.is_database_failure());
                let deliver: Deliver = Box::new(move |committed| {
                    if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(settle(&committed, result));
                    }
                });
                Outcome {
                    keep,
                    broken,
                    deliver,
                }
            })
        });
        let job = Job::One {
            run,
            reject,
            guarded,
        };
        self.submit(job, rx).await
    }

    /// Queues `item` to be stored by `merge` together with the other items of its kind in the
    /// next batch; the result arrives after the batch committed.
    pub async fn write_merged<M: Merge>(
        &self,
        merge: Arc<M>,
        item: M::Item,
    ) -> Result<M::Output, M::Error> {
        let (reply, rx) = oneshot::channel();
        let job = Job::Merged {
            kind: TypeId::of::<M>(),
            item: Box::new(MergedItem { merge, item, reply }),
            run: run_merged::<M>,
            reject: reject_merged::<M>,
        };
        self.submit(job, rx).await
    }

    /// Queues `job` and waits for its answer on `rx`.
    async fn submit<T, E: From<DbErr>>(
        &self,
        job: Job,
        rx: oneshot::Receiver<Result<T, E>>,
    ) -> Result<T, E> {
        if self.queue.send(job).await.is_err() {
            return Err(E::from(DbErr::Custom("the writer has stopped".into())));
        }
        rx.await
            .unwrap_or_else(|_| Err(E::from(DbErr::Custom("the writer dropped a write".into()))))
    }
}

/// A write's answer once its batch's fate is known: its own result if the batch committed; if
/// not, its own error, or the batch's error in place of a success that did not last.
fn settle<T, E: From<DbErr>>(committed: &Result<(), DbErr>, result: Result<T, E>) -> Result<T, E> {
    match (committed, result) {
        (Ok(()), result) => result,
        (Err(_), Err(own)) => Err(own),
        (Err(e), Ok(_)) => Err(E::from(clone_err(e))),
    }
}

fn downcast<M: Merge>(item: Box<dyn Any + Send>) -> MergedItem<M> {
    *item
        .downcast::<MergedItem<M>>()
        .expect("merged items are grouped by their kind")
}

fn reject_merged<M: Merge>(item: Box<dyn Any + Send>, err: DbErr) {
    let _ = downcast::<M>(item).reply.send(Err(M::Error::from(err)));
}

/// Runs a batch's items of kind `M` in one call; answers them once the batch's fate is known.
fn run_merged<M: Merge>(
    txn: &DatabaseTransaction,
    items: Vec<Box<dyn Any + Send>>,
) -> BoxFuture<'_, Outcome> {
    Box::pin(async move {
        let mut merge = None;
        let mut inputs = Vec::with_capacity(items.len());
        let mut replies = Vec::with_capacity(items.len());
        for item in items {
            let item = downcast::<M>(item);
            merge.get_or_insert(item.merge);
            inputs.push(item.item);
            replies.push(item.reply);
        }
        let merge = merge.expect("a merged call has at least one item");
        let results = merge.run(txn, inputs).await;
        let broken = results
            .iter()
            .any(|r| matches!(r, Err(e) if e.is_database_failure()));
        let deliver: Deliver = Box::new(move |committed| {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(settle(&committed, result));
            }
        });
        Outcome {
            keep: true,
            broken,
            deliver,
        }
    })
}

/// Runs one batch; returns the jobs that did not get to run (they go into the next batch).
async fn run_batch<B>(db: &DatabaseConnection, begin: &B, batch: Vec<Job>) -> Vec<Job>
where
    B: Fn(DatabaseConnection) -> BoxFuture<'static, Result<DatabaseTransaction, DbErr>>,
{
    let txn = match begin(db.clone()).await {
        Ok(txn) => txn,
        Err(err) => {
            fail_all(batch, err);
            return Vec::new();
        }
    };
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    let mut jobs: Vec<Option<Job>> = batch.into_iter().map(Some).collect();
    for i in 0..jobs.len() {
        let Some(job) = jobs[i].take() else {
            continue; // merged into an earlier item's call
        };
        match job {
            Job::One {
                run,
                reject,
                guarded: true,
            } => {
                let savepoint = match txn.begin().await {
                    Ok(sp) => sp,
                    Err(err) => {
                        error!(error = %err, "savepoint failed; abandoning the batch");
                        reject(clone_err(&err));
                        abandon(delivers, err);
                        return rest(jobs);
                    }
                };
                let outcome = run(&savepoint).await;
                let ended = if outcome.keep {
                    savepoint.commit().await
                } else {
                    savepoint.rollback().await
                };
                delivers.push(outcome.deliver);
                if let Err(err) = ended {
                    error!(error = %err, "savepoint end failed; abandoning the batch");
                    abandon(delivers, err);
                    return rest(jobs);
                }
            }
            Job::One {
                run,
                guarded: false,
                ..
            } => {
                let outcome = run(&txn).await;
                delivers.push(outcome.deliver);
                if outcome.broken {
                    return give_up(txn, delivers, jobs).await;
                }
            }
            Job::Merged {
                kind, item, run, ..
            } => {
                let mut items = vec![item];
                for slot in jobs.iter_mut().skip(i + 1) {
                    if matches!(slot, Some(Job::Merged { kind: k, .. }) if *k == kind)
                        && let Some(Job::Merged { item, .. }) = slot.take()
                    {
                        items.push(item);
                    }
                }
                let outcome = run(&txn, items).await;
                delivers.push(outcome.deliver);
                if outcome.broken {
                    return give_up(txn, delivers, jobs).await;
                }
            }
        }
    }
    match txn.commit().await {
        Ok(()) => delivers.into_iter().for_each(|d| d(Ok(()))),
        Err(err) => abandon(delivers, err),
    }
    Vec::new()
}

/// The database failed mid-write: what this batch did is unknown, so none of it is kept and
/// nobody is told it was. The jobs that did not run go into the next batch.
async fn give_up(
    txn: DatabaseTransaction,
    delivers: Vec<Deliver>,
    jobs: Vec<Option<Job>>,
) -> Vec<Job> {
    let _ = txn.rollback().await;
    abandon(delivers, DbErr::Custom(BATCH_ROLLED_BACK.into()));
    rest(jobs)
}

fn rest(jobs: Vec<Option<Job>>) -> Vec<Job> {
    jobs.into_iter().flatten().collect()
}

fn abandon(delivers: Vec<Deliver>, err: DbErr) {
    for d in delivers {
        d(Err(clone_err(&err)));
    }
}

/// The batch could not start: every caller gets the error; nothing ran.
fn fail_all(batch: Vec<Job>, err: DbErr) {
    error!(error = %err, jobs = batch.len(), "could not begin a write batch");
    for job in batch {
        match job {
            Job::One { reject, .. } => reject(clone_err(&err)),
            Job::Merged { item, reject, .. } => reject(item, clone_err(&err)),
        }
    }
}

/// `DbErr` is not `Clone`; keep the variant that matters for classification.
fn clone_err(err: &DbErr) -> DbErr {
    match err {
        DbErr::Conn(e) => DbErr::Conn(e.clone()),
        DbErr::Exec(e) => DbErr::Exec(e.clone()),
        DbErr::Query(e) => DbErr::Query(e.clone()),
        DbErr::ConnectionAcquire(e) => DbErr::ConnectionAcquire(*e),
        other => DbErr::Custom(other.to_string()),
    }
}
