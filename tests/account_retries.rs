//! Retries of account appends sent at once (a client that timed out and sent again, several
//! times) are recognised whether they land in one group-commit batch or in several: one copy is
//! stored (201), every other gets it back (200, `duplicate`), a key reused with other words is
//! refused (409), and `message_index` stays gapless.

mod common;

use common::spawn_app;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn simultaneous_account_appends_and_their_retries_store_each_message_once() {
    let app = spawn_app().await;
    let (_, access) = app.signup("retries@example.com").await;
    let mut conversations = Vec::new();
    for c in 0..4 {
        conversations.push(
            app.new_conversation(&access, json!({"title": format!("chat {c}")}))
                .await,
        );
    }
    let mut requests = Vec::new();
    for (c, id) in conversations.iter().enumerate() {
        for i in 0..12 {
            let (app, access, id) = (&app, access.clone(), id.clone());
            requests.push(async move {
                let mut req = app
                    .client
                    .post(app.url(&format!("/v1/conversations/{id}/messages")))
                    .bearer_auth(&access);
                // Per conversation: 4 copies of one timestamped message, 4 copies of one keyed
                // message, 2 uses of another key with different words, 2 plain messages.
                req = match i {
                    0..=3 => req.json(&json!({"role":"user","content":format!("hello in {c}"),
                        "timestamp":"2026-01-02T03:04:05.123456Z"})),
                    4..=7 => req
                        .header("Idempotency-Key", "same")
                        .json(&json!({"role":"assistant","content":"a reply"})),
                    8 | 9 => req
                        .header("Idempotency-Key", "clash")
                        .json(&json!({"role":"assistant","content":format!("words {i}")})),
                    _ => req.json(&json!({"role":"user","content":format!("note {i}")})),
                };
                let resp = req.send().await.expect("send");
                let status = resp.status();
                let body = resp.json::<Value>().await.unwrap_or(Value::Null);
                (c, i, status, body)
            });
        }
    }
    let answers = common::join_all(requests).await;
    for (c, id) in conversations.iter().enumerate() {
        let mine: Vec<_> = answers.iter().filter(|a| a.0 == c).collect();
        for copies in [0..=3, 4..=7] {
            let group: Vec<_> = mine.iter().filter(|a| copies.contains(&a.1)).collect();
            let created = group.iter().filter(|a| a.2 == StatusCode::CREATED).count();
            assert_eq!(created, 1, "one copy stores, the others are retries");
            for a in &group {
                assert!(
                    a.2 == StatusCode::CREATED || a.2 == StatusCode::OK,
                    "{}",
                    a.3
                );
                assert_eq!(a.3["duplicate"], a.2 == StatusCode::OK, "{}", a.3);
                assert_eq!(a.3["id"], group[0].3["id"], "same message");
            }
        }
        let clash: Vec<_> = mine.iter().filter(|a| a.1 == 8 || a.1 == 9).collect();
        let mut statuses: Vec<u16> = clash.iter().map(|a| a.2.as_u16()).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{clash:?}");
        for a in mine.iter().filter(|a| a.1 >= 10) {
            assert_eq!(a.2, StatusCode::CREATED, "{}", a.3);
        }

        let page = app.messages(&access, id).await;
        let messages = page["messages"].as_array().expect("messages");
        let indexes: Vec<i64> = messages
            .iter()
            .map(|m| m["message_index"].as_i64().expect("index"))
            .collect();
        assert_eq!(indexes, (1..=5).collect::<Vec<i64>>(), "{page}");
        let hello = format!("hello in {c}");
        assert_eq!(
            messages
                .iter()
                .filter(|m| m["content"] == hello.as_str())
                .count(),
            1
        );
        assert_eq!(
            messages
                .iter()
                .filter(|m| m["content"] == "a reply")
                .count(),
            1
        );
    }
}
