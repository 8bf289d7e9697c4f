//! `POST /v1/admin/guests/{guest_id}/migrate`: an auth server that links the anonymous user in a
//! server hook moves the guest with the admin token — the same migration, audit and replay.

mod common;

use common::{assert_error, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-the-admin-migration-tests";

fn idp_token(sub: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": sub, "aud": "authenticated", "exp": now + 600, "iat": now});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"hook-idp-secret"),
    )
    .expect("sign")
}

async fn app() -> common::TestApp {
    spawn_app_with(&[
        ("GENESIS__ADMIN__TOKEN", ADMIN),
        ("GENESIS__AUTH__EXTERNAL_ALGORITHM", "HS256"),
        ("GENESIS__AUTH__EXTERNAL_SECRET", "hook-idp-secret"),
    ])
    .await
}

async fn migrate(app: &common::TestApp, guest: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/v1/admin/guests/{guest}/migrate");
    app.authed(Method::POST, &path, ADMIN, Some(&body)).await
}

#[tokio::test]
async fn the_admin_moves_a_guest_to_a_user_once() {
    let app = app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "hello from before sign-up")
        .await;
    app.say(&guest, &token, "assistant", "hi!").await;
    let (user_id, access) = app.signup("hooked@example.com").await;

    let (status, first) = migrate(&app, &guest, json!({"user_id": user_id})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["messages_migrated"], 2);
    assert_eq!(first["already_migrated"], false);
    let (status, again) = migrate(&app, &guest, json!({"user_id": user_id})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_migrated"], true);
    assert_eq!(again["migration_id"], first["migration_id"]);
    let (_, list) = app
        .authed(Method::GET, "/v1/conversations", &access, None)
        .await;
    assert_eq!(list["conversations"][0]["id"], first["conversation_ids"][0]);
    // Another user cannot have it; the guest's own token now reads 409.
    let (other, _) = app.signup("other@example.com").await;
    let (status, body) = migrate(&app, &guest, json!({"user_id": other})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "guest_already_claimed");
    let (status, _) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, audit) = app
        .authed(
            Method::GET,
            &format!("/v1/admin/migrations?guest_id={guest}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        audit["migrations"].as_array().map(Vec::len),
        Some(1),
        "{audit}"
    );
}

#[tokio::test]
async fn an_identity_provider_user_is_created_on_the_way() {
    let app = app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "remember me").await;
    let (status, report) = migrate(&app, &guest, json!({"external_id": "idp|42"})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    // The user signs in at the provider: the guest's chat is in their account.
    let (status, list) = app
        .authed(Method::GET, "/v1/conversations", &idp_token("idp|42"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["conversations"][0]["id"],
        report["conversation_ids"][0]
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let app = app().await;
    let (guest, _) = app.new_guest().await;
    let (user_id, _) = app.signup("someone@example.com").await;
    for body in [
        json!({}),
        json!({"user_id": user_id, "external_id": "x"}),
        json!({"external_id": ""}),
    ] {
        // Not one of the two documented shapes.
        let (status, answer) = migrate(&app, &guest, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_error(&answer, "bad_request");
    }
    let (status, _) = migrate(&app, &guest, json!({"user_id": uuid::Uuid::now_v7()})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown user");
    let (status, body) = migrate(&app, "nobody-here", json!({"user_id": user_id})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "guest_not_found");
    let (status, _) = app
        .authed(
            Method::POST,
            &format!("/v1/admin/guests/{guest}/migrate"),
            "not-the-admin-token-but-long-enough-0000",
            Some(&json!({"user_id": user_id})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
