//! Retention: expired unmigrated guests are deleted from every layer by the background job and
//! by `genesis cleanup`; migrated and recently used guests stay; `--dry-run` changes nothing.

mod common;

use std::time::Duration;

use common::{TestApp, assert_error, spawn_app_with};
use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use serde_json::Value;

/// Rows of every layer that belong to `guest`: (conversation_cache, message_cache, ledger, usage).
async fn rows_of(app: &TestApp, guest: &str) -> (i64, i64, i64, i64) {
    let conversation = format!("SELECT id FROM conversation_cache WHERE guest_id = '{guest}'");
    let messages =
        format!("SELECT id FROM message_cache WHERE conversation_id IN ({conversation})");
    (
        app.count(&format!(
            "SELECT COUNT(*) FROM conversation_cache WHERE guest_id = '{guest}'"
        ))
        .await,
        app.count(&format!(
            "SELECT COUNT(*) FROM message_cache WHERE conversation_id IN ({conversation})"
        ))
        .await,
        app.count(&format!(
            "SELECT COUNT(*) FROM cache_content_mapping WHERE cache_id IN ({messages})"
        ))
        .await,
        app.count(&format!(
            "SELECT COUNT(*) FROM usage_metrics WHERE user_id = '{guest}'"
        ))
        .await,
    )
}

#[tokio::test]
async fn expired_guests_leave_every_layer_and_the_rest_stay() {
    let app = spawn_app_with(&[
        ("GENESIS__GUEST__RETENTION_SECS", "2"),
        ("GENESIS__GUEST__SESSION_TTL_SECS", "2"),
        ("GENESIS__GUEST__CLEANUP_INTERVAL_SECS", "1"),
    ])
    .await;
    let (expired, expired_token) = app.new_guest().await;
    app.say(&expired, &expired_token, "user", "soon gone").await;
    app.say(&expired, &expired_token, "assistant", "indeed")
        .await;
    let (silent, _) = app.new_guest().await;
    let (migrated, migrated_token) = app.new_guest().await;
    app.say(&migrated, &migrated_token, "user", "keep me").await;
    let (_, user) = app.signup("keeper@example.com").await;
    let (status, _) = app.migrate(&migrated, &user, &migrated_token).await;
    assert_eq!(status, StatusCode::OK);
    let (fresh, fresh_token) = app.new_guest().await;
    // Let the usage counters of the guests reach their table before they expire.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rows_of(&app, &expired).await, (1, 2, 2, 1));

    // The fresh guest keeps writing; the others are left alone until cleanup runs past expiry.
    let mut gone = false;
    for i in 0..40 {
        app.say(&fresh, &fresh_token, "user", &format!("still here {i}"))
            .await;
        if rows_of(&app, &expired).await == (0, 0, 0, 0) && rows_of(&app, &silent).await.0 == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        gone,
        "the expired guest and the unused session were not deleted"
    );
    let (status, body) = app.history(&expired, &expired_token).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "not even in the hot cache: {body}"
    );
    assert_error(&body, "guest_not_found");

    // Migrated data never expires; the guest in use is whole.
    assert_eq!(rows_of(&app, &migrated).await.0, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE content = 'keep me'")
            .await,
        1
    );
    let (status, history) = app.history(&fresh, &fresh_token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!history["messages"].as_array().expect("list").is_empty());
}

#[tokio::test]
async fn a_read_counts_as_access() {
    let app = spawn_app_with(&[
        ("GENESIS__GUEST__RETENTION_SECS", "3"),
        ("GENESIS__GUEST__CLEANUP_INTERVAL_SECS", "1"),
    ])
    .await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "read me later").await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (status, _) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::OK);
    // Past the write's expiry, inside the read's.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        rows_of(&app, &guest).await.0,
        1,
        "the read moved the expiry"
    );
}

#[tokio::test]
async fn cleanup_from_the_command_line_and_its_dry_run() {
    let app = spawn_app_with(&[("GENESIS__GUEST__RETENTION_SECS", "6")]).await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "one").await;
    app.say(&guest, &token, "user", "two").await;
    let (kept, kept_token) = app.new_guest().await;
    tokio::time::sleep(Duration::from_millis(6500)).await;
    app.say(&kept, &kept_token, "user", "fresh").await;

    // Vectors: one only the expiring guest uses, one a surviving message uses too.
    let db = app.db().await;
    for content in ["one", "fresh"] {
        entity::cache_embeddings::Entity::insert(entity::cache_embeddings::ActiveModel {
            id: sea_orm::Set(uuid::Uuid::now_v7()),
            content_hash: sea_orm::Set(genesis::service::digest::md5_hex(content)),
            model: sea_orm::Set("test".into()),
            dims: sea_orm::Set(1),
            vector: sea_orm::Set(vec![0, 0, 128, 63]),
            created_at: sea_orm::Set(chrono::Utc::now()),
        })
        .exec_without_returning(&db)
        .await
        .expect("insert a vector");
    }

    let out = app.cli(&["cleanup", "--dry-run"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("would delete 1 expired guests with 2 messages"),
        "{stdout}"
    );
    assert_eq!(
        rows_of(&app, &guest).await.0,
        1,
        "a dry run changes nothing"
    );

    let out = app.cli(&["cleanup"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("deleted 1 expired guests with 2 messages"),
        "{stdout}"
    );
    assert_eq!(rows_of(&app, &guest).await, (0, 0, 0, 0));
    assert_eq!(rows_of(&app, &kept).await.0, 1);
    let rows = |table: &str, content: &str| {
        format!(
            "SELECT COUNT(*) FROM {table} WHERE content_hash = '{}'",
            genesis::service::digest::md5_hex(content)
        )
    };
    // Each content has the test's vector and the lexical one the pipeline made.
    let vectors = |content: &str| rows("cache_embeddings", content);
    assert_eq!(app.count(&vectors("one")).await, 0, "unused vectors go");
    assert_eq!(app.count(&vectors("fresh")).await, 2, "used vectors stay");
    let text = |content: &str| rows("search_text", content);
    assert_eq!(app.count(&text("one")).await, 0, "unused search text goes");
    assert_eq!(app.count(&text("fresh")).await, 1, "used search text stays");

    let resp = app.request(Method::GET, "/readyz", None, None).await;
    let ready: Value = resp.json().await.expect("json");
    assert_eq!(ready["status"], "ready");
}
