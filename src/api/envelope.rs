//! What wraps every response: an `X-Request-Id` header, the seeds' unversioned paths rewritten to
//! their `/v1` routes, a URI-length limit (414), a request-body limit that also holds for chunked
//! bodies (413), an `Allow` header on 405, and the JSON error shape for errors that did not come
//! from `ApiError` (unknown routes, 405, 413, 414).

use std::{sync::Arc, time::Instant};

use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, Uri, header},
    web::Redirect,
};
use tokio::io::AsyncReadExt;
use tracing::{Instrument, info};

use super::{
    cors::Cors,
    error::{ErrorBody, status_of},
    parse_errors::{code_for_status, describe_parse_error, fallback_message},
};
use crate::service::ErrorCode;

const REQUEST_ID: &str = "x-request-id";
/// The longest request URI (path and query) answered; longer is 414.
const MAX_URI_BYTES: usize = 8 * 1024;
/// How much of an oversized body is read and dropped before answering 413.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// The largest request body: a message of `max_message_bytes` may be JSON-escaped up to six
/// bytes per byte (`\u0001`), plus room for the other fields.
pub fn body_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(6)
        .saturating_add(64 * 1024)
}

/// The largest request bodies: `import` for `POST /v1/conversations/import` (whole exports),
/// `default` for everything else.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub default: usize,
    pub import: usize,
}

/// The route that takes whole files.
const IMPORT_ROUTE: &str = "/v1/conversations/import";

impl BodyLimits {
    fn of(&self, route: &str) -> usize {
        if route == IMPORT_ROUTE {
            self.import
        } else {
            self.default
        }
    }
}

pub fn wrap(
    app: impl Endpoint + 'static,
    limit: BodyLimits,
    allowed: AllowedMethods,
    cors: Cors,
) -> impl Endpoint {
    let allowed = Arc::new(allowed);
    let cors = Arc::new(cors);
    app.around(move |ep, req| {
        let allowed = allowed.clone();
        let cors = cors.clone();
        let request_id = request_id(&req);
        // Every log line written while serving the request carries its id.
        let span = tracing::info_span!(
            "request",
            request_id = request_id.to_str().unwrap_or_default()
        );
        async move {
            let started = Instant::now();
            let method = req.method().clone();
            let origin = cors.allowed_origin(&req);
            let preflight = origin
                .clone()
                .and_then(|origin| cors.preflight(&req, origin));
            let (route, response) = match preflight {
                Some(response) => ("preflight", response),
                None => answer(ep.as_ref(), req, limit, &allowed).await,
            };
            let mut response = json_errors(response);
            if let Some(origin) = origin {
                cors.decorate(&mut response, origin);
            }
            let status = response.status().as_u16();
            let seconds = started.elapsed().as_secs_f64();
            crate::metrics::global().observe_request(method.as_str(), route, status, seconds);
            info!(
                target: "genesis::access",
                method = method.as_str(),
                route,
                status,
                latency_ms = seconds * 1000.0,
            );
            response.headers_mut().insert(REQUEST_ID, request_id);
            Ok(response)
        }
        .instrument(span)
    })
}

/// The route template that answered (for logs and metrics: never a raw path) and the response.
async fn answer<E: Endpoint>(
    ep: &E,
    mut req: Request,
    limits: BodyLimits,
    allowed: &AllowedMethods,
) -> (&'static str, Response) {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        let response = error_response(
            ErrorCode::UriTooLong,
            "the request URI is longer than 8 KiB",
        );
        return ("unmatched", response);
    }
    if req.uri().path() == "/" && req.method() == Method::GET {
        // The bare address: show the docs.
        return ("/", Redirect::temporary("/docs").into_response());
    }
    rewrite_seed_path(&mut req);
    if req
        .headers()
        .get("idempotency-key")
        .is_some_and(|key| key.to_str().is_err())
    {
        // Bytes that are not ASCII would otherwise read as "no key": the retry would be stored.
        let response = error_response(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1-255 visible ASCII characters",
        );
        return ("unmatched", response);
    }
    let matched = allowed.find(req.uri().path());
    let route = matched.map_or_else(|| other_route(req.uri().path()), |r| r.name);
    let mut response = match limit_body(&mut req, limits.of(route)).await {
        Ok(()) => match ep.call(req).await {
            Ok(response) => response.into_response(),
            Err(err) => error_answer(err),
        },
        Err(response) => response,
    };
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(spec_route) = matched
    {
        response
            .headers_mut()
            .insert(header::ALLOW, spec_route.allow.clone());
    }
    (route, response)
}

