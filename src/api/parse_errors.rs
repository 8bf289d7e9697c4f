//! What a client is told when a request cannot even be read: a bad parameter, a body that is not
//! the documented JSON, a wrong media type, a refused credential. The framework's own parser
//! messages (e.g. `failed to parse "integer(uint64)"`) never reach clients; they get the
//! project's codes and words.

use poem::{error::ResponseError, http::StatusCode};
use poem_openapi::error::{
    AuthorizationError, ContentTypeError, ParseParamError, ParseRequestPayloadError,
};

use crate::service::{ErrorCode, ServiceError};

/// A credential refused while extracting a security scheme: carries the service's answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub code: ErrorCode,
    pub message: String,
}

impl From<ServiceError> for Refused {
    fn from(err: ServiceError) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

impl ResponseError for Refused {
    fn status(&self) -> StatusCode {
        super::error::status_of(self.code)
    }
}

/// The code and message for an error raised before a handler ran.
pub fn describe_parse_error(err: &poem::Error) -> (ErrorCode, String) {
    if let Some(refused) = err.downcast_ref::<Refused>() {
        return (refused.code, refused.message.clone());
    }
    if err.is::<ContentTypeError>() {
        return (
            ErrorCode::UnsupportedMediaType,
            "send the body as Content-Type: application/json".into(),
        );
    }
    if let Some(param) = err.downcast_ref::<ParseParamError>() {
        return describe_param(param);
    }
    if let Some(payload) = err.downcast_ref::<ParseRequestPayloadError>() {
        return describe_payload(&payload.reason);
    }
    if err.is::<AuthorizationError>() {
        return (ErrorCode::Unauthorized, "credentials are missing".into());
    }
    let code = code_for_status(err.status());
    (code, fallback_message(code).into())
}

fn describe_param(param: &ParseParamError) -> (ErrorCode, String) {
    match param.name {
        "limit" => (
            ErrorCode::InvalidLimit,
            "limit must be a whole number between 1 and 1000".into(),
        ),
        "cursor" => (
            ErrorCode::InvalidCursor,
            "cursor is not one this API returned".into(),
        ),
        "since" | "until" => (
            ErrorCode::BadRequest,
            format!(
                "parameter `{}` must be an RFC 3339 date-time, e.g. 2025-12-21T12:00:00Z",
                param.name
            ),
        ),
        name if param.reason.contains("uuid") => (
            ErrorCode::BadRequest,
            format!("parameter `{name}` must be a UUID"),
        ),
        name if param.reason.contains("expects an input value") => (
            ErrorCode::BadRequest,
            format!("parameter `{name}` is required"),
        ),
        name => (
            ErrorCode::BadRequest,
            format!(
                "parameter `{name}` is invalid: expected {}",
                expected_in(&param.reason)
            ),
        ),
    }
}

/// A body that did not parse: a field outside its documented range (the rule's own 422 code),
/// invalid JSON (serde's position is kept), a wrong type, a missing or unknown field (400).
fn describe_payload(reason: &str) -> (ErrorCode, String) {
    if let Some(field) = reason
        .split_once("field `")
        .and_then(|(_, rest)| rest.split_once("` verification failed"))
        .map(|(field, _)| field)
    {
        let (code, rule) = match field {
            "tokens" => (ErrorCode::InvalidTokens, "tokens must be 0 or more"),
            "temperature" => (
                ErrorCode::InvalidTemperature,
                "temperature must be between 0 and 2",
            ),
            "max_tokens" => (ErrorCode::InvalidMaxTokens, "max_tokens must be positive"),
            _ => (
                ErrorCode::Unprocessable,
                "a field is outside its documented range",
            ),
        };
        return (code, rule.into());
    }
    (ErrorCode::BadRequest, describe_malformed(reason))
}

fn describe_malformed(reason: &str) -> String {
    if reason.contains("Expected input type") {
        let found = reason
            .split_once(", found ")
            .map(|(_, rest)| {
                rest.split(". (")
                    .next()
                    .unwrap_or(rest)
                    .trim_end_matches('.')
            })
            .unwrap_or("another value");
        return format!(
            "the body does not match the documented schema: expected {}, found {found}",
            expected_in(reason)
        );
    }
    if reason.contains("expects an input value") {
        return format!(
            "the body does not match the documented schema: a required field ({}) is missing",
            expected_in(reason)
        );
    }
    if let Some(field) = reason.split("unknown field `").nth(1) {
        let field = field.split('`').next().unwrap_or_default();
        return format!("the body has an unknown field `{field}`");
    }
    if reason.contains("occurred while parsing") || reason.starts_with("failed to parse") {
        return "the body does not match the documented schema of this operation".into();
    }
    format!("the body is not valid JSON: {reason}")
}

/// The expected type named in a framework message, in plain words.
fn expected_in(reason: &str) -> String {
    let name = reason
        .split('"')
        .nth(1)
        .unwrap_or_default()
        .split('(')
        .next()
        .unwrap_or_default();
    match name {
        "string" => "a string".into(),
        "integer" => "a whole number".into(),
        "number" => "a number".into(),
        "boolean" => "true or false".into(),
        "object" | "" => "an object".into(),
        "array" => "an array".into(),
        other => format!("a valid {other}"),
    }
}

/// The code for a status the router or the framework answered without a more specific cause.
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 => ErrorCode::BadRequest,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        406 => ErrorCode::NotAcceptable,
        408 => ErrorCode::RequestTimeout,
        411 => ErrorCode::LengthRequired,
        413 => ErrorCode::PayloadTooLarge,
        414 => ErrorCode::UriTooLong,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::Unprocessable,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::ServiceUnavailable,
        s if s >= 500 => ErrorCode::InternalError,
        _ => ErrorCode::BadRequest,
    }
}

/// What to say for a code when nothing more specific is known.
pub fn fallback_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound => "no such route",
        ErrorCode::MethodNotAllowed => "this method is not allowed on this path",
        ErrorCode::UnsupportedMediaType => "send the body as application/json",
        ErrorCode::PayloadTooLarge => "the request body is too large",
        ErrorCode::UriTooLong => "the request URI is too long",
        ErrorCode::Unauthorized => "credentials are missing or invalid",
        ErrorCode::InternalError => "internal server error",
        ErrorCode::ServiceUnavailable => "the service is unavailable",
        _ => "the request is malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framework_type_names_do_not_reach_clients() {
        let (_, msg) = describe_payload(
            r#"Expected input type "string", found 42. (occurred while parsing "NewGuestMessage")"#,
        );
        assert_eq!(
            msg,
            "the body does not match the documented schema: expected a string, found 42"
        );
        let param = ParseParamError {
            name: "offset",
            reason: r#"failed to parse "integer(uint64)": invalid digit"#.into(),
        };
        let (code, msg) = describe_param(&param);
        assert_eq!(code, ErrorCode::BadRequest);
        assert!(!msg.contains("uint64"), "{msg}");
        let (code, _) = describe_payload(
            "failed to parse \"NewGuestMessage\": field `tokens` verification failed. minimum(0)",
        );
        assert_eq!(code, ErrorCode::InvalidTokens);
    }
}
