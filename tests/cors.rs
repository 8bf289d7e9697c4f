//! Browser apps: with `server.cors_origins` set, a preflight from a listed origin is answered
//! with the methods and headers the API takes, answers (errors too) name the origin and expose
//! `X-Guest-Token`; other origins, and every origin when nothing is configured, get no CORS
//! headers. `GET /` leads to the docs.

mod common;

use common::{command, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode, header};

const APP: &str = "https://app.example.com";

fn header_of<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_listed_origin_gets_preflights_and_readable_answers() {
    let app = spawn_app_with(&[(
        "GENESIS__SERVER__CORS_ORIGINS",
        "https://app.example.com,http://localhost:5173",
    )])
    .await;

    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/v1/guest/chat/g_someone"))
        .header(header::ORIGIN, APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "x-guest-token, idempotency-key, content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_of(&preflight, "access-control-allow-origin"), APP);
    let methods = header_of(&preflight, "access-control-allow-methods");
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{method} not in {methods}");
    }
    let headers = header_of(&preflight, "access-control-allow-headers").to_ascii_lowercase();
    for name in [
        "authorization",
        "x-guest-token",
        "idempotency-key",
        "content-type",
    ] {
        assert!(headers.contains(name), "{name} not in {headers}");
    }

    // The real request: the app's script can read the answer and the guest token.
    let resp = app
        .client
        .post(app.url("/v1/guest/sessions"))
        .header(header::ORIGIN, "http://localhost:5173")
        .send()
        .await
        .expect("session");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        header_of(&resp, "access-control-allow-origin"),
        "http://localhost:5173"
    );
    assert!(
        header_of(&resp, "access-control-expose-headers").contains("X-Guest-Token"),
        "{:?}",
        resp.headers()
    );
    assert!(header_of(&resp, "vary").contains("Origin"));

    // Errors are readable too (a script must see why it was refused).
    let resp = app
        .client
        .get(app.url("/v1/users/me"))
        .header(header::ORIGIN, APP)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header_of(&resp, "access-control-allow-origin"), APP);

    // Another origin: no CORS headers, on the preflight or the request.
    for method in [Method::OPTIONS, Method::GET] {
        let resp = app
            .client
            .request(method.clone(), app.url("/healthz"))
            .header(header::ORIGIN, "https://evil.example.com")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .expect("request");
        assert!(
            resp.headers().get("access-control-allow-origin").is_none(),
            "{method}: {:?}",
            resp.headers()
        );
    }
}

#[tokio::test]
async fn no_origins_configured_means_no_cors_headers_and_a_star_allows_any() {
    let app = spawn_app().await;
    let resp = app
        .client
        .request(Method::OPTIONS, app.url("/v1/guest/sessions"))
        .header(header::ORIGIN, APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_ne!(resp.status(), StatusCode::NO_CONTENT);

    let open = spawn_app_with(&[("GENESIS__SERVER__CORS_ORIGINS", "*")]).await;
    let resp = open
        .client
        .get(open.url("/healthz"))
        .header(header::ORIGIN, "http://anything.test:3000")
        .send()
        .await
        .expect("request");
    assert_eq!(
        header_of(&resp, "access-control-allow-origin"),
        "http://anything.test:3000"
    );
}

#[tokio::test]
async fn the_root_leads_to_the_docs() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = client.get(app.url("/")).send().await.expect("request");
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(header_of(&resp, "location"), "/docs");
}

#[tokio::test]
async fn an_origin_that_is_not_one_stops_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let out = command()
        .arg("serve")
        .env("GENESIS__DATA_DIR", dir.path())
        .env("GENESIS__SERVER__BIND", "127.0.0.1:0")
        .env("GENESIS__SERVER__CORS_ORIGINS", "app.example.com/path")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.cors_origins") && err.contains("app.example.com/path"),
        "{err}"
    );
}
