//! Redis failures, with a real Redis (`GENESIS_TEST_REDIS_URL`) behind a TCP proxy the test
//! controls. Ignored unless run with `--include-ignored` and that variable set (`.ci/run` does).

mod common;

use common::{proxy::Proxy, socket_of, spawn_app_with, wait_for_l1};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn redis_url() -> String {
    std::env::var("GENESIS_TEST_REDIS_URL")
        .expect("GENESIS_TEST_REDIS_URL must name a Redis server for the failure tests")
}

fn contents(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_string())
        .collect()
}

#[tokio::test]
#[ignore = "needs Redis: set GENESIS_TEST_REDIS_URL and pass --include-ignored"]
async fn redis_stopping_mid_run_loses_nothing_and_l1_resumes_when_it_returns() {
    let proxy = Proxy::start(socket_of(&redis_url())).await;
    let via_proxy = format!("redis://127.0.0.1:{}", proxy.port);
    let app = spawn_app_with(&[
        ("REDIS_URL", via_proxy.as_str()),
        ("REDIS_USE_LOCAL", "false"),
    ])
    .await;
    assert!(
        wait_for_l1(&app, "up").await,
        "Redis never came up; log:\n{}",
        app.log()
    );
    let (guest, token) = app.new_guest().await;
    for text in ["one", "two", "three"] {
        app.say(&guest, &token, "user", text).await;
    }
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["source"], "l1");

    proxy.cut();
    // Writes keep succeeding: SQL is the truth.
    for text in ["four", "five", "six"] {
        let (status, body) = app
            .post_message(&guest, Some(&token), json!({"role":"user","content":text}))
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "write during the outage: {body}"
        );
    }
    assert!(
        wait_for_l1(&app, "down").await,
        "readyz never showed l1 down"
    );
    let (status, history) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["source"], "l2", "reads fall back to SQL");
    assert_eq!(
        contents(&history),
        ["one", "two", "three", "four", "five", "six"]
    );
    // A new guest can start and chat with Redis down.
    let (other, other_token) = app.new_guest().await;
    app.say(&other, &other_token, "user", "hello while down")
        .await;

    proxy.restore();
    assert!(
        wait_for_l1(&app, "up").await,
        "L1 not used again after Redis returned"
    );
    // The key that missed writes was dropped: no stale three-message history is served.
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(
        contents(&history),
        ["one", "two", "three", "four", "five", "six"]
    );
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(
        history["source"], "l1",
        "L1 is used again without a restart"
    );
    assert_eq!(
        contents(&history),
        ["one", "two", "three", "four", "five", "six"]
    );
    app.say(&guest, &token, "user", "seven").await;
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["source"], "l1");
    assert_eq!(contents(&history).len(), 7);
}

#[tokio::test]
#[ignore = "needs Redis: set GENESIS_TEST_REDIS_URL and pass --include-ignored"]
async fn a_flushed_redis_is_rebuilt_from_sql_and_lists_show_in_redis_cli_form() {
    let base = redis_url();
    let base = base.trim_end_matches('/');
    // Database 9 is this test's alone, so FLUSHDB touches no other test.
    let base = match base.rsplit_once('/') {
        Some((head, db)) if db.parse::<u32>().is_ok() && !head.ends_with('/') => head.to_string(),
        _ => base.to_string(),
    };
    let url = format!("{base}/9");
    let app = spawn_app_with(&[
        ("REDIS_URL", url.as_str()),
        ("REDIS_USE_LOCAL", "false"),
        ("GENESIS__REDIS__KEY_PREFIX", ""),
    ])
    .await;
    assert!(wait_for_l1(&app, "up").await);
    let (guest, token) = app.new_guest().await;
    let said = [
        "hi",
        "hello, how can I help?",
        "tell me a joke",
        "why did the…",
    ];
    for (i, text) in said.iter().enumerate() {
        app.say(
            &guest,
            &token,
            if i % 2 == 0 { "user" } else { "assistant" },
            text,
        )
        .await;
    }
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["source"], "l1");

    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let key = format!("guest:{guest}");
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("lrange");
    assert_eq!(items.len(), 4);
    let first: Value = serde_json::from_str(&items[0]).expect("json element");
    assert_eq!(first["role"], "user");
    assert_eq!(first["content"], "hi");
    assert!(first["timestamp"].is_string());
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!((86_000..=86_400).contains(&ttl), "TTL {ttl}");

    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut conn)
        .await
        .expect("flush");
    let (status, history) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["source"], "l2");
    assert_eq!(contents(&history), said);
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["source"], "l1", "refilled from SQL");
    assert_eq!(contents(&history), said);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!(ttl > 0, "a refilled key has a TTL");

    // A write after the flush, before any read, leaves a partial list: reads still see all.
    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut conn)
        .await
        .expect("flush");
    app.say(&guest, &token, "user", "after the flush").await;
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(contents(&history).len(), 5);
    assert_eq!(history["source"], "l2");
}
