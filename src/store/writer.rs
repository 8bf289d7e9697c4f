//! Group commit for SQLite. SQLite has one writer at a time; letting every request open its own
//! write transaction makes them queue inside SQLite's busy handler (sleeps with back-off) and pay
//! one commit each. Instead one task owns writing: it takes every write waiting in its queue,
//! runs each inside a SAVEPOINT of one shared transaction (so one write's failure undoes only
//! itself), commits once, and only then answers each caller. A 2xx still means committed.

use std::{future::Future, pin::Pin};

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
struct Job {
    run: Run,
    reject: Box<dyn FnOnce(DbErr) + Send>,
    guarded: bool,
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
                        let _ = tx.send(match (committed, result) {
                            (Ok(()), result) => result,
                            (Err(_), Err(own)) => Err(own),
                            (Err(e), Ok(_)) => Err(E::from(e)),
                        });
                    }
                });
                Outcome {
                    keep,
                    broken,
                    deliver,
                }
            })
        });
        let job = Job {
            run,
            reject,
            guarded,
        };
        if self.queue.send(job).await.is_err() {
            return Err(E::from(DbErr::Custom("the writer has stopped".into())));
        }
        rx.await
            .unwrap_or_else(|_| Err(E::from(DbErr::Custom("the writer dropped a write".into()))))
    }
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
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        if job.guarded {
            let savepoint = match txn.begin().await {
                Ok(sp) => sp,
                Err(err) => {
                    error!(error = %err, "savepoint failed; abandoning the batch");
                    (job.reject)(clone_err(&err));
                    abandon(delivers, err);
                    return jobs.collect();
                }
            };
            let outcome = (job.run)(&savepoint).await;
            let ended = if outcome.keep {
                savepoint.commit().await
            } else {
                savepoint.rollback().await
            };
            delivers.push(outcome.deliver);
            if let Err(err) = ended {
                error!(error = %err, "savepoint end failed; abandoning the batch");
                abandon(delivers, err);
                return jobs.collect();
            }
        } else {
            let outcome = (job.run)(&txn).await;
            delivers.push(outcome.deliver);
            if outcome.broken {
                // The database failed mid-write: what this batch did is unknown, so none of it
                // is kept and nobody is told it was.
                let _ = txn.rollback().await;
                abandon(delivers, DbErr::Custom(BATCH_ROLLED_BACK.into()));
                return jobs.collect();
            }
        }
    }
    match txn.commit().await {
        Ok(()) => delivers.into_iter().for_each(|d| d(Ok(()))),
        Err(err) => abandon(delivers, err),
    }
    Vec::new()
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
        (job.reject)(clone_err(&err));
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
