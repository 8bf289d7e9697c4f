//! Two instances on one PostgreSQL and one Redis, as behind a load balancer: one shared secret,
//! separate processes. A guest's requests land on either; what one instance does, the other
//! sees at once — history, sequences, migration, erasure, a new conversation — and killing one
//! mid-load loses no acknowledged write. Needs `GENESIS_TEST_DATABASE_URL` and
//! `GENESIS_TEST_REDIS_URL` (the in-process cache is one instance's by design).

mod common;

use std::time::Duration;

use common::{TestApp, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "several-instances-share-this-secret-0123456789";

async fn two_instances() -> (TestApp, TestApp) {
    assert!(
        std::env::var("GENESIS_TEST_DATABASE_URL").is_ok()
            && std::env::var("GENESIS_TEST_REDIS_URL").is_ok(),
        "several instances need PostgreSQL and Redis: set GENESIS_TEST_DATABASE_URL and \
         GENESIS_TEST_REDIS_URL"
    );
    let a = spawn_app_with(&[("GENESIS__AUTH__SECRET", SECRET)]).await;
    let b = a.sibling().await;
    (a, b)
}

fn contents(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn sequences(history: &Value) -> Vec<i64> {
    history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["sequence"].as_i64().unwrap_or(-1))
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis"]
async fn a_guest_writing_to_both_instances_reads_its_whole_history_on_either() {
    let (a, b) = two_instances().await;
    let (guest, token) = a.new_guest().await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let (app, role) = if i % 2 == 0 {
            (&a, "user")
        } else {
            (&b, "assistant")
        };
        let text = format!("message {i}");
        app.say(&guest, &token, role, &text).await;
        sent.push(text);
        // Every read on either instance, after every write, is the whole history in order.
        for reader in [&a, &b] {
            let (status, history) = reader.history(&guest, &token).await;
            assert_eq!(status, StatusCode::OK, "{history}");
            assert_eq!(contents(&history), sent);
        }
    }

    // 2 × 20 writes at once, half through each instance: gapless, each once.
    let writes = (0..40).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let (guest, token) = (guest.clone(), token.clone());
        async move {
            app.say(&guest, &token, "user", &format!("burst {i}")).await;
        }
    });
    common::join_all(writes).await;
    for reader in [&a, &b] {
        let (_, history) = reader.history(&guest, &token).await;
        assert_eq!(sequences(&history), (1..=60).collect::<Vec<i64>>());
        let mut burst: Vec<String> = contents(&history)[20..].to_vec();
        burst.sort();
        let mut want: Vec<String> = (0..40).map(|i| format!("burst {i}")).collect();
        want.sort();
        assert_eq!(burst, want);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis"]
async fn what_one_instance_changes_the_other_knows_at_once() {
    let (a, b) = two_instances().await;

    // A new conversation started on A is the default on B.
    let (guest, token) = a.new_guest().await;
    b.say(&guest, &token, "user", "first thread").await;
    let resp = a
        .client
        .post(a.url(&format!("/v1/guest/chat/{guest}/conversations")))
        .header("X-Guest-Token", &token)
        .send()
        .await
        .expect("new conversation");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let second: Value = resp.json().await.expect("json");
    let second = second["conversation_id"].as_str().expect("id").to_string();
    let stored = b.say(&guest, &token, "user", "second thread").await;
    assert_eq!(
        stored["conversation_id"].as_str(),
        Some(second.as_str()),
        "B appends to the conversation A started: {stored}"
    );
    let (_, history) = b.history(&guest, &token).await;
    assert_eq!(contents(&history), vec!["second thread"]);

    // Migrated on A: B refuses guest writes and serves the account.
    let (moving, moving_token) = a.new_guest().await;
    b.say(&moving, &moving_token, "user", "before sign-up")
        .await;
    b.history(&moving, &moving_token).await;
    let (_, access) = a.signup("two@example.com").await;
    let (status, report) = a.migrate(&moving, &access, &moving_token).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let (status, body) = b
        .post_message(
            &moving,
            Some(&moving_token),
            json!({"role": "user", "content": "after"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "guest_migrated");
    let conversation = report["conversation_ids"][0]
        .as_str()
        .expect("conversation");
    b.add_message(
        &access,
        conversation,
        json!({"role": "user", "content": "after sign-up, on B"}),
    )
    .await;
    let path = format!("/v1/conversations/{conversation}/messages");
    let (status, list) = b.authed(Method::GET, &path, &access, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let texts: Vec<&str> = list["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(texts, vec!["before sign-up", "after sign-up, on B"]);

    // Erased on A: B, which has just served the guest, never answers from a stale copy.
    let (erased, erased_token) = a.new_guest().await;
    a.say(&erased, &erased_token, "user", "forget me").await;
    let (status, _) = b.history(&erased, &erased_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        a.erase(&erased, Some(&erased_token)).await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = b.history_page(&erased, &erased_token, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "guest_not_found");
    let (status, _) = b
        .post_message(
            &erased,
            Some(&erased_token),
            json!({"role": "user", "content": "still here?"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Redis"]
async fn killing_one_instance_mid_load_loses_no_acknowledged_write() {
    let (mut a, b) = two_instances().await;
    let mut guests = Vec::new();
    for _ in 0..6 {
        guests.push(b.new_guest().await);
    }
    let (a_url, b_url) = (a.url(""), b.url(""));
    let writers: Vec<_> = guests
        .iter()
        .enumerate()
        .map(|(n, (guest, token))| {
            let (a_url, b_url, client) = (a_url.clone(), b_url.clone(), b.client.clone());
            let (guest, token) = (guest.clone(), token.clone());
            async move {
                let mut acknowledged = Vec::new();
                for i in 0..60 {
                    let base = if (i + n) % 2 == 0 { &a_url } else { &b_url };
                    let text = format!("{guest} {i}");
                    let sent = client
                        .post(format!("{base}/v1/guest/chat/{guest}"))
                        .header("X-Guest-Token", &token)
                        .json(&json!({"role": "user", "content": text}))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status() == StatusCode::CREATED) {
                        acknowledged.push(text);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (guest, token, acknowledged)
            }
        })
        .collect();
    let load = common::join_all(writers);
    let kill = async {
        // Well before the load ends (each writer sleeps 60 × 5 ms alone).
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.kill().await;
    };
    let (results, ()) = tokio::join!(load, kill);
    let mut total = 0;
    for (guest, token, acknowledged) in results {
        let (status, history) = b.history(&guest, &token).await;
        assert_eq!(status, StatusCode::OK, "{history}");
        let present = contents(&history);
        for text in &acknowledged {
            assert!(present.contains(text), "acknowledged {text:?} is missing");
        }
        let n = i64::try_from(present.len()).unwrap_or(0);
        assert_eq!(sequences(&history), (1..=n).collect::<Vec<i64>>());
        // B wrote its half at least; A's half until it died.
        assert!(acknowledged.len() >= 30, "{}", acknowledged.len());
        total += acknowledged.len();
    }
    assert!(
        total < 360,
        "A was killed before the load ended ({total} acknowledged)"
    );
}
