//! `ApiError`: the one error type of the HTTP API. Every error is `{"error":{"code","message"}}`;
//! this is the only place a status is chosen and the only place an internal cause is logged.

use poem_openapi::{ApiResponse, Object, payload::Json};
use tracing::error;

use crate::service::ServiceError;

#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `guest_token_invalid`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Json<Self> {
        Json(Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        })
    }
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_UNAVAILABLE: u64 = 2;

#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum ApiError {
    /// Malformed request: invalid JSON, a wrong type, a missing field or a bad parameter.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid credentials (guest token or bearer token).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// No such resource, or not yours.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with the current state (e.g. the guest was migrated).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The message or request body is larger than the configured limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Well-formed but invalid: empty content, a bad value.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Rate limited; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Unexpected server error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A backing store is unavailable; nothing was written. Retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

fn bad_request(err: poem::Error) -> ApiError {
    ApiError::BadRequest(ErrorBody::new("bad_request", err.to_string()))
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let message = err.to_string();
        match err {
            ServiceError::Invalid { code, .. } => {
                ApiError::Unprocessable(ErrorBody::new(code, message))
            }
            ServiceError::TooLarge { .. } => {
                ApiError::PayloadTooLarge(ErrorBody::new("message_too_large", message))
            }
            ServiceError::GuestTokenRequired => {
                ApiError::Unauthorized(ErrorBody::new("guest_token_required", message))
            }
            ServiceError::GuestTokenInvalid => {
                ApiError::Unauthorized(ErrorBody::new("guest_token_invalid", message))
            }
            ServiceError::GuestNotFound => {
                ApiError::NotFound(ErrorBody::new("guest_not_found", message))
            }
            ServiceError::GuestMigrated { .. } => {
                ApiError::Conflict(ErrorBody::new("guest_migrated", message))
            }
            ServiceError::GuestAlreadyClaimed => {
                ApiError::Conflict(ErrorBody::new("guest_already_claimed", message))
            }
            ServiceError::AuthRequired => {
                ApiError::Unauthorized(ErrorBody::new("auth_required", message))
            }
            ServiceError::TokenInvalid => {
                ApiError::Unauthorized(ErrorBody::new("token_invalid", message))
            }
            ServiceError::BadCredentials => {
                ApiError::Unauthorized(ErrorBody::new("invalid_credentials", message))
            }
            ServiceError::EmailTaken => ApiError::Conflict(ErrorBody::new("email_taken", message)),
            ServiceError::ConversationNotFound => {
                ApiError::NotFound(ErrorBody::new("conversation_not_found", message))
            }
            ServiceError::AdminDisabled => ApiError::NotFound(ErrorBody::new("not_found", message)),
            ServiceError::AdminTokenInvalid => {
                ApiError::Unauthorized(ErrorBody::new("admin_token_invalid", message))
            }
            ServiceError::IdempotencyKeyReused => {
                ApiError::Conflict(ErrorBody::new("idempotency_key_reused", message))
            }
            ServiceError::RateLimited { retry_after_secs } => {
                ApiError::TooManyRequests(ErrorBody::new("rate_limited", message), retry_after_secs)
            }
            ServiceError::Unavailable(cause) | ServiceError::Contended(cause) => {
                error!(error = %cause, "database unavailable");
                ApiError::Unavailable(
                    ErrorBody::new(
                        "database_unavailable",
                        "the database is unavailable; nothing was written, retry shortly",
                    ),
                    RETRY_AFTER_UNAVAILABLE,
                )
            }
            ServiceError::Internal(cause) => {
                error!(error = %cause, "internal error");
                ApiError::Internal(ErrorBody::new("internal", "internal server error"))
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
