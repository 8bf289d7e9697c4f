//! Signing up with a guest has one outcome: the account and the guest moved into it, or neither
//! (so a retry of the same sign-up is never told its e-mail is taken).

mod common;

use common::{TestApp, assert_error, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn signup_with(
    app: &TestApp,
    email: &str,
    guest: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut body = json!({"email": email, "password": "correct horse battery"});
    if let Some((id, token)) = guest {
        body["guest_id"] = json!(id);
        body["guest_token"] = json!(token);
    }
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(&body)
        .send()
        .await
        .expect("signup");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn users(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM users").await
}

#[tokio::test]
async fn a_guest_of_another_account_makes_no_account() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "mine").await;
    let (_, first) = app.signup("first@example.com").await;
    let (status, _) = app.migrate(&guest, &first, &token).await;
    assert_eq!(status, StatusCode::OK);
    let before = users(&app).await;

    let (status, body) = signup_with(&app, "second@example.com", Some((&guest, &token))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "guest_already_claimed");
    assert_eq!(users(&app).await, before, "no account was made");
    let (status, _) = signup_with(&app, "second@example.com", None).await;
    assert_eq!(status, StatusCode::CREATED, "the e-mail is still free");
}

#[tokio::test]
async fn a_guest_that_does_not_exist_makes_no_account() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "soon gone").await;
    let resp = app
        .request(
            Method::DELETE,
            &format!("/v1/guest/chat/{guest}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, body) = signup_with(&app, "late@example.com", Some((&guest, &token))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "guest_not_found");
    assert_eq!(users(&app).await, 0);
}

#[tokio::test]
async fn a_move_that_fails_after_the_account_was_made_takes_the_account_back() {
    let app = spawn_app_with(&[("GENESIS_TEST_FAILPOINTS", "migrate_after_messages:1")]).await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "keep me").await;
    let (status, body) = signup_with(&app, "retry@example.com", Some((&guest, &token))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_error(&body, "internal_error");
    assert_eq!(users(&app).await, 0, "the account was taken back");
    // The same sign-up again: both this time.
    let (status, body) = signup_with(&app, "retry@example.com", Some((&guest, &token))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["migration"]["messages_migrated"], 1, "{body}");
    assert!(body.get("migration_error").is_none());
}
