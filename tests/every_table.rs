//! The seeds' check: after a guest chats, reads its history and signs up with the guest, and one
//! flush interval has passed, every table holds rows — `cache_embeddings` too, on the default
//! configuration (the built-in lexical embedder).

mod common;

use std::time::Duration;

use common::spawn_app;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_seeds_session_fills_every_table() {
    let app = spawn_app().await;
    let (status, first) = app
        .post_message(
            "test-guest-001",
            None,
            json!({"role":"user","content":"Test message","timestamp":"2025-12-21T12:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let token = first["guest_token"].as_str().expect("token").to_string();
    app.say(
        "test-guest-001",
        &token,
        "assistant",
        "Hello! How can I help?",
    )
    .await;
    let (status, _) = app.history("test-guest-001", &token).await;
    assert_eq!(status, StatusCode::OK);
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(
            &json!({"email":"seed@example.com","password":"correct horse",
                      "guest_id":"test-guest-001","guest_token":token}),
        )
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::CREATED);
    // The in-memory counters are written once per flush interval (1 s in tests).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut empty = Vec::new();
    for table in [
        "users",
        "conversations",
        "messages",
        "usage_metrics",
        "conversation_cache",
        "message_cache",
        "cache_content_mapping",
        "cache_migrations",
        "cache_metrics",
        "cache_embeddings",
    ] {
        if app.count(&format!("SELECT COUNT(*) FROM {table}")).await == 0 {
            empty.push(table);
        }
    }
    assert!(empty.is_empty(), "tables still empty: {empty:?}");
    // Every layer reported: hot cache, cache tables and account tables.
    for layer in ["l1", "l2", "main"] {
        let n = app
            .count(&format!(
                "SELECT COUNT(*) FROM cache_metrics WHERE layer = '{layer}'"
            ))
            .await;
        assert!(n > 0, "no cache_metrics rows for {layer}");
    }
}
