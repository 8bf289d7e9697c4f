//! Erase and migration racing a burst of appends (and reads that refill the hot cache): an
//! erased or migrated conversation's messages are never served from the hot cache afterwards,
//! and every racing append gets a clean answer (stored, or 404/409 — never 500).

mod common;

use common::{TestApp, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ROUNDS: usize = 40;
const BURST: usize = 16;

/// Fires `BURST` appends (each followed by a read that may refill the hot cache) at `guest`,
/// with `racer` started in the middle of them; returns every append's status.
async fn burst_with<F, Fut>(
    app: &TestApp,
    guest: &str,
    token: &str,
    round: usize,
    racer: F,
) -> Vec<StatusCode>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let url = app.url(&format!("/v1/guest/chat/{guest}"));
    let append = |i: usize| {
        let (client, url, token) = (app.client.clone(), url.clone(), token.to_string());
        async move {
            let write = client
                .post(&url)
                .header("X-Guest-Token", &token)
                .json(&json!({"role": "user", "content": format!("round {round} message {i}")}))
                .send()
                .await
                .expect("append")
                .status();
            let _ = client
                .get(&url)
                .header("X-Guest-Token", &token)
                .send()
                .await;
            write
        }
    };
    let before = futures_util::future::join_all((0..BURST / 2).map(append));
    let after = futures_util::future::join_all((BURST / 2..BURST).map(append));
    let (mut statuses, (), rest) = tokio::join!(before, racer(), after);
    statuses.extend(rest);
    statuses
}

/// Asserts every message `history` shows is stored now, in the guest's current conversation.
async fn all_stored(app: &TestApp, guest: &str, history: &Value, round: usize) {
    let contents: Vec<String> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| format!("'{}'", m["content"].as_str().expect("content")))
        .collect();
    if contents.is_empty() {
        return;
    }
    let stored = app
        .count(&format!(
            "SELECT COUNT(*) FROM message_cache m JOIN conversation_cache c \
             ON c.id = m.conversation_id WHERE c.guest_id = '{guest}' AND m.content IN ({})",
            contents.join(", ")
        ))
        .await;
    assert_eq!(
        stored,
        contents.len() as i64,
        "round {round}: messages read back ({}) that are not stored: {history}",
        history["source"]
    );
}

#[tokio::test]
async fn an_erased_conversation_is_never_served_again() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__SIGNUPS_PER_IP_PER_HOUR", "0")]).await;
    for round in 0..ROUNDS {
        // A new guest: its first messages race the erase, in the same group commit.
        let (guest, token) = app.new_guest().await;
        let path = format!("/v1/guest/chat/{guest}");
        let statuses = burst_with(&app, &guest, &token, round, || async {
            let resp = app.request(Method::DELETE, &path, Some(&token), None).await;
            assert!(
                [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND].contains(&resp.status()),
                "{}",
                resp.status()
            );
        })
        .await;
        for status in &statuses {
            assert!(
                [
                    StatusCode::CREATED,
                    StatusCode::NOT_FOUND,
                    StatusCode::CONFLICT
                ]
                .contains(status),
                "round {round}: a racing append answered {status}; log:\n{}",
                app.log()
            );
        }
        // Appends after the erase may have started a new conversation (the token is still
        // valid); nothing erased may be in any answer, however often it is read.
        for _ in 0..3 {
            let (status, history) = app.history(&guest, &token).await;
            match status {
                StatusCode::OK => all_stored(&app, &guest, &history, round).await,
                _ => assert_eq!(status, StatusCode::NOT_FOUND, "{history}"),
            }
        }
    }
}

#[tokio::test]
async fn a_migrated_conversation_is_never_served_from_the_hot_cache() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__SIGNUPS_PER_IP_PER_HOUR", "0")]).await;
    for round in 0..ROUNDS {
        let (guest, token) = app.new_guest().await;
        app.say(&guest, &token, "user", "before the move").await;
        app.history(&guest, &token).await;
        let (_, user) = app.signup(&format!("mover{round}@example.com")).await;
        let statuses = burst_with(&app, &guest, &token, round, || async {
            let (status, body) = app.migrate(&guest, &user, &token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        })
        .await;
        for status in &statuses {
            assert!(
                [StatusCode::CREATED, StatusCode::CONFLICT].contains(status),
                "round {round}: a racing append answered {status}; log:\n{}",
                app.log()
            );
        }
        for _ in 0..3 {
            let (_, history) = app.history(&guest, &token).await;
            assert_ne!(
                history["source"], "l1",
                "round {round}: migrated messages served from L1: {history}"
            );
        }
    }
}
