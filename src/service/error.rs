//! What can go wrong, in domain words: [`ServiceError`], and [`ErrorCode`], the one list of the
//! stable snake_case codes clients see in `{"error":{"code","message"}}`. The API layer picks
//! each code's HTTP status (`api::error`); nothing else names a code.

use sea_orm::DbErr;
use uuid::Uuid;

use crate::store::{BatchFailure, StoreError, is_contended, is_unavailable};

/// Defines [`ErrorCode`] from `Variant => "code"` pairs: the enum (with its spec schema), its
/// string form and the list of all codes, from one list.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Every error code the API answers with. The spec lists them (`ErrorDetail.code`) and
        /// the README has the table of codes with their statuses.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, poem_openapi::Enum)]
        pub enum ErrorCode {
            $($(#[$doc])* #[oai(rename = $name)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the table in the README.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }
        }
    };
}

error_codes! {
    // 400: the request is malformed.
    BadRequest => "bad_request",
    // 401: credentials.
    GuestTokenRequired => "guest_token_required",
    GuestTokenInvalid => "guest_token_invalid",
    AuthRequired => "auth_required",
    TokenInvalid => "token_invalid",
    InvalidCredentials => "invalid_credentials",
    AdminTokenInvalid => "admin_token_invalid",
    Unauthorized => "unauthorized",
    // 403, 404, 405, 406, 408.
    Forbidden => "forbidden",
    NotFound => "not_found",
    GuestNotFound => "guest_not_found",
    ConversationNotFound => "conversation_not_found",
    MessageNotFound => "message_not_found",
    MethodNotAllowed => "method_not_allowed",
    NotAcceptable => "not_acceptable",
    RequestTimeout => "request_timeout",
    // 409: the request conflicts with the current state.
    GuestMigrated => "guest_migrated",
    GuestAlreadyClaimed => "guest_already_claimed",
    EmailTaken => "email_taken",
    IdempotencyKeyReused => "idempotency_key_reused",
    EmbeddingsDisabled => "embeddings_disabled",
    GuestHistoryFull => "guest_history_full",
    // 411, 413, 414, 415.
    LengthRequired => "length_required",
    PayloadTooLarge => "payload_too_large",
    MessageTooLarge => "message_too_large",
    UriTooLong => "uri_too_long",
    UnsupportedMediaType => "unsupported_media_type",
    // 422: well-formed but breaks a rule.
    Unprocessable => "unprocessable",
    InvalidGuestId => "invalid_guest_id",
    GuestIdRequired => "guest_id_required",
    InvalidRole => "invalid_role",
    ContentEmpty => "content_empty",
    ContentInvalid => "content_invalid",
    InvalidContentType => "invalid_content_type",
    InvalidTokens => "invalid_tokens",
    InvalidIdempotencyKey => "invalid_idempotency_key",
    InvalidTemperature => "invalid_temperature",
    InvalidMaxTokens => "invalid_max_tokens",
    InvalidLimit => "invalid_limit",
    InvalidCursor => "invalid_cursor",
    InvalidQuery => "invalid_query",
    InvalidThreshold => "invalid_threshold",
    InvalidEmail => "invalid_email",
    PasswordTooShort => "password_too_short",
    PasswordTooLong => "password_too_long",
    InvalidImport => "invalid_import",
    BudgetTooSmall => "budget_too_small",
    InvalidToolCall => "invalid_tool_call",
    // 429.
    RateLimited => "rate_limited",
    GuestQuotaExceeded => "guest_quota_exceeded",
    // 500, 503.
    InternalError => "internal_error",
    DatabaseUnavailable => "database_unavailable",
    ServiceUnavailable => "service_unavailable",
    EmbeddingUnavailable => "embedding_unavailable",
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is well-formed but breaks a rule.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
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
    #[error("no such message in this conversation")]
    MessageNotFound,
    #[error("the admin API is not enabled")]
    AdminDisabled,
    #[error("the admin token is missing or wrong")]
    AdminTokenInvalid,
    #[error("this Idempotency-Key was already used for a different message")]
    IdempotencyKeyReused,
    #[error("too many requests from this address; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error(
        "this guest stored its {limit} messages for the day (limits.guest_messages_per_day); \
         retry in {retry_after_secs} s, or sign up"
    )]
    GuestQuotaExceeded { limit: u32, retry_after_secs: u64 },
    #[error(
        "this guest conversation holds its limit of {limit} messages \
         (limits.guest_max_messages); sign up to go on"
    )]
    GuestHistoryFull { limit: u32 },
    /// The database cannot be reached or is too busy: nothing was written; retry later.
    #[error("the database is unavailable")]
    Unavailable(#[source] DbErr),
    /// A transient conflict between concurrent transactions (serialisation failure, dead-lock);
    /// the operation may be retried as a whole.
    #[error("concurrent update conflict")]
    Contended(#[source] DbErr),
    /// The write was rolled back with its batch (the database failed under another write of
    /// it); nothing was written, retry.
    #[error("the write was rolled back; retry")]
    RolledBack,
    /// Too much work queued (password hashing); nothing was done, retry after the delay.
    #[error("the server is busy; retry in {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    #[error("embeddings are off on this server (embeddings.provider = none)")]
    EmbeddingsDisabled,
    /// The embedder failed on the request path (e.g. the embedding API is down).
    #[error("the embedder is unavailable: {0}")]
    EmbeddingUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The code clients see for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Invalid { code, .. } => *code,
            ServiceError::TooLarge { .. } => ErrorCode::MessageTooLarge,
            ServiceError::GuestTokenRequired => ErrorCode::GuestTokenRequired,
            ServiceError::GuestTokenInvalid => ErrorCode::GuestTokenInvalid,
            ServiceError::GuestNotFound => ErrorCode::GuestNotFound,
            ServiceError::GuestMigrated { .. } => ErrorCode::GuestMigrated,
            ServiceError::GuestAlreadyClaimed => ErrorCode::GuestAlreadyClaimed,
            ServiceError::AuthRequired => ErrorCode::AuthRequired,
            ServiceError::TokenInvalid => ErrorCode::TokenInvalid,
            ServiceError::BadCredentials => ErrorCode::InvalidCredentials,
            ServiceError::EmailTaken => ErrorCode::EmailTaken,
            ServiceError::ConversationNotFound => ErrorCode::ConversationNotFound,
            ServiceError::MessageNotFound => ErrorCode::MessageNotFound,
            ServiceError::AdminDisabled => ErrorCode::NotFound,
            ServiceError::AdminTokenInvalid => ErrorCode::AdminTokenInvalid,
            ServiceError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            ServiceError::RateLimited { .. } => ErrorCode::RateLimited,
            ServiceError::GuestQuotaExceeded { .. } => ErrorCode::GuestQuotaExceeded,
            ServiceError::GuestHistoryFull { .. } => ErrorCode::GuestHistoryFull,
            ServiceError::Unavailable(_)
            | ServiceError::Contended(_)
            | ServiceError::RolledBack => ErrorCode::DatabaseUnavailable,
            ServiceError::Overloaded { .. } => ErrorCode::ServiceUnavailable,
            ServiceError::EmbeddingsDisabled => ErrorCode::EmbeddingsDisabled,
            ServiceError::EmbeddingUnavailable(_) => ErrorCode::EmbeddingUnavailable,
            ServiceError::Internal(_) => ErrorCode::InternalError,
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

impl From<BatchFailure> for ServiceError {
    fn from(failure: BatchFailure) -> Self {
        match failure {
            BatchFailure::RolledBack => ServiceError::RolledBack,
            BatchFailure::Panicked | BatchFailure::Stopped => {
                ServiceError::Internal(failure.to_string())
            }
        }
    }
}

impl StoreError for ServiceError {
    fn breaks_batch(&self) -> bool {
        matches!(self, ServiceError::Unavailable(_))
    }
}
