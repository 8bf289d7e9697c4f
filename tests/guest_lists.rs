//! A guest's chat view: the newest N messages, newest first, between sequences or times — the
//! same reads an account conversation has — from the hot cache or from SQL alike.

mod common;

use common::{TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn guest_with_ten(app: &TestApp) -> (String, String) {
    let (guest_id, token) = app.new_guest().await;
    for i in 1..=10 {
        let body = json!({"role": "user", "content": format!("m{i}"),
                          "timestamp": format!("2026-01-01T10:{i:02}:00Z")});
        let (status, ack) = app.post_message(&guest_id, Some(&token), body).await;
        assert_eq!(status, StatusCode::CREATED, "{ack}");
    }
    (guest_id, token)
}

async fn read(app: &TestApp, guest_id: &str, token: &str, query: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .get(app.url(&format!("/v1/guest/chat/{guest_id}{query}")))
        .header("X-Guest-Token", token)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn sequences(list: &Value) -> Vec<i64> {
    list["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["sequence"].as_i64().expect("sequence"))
        .collect()
}

async fn check_views(app: &TestApp) {
    let (guest_id, token) = guest_with_ten(app).await;
    let get = |query: &'static str| read(app, &guest_id, &token, query);
    let (status, last) = get("?last=3").await;
    assert_eq!(status, StatusCode::OK, "{last}");
    assert_eq!(sequences(&last), [8, 9, 10]);
    assert!(last.get("next_cursor").is_none_or(Value::is_null));
    assert_eq!(sequences(&get("?last=3&order=desc").await.1), [10, 9, 8]);
    assert_eq!(sequences(&get("?last=2&before_index=5").await.1), [3, 4]);
    assert_eq!(
        sequences(&get("?after_index=2&before_index=6").await.1),
        [3, 4, 5]
    );
    let (_, page) = get("?order=desc&limit=4").await;
    assert_eq!(sequences(&page), [10, 9, 8, 7]);
    assert_eq!(page["next_cursor"], "7");
    assert_eq!(
        sequences(&get("?order=desc&limit=4&cursor=7").await.1),
        [6, 5, 4, 3]
    );
    let (_, window) = get("?since=2026-01-01T10:03:00Z&until=2026-01-01T10:06:00Z").await;
    assert_eq!(sequences(&window), [3, 4, 5]);
    // The plain read is unchanged.
    let (_, plain) = get("?limit=4&cursor=4").await;
    assert_eq!(sequences(&plain), [5, 6, 7, 8]);
    let (status, _) = get("?last=0").await;
    assert!(status.is_client_error());
    let (status, _) = read(app, &guest_id, "not-the-token", "?last=3").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_guest_reads_its_newest_messages_and_ranges() {
    let app = spawn_app().await;
    check_views(&app).await;
}

#[tokio::test]
async fn the_same_reads_come_from_sql_when_the_hot_cache_holds_nothing() {
    let mut app = spawn_app().await;
    let (guest_id, token) = guest_with_ten(&app).await;
    // The in-process cache dies with the process (Redis would outlive it).
    app.restart().await;
    let (status, last) = read(&app, &guest_id, &token, "?last=3&order=desc").await;
    assert_eq!(status, StatusCode::OK, "{last}");
    assert_eq!(sequences(&last), [10, 9, 8]);
    if common::backends() == "sqlite+memory" {
        assert_eq!(last["source"], "l2");
    }
    let (_, window) = read(&app, &guest_id, &token, "?after_index=8").await;
    assert_eq!(sequences(&window), [9, 10]);
}
