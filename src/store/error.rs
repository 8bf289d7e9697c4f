//! How the store classifies failures. Only the store decides what "the database is unavailable"
//! means; the service layer maps these classes to its own errors, and the breaker opens only for
//! [`is_unavailable`] errors.

use sea_orm::{DbErr, RuntimeErr};

/// Why the group-commit writer could not give a write its own answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchFailure {
    /// The database failed under the batch: nothing in it was kept; the write may be retried.
    #[error("the write batch was rolled back; retry")]
    RolledBack,
    /// The write panicked; it was rolled back and the writer went on with the others.
    #[error("the write failed unexpectedly and was rolled back")]
    Panicked,
    /// The writer task is gone (shutting down).
    #[error("the writer has stopped")]
    Stopped,
}

/// Errors a write through the store may end in: the database's own, and the writer's.
pub trait StoreError: From<DbErr> + From<BatchFailure> + Send + 'static {
    /// True when this error means the connection itself failed under the batch, so nothing the
    /// batch did can be trusted (a job's own refusal, e.g. a broken rule, is not).
    fn breaks_batch(&self) -> bool;
}

/// The writer's own plain error type, for writes that need no domain error.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Batch(#[from] BatchFailure),
}

impl StoreError for WriteError {
    fn breaks_batch(&self) -> bool {
        matches!(self, WriteError::Db(e) if is_unavailable(e))
    }
}

/// True for PostgreSQL serialisation failures (40001) and dead-locks (40P01): the transaction may
/// be retried as a whole.
pub fn is_contended(err: &DbErr) -> bool {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), sea_orm::sqlx::Error::Database(db)
                if db.code().is_some_and(|c| c == "40001" || c == "40P01"))
        }
        _ => false,
    }
}

/// True for errors that mean "the database is not reachable or too busy right now" rather than
/// a bug: connection failures, pool time-outs, a locked SQLite file, a server shutting down.
pub fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            use sea_orm::sqlx::Error as SqlxError;
            match e.as_ref() {
                SqlxError::Io(_)
                | SqlxError::PoolTimedOut
                | SqlxError::PoolClosed
                | SqlxError::WorkerCrashed
                | SqlxError::Tls(_)
                | SqlxError::Protocol(_) => true,
                SqlxError::Database(db) => {
                    let msg = db.message();
                    msg.contains("database is locked")
                        || msg.contains("terminating connection")
                        || msg.contains("the database system is")
                        || db
                            .code()
                            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
                }
                _ => false,
            }
        }
        _ => {
            let text = err.to_string();
            text.contains("Connection refused")
                || text.contains("connection closed")
                || text.contains("database is locked")
        }
    }
}

/// `DbErr` is not `Clone`; keep the variant that matters for classification.
pub fn clone_err(err: &DbErr) -> DbErr {
    match err {
        DbErr::Conn(e) => DbErr::Conn(e.clone()),
        DbErr::Exec(e) => DbErr::Exec(e.clone()),
        DbErr::Query(e) => DbErr::Query(e.clone()),
        DbErr::ConnectionAcquire(e) => DbErr::ConnectionAcquire(*e),
        other => DbErr::Custom(other.to_string()),
    }
}
