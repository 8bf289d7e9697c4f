//! Looking inside: `GET /v1/admin/stats` (row counts, hit ratio, uptime) and
//! `GET /v1/admin/guests/{guest_id}/layers` (where one guest's data is).

mod common;

use common::{assert_error, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::Value;

const ADMIN: &str = "admin-token-for-the-inspection-tests";

#[tokio::test]
async fn stats_count_every_table() {
    let app = spawn_app_with(&[("GENESIS__ADMIN__TOKEN", ADMIN)]).await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "Hello").await;
    app.say(&guest, &token, "assistant", "Hi!").await;
    let (status, _) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, stats) = app.admin_get("/v1/admin/stats", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let tables = stats["tables"].as_object().expect("tables");
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
        assert!(tables.contains_key(table), "no count for {table}");
    }
    assert_eq!(tables["message_cache"], 2);
    assert_eq!(tables["conversation_cache"], 1);
    let ratio = stats["l1"]["hit_ratio"].as_f64().expect("ratio");
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    assert!(stats["uptime_secs"].as_u64().is_some());
    assert!(stats["l1"]["backend"] == "memory" || stats["l1"]["backend"] == "redis");

    let (status, body) = app.admin_get("/v1/admin/stats", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "admin_token_invalid");
    let off = spawn_app().await;
    let (status, _) = off.admin_get("/v1/admin/stats", ADMIN).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the admin API is off without a token"
    );
}

#[tokio::test]
async fn the_layer_inspector_follows_a_guest_through_migration() {
    let app = spawn_app_with(&[("GENESIS__ADMIN__TOKEN", ADMIN)]).await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "where am I?").await;
    app.say(&guest, &token, "assistant", "in every layer").await;
    let path = format!("/v1/admin/guests/{guest}/layers");
    let (status, layers) = app.admin_get(&path, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{layers}");
    assert_eq!(layers["guest_id"], guest.as_str());
    assert_eq!(layers["l1"]["present"], true);
    assert_eq!(layers["l1"]["messages"], 2);
    assert_eq!(layers["l2"]["messages"], 2);
    assert!(
        layers["l2"]["expires_at"]
            .as_str()
            .expect("expiry")
            .ends_with('Z')
    );
    assert_eq!(layers["mapping"]["rows"], 2);
    assert_eq!(layers["mapping"]["synced"], 0);
    assert_eq!(layers["migration"], Value::Null);
    // The embedding pipeline gives both messages their vector in the background.
    let mut embedded = Value::Null;
    for _ in 0..100 {
        embedded = app.admin_get(&path, ADMIN).await.1["embeddings"].clone();
        if embedded == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(embedded, 2, "one vector per distinct message content");

    let (_, user) = app.signup("inspected@example.com").await;
    let (status, _) = app.migrate(&guest, &user, &token).await;
    assert_eq!(status, StatusCode::OK);
    let (_, layers) = app.admin_get(&path, ADMIN).await;
    assert_eq!(
        layers["l1"]["present"], false,
        "migration drops the hot key"
    );
    assert_eq!(layers["mapping"]["synced"], 2);
    assert_eq!(layers["migration"]["status"], "completed");
    assert_eq!(layers["migration"]["messages_migrated"], 2);

    let (status, body) = app
        .admin_get("/v1/admin/guests/nobody-here/layers", ADMIN)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "guest_not_found");
    let (status, body) = app
        .admin_get("/v1/admin/guests/bad%20id/layers", ADMIN)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid_guest_id");
}
