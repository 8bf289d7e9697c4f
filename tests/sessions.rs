//! The sign-in lifecycle: short access tokens, refresh tokens rotated on every use (a reused one
//! ends its sign-in), logout, and a password change that signs out every other session.

mod common;

use common::{TestApp, assert_error, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn login(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    post(
        app,
        "/v1/auth/login",
        json!({"email": email, "password": password}),
    )
    .await
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    post(app, "/v1/auth/refresh", json!({"refresh_token": token})).await
}

fn field(v: &Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {v}"))
        .to_string()
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_sign_in() {
    let app = spawn_app().await;
    let (status, signup) = post(
        &app,
        "/v1/auth/signup",
        json!({"email": "rota@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Access tokens are short now: 15 minutes by default.
    let expires =
        chrono::DateTime::parse_from_rfc3339(&field(&signup, "expires_at")).expect("time");
    let left = expires.timestamp() - chrono::Utc::now().timestamp();
    assert!((880..=900).contains(&left), "{left} s");
    let first = field(&signup, "refresh_token");

    let (status, next) = refresh(&app, &first).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["user"]["email"], "rota@example.com");
    let second = field(&next, "refresh_token");
    assert_ne!(second, first);
    let (status, _) = app
        .authed(
            Method::GET,
            "/v1/users/me",
            &field(&next, "access_token"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The spent token again: refused, and the whole sign-in with it.
    let (status, body) = refresh(&app, &first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "token_invalid");
    let (status, _) = refresh(&app, &second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the family was revoked");
    // Other sign-ins are untouched.
    let (_, again) = login(&app, "rota@example.com", PASSWORD).await;
    let (status, _) = refresh(&app, &field(&again, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);
    for junk in ["", "grt_0000", "not a token"] {
        let (status, _) = refresh(&app, junk).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{junk:?}");
    }
}

#[tokio::test]
async fn logout_ends_the_sign_in() {
    let app = spawn_app().await;
    app.signup("leaver@example.com").await;
    let (_, session) = login(&app, "leaver@example.com", "correct horse battery").await;
    let token = field(&session, "refresh_token");
    let resp = app
        .client
        .post(app.url("/v1/auth/logout"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, _) = refresh(&app, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = app
        .client
        .post(app.url("/v1/auth/logout"))
        .json(&json!({"refresh_token": "grt_unknown"}))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "idempotent");
}

#[tokio::test]
async fn a_password_change_signs_out_every_other_session() {
    let app = spawn_app().await;
    let email = "mover@example.com";
    app.signup(email).await;
    let (_, here) = login(&app, email, PASSWORD).await;
    let (_, elsewhere) = login(&app, email, PASSWORD).await;
    let access = field(&here, "access_token");
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    let (status, body) = app
        .authed(
            Method::PUT,
            "/v1/users/me/password",
            &access,
            Some(&change("wrong one!", "a brand new secret")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = app
        .authed(
            Method::PUT,
            "/v1/users/me/password",
            &access,
            Some(&change(PASSWORD, "short")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app
        .authed(
            Method::PUT,
            "/v1/users/me/password",
            &access,
            Some(&change(PASSWORD, "a brand new secret")),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (status, _) = refresh(&app, &field(&elsewhere, "refresh_token")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the other session is signed out"
    );
    let (status, _) = refresh(&app, &field(&here, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "this session goes on");
    let (status, _) = login(&app, email, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = login(&app, email, "a brand new secret").await;
    assert_eq!(status, StatusCode::OK);
}
