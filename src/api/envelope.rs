//! What wraps every response: an `X-Request-Id` header, a request-body limit that also holds for
//! chunked bodies, and the JSON error shape for errors that did not come from `ApiError` (unknown
//! routes, 405, 413, 415, poem's own parse errors).

use super::error::ErrorBody;
use tokio::io::AsyncReadExt;

use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response,
    http::{HeaderValue, StatusCode, header},
};

const REQUEST_ID: &str = "x-request-id";
/// How much of an oversized body is read and dropped before answering 413.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// The largest request body: a message of `max_message_bytes` may be JSON-escaped up to six
/// bytes per byte (`\u0001`), plus room for the other fields.
pub fn body_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(6)
        .saturating_add(64 * 1024)
}

pub fn wrap(app: impl Endpoint + 'static, limit: usize) -> impl Endpoint {
    app.around(move |ep, mut req| async move {
        let request_id = request_id(&req);
        let response = match limit_body(&mut req, limit).await {
            Ok(()) => ep.get_response(req).await,
            Err(response) => response,
        };
        let mut response = json_errors(response).await;
        response.headers_mut().insert(REQUEST_ID, request_id);
        Ok(response)
    })
}

/// The client's request id when it is short and printable, else a new one.
fn request_id(req: &Request) -> HeaderValue {
    req.headers()
        .get(REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        })
}

async fn limit_body(req: &mut Request, limit: usize) -> Result<(), Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Far too large: refuse without reading. Slightly too large: read it below, then refuse.
    if declared.is_some_and(|len| len > limit.saturating_add(DRAIN_LIMIT) as u64) {
        return Err(too_large(limit));
    }
    if declared == Some(0) {
        return Ok(());
    }
    // Read by hand rather than with `into_bytes_limit`: past the limit the rest is read and
    // dropped (up to DRAIN_LIMIT), so a client still sending a chunked body gets to read the 413
    // instead of a reset connection.
    let mut reader = req.take_body().into_async_read();
    let mut kept: Vec<u8> =
        Vec::with_capacity(declared.map_or(8 * 1024, |n| (n as usize).min(limit)));
    let mut seen: usize = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) => {
                return Err(error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("could not read the request body: {err}"),
                ));
            }
        };
        seen += n;
        if seen > limit.saturating_add(DRAIN_LIMIT) {
            break;
        }
        if seen <= limit {
            kept.extend_from_slice(&chunk[..n]);
        }
    }
    if seen > limit {
        return Err(too_large(limit));
    }
    req.set_body(Body::from(kept));
    Ok(())
}

fn too_large(limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("the request body is larger than {limit} bytes"),
    )
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    ErrorBody::new(code, message)
        .with_status(status)
        .into_response()
}

/// Rewrites a non-JSON error response into `{"error":{"code","message"}}`.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = body.into_string().await.unwrap_or_default();
    let (code, fallback) = describe(status);
    let message = if status.is_server_error() || text.trim().is_empty() {
        fallback.to_string()
    } else {
        text.trim().chars().take(500).collect()
    };
    let mut rewritten = error_response(status, code, &message);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "the request is malformed"),
        401 => ("unauthorized", "credentials are missing or invalid"),
        403 => ("forbidden", "not allowed"),
        404 => ("not_found", "no such route"),
        405 => (
            "method_not_allowed",
            "this method is not allowed on this path",
        ),
        406 => ("not_acceptable", "no acceptable representation"),
        408 => ("request_timeout", "the request took too long"),
        411 => ("length_required", "a Content-Length is required"),
        413 => ("payload_too_large", "the request body is too large"),
        415 => (
            "unsupported_media_type",
            "send the body as application/json",
        ),
        422 => ("unprocessable", "the request is invalid"),
        429 => ("too_many_requests", "too many requests"),
        503 => ("unavailable", "the service is unavailable"),
        s if s >= 500 => ("internal", "internal server error"),
        _ => ("error", "request failed"),
    }
}