/// The answer to an error no handler turned into a response: a refused credential, a parameter
/// or body that did not parse, an unknown route or method.
fn error_answer(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let (code, message) = describe_parse_error(&err);
    error_response(code, &message)
}

/// A fixed body (the spec, the docs page).
pub fn static_body(body: String, content_type: &'static str) -> impl Endpoint {
    poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type(content_type)
            .body(body.clone())
    })
}

/// The seeds' paths, served by their `/v1` routes: `/chat/{id}` → `/v1/guest/chat/{id}`,
/// `/migrate/{id}` → `/v1/guest/migrate/{id}`, `/conversations…` → `/v1/conversations…`.
fn rewrite_seed_path(req: &mut Request) {
    let path = req.uri().path();
    let prefix = if path.starts_with("/chat/") || path.starts_with("/migrate/") {
        "/v1/guest"
    } else if path == "/conversations" || path.starts_with("/conversations/") {
        "/v1"
    } else {
        return;
    };
    let rewritten = match req.uri().query() {
        Some(q) => format!("{prefix}{path}?{q}"),
        None => format!("{prefix}{path}"),
    };
    if let Ok(uri) = rewritten.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
}

/// The spec's routes, matched against request paths: their templates name routes in logs and
/// metrics, their methods make the `Allow` header of a 405.
pub struct AllowedMethods {
    routes: Vec<SpecRoute>,
}

struct SpecRoute {
    /// The template split into segments (`{…}` matches any one segment).
    segments: Vec<String>,
    /// The template as `/v1/guest/chat/:guest_id` (braces trip simple Prometheus parsers).
    name: &'static str,
    /// Its methods, as the `Allow` header.
    allow: HeaderValue,
}

impl SpecRoute {
    fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        self.segments
            .iter()
            .all(|t| parts.next().is_some_and(|s| t.starts_with('{') || t == s))
            && parts.next().is_none()
    }
}

/// Routes outside the spec, named as they are.
const OTHER_ROUTES: [&str; 3] = ["/openapi.json", "/docs", "/metrics"];

impl AllowedMethods {
    pub fn from_spec(spec: &str) -> Self {
        let value: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(map) = value.get("paths").and_then(|p| p.as_object()) {
            for (template, methods) in map {
                let mut names: Vec<String> = methods
                    .as_object()
                    .map(|m| m.keys().map(|k| k.to_uppercase()).collect())
                    .unwrap_or_default();
                names.sort();
                let Ok(allow) = HeaderValue::from_str(&names.join(", ")) else {
                    continue;
                };
                // Leaked once at start-up: a handful of templates, alive for the whole process.
                let name = template.replace('{', ":").replace('}', "");
                routes.push(SpecRoute {
                    segments: template.split('/').map(str::to_string).collect(),
                    name: Box::leak(name.into_boxed_str()),
                    allow,
                });
            }
        }
        Self { routes }
    }

    /// The route serving `path`: a literal segment wins over a parameter, as in the router
    /// (`/v1/conversations/import` is not `/v1/conversations/{id}`).
    fn find(&self, path: &str) -> Option<&SpecRoute> {
        self.routes
            .iter()
            .filter(|r| r.matches(path))
            .min_by_key(|r| r.segments.iter().filter(|s| s.starts_with('{')).count())
    }
}

/// The name of a path outside the spec, or `unmatched`.
fn other_route(path: &str) -> &'static str {
    if path == "/" {
        return "/";
    }
    OTHER_ROUTES
        .iter()
        .find(|r| {
            path.strip_prefix(**r)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .copied()
        .unwrap_or("unmatched")
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
                    ErrorCode::BadRequest,
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
        ErrorCode::PayloadTooLarge,
        &format!("the request body is larger than {limit} bytes"),
    )
}

fn error_response(code: ErrorCode, message: &str) -> Response {
    ErrorBody::new(code, message)
        .with_status(status_of(code))
        .into_response()
}

/// Rewrites a non-JSON error response into `{"error":{"code","message"}}`.
fn json_errors(response: Response) -> Response {
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
    // The framework's own text is not the project's words: clients get the code's message.
    let (parts, _) = response.into_parts();
    let code = code_for_status(status);
    let message = fallback_message(code);
    let mut rewritten = ErrorBody::new(code, message)
        .with_status(status)
        .into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}
