//! What schema fuzzing (Schemathesis, `.ci/schemathesis.sh`) found, each kept as a test: the
//! answer a client gets now, where the spec and the server once disagreed.

mod common;

use common::{assert_error, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode, header::HeaderValue};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-the-schema-findings-tests";

#[tokio::test]
async fn an_idempotency_key_that_is_not_ascii_is_refused_not_ignored() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let key = HeaderValue::from_bytes(b"\xd7\xf8\x9b").expect("opaque bytes");
    let resp = app
        .client
        .post(app.url(&format!("/v1/guest/chat/{guest}")))
        .header("X-Guest-Token", &token)
        .header("Idempotency-Key", key)
        .json(&json!({"role": "user", "content": "hi"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&resp.json().await.expect("json"), "invalid_idempotency_key");
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_guest_token_without_its_guest_id_is_not_a_credential() {
    let app = spawn_app().await;
    let (_, token) = app.new_guest().await;
    let resp = app
        .request(Method::GET, "/v1/search?q=hello", Some(&token), None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_error(&resp.json().await.expect("json"), "guest_token_invalid");
    let resp = app
        .request(
            Method::POST,
            "/v1/cache/lookup",
            Some(&token),
            Some(&json!({"prompt": "hello"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(&json!({
            "email": "lone-token@example.com",
            "password": "correct horse battery",
            "guest_token": token,
        }))
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("json");
    let message = assert_error(&body, "guest_token_invalid");
    assert!(message.contains("guest_id"), "{message}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test]
async fn search_text_and_thresholds_outside_the_spec_are_refused() {
    let app = spawn_app().await;
    let (user, access) = app.signup("finder@example.com").await;
    assert!(!user.is_empty());
    for query in ["", "%20%20", "a%00b"] {
        let (status, body) = app
            .authed(Method::GET, &format!("/v1/search?q={query}"), &access, None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query:?}: {body}"
        );
    }
    for threshold in [-0.5, 0.0, 1.5] {
        let body = json!({"prompt": "hello", "threshold": threshold});
        let (status, answer) = app
            .authed(Method::POST, "/v1/cache/lookup", &access, Some(&body))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{threshold}: {answer}"
        );
    }
}

/// PostgreSQL cannot store U+0000: found as a 500 on `POST /v1/conversations`.
#[tokio::test]
async fn text_holding_u0000_is_refused_before_the_database() {
    let app = spawn_app().await;
    let (_, access) = app.signup("nul@example.com").await;
    for field in [
        "title",
        "description",
        "agent_type",
        "model_used",
        "system_prompt",
    ] {
        let body = json!({ field: "a\u{0}b" });
        let (status, answer) = app
            .authed(Method::POST, "/v1/conversations", &access, Some(&body))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {answer}"
        );
    }
    let body = json!({"tags": ["ok", "n\u{0}l"]});
    let (status, _) = app
        .authed(Method::POST, "/v1/conversations", &access, Some(&body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, conversation) = app
        .authed(Method::POST, "/v1/conversations", &access, Some(&json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!(
        "/v1/conversations/{}/messages",
        conversation["id"].as_str().expect("id")
    );
    let body = json!({"role": "assistant", "content": "hi", "model_used": "m\u{0}"});
    let (status, _) = app.authed(Method::POST, &path, &access, Some(&body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("SELECT COUNT(*) FROM conversations").await, 1);
}

#[tokio::test]
async fn a_guest_that_never_migrated_has_no_migration_field() {
    let app = spawn_app_with(&[("GENESIS__ADMIN__TOKEN", ADMIN)]).await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "hello").await;
    let (status, layers) = app
        .authed(
            Method::GET,
            &format!("/v1/admin/guests/{guest}/layers"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{layers}");
    assert!(layers.get("migration").is_none(), "{layers}");
}
