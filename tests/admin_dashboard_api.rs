//! What the admin dashboard reads: the guest list (`GET /v1/admin/guests`: search, status,
//! pages), the live samples behind its charts (`GET /v1/admin/live`), why a table is empty
//! (`GET /v1/admin/stats`), the messages in the layer view and the audit trail by status.

mod common;

use std::time::Duration;

use common::{assert_error, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "admin-test-token-of-at-least-32-characters";

fn ids(list: &Value) -> Vec<String> {
    list["guests"]
        .as_array()
        .expect("guests")
        .iter()
        .map(|g| g["guest_id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn the_guest_list_finds_guests_by_id_and_status_a_page_at_a_time() {
    let app = spawn_app_with(&[
        ("GENESIS__ADMIN__TOKEN", ADMIN),
        ("GENESIS__GUEST__RETENTION_SECS", "2"),
    ])
    .await;
    let (old, old_token) = app.new_guest().await;
    app.say(&old, &old_token, "user", "I will expire").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut fresh = Vec::new();
    for i in 0..3 {
        let (guest, token) = app.new_guest().await;
        app.say(&guest, &token, "user", &format!("hello {i}")).await;
        fresh.push((guest, token));
    }
    // The newest guest starts a second conversation: its messages count in.
    let (newest, newest_token) = fresh[2].clone();
    let resp = app
        .client
        .post(app.url(&format!("/v1/guest/chat/{newest}/conversations")))
        .header("X-Guest-Token", &newest_token)
        .send()
        .await
        .expect("new conversation");
    assert_eq!(resp.status(), StatusCode::CREATED);
    app.say(&newest, &newest_token, "user", "second thread")
        .await;
    app.say(&newest, &newest_token, "assistant", "noted").await;
    // The first fresh guest signs up.
    let (migrated, migrated_token) = fresh[0].clone();
    let (user_id, access) = app.signup("dash@example.com").await;
    let (status, body) = app.migrate(&migrated, &access, &migrated_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, all) = app.admin_get("/v1/admin/guests", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let newest_first: Vec<String> = fresh.iter().rev().map(|(g, _)| g.clone()).collect();
    let mut expected = newest_first.clone();
    expected.push(old.clone());
    assert_eq!(ids(&all), expected, "newest first, one row per guest");
    assert!(all.get("next_cursor").is_none(), "{all}");
    let row = &all["guests"][0];
    assert_eq!(row["messages"], 3, "both conversations: {row}");
    assert_eq!(row["conversations"], 2);
    assert_eq!(row["status"], "active");
    assert_eq!(row["migrated_to"], Value::Null);
    for field in [
        "conversation_id",
        "created_at",
        "last_activity_at",
        "expires_at",
    ] {
        assert!(row.get(field).is_some(), "{field} in {row}");
    }
    let moved = &all["guests"][2];
    assert_eq!(moved["status"], "migrated");
    assert_eq!(moved["migrated_to"], user_id.as_str());
    assert_eq!(all["guests"][3]["status"], "expired");

    for (status, want) in [
        ("migrated", vec![migrated.clone()]),
        ("expired", vec![old.clone()]),
        ("active", vec![newest.clone(), fresh[1].0.clone()]),
    ] {
        let (code, list) = app
            .admin_get(&format!("/v1/admin/guests?status={status}"), ADMIN)
            .await;
        assert_eq!(code, StatusCode::OK, "{list}");
        assert_eq!(ids(&list), want, "status={status}");
    }
    // A part of an id finds that guest; LIKE's wildcards are taken literally.
    let part = &old[4..14];
    let (_, found) = app
        .admin_get(&format!("/v1/admin/guests?q={part}"), ADMIN)
        .await;
    assert_eq!(ids(&found), vec![old.clone()]);
    let (_, none) = app.admin_get("/v1/admin/guests?q=%25", ADMIN).await;
    assert_eq!(ids(&none), Vec::<String>::new());

    // Pages of one: every guest once, in the same order.
    let mut seen = Vec::new();
    let mut path = "/v1/admin/guests?limit=1".to_string();
    loop {
        let (code, page) = app.admin_get(&path, ADMIN).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/admin/guests?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    let (code, body) = app
        .admin_get("/v1/admin/guests?cursor=nonsense", ADMIN)
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "invalid_cursor");
    let (code, body) = app
        .admin_get("/v1/admin/guests?status=sleeping", ADMIN)
        .await;
    assert!(code.is_client_error(), "{body}");
    let resp = app
        .client
        .get(app.url("/v1/admin/guests"))
        .bearer_auth("wrong-token-wrong-token-wrong-token")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn live_samples_show_the_traffic_of_the_last_seconds() {
    let app = spawn_app_with(&[("GENESIS__ADMIN__TOKEN", ADMIN)]).await;
    let (guest, token) = app.new_guest().await;
    let busy = async {
        for i in 0..40 {
            app.say(&guest, &token, "user", &format!("message {i}"))
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    busy.await;
    let busy_sample = |live: &Value| {
        live["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["requests_per_sec"].as_f64().unwrap_or(0.0) > 0.0)
            .cloned()
    };
    let mut seen = Value::Null;
    for _ in 0..50 {
        let (status, live) = app.admin_get("/v1/admin/live", ADMIN).await;
        assert_eq!(status, StatusCode::OK, "{live}");
        seen = live;
        if busy_sample(&seen).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let found = busy_sample(&seen).is_some();
    assert!(found, "no sample saw the appends: {seen}");
    assert_eq!(seen["interval_secs"], 2);
    let sample = busy_sample(&seen).unwrap_or_default();
    let p50 = sample["p50_ms"].as_f64().expect("p50 with requests");
    let p99 = sample["p99_ms"].as_f64().expect("p99 with requests");
    assert!(p50 > 0.0 && p50 <= p99, "{sample}");
    for field in ["writer_queue", "embedding_backlog", "l1_hit_ratio", "at"] {
        assert!(sample.get(field).is_some(), "{field} in {sample}");
    }
}

#[tokio::test]
async fn stats_say_why_a_table_is_empty_and_layers_show_the_messages() {
    let app = spawn_app_with(&[
        ("GENESIS__ADMIN__TOKEN", ADMIN),
        ("GENESIS__EMBEDDINGS__PROVIDER", "none"),
    ])
    .await;
    let (status, stats) = app.admin_get("/v1/admin/stats", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert!(
        stats["empty"]["cache_embeddings"]
            .as_str()
            .is_some_and(|r| r.contains("embeddings provider is none")),
        "{stats}"
    );
    assert!(stats["empty"]["cache_migrations"].is_string(), "{stats}");

    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "What is the capital of France?")
        .await;
    app.say(&guest, &token, "assistant", "Paris.").await;
    let (_, stats) = app.admin_get("/v1/admin/stats", ADMIN).await;
    assert!(
        stats["empty"].get("message_cache").is_none(),
        "a table with rows has no reason: {stats}"
    );
    let (status, layers) = app
        .admin_get(&format!("/v1/admin/guests/{guest}/layers"), ADMIN)
        .await;
    assert_eq!(status, StatusCode::OK, "{layers}");
    let messages: Vec<(i64, String)> = layers["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["sequence"].as_i64().unwrap_or(0),
                m["content"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            (1, "What is the capital of France?".to_string()),
            (2, "Paris.".to_string())
        ]
    );
}

#[tokio::test]
async fn the_audit_trail_filters_by_status() {
    let app = spawn_app_with(&[("GENESIS__ADMIN__TOKEN", ADMIN)]).await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "sign me up").await;
    let (_, access) = app.signup("audit@example.com").await;
    let (status, body) = app.migrate(&guest, &access, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, done) = app
        .admin_get("/v1/admin/migrations?status=completed", ADMIN)
        .await;
    assert_eq!(
        done["migrations"].as_array().map(Vec::len),
        Some(1),
        "{done}"
    );
    assert_eq!(done["migrations"][0]["guest_id"], json!(guest));
    let (_, failed) = app
        .admin_get("/v1/admin/migrations?status=failed", ADMIN)
        .await;
    assert_eq!(failed["migrations"], json!([]));
}
