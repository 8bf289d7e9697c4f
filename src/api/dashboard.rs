//! `/admin`: the admin dashboard, three files embedded in the binary at build time (no CDN, no
//! build step: `assets/admin/` is served as written). Outside the spec, like `/docs`. The page
//! signs in with the admin token and reads only the admin API and, in its "Try it" box, the guest
//! and account API — all on this origin, which its Content-Security-Policy holds it to.

use poem::{Endpoint, IntoResponse, Response, Route, get, handler, http::header};

const INDEX: &str = include_str!("../../assets/admin/index.html");
const SCRIPT: &str = include_str!("../../assets/admin/admin.js");
const STYLE: &str = include_str!("../../assets/admin/admin.css");

/// The page may load and connect to its own origin only; nothing may frame it.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                      connect-src 'self'; form-action 'none'; base-uri 'none'; \
                      frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CONTENT_SECURITY_POLICY, POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
}

#[handler]
fn index() -> impl IntoResponse {
    asset(INDEX, "text/html; charset=utf-8")
}

#[handler]
fn script() -> impl IntoResponse {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

#[handler]
fn style() -> impl IntoResponse {
    asset(STYLE, "text/css; charset=utf-8")
}

/// The dashboard's routes, to nest at `/admin`.
pub fn routes() -> impl Endpoint {
    Route::new()
        .at("/", get(index))
        .at("/admin.js", get(script))
        .at("/admin.css", get(style))
}
