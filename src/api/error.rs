//! `ApiError`: the one error type of the HTTP API. Every error is `{"error":{"code","message"}}`;
//! [`status_of`] is the only place a status is chosen, and [`From<ServiceError>`] the only place
//! an internal cause is logged.
//!
//! `ApiError<S>` is documented per operation: `S` lists the statuses that operation can answer
//! (see [`statuses!`]), so each operation's spec shows only those. Errors raised before a handler
//! runs (parameters, body, credentials) are answered by the envelope through
//! `parse_errors::describe_parse_error`, with the same codes.

use std::marker::PhantomData;

use poem::{
    IntoResponse, Response,
    http::{HeaderValue, StatusCode},
};
use poem_openapi::{
    ApiResponse, Object,
    payload::Json,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};
use tracing::error;

use crate::service::{ErrorCode, ServiceError};

#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Json<Self> {
        Json(Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        })
    }
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_UNAVAILABLE: u64 = 2;

/// The HTTP status of each error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    let status = match code {
        BadRequest => 400,
        GuestTokenRequired | GuestTokenInvalid | AuthRequired | TokenInvalid
        | InvalidCredentials | AdminTokenInvalid | Unauthorized => 401,
        Forbidden => 403,
        NotFound | GuestNotFound | ConversationNotFound | MessageNotFound => 404,
        MethodNotAllowed => 405,
        NotAcceptable => 406,
        RequestTimeout => 408,
        GuestMigrated | GuestAlreadyClaimed | EmailTaken | IdempotencyKeyReused
        | EmbeddingsDisabled | GuestHistoryFull => 409,
        LengthRequired => 411,
        PayloadTooLarge | MessageTooLarge => 413,
        UriTooLong => 414,
        UnsupportedMediaType => 415,
        Unprocessable
        | InvalidGuestId
        | GuestIdRequired
        | InvalidRole
        | ContentEmpty
        | ContentInvalid
        | InvalidContentType
        | InvalidTokens
        | InvalidIdempotencyKey
        | InvalidTemperature
        | InvalidMaxTokens
        | InvalidLimit
        | InvalidCursor
        | InvalidQuery
        | InvalidThreshold
        | InvalidEmail
        | PasswordTooShort
        | PasswordTooLong
        | InvalidImport
        | BudgetTooSmall
        | InvalidToolCall => 422,
        RateLimited | GuestQuotaExceeded => 429,
        InternalError => 500,
        DatabaseUnavailable | ServiceUnavailable | EmbeddingUnavailable => 503,
    };
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The statuses an operation can answer with an error.
pub trait Statuses: Send {
    const LIST: &'static [u16];
}

/// `statuses!(Name: 401, 404, …)` declares a status list for [`ApiError`].
macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident: $($status:literal),+;)+) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl $crate::api::error::Statuses for $name {
                const LIST: &'static [u16] = &[$($status),+];
            }
        )+
    };
}
pub(crate) use statuses;

/// An error answer of an operation whose possible statuses are `S`.
#[derive(Debug)]
pub struct ApiError<S> {
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
    statuses: PhantomData<fn() -> S>,
}

pub type ApiResult<T, S> = Result<T, ApiError<S>>;

impl<S> ApiError<S> {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            statuses: PhantomData,
        }
    }

    fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl<S> From<ServiceError> for ApiError<S> {
    fn from(err: ServiceError) -> Self {
        let code = err.code();
        match err {
            ServiceError::RateLimited { retry_after_secs }
            | ServiceError::GuestQuotaExceeded {
                retry_after_secs, ..
            }
            | ServiceError::Overloaded { retry_after_secs } => {
                ApiError::new(code, err.to_string()).retry_after(retry_after_secs)
            }
            ServiceError::Unavailable(ref cause) | ServiceError::Contended(ref cause) => {
                error!(error = %cause, "database unavailable");
                ApiError::new(
                    code,
                    "the database is unavailable; nothing was written, retry shortly",
                )
                .retry_after(RETRY_AFTER_UNAVAILABLE)
            }
            ServiceError::RolledBack => ApiError::new(
                code,
                "the write was rolled back with its batch; nothing was written, retry shortly",
            )
            .retry_after(RETRY_AFTER_UNAVAILABLE),
            ServiceError::Internal(cause) => {
                error!(error = %cause, "internal error");
                ApiError::new(code, "internal server error")
            }
            other => ApiError::new(code, other.to_string()),
        }
    }
}

impl<S: Send> IntoResponse for ApiError<S> {
    fn into_response(self) -> Response {
        let mut response = ErrorBody::new(self.code, self.message)
            .with_status(status_of(self.code))
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}

impl<S: Send> From<ApiError<S>> for poem::Error {
    fn from(err: ApiError<S>) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

fn description(status: u16) -> &'static str {
    match status {
        400 => "Malformed request: invalid JSON, a wrong type, a missing field or a bad parameter.",
        401 => "Missing or invalid credentials.",
        404 => "No such resource, or not yours.",
        409 => "The request conflicts with the current state.",
        413 => "The message or request body is larger than the configured limit.",
        415 => "The body is not `application/json`.",
        422 => "Well-formed but invalid: the `code` says which rule it breaks.",
        429 => "Rate limited; retry after `Retry-After` seconds.",
        500 => "Unexpected server error.",
        503 => {
            "The database is unavailable; nothing was written. Retry after `Retry-After` seconds."
        }
        _ => "Error.",
    }
}

impl<S: Statuses> ApiResponse for ApiError<S> {
    fn meta() -> MetaResponses {
        let content = || {
            vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: ErrorBody::schema_ref(),
            }]
        };
        let headers = |status: u16| {
            if status == 429 || status == 503 {
                vec![MetaHeader {
                    name: "Retry-After".into(),
                    description: Some("Seconds to wait before retrying.".into()),
                    required: true,
                    deprecated: false,
                    schema: u64::schema_ref(),
                }]
            } else {
                Vec::new()
            }
        };
        MetaResponses {
            responses: S::LIST
                .iter()
                .map(|&status| MetaResponse {
                    description: description(status),
                    status: Some(status),
                    status_range: None,
                    content: content(),
                    headers: headers(status),
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_client_or_server_error_status() {
        for code in ErrorCode::ALL {
            let status = status_of(*code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code:?}"
            );
        }
    }
}
