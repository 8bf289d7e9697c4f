//! What one guest (or one address) can do, and how long a guest token lasts: a first write that
//! claims an id counts as a new guest against the per-address limit; a guest's daily message
//! quota and its history cap; paged history reads; tokens that end with their guest (erase) and
//! are not reborn when the id is claimed again.

mod common;

use common::{assert_error, join_all, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn msg(content: &str) -> Value {
    json!({"role": "user", "content": content})
}

#[tokio::test]
async fn a_claim_by_first_write_counts_against_the_new_guest_limit() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_SESSIONS_PER_IP_PER_HOUR", "3")]).await;
    let (guest, token) = app.new_guest().await;
    for id in ["claimed-one", "claimed-two"] {
        let (status, body) = app.post_message(id, None, msg("hello")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The fourth new guest from this address, by write or by session, is refused.
    let resp = app
        .request(
            Method::POST,
            "/v1/guest/chat/claimed-three",
            None,
            Some(&msg("hello")),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    assert_error(&resp.json().await.expect("json"), "rate_limited");
    let resp = app
        .request(Method::POST, "/v1/guest/sessions", None, None)
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // Nothing was claimed by the refused write; guests with their tokens go on.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM conversation_cache WHERE guest_id = 'claimed-three'")
            .await,
        0
    );
    app.say(&guest, &token, "user", "still here").await;
}

#[tokio::test]
async fn a_guest_stores_at_most_its_daily_quota() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_MESSAGES_PER_DAY", "5")]).await;
    let (guest, token) = app.new_guest().await;
    // Concurrent writes (merged into batches on SQLite): exactly five are stored.
    let writes = (0..20).map(|i| {
        let (app, guest, token) = (&app, &guest, &token);
        async move {
            let body = json!({"role": "user", "content": format!("m{i}")});
            app.post_message(guest, Some(token), body).await
        }
    });
    let answers = join_all(writes).await;
    let stored = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(stored, 5, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let message = assert_error(body, "guest_quota_exceeded");
        assert!(
            message.contains("limits.guest_messages_per_day"),
            "{message}"
        );
    }
    let resp = app
        .request(
            Method::POST,
            &format!("/v1/guest/chat/{guest}"),
            Some(&token),
            Some(&msg("one more")),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((86_000..=86_400).contains(&wait), "Retry-After {wait}");
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(5));
    // Another guest has its own quota.
    let (other, other_token) = app.new_guest().await;
    app.say(&other, &other_token, "user", "mine").await;
}

#[tokio::test]
async fn a_retry_is_answered_even_when_the_quota_is_used_up() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_MESSAGES_PER_DAY", "2")]).await;
    let (guest, token) = app.new_guest().await;
    let keyed = |key: &str, content: &str| {
        app.client
            .post(app.url(&format!("/v1/guest/chat/{guest}")))
            .header("X-Guest-Token", &token)
            .header("Idempotency-Key", key)
            .json(&msg(content))
    };
    let first = keyed("k-1", "first").send().await.expect("send");
    assert_eq!(first.status(), StatusCode::CREATED);
    app.say(&guest, &token, "user", "second").await;
    let again = keyed("k-1", "first").send().await.expect("send");
    assert_eq!(again.status(), StatusCode::OK);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["duplicate"], true);
    let third = keyed("k-3", "third").send().await.expect("send");
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_guest_history_is_capped() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_MAX_MESSAGES", "4")]).await;
    let (guest, token) = app.new_guest().await;
    for i in 0..4 {
        app.say(&guest, &token, "user", &format!("m{i}")).await;
    }
    let (status, body) = app
        .post_message(&guest, Some(&token), msg("the fifth"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = assert_error(&body, "guest_history_full");
    assert!(message.contains("sign up"), "{message}");
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(4));
}

