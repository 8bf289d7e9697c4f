//! CORS for browser apps (`server.cors_origins`): a preflight `OPTIONS` from an allowed origin is
//! answered with the methods and headers the API takes; every other answer to an allowed origin
//! names it and exposes the headers scripts need (`X-Guest-Token` first). A request from any other
//! origin is served as if CORS did not exist (the browser then keeps the answer from the script).
//! With no origins configured nothing is added.

use std::collections::HashSet;

use poem::{
    Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str =
    "Authorization, X-Guest-Token, Idempotency-Key, Content-Type, X-Request-Id";
const EXPOSE_HEADERS: &str =
    "X-Guest-Token, X-Request-Id, Retry-After, Content-Disposition, Location";
/// How long a browser may keep a preflight's answer.
const MAX_AGE_SECS: &str = "600";

/// The allowed origins.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    any: bool,
    origins: HashSet<String>,
}

impl Cors {
    pub fn new(origins: &[String]) -> Self {
        Self {
            any: origins.iter().any(|o| o == "*"),
            origins: origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// The request's `Origin` when it is allowed.
    pub fn allowed_origin(&self, req: &Request) -> Option<HeaderValue> {
        if !self.any && self.origins.is_empty() {
            return None;
        }
        let origin = req.headers().get(header::ORIGIN)?;
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        (self.any || self.origins.contains(&text)).then(|| origin.clone())
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) from `origin`.
    pub fn preflight(&self, req: &Request, origin: HeaderValue) -> Option<Response> {
        let is_preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !is_preflight {
            return None;
        }
        let mut response = Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS)
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS)
            .header(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECS)
            .finish();
        self.decorate(&mut response, origin);
        Some(response)
    }

    /// Marks `response` readable by scripts of `origin`.
    pub fn decorate(&self, response: &mut Response, origin: HeaderValue) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str) -> Request {
        Request::builder().header(header::ORIGIN, origin).finish()
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let cors = Cors::new(&["https://app.example.com".into()]);
        assert!(
            cors.allowed_origin(&request("https://app.example.com"))
                .is_some()
        );
        assert!(
            cors.allowed_origin(&request("https://APP.example.com"))
                .is_some()
        );
        assert!(
            cors.allowed_origin(&request("https://evil.example.com"))
                .is_none()
        );
        assert!(
            Cors::new(&[])
                .allowed_origin(&request("https://app.example.com"))
                .is_none()
        );
        assert!(
            Cors::new(&["*".into()])
                .allowed_origin(&request("http://x.test"))
                .is_some()
        );
    }
}
