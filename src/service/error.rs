//! `ServiceError`: what can go wrong, in domain words. The API layer maps each to a status.

use sea_orm::{DbErr, RuntimeErr};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is well-formed but breaks a rule (code is stable snake_case).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("message content is {size} bytes; the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error(
        "this guest id is claimed: send its guest token (Authorization: Bearer or X-Guest-Token)"
    )]
    GuestTokenRequired,
    #[error("the guest token is not valid for this guest id")]
    GuestTokenInvalid,
    #[error("no guest conversation with this id")]
    GuestNotFound,
    #[error("this guest was migrated into conversation {conversation_id}; it is read-only")]
    GuestMigrated { conversation_id: Uuid },
    #[error("this guest was already migrated into another account")]
    GuestAlreadyClaimed,
    #[error("sign in: send Authorization: Bearer <access token>")]
    AuthRequired,
    #[error("the access token is invalid or expired")]
    TokenInvalid,
    #[error("wrong e-mail or password")]
    BadCredentials,
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    #[error("no such conversation")]
    ConversationNotFound,
    #[error("the admin API is not enabled")]
    AdminDisabled,
    #[error("the admin token is missing or wrong")]
    AdminTokenInvalid,
    #[error("this Idempotency-Key was already used for a different message")]
    IdempotencyKeyReused,
    #[error("too many new guest sessions from this address; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The database cannot be reached or is too busy: nothing was written; retry later.
    #[error("the database is unavailable")]
    Unavailable(#[source] DbErr),
    /// A transient conflict between concurrent transactions (serialisation failure, dead-lock);
    /// the operation may be retried as a whole.
    #[error("concurrent update conflict")]
    Contended(#[source] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
}

impl From<DbErr> for ServiceError {
    fn from(err: DbErr) -> Self {
        if is_unavailable(&err) {
            ServiceError::Unavailable(err)
        } else if is_contended(&err) {
            ServiceError::Contended(err)
        } else {
            ServiceError::Internal(err.to_string())
        }
    }
}

impl crate::store::StoreError for ServiceError {
    fn is_database_failure(&self) -> bool {
        matches!(
            self,
            ServiceError::Unavailable(_) | ServiceError::Contended(_) | ServiceError::Internal(_)
        )
    }
}

/// True for PostgreSQL serialisation failures (40001) and dead-locks (40P01).
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
            text.contains(crate::store::BATCH_ROLLED_BACK)
                || text.contains("Connection refused")
                || text.contains("connection closed")
                || text.contains("database is locked")
        }
    }
}
