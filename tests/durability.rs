//! Crash and shutdown behaviour: every acknowledged message survives SIGKILL; SIGTERM drains.

mod common;

use std::time::Duration;

use common::spawn_app;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_server_killed_with_sigkill_keeps_every_acknowledged_message_and_the_token_works() {
    let mut app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let (status, claimed) = app
        .post_message(
            "client-chosen-7",
            None,
            json!({"role":"user","content":"claim"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let claimed_token = claimed["guest_token"].as_str().expect("token").to_string();

    // Writes in flight while the process is killed: every 2xx must survive.
    let mut acked = Vec::new();
    let writes = (0..30).map(|i| {
        let app = &app;
        let guest = guest.clone();
        let token = token.clone();
        async move {
            app.post_message(
                &guest,
                Some(&token),
                json!({"role":"user","content":format!("m{i}")}),
            )
            .await
        }
    });
    for (status, body) in common::join_all(writes).await {
        if status == StatusCode::CREATED {
            acked.push(body["message_id"].as_str().expect("id").to_string());
        }
    }
    assert_eq!(acked.len(), 30);
    app.kill().await;
    app.start().await;

    let (status, history) = app.history(&guest, &token).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the token still works after restart"
    );
    let stored: Vec<String> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged message {id} lost");
    }
    let seqs: Vec<i64> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["sequence"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<i64>>());

    let (status, _) = app
        .post_message(
            "client-chosen-7",
            Some(&claimed_token),
            json!({"role":"user","content":"still mine"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post_message(
            "client-chosen-7",
            None,
            json!({"role":"user","content":"not yours"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sigkill_during_a_write_burst_loses_no_acknowledged_write() {
    let mut app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let base = app.base.clone();
    let client = app.client.clone();
    let burst = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..2000 {
            let resp = client
                .post(format!("{base}/v1/guest/chat/{guest}"))
                .header("X-Guest-Token", &token)
                .json(&json!({"role":"user","content":format!("burst {i}")}))
                .send()
                .await;
            match resp {
                Ok(r) if r.status() == StatusCode::CREATED => {
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    if let Some(id) = body["message_id"].as_str() {
                        acked.push(id.to_string());
                    }
                }
                _ => break,
            }
        }
        (guest, token, acked)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    app.kill().await;
    let (guest, token, acked) = burst.await.expect("burst task");
    assert!(
        !acked.is_empty(),
        "some writes were acknowledged before the kill"
    );
    app.start().await;
    let (_, history) = app.history(&guest, &token).await;
    let messages = history["messages"].as_array().expect("messages");
    let stored: std::collections::HashSet<&str> = messages
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    for id in &acked {
        assert!(
            stored.contains(id.as_str()),
            "acknowledged message {id} lost"
        );
    }
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m["sequence"].as_i64(),
            Some(i as i64 + 1),
            "gapless after a crash"
        );
    }
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_and_flushes_usage_counters() {
    let mut app =
        common::spawn_app_with(&[("GENESIS__METRICS__FLUSH_INTERVAL_SECS", "3600")]).await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "count me").await;
    let status = app.terminate().await;
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        app.log()
    );
    assert_eq!(
        app.count(&format!(
            "SELECT CAST(COALESCE(SUM(messages_stored), 0) AS BIGINT) FROM usage_metrics WHERE user_id = '{guest}'"
        ))
        .await,
        1,
        "the final flush on shutdown wrote the counters"
    );
}
