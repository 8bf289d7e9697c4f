//! Writes the group-commit writer merges: every item of one [`Merge`] kind waiting in a batch is
//! stored by one call, with a few multi-row statements instead of a few statements each (each
//! statement is a round trip to the connection). What the merged statements cannot decide, or
//! all items when they fail, is stored one at a time — each item in a savepoint of its own, so
//! one failing write never takes the others with it.

use std::sync::{Arc, Mutex};

use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::oneshot;
use tracing::warn;

use super::{
    error::StoreError,
    finish,
    writer::{BoxFuture, Deliver, Fate, Outcome, Write, settle},
};

/// What a merged path decided: `(index, result)` for each item it stored or refused; `Err` when
/// its statements failed (then none of it is kept).
pub type Decided<O, E> = Result<Vec<(usize, Result<O, E>)>, DbErr>;

/// A kind of write that the writer merges.
pub trait Merge: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    type Error: StoreError;

    /// Stores what it can of `items` together. On `Err` none of it is kept and every item goes
    /// to [`Merge::alone`]; the items it leaves undecided go there too. Where a failed statement
    /// aborts the transaction (PostgreSQL) it runs in a savepoint; elsewhere (SQLite) it must
    /// keep all or nothing itself: its writes go as one `Backend::execute_atomically`.
    fn together<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: &'a [Self::Item],
    ) -> BoxFuture<'a, Decided<Self::Output, Self::Error>>;

    /// Stores one item by itself (in its own savepoint): commit, discard (a detected retry), or
    /// refuse.
    fn alone<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        item: Self::Item,
    ) -> BoxFuture<'a, Result<Write<Self::Output>, Self::Error>>;
}

/// The queue of one [`Merge`] kind. Callers push items here and signal the writer.
pub struct MergeLane<M: Merge> {
    merge: M,
    /// `together` runs in a savepoint (where a failed statement aborts the transaction).
    guarded: bool,
    pending: Mutex<Vec<Pending<M>>>,
}

struct Pending<M: Merge> {
    item: M::Item,
    reply: oneshot::Sender<Result<M::Output, M::Error>>,
}

impl<M: Merge> MergeLane<M> {
    pub fn new(merge: M, guarded: bool) -> Arc<Self> {
        Arc::new(Self {
            merge,
            guarded,
            pending: Mutex::new(Vec::new()),
        })
    }

    /// Queues `item`; its answer comes on the returned receiver once its batch's fate is known.
    pub(super) fn push(&self, item: M::Item) -> oneshot::Receiver<Result<M::Output, M::Error>> {
        let (reply, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Pending { item, reply });
        rx
    }

    fn take(&self) -> Vec<Pending<M>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every item: together where it can, else alone.
    async fn store(
        &self,
        txn: &DatabaseTransaction,
        items: Vec<M::Item>,
    ) -> Vec<Result<M::Output, M::Error>> {
        let mut results: Vec<Option<Result<M::Output, M::Error>>> =
            items.iter().map(|_| None).collect();
        if !self.guarded {
            // All or nothing by itself: no savepoint's two round trips.
            match self.merge.together(txn, &items).await {
                Ok(done) => done.into_iter().for_each(|(i, r)| results[i] = Some(r)),
                Err(err) => warn!(error = %err, "merged writes failed; storing one by one"),
            }
            return self.rest_alone(txn, items, results).await;
        }
        match txn.begin().await {
            Ok(savepoint) => match self.merge.together(&savepoint, &items).await {
                Ok(done) => match savepoint.commit().await {
                    Ok(()) => done.into_iter().for_each(|(i, r)| results[i] = Some(r)),
                    Err(err) => warn!(error = %err, "merged writes not kept; storing one by one"),
                },
                Err(err) => {
                    warn!(error = %err, "merged writes failed; storing one by one");
                    let _ = savepoint.rollback().await;
                }
            },
            Err(err) => warn!(error = %err, "savepoint for merged writes failed"),
        }
        self.rest_alone(txn, items, results).await
    }

    /// The answers: `results` where decided, else each item stored alone.
    async fn rest_alone(
        &self,
        txn: &DatabaseTransaction,
        items: Vec<M::Item>,
        results: Vec<Option<Result<M::Output, M::Error>>>,
    ) -> Vec<Result<M::Output, M::Error>> {
        let mut answers = Vec::with_capacity(items.len());
        for (item, result) in items.into_iter().zip(results) {
            answers.push(match result {
                Some(result) => result,
                None => self.alone(txn, item).await,
            });
        }
        answers
    }

    async fn alone(&self, txn: &DatabaseTransaction, item: M::Item) -> Result<M::Output, M::Error> {
        let savepoint = txn.begin().await?;
        let result = self.merge.alone(&savepoint, item).await;
        finish(savepoint, result).await
    }
}

/// What the writer does with a lane without knowing its kind.
pub(super) trait Lane: Send + Sync {
    fn is_empty(&self) -> bool;
    /// Stores every item waiting in the lane; it opens its own savepoints (a panic drops them,
    /// which rolls them back).
    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> BoxFuture<'a, Outcome>;
    /// Answers every waiting item with the batch's failure.
    fn fail_all(&self, fate: &Fate);
}

impl<M: Merge> Lane for MergeLane<M> {
    fn is_empty(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (items, replies): (Vec<_>, Vec<_>) =
                self.take().into_iter().map(|p| (p.item, p.reply)).unzip();
            let results = self.store(txn, items).await;
            let broken = results
                .iter()
                .any(|r| matches!(r, Err(e) if e.breaks_batch()));
            let deliver: Deliver = Box::new(move |fate| {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(settle(fate, result));
                }
            });
            Outcome {
                keep: true,
                broken,
                deliver,
            }
        })
    }

    fn fail_all(&self, fate: &Fate) {
        for p in self.take() {
            if let Some(err) = fate.error::<M::Error>() {
                let _ = p.reply.send(Err(err));
            }
        }
    }
}
