//! Usage counters: a guest's counters move into the account on migration, and
//! `GET /v1/users/me` shows every column; a user's counters carry the tier of `users.tier`.

mod common;

use std::time::Duration;

use common::spawn_app;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn a_guests_usage_moves_into_the_account_on_migration() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "one").await;
    app.say(&guest, &token, "assistant", "two").await;
    let (status, _) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::OK);
    // Some of the guest's counts reach the table (flushed every second in tests), some may be
    // pending in memory: both move.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    app.say(&guest, &token, "user", "three").await;
    let (user_id, user) = app.signup("counted@example.com").await;
    let (status, _) = app.migrate(&guest, &user, &token).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let (status, me) = app.authed(Method::GET, "/v1/users/me", &user, None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let usage = &me["usage"];
    assert_eq!(usage["messages_stored"], 3, "{usage}");
    assert!(
        usage["cache_hits"].as_i64().expect("hits")
            + usage["cache_misses"].as_i64().expect("misses")
            >= 1
    );
    assert!(usage["total_requests"].as_i64().expect("requests") >= 5);
    assert!(
        usage["last_request_at"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM usage_metrics WHERE user_id = '{guest}'"
        ))
        .await,
        0,
        "the guest's row is gone"
    );
    // One vocabulary: the account's counters carry the tier in `users.tier`.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM usage_metrics u JOIN users s ON s.tier = u.tier \
             WHERE u.user_id = '{user_id}'"
        ))
        .await,
        1
    );
}
