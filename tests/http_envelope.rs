//! What every response carries: JSON errors for every failure, a request id, and health checks.

mod common;

use common::{assert_error, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn unknown_routes_wrong_methods_and_media_types_answer_json_errors() {
    let app = spawn_app().await;
    let resp = app.request(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_error(&resp.json::<Value>().await.expect("json"), "not_found");

    let resp = app.request(Method::PUT, "/healthz", None, None).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_error(
        &resp.json::<Value>().await.expect("json"),
        "method_not_allowed",
    );

    let resp = app
        .client
        .post(app.url("/v1/guest/chat/abc"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(
        &resp.json::<Value>().await.expect("json"),
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_even_when_chunked() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let huge = format!(
        "{{\"role\":\"user\",\"content\":\"{}\"}}",
        "x".repeat(2_000_000)
    );
    let resp = app
        .client
        .post(app.url(&format!("/v1/guest/chat/{guest}")))
        .header("X-Guest-Token", &token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(
        &resp.json::<Value>().await.expect("json"),
        "payload_too_large",
    );

    // Just over the limit, so the unread rest fits in socket buffers and the client reads the 413.
    let over = format!(
        "{{\"role\":\"user\",\"content\":\"{}\"}}",
        "x".repeat(470_000)
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = over
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let resp = app
        .client
        .post(app.url(&format!("/v1/guest/chat/{guest}")))
        .header("X-Guest-Token", &token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(
        &resp.json::<Value>().await.expect("json"),
        "payload_too_large",
    );
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["messages"], serde_json::json!([]));
}

/// A stream over ready items, without pulling in a stream crate.
fn futures_stream<T: Send + Unpin + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T>
    where
        T: Unpin,
    {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_client_id_is_echoed() {
    let app = spawn_app().await;
    let resp = app.request(Method::GET, "/healthz", None, None).await;
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(!id.is_empty());
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    let resp = app
        .request(Method::GET, "/v1/guest/chat/x", Some("bad"), None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers().contains_key("x-request-id"),
        "errors carry it too"
    );
}

#[tokio::test]
async fn health_and_readiness_report_each_layer() {
    let app = spawn_app().await;
    let resp = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.expect("json")["status"], "ok");
    let resp = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["sql"], "up");
    assert_eq!(body["l1"], "up");
    assert!(body["sql_backend"].is_string() && body["l1_backend"].is_string());
}

#[tokio::test]
async fn a_405_names_the_allowed_methods_and_a_long_uri_is_a_json_414() {
    let app = spawn_app().await;
    let resp = app.request(Method::PUT, "/healthz", None, None).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET");
    let resp = app
        .request(Method::PUT, "/v1/guest/chat/some-guest", None, None)
        .await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "DELETE, GET, POST");

    let long = format!("/v1/guest/chat/{}", "a".repeat(9000));
    let resp = app.request(Method::GET, &long, None, None).await;
    assert_eq!(resp.status(), StatusCode::URI_TOO_LONG);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_error(&resp.json::<Value>().await.expect("json"), "uri_too_long");
}

#[tokio::test]
async fn parser_errors_are_told_in_the_projects_words() {
    let app = spawn_app().await;
    let (_, token) = app.signup("parse@example.com").await;
    let (status, body) = app
        .authed(Method::GET, "/v1/conversations?limit=abc", &token, None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = assert_error(&body, "invalid_limit");
    assert!(!message.contains("uint64"), "{message}");

    let (guest, guest_token) = app.new_guest().await;
    let (status, body) = app
        .post_message(
            &guest,
            Some(&guest_token),
            serde_json::json!({"role":"user","content":12345}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = assert_error(&body, "bad_request");
    assert!(!message.contains("failed to parse"), "{message}");
    assert!(message.contains("a string"), "{message}");

    // A string field given a number is refused, not stored as text.
    let (status, body) = app
        .authed(
            Method::POST,
            "/v1/conversations",
            &token,
            Some(&serde_json::json!({"title": 0.0})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
