//! Limits an attacker meets: sign-ups per address, wrong admin tokens per address, logins per
//! e-mail *and* address (an attacker elsewhere cannot lock the owner out), client addresses taken
//! from forwarding headers only behind a trusted proxy, and a bounded password-hashing queue.

mod common;

use common::{assert_error, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "an-admin-token-that-is-long-enough-0123";

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__SIGNUPS_PER_IP_PER_HOUR", "2")]).await;
    app.signup("one@example.com").await;
    app.signup("two@example.com").await;
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(&json!({"email": "three@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.expect("json");
    assert_error(&body, "rate_limited");
}

#[tokio::test]
async fn wrong_admin_tokens_are_limited_per_address() {
    let app = spawn_app_with(&[
        ("GENESIS__ADMIN__TOKEN", ADMIN),
        ("GENESIS__LIMITS__ADMIN_FAILURES_PER_IP_PER_HOUR", "3"),
    ])
    .await;
    let (status, _) = app
        .authed(Method::GET, "/v1/admin/stats", ADMIN, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        let (status, body) = app
            .authed(Method::GET, "/v1/admin/stats", "guess", None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, body) = app
        .authed(Method::GET, "/v1/admin/stats", "guess", None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&body, "rate_limited");
    let (status, _) = app
        .authed(Method::GET, "/v1/admin/stats", ADMIN, None)
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a guessing address is refused even with the right token"
    );
}

async fn login_from(app: &common::TestApp, client: &str, password: &str) -> StatusCode {
    app.client
        .post(app.url("/v1/auth/login"))
        .header("X-Forwarded-For", client)
        .json(&json!({"email": "owner@example.com", "password": password}))
        .send()
        .await
        .expect("login")
        .status()
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out_of_their_address() {
    let app = spawn_app_with(&[
        ("GENESIS__SERVER__TRUSTED_PROXIES", "127.0.0.1,::1"),
        ("GENESIS__LIMITS__LOGIN_ATTEMPTS_PER_EMAIL_PER_HOUR", "3"),
    ])
    .await;
    app.signup("owner@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            login_from(&app, "203.0.113.66", "wrong password").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&app, "203.0.113.66", "wrong password").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker's address is slowed"
    );
    assert_eq!(
        login_from(&app, "198.51.100.7", "correct horse battery").await,
        StatusCode::OK,
        "the owner, from their own address, still gets in"
    );
}

async fn new_session_from(app: &common::TestApp, client: &str) -> StatusCode {
    app.client
        .post(app.url("/v1/guest/sessions"))
        .header("X-Forwarded-For", client)
        .send()
        .await
        .expect("session")
        .status()
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let limit = ("GENESIS__LIMITS__GUEST_SESSIONS_PER_IP_PER_HOUR", "1");
    let behind_proxy =
        spawn_app_with(&[limit, ("GENESIS__SERVER__TRUSTED_PROXIES", "127.0.0.1,::1")]).await;
    assert_eq!(
        new_session_from(&behind_proxy, "198.51.100.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        new_session_from(&behind_proxy, "198.51.100.2").await,
        StatusCode::CREATED,
        "another client"
    );
    assert_eq!(
        new_session_from(&behind_proxy, "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the same client again"
    );
    let direct = spawn_app_with(&[limit]).await;
    assert_eq!(
        new_session_from(&direct, "198.51.100.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        new_session_from(&direct, "198.51.100.2").await,
        StatusCode::TOO_MANY_REQUESTS,
        "without a trusted proxy the header is ignored: a client cannot pick a fresh bucket"
    );
}

#[tokio::test]
async fn a_sign_up_flood_is_refused_quickly_and_logins_still_work() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__SIGNUPS_PER_IP_PER_HOUR", "0")]).await;
    app.signup("owner@example.com").await;
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (client, url) = (app.client.clone(), app.url("/v1/auth/signup"));
        flood.spawn(async move {
            let resp = client
                .post(url)
                .json(&json!({"email": format!("flood{i}@example.com"), "password": "flood password"}))
                .send()
                .await
                .expect("signup");
            (resp.status(), resp.headers().get("retry-after").is_some())
        });
    }
    let login = login_from(&app, "127.0.0.1", "correct horse battery").await;
    assert_eq!(login, StatusCode::OK, "a login during the flood");
    let mut busy = 0;
    while let Some(answer) = flood.join_next().await {
        let (status, retry_after) = answer.expect("task");
        match status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(retry_after, "503 says when to retry");
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        busy > 0,
        "the hashing queue is bounded: some of 200 sign-ups were told to retry"
    );
}
