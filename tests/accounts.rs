//! Accounts and access tokens, and the account conversations API.

mod common;

use common::{assert_error, spawn_app, spawn_app_with};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "a test server secret that is long enough";

async fn post(app: &common::TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn signup_login_and_me() {
    let app = spawn_app().await;
    let (status, body) = post(
        &app,
        "/v1/auth/signup",
        json!({"email":"Ada@Example.com","password":"correct horse"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert!(body["expires_at"].is_string());
    let token = body["access_token"].as_str().expect("token");
    let (status, me) = app.authed(Method::GET, "/v1/users/me", token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["id"], body["user"]["id"]);
    assert!(me["usage"]["total_requests"].is_i64());

    let (status, err) = post(
        &app,
        "/v1/auth/signup",
        json!({"email":"ada@EXAMPLE.com","password":"another one"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&err, "email_taken");
    let (status, err) = post(
        &app,
        "/v1/auth/signup",
        json!({"email":"not-an-email","password":"correct horse"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&err, "invalid_email");
    let (status, err) = post(
        &app,
        "/v1/auth/signup",
        json!({"email":"bob@example.com","password":"short"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&err, "password_too_short");

    let (status, login) = post(
        &app,
        "/v1/auth/login",
        json!({"email":"ADA@example.com","password":"correct horse"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(login["user"]["id"], body["user"]["id"]);
    for (email, password) in [
        ("ada@example.com", "wrong horse"),
        ("nobody@example.com", "correct horse"),
    ] {
        let (status, err) = post(
            &app,
            "/v1/auth/login",
            json!({"email":email,"password":password}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_error(&err, "invalid_credentials");
    }
    let resp = app.request(Method::GET, "/v1/users/me", None, None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

fn built_in_key() -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(b"genesis/access-token/v1");
    mac.finalize().into_bytes().to_vec()
}

fn sign(claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .expect("sign")
}

#[tokio::test]
async fn forged_expired_and_unsigned_tokens_are_refused() {
    let app = spawn_app_with(&[("GENESIS__AUTH__SECRET", SECRET)]).await;
    let (user_id, token) = app.signup("eve@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let key = built_in_key();
    let good = sign(
        &json!({"sub":user_id,"aud":"genesis","iss":"genesis","exp":now+600,"iat":now}),
        &key,
    );
    assert_eq!(
        app.authed(Method::GET, "/v1/users/me", &good, None).await.0,
        StatusCode::OK
    );

    let expired = sign(
        &json!({"sub":user_id,"aud":"genesis","iss":"genesis","exp":now-600,"iat":now-1200}),
        &key,
    );
    let wrong_aud = sign(
        &json!({"sub":user_id,"aud":"other","iss":"genesis","exp":now+600,"iat":now}),
        &key,
    );
    let wrong_key = sign(
        &json!({"sub":user_id,"aud":"genesis","iss":"genesis","exp":now+600,"iat":now}),
        b"guessed key",
    );
    use base64_url as b64;
    let unsigned = format!(
        "{}.{}.",
        b64::encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64::encode(
            json!({"sub":user_id,"aud":"genesis","iss":"genesis","exp":now+600})
                .to_string()
                .as_bytes()
        )
    );
    let mut tampered = token.clone();
    tampered.insert(tampered.len() / 2, 'x');
    for bad in [
        expired,
        wrong_aud,
        wrong_key,
        unsigned,
        tampered,
        "garbage".into(),
    ] {
        let (status, body) = app.authed(Method::GET, "/v1/users/me", &bad, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "accepted {bad}");
        assert_error(&body, "token_invalid");
    }
}

/// Minimal base64url without padding, for hand-made tokens.
mod base64_url {
    pub fn encode(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

#[tokio::test]
async fn tokens_from_an_outside_identity_provider_create_the_user_on_first_use() {
    let app = spawn_app_with(&[
        ("GENESIS__AUTH__EXTERNAL_ALGORITHM", "HS256"),
        ("GENESIS__AUTH__EXTERNAL_SECRET", "supabase-jwt-secret"),
    ])
    .await;
    let now = chrono::Utc::now().timestamp();
    let token = sign(
        &json!({"sub":"idp-user-1","aud":"authenticated","exp":now+600,"role":"authenticated"}),
        b"supabase-jwt-secret",
    );
    let (status, first) = app.authed(Method::GET, "/v1/users/me", &token, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, again) = app.authed(Method::GET, "/v1/users/me", &token, None).await;
    assert_eq!(
        first["user"]["id"], again["user"]["id"],
        "one user row per sub"
    );
    let (status, _) = app
        .authed(
            Method::POST,
            "/v1/conversations",
            &token,
            Some(&json!({"title":"from idp"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let wrong_aud = sign(
        &json!({"sub":"idp-user-1","aud":"anon","exp":now+600}),
        b"supabase-jwt-secret",
    );
    assert_eq!(
        app.authed(Method::GET, "/v1/users/me", &wrong_aud, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let expired = sign(
        &json!({"sub":"idp-user-1","aud":"authenticated","exp":now-600}),
        b"supabase-jwt-secret",
    );
    assert_eq!(
        app.authed(Method::GET, "/v1/users/me", &expired, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_email() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__LOGIN_ATTEMPTS_PER_EMAIL_PER_HOUR", "3")]).await;
    app.signup("mallory@example.com").await;
    for _ in 0..3 {
        let (status, _) = post(
            &app,
            "/v1/auth/login",
            json!({"email":"mallory@example.com","password":"guess guess"}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let resp = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email":"mallory@example.com","password":"correct horse battery"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let (status, _) = post(
        &app,
        "/v1/auth/login",
        json!({"email":"other@example.com","password":"whatever1"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "other e-mails are not limited"
    );
}

#[tokio::test]
async fn conversations_are_private_ordered_and_paginated() {
    let app = spawn_app().await;
    let (_, alice) = app.signup("alice@example.com").await;
    let (_, bob) = app.signup("bob@example.com").await;
    let (status, conv) = app
        .authed(
            Method::POST,
            "/v1/conversations",
            &alice,
            Some(&json!({"title":"Trip plans"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = conv["id"].as_str().expect("id").to_string();
    let path = format!("/v1/conversations/{id}/messages");
    for i in 1..=25 {
        let role = if i % 2 == 1 { "user" } else { "assistant" };
        let (status, msg) = app
            .authed(
                Method::POST,
                &path,
                &alice,
                Some(&json!({"role":role,"content":format!("m{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{msg}");
        assert_eq!(msg["message_index"], i);
    }
    // Pages of 10 in message_index order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{path}?limit=10&cursor={c}"),
            None => format!("{path}?limit=10"),
        };
        let (status, page) = app.authed(Method::GET, &q, &alice, None).await;
        assert_eq!(status, StatusCode::OK);
        for m in page["messages"].as_array().expect("messages") {
            seen.push(m["content"].as_str().expect("content").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).map(|i| format!("m{i}")).collect::<Vec<_>>());

    // Bob sees nothing of it: 404, not 403.
    for (method, p, body) in [
        (Method::GET, format!("/v1/conversations/{id}"), None),
        (Method::GET, path.clone(), None),
        (
            Method::POST,
            path.clone(),
            Some(json!({"role":"user","content":"intrude"})),
        ),
    ] {
        let (status, err) = app.authed(method, &p, &bob, body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error(&err, "conversation_not_found");
    }
    let (_, list) = app
        .authed(Method::GET, "/v1/conversations", &bob, None)
        .await;
    assert_eq!(list["conversations"], json!([]));
    let (_, list) = app
        .authed(Method::GET, "/v1/conversations", &alice, None)
        .await;
    assert_eq!(list["conversations"][0]["message_count"], 25);

    let (status, _) = app
        .authed(Method::GET, &format!("{path}?limit=1001"), &alice, None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let retry = json!({"role":"user","content":"ok","timestamp":"2025-12-21T12:00:00Z"});
    let (s1, a) = app.authed(Method::POST, &path, &alice, Some(&retry)).await;
    let (s2, b) = app.authed(Method::POST, &path, &alice, Some(&retry)).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(a["id"], b["id"]);
    assert_eq!(b["duplicate"], true);
    let (status, _) = app
        .authed(Method::GET, "/conversations/x/messages", &alice, None)
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "seed alias exists and checks the id"
    );
    let (status, _) = app
        .authed(
            Method::GET,
            &format!("/conversations/{id}/messages"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn es256_tokens_from_an_outside_provider_are_checked_with_its_public_key() {
    // A key pair made for this test only (tests/fixtures), never used anywhere else.
    let public = include_str!("fixtures/es256-public.pem");
    let private = include_bytes!("fixtures/es256-private.pem");
    let app = spawn_app_with(&[
        ("GENESIS__AUTH__EXTERNAL_ALGORITHM", "ES256"),
        ("GENESIS__AUTH__EXTERNAL_PUBLIC_KEY", public),
        ("GENESIS__AUTH__EXTERNAL_AUDIENCE", "genesis-app"),
    ])
    .await;
    let key = EncodingKey::from_ec_pem(private).expect("test key");
    let now = chrono::Utc::now().timestamp();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &json!({"sub":"es-user","aud":"genesis-app","exp":now+600}),
        &key,
    )
    .expect("sign");
    let (status, me) = app.authed(Method::GET, "/v1/users/me", &token, None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    // An HS256 token "signed" with the public key text (the classic confusion attack) is refused.
    let confused = sign(
        &json!({"sub":"es-user","aud":"genesis-app","exp":now+600}),
        public.as_bytes(),
    );
    assert_eq!(
        app.authed(Method::GET, "/v1/users/me", &confused, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}