/// Writes `n` messages `m1`..`mn` to the guest, a few at a time.
async fn fill(app: &common::TestApp, guest: &str, token: &str, n: usize) {
    for chunk in (1..=n).collect::<Vec<_>>().chunks(64) {
        let writes = chunk.iter().map(|i| async move {
            let body = json!({"role": "user", "content": format!("m{i}")});
            app.post_message(guest, Some(token), body).await.0
        });
        for status in join_all(writes).await {
            assert_eq!(status, StatusCode::CREATED);
        }
    }
}

fn sequences(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["sequence"].as_i64().expect("sequence"))
        .collect()
}

#[tokio::test]
async fn guest_history_is_read_in_pages() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    fill(&app, &guest, &token, 250).await;
    let (status, first) = app.history_page(&guest, &token, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sequences(&first), (1..=100).collect::<Vec<_>>());
    assert_eq!(first["next_cursor"], "100");
    let (_, second) = app
        .history_page(&guest, &token, "?cursor=100&limit=120")
        .await;
    assert_eq!(sequences(&second), (101..=220).collect::<Vec<_>>());
    let (_, last) = app
        .history_page(&guest, &token, "?cursor=220&limit=1000")
        .await;
    assert_eq!(sequences(&last), (221..=250).collect::<Vec<_>>());
    assert!(last.get("next_cursor").is_none(), "{last}");
    for bad in ["?limit=0", "?limit=1001", "?cursor=-1", "?cursor=x"] {
        let (status, body) = app.history_page(&guest, &token, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_long_history_is_read_from_sql_a_page_at_a_time() {
    let mut app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_MESSAGES_PER_DAY", "0")]).await;
    let (guest, token) = app.new_guest().await;
    fill(&app, &guest, &token, 1030).await;
    // After a restart the in-process hot cache is empty: the pages come from SQL (with Redis
    // they may come from the hot cache; they must be the same pages).
    app.restart().await;
    let (status, page) = app
        .history_page(&guest, &token, "?cursor=1000&limit=1000")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(sequences(&page), (1001..=1030).collect::<Vec<_>>());
    let (_, first) = app.history_page(&guest, &token, "?limit=7").await;
    assert_eq!(sequences(&first), (1..=7).collect::<Vec<_>>());
    assert_eq!(first["next_cursor"], "7");
    let (_, all) = app.history(&guest, &token).await;
    assert_eq!(sequences(&all), (1..=1030).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_erased_guests_token_is_dead_and_a_reclaimed_id_gets_a_new_one() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_message("reused-id", None, msg("first owner's secret"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let old = body["guest_token"].as_str().expect("token").to_string();
    assert_eq!(
        app.erase("reused-id", Some(&old)).await,
        StatusCode::NO_CONTENT
    );
    // Gone with its guest: no read, and no write that would bring the id back under it.
    let (status, body) = app.history("reused-id", &old).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .post_message("reused-id", Some(&old), msg("back again?"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "guest_not_found");
    // Someone else claims the id: a new token, and the old one opens nothing of theirs.
    let (status, body) = app
        .post_message("reused-id", None, msg("second owner's secret"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new = body["guest_token"].as_str().expect("token").to_string();
    assert_ne!(new, old);
    let (status, history) = app.history("reused-id", &new).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(1));
    let (status, body) = app.history("reused-id", &old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_error(&body, "guest_token_invalid");
    let (status, _) = app
        .post_message("reused-id", Some(&old), msg("let me in"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.erase("reused-id", Some(&old)).await,
        StatusCode::UNAUTHORIZED
    );
    let (_, history) = app.history("reused-id", &new).await;
    assert_eq!(
        history["messages"][0]["content"], "second owner's secret",
        "the new owner's chat is untouched"
    );
}

#[tokio::test]
async fn a_session_token_ends_with_its_guest() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "hi").await;
    assert_eq!(
        app.erase(&guest, Some(&token)).await,
        StatusCode::NO_CONTENT
    );
    let (status, _) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.post_message(&guest, Some(&token), msg("hi")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Two sessions never share a token.
    let (_, a) = app.new_guest().await;
    let (_, b) = app.new_guest().await;
    assert_ne!(a, b);
}
