//! The SQLite group-commit writer is supervised: a write that panics answers its caller 500 and
//! is rolled back, and the writer goes on serving every other write (debug-build failpoint
//! `writer_job_panic`). PostgreSQL has no writer (each write is its own transaction), so this
//! runs on SQLite only.

mod common;

use common::{assert_error, join_all, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
    if std::env::var("GENESIS_TEST_DATABASE_URL").is_ok() {
        return;
    }
    let app = spawn_app_with(&[("GENESIS_TEST_FAILPOINTS", "writer_job_panic:1")]).await;
    // New sessions (single writes) and first writes that claim new ids (merged appends) in one
    // burst: the writer batches them together, and the first single write panics.
    let sessions = (0..12).map(|_| async {
        let resp = app
            .request(Method::POST, "/v1/guest/sessions", None, None)
            .await;
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    });
    let claims = (0..12).map(|i| {
        let app = &app;
        async move {
            let body = json!({"role":"user","content":format!("hello {i}")});
            app.post_message(&format!("writer-guest-{i}"), None, body)
                .await
        }
    });
    let (sessions, claims) = tokio::join!(join_all(sessions), join_all(claims));
    assert!(
        claims.iter().all(|(s, _)| *s == StatusCode::CREATED),
        "every claim is stored: {claims:?}"
    );
    let failed: Vec<&Value> = sessions
        .iter()
        .filter(|(s, _)| *s != StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "exactly the panicking write fails: {sessions:?}"
    );
    let status = sessions
        .iter()
        .find(|(s, _)| *s != StatusCode::CREATED)
        .map(|(s, _)| *s);
    assert_eq!(status, Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_error(failed[0], "internal_error");
    // Nothing of the failed write was kept; everything else was.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM conversation_cache").await,
        11 + 12
    );

    // The writer goes on: later writes succeed and readiness reports it up.
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "after the panic").await;
    let resp = app.request(Method::GET, "/readyz", None, None).await;
    let ready: Value = resp.json().await.expect("json");
    assert_eq!(ready["writer"], "up");
    assert_eq!(ready["writer_panics"], 1);
}

/// A write that fails on its own (here a migration made to fail after copying its messages) is
/// rolled back alone: the writes batched with it are stored, and the database breaker stays
/// closed (only "database unavailable" opens it), so the next write goes straight through.
#[tokio::test]
async fn a_failing_write_leaves_its_batch_and_the_breaker_alone() {
    let app = spawn_app_with(&[("GENESIS_TEST_FAILPOINTS", "migrate_after_messages:1")]).await;
    let (guest, guest_token) = app.new_guest().await;
    for text in ["a", "b", "c"] {
        app.say(&guest, &guest_token, "user", text).await;
    }
    let (_, user) = app.signup("batch@example.com").await;
    let migrate = app.migrate(&guest, &user, &guest_token);
    let claims = join_all((0..12).map(|i| {
        let app = &app;
        async move {
            let body = json!({"role":"user","content":format!("beside {i}")});
            app.post_message(&format!("batch-guest-{i}"), None, body)
                .await
        }
    }));
    let ((status, body), claims) = tokio::join!(migrate, claims);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_error(&body, "internal_error");
    assert!(
        claims.iter().all(|(s, _)| *s == StatusCode::CREATED),
        "the writes beside the failed one are stored: {claims:?}"
    );
    // Not a database outage: the very next write is not refused by the breaker.
    let (s, body) = app
        .post_message(
            "after-the-failure",
            None,
            json!({"role":"user","content":"still writing"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let resp = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The failed migration left nothing; a retry succeeds.
    let (status, body) = app.migrate(&guest, &user, &guest_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["messages_migrated"], 3);
}
