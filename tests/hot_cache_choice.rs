//! Which hot cache serves, said at start-up: Upstash's REST API (through a stand-in for Upstash
//! in front of the real Redis) serving a guest chat end to end, and two hot caches named without
//! a choice stopping start-up with a message naming both.

mod common;

use common::{command, spawn_app_with, upstash_shim::UpstashShim};
use reqwest::StatusCode;

#[tokio::test]
#[ignore = "needs Redis (GENESIS_TEST_REDIS_URL) behind the Upstash stand-in"]
async fn a_guest_chats_through_upstash_rest_and_start_up_says_so() {
    let redis = std::env::var("GENESIS_TEST_REDIS_URL").expect("GENESIS_TEST_REDIS_URL");
    let shim = UpstashShim::start(&redis).await;
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(&[
        ("REDIS_URL", ""),
        ("REDIS_USE_LOCAL", ""),
        ("UPSTASH_REDIS_URL", &shim.url),
        ("UPSTASH_REDIS_TOKEN", &shim.token),
        ("GENESIS__REDIS__KEY_PREFIX", &prefix),
    ])
    .await;
    let log = app.log();
    assert!(
        log.contains("hot cache: Upstash over its REST API") && log.contains("UPSTASH_REDIS_URL"),
        "start-up names the hot cache and the variable that chose it:\n{log}"
    );
    assert!(!log.contains(&shim.token), "the token is never logged");
    let (guest, token) = app.new_guest().await;
    for (role, text) in [("user", "Hello over HTTPS"), ("assistant", "Hi!")] {
        app.say(&guest, &token, role, text).await;
    }
    let (status, history) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(
        history["source"], "l1",
        "served by the hot cache: {history}"
    );
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(texts, vec!["Hello over HTTPS", "Hi!"]);
    // The list is in Redis itself, as the seeds show it.
    let client = redis::Client::open(redis.as_str()).expect("redis");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let stored: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}guest:{guest}"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("lrange");
    assert_eq!(stored.len(), 2, "{stored:?}");
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["l1"], "up", "{ready}");
    assert_eq!(ready["l1_backend"], "redis", "{ready}");
}

#[tokio::test]
async fn two_hot_caches_named_without_a_choice_stop_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let out = command()
        .args(["serve"])
        .env("GENESIS__DATA_DIR", dir.path())
        .env("GENESIS__SERVER__BIND", "127.0.0.1:0")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("UPSTASH_REDIS_URL", "https://eu1-example.upstash.io")
        .env("UPSTASH_REDIS_TOKEN", "not-printed-token")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no listen line");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REDIS_URL") && err.contains("UPSTASH_REDIS_URL"),
        "names both: {err}"
    );
    assert!(
        err.contains("GENESIS__L1__BACKEND"),
        "says how to choose: {err}"
    );
    assert!(!err.contains("not-printed-token"));
}

#[tokio::test]
#[ignore = "needs a Redis Cluster (GENESIS_TEST_REDIS_CLUSTER, started by .ci/redis_cluster.sh)"]
async fn a_guest_chats_on_a_redis_cluster() {
    let nodes = std::env::var("GENESIS_TEST_REDIS_CLUSTER").expect("GENESIS_TEST_REDIS_CLUSTER");
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(&[
        ("REDIS_URL", ""),
        ("REDIS_USE_LOCAL", ""),
        ("GENESIS__REDIS__CLUSTER_NODES", &nodes),
        ("GENESIS__REDIS__KEY_PREFIX", &prefix),
    ])
    .await;
    let log = app.log();
    assert!(
        log.contains("hot cache: a Redis Cluster") && log.contains("CLUSTER_NODES"),
        "{log}"
    );
    // Guests land on different slots, so on different primaries; each reads back from L1.
    for n in 0..6 {
        let (guest, token) = app.new_guest().await;
        app.say(&guest, &token, "user", &format!("guest {n}")).await;
        app.say(&guest, &token, "assistant", "ok").await;
        let (status, history) = app.history(&guest, &token).await;
        assert_eq!(status, StatusCode::OK, "{history}");
        assert_eq!(history["source"], "l1", "{history}");
        assert_eq!(history["messages"].as_array().map(Vec::len), Some(2));
        // An erase leaves nothing to serve.
        assert_eq!(
            app.erase(&guest, Some(&token)).await,
            StatusCode::NO_CONTENT
        );
        let (status, _) = app.history_page(&guest, &token, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
