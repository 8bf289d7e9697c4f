//! The hot-cache contract: the same cases run against the in-process cache, Redis, and Redis over
//! Upstash's REST API (a stand-in for Upstash in front of the same Redis, `common/upstash_shim`),
//! and a Redis Cluster of three primaries, and all must behave the same. Redis and the REST
//! transport run when `GENESIS_TEST_REDIS_URL` is set (CI's PostgreSQL + Redis run), the cluster
//! when `GENESIS_TEST_REDIS_CLUSTER` names its nodes; otherwise only the in-process cache.

#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/upstash_shim.rs"]
mod upstash_shim;

use std::{net::ToSocketAddrs, sync::Arc, time::Duration};

use genesis::hot::{CachedMessage, HotCache, MAX_CACHED_MESSAGES, SharedMessage, is_complete};
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(2);

fn msg(sequence: i64) -> SharedMessage {
    Arc::new(CachedMessage {
        id: Uuid::now_v7(),
        conversation_id: Uuid::nil(),
        sequence,
        role: "user".into(),
        content: format!("message {sequence}"),
        timestamp: "2025-12-21T12:00:00Z".into(),
        content_type: "text".into(),
        tokens: None,
        created_at: "2025-12-21T12:00:00Z".into(),
        tool_call_id: None,
        tool_calls: None,
    })
}

async fn sequences(cache: &HotCache, guest: &str) -> Option<Vec<i64>> {
    cache
        .guest_messages(guest)
        .await
        .expect("read")
        .map(|list| list.iter().map(|m| m.sequence).collect())
}

async fn redis_cache(url: &str) -> HotCache {
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    let cache = HotCache::redis(url, &prefix, Duration::from_millis(500), TTL).expect("redis");
    cache.start().await;
    cache
}

/// Redis over the Upstash REST protocol, through a shim in front of the Redis at `url` (kept
/// for the rest of the test).
async fn upstash_cache(url: &str) -> HotCache {
    let shim: &'static upstash_shim::UpstashShim =
        Box::leak(Box::new(upstash_shim::UpstashShim::start(url).await));
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    let cache = HotCache::upstash(
        &shim.url,
        &shim.token,
        &prefix,
        Duration::from_millis(500),
        TTL,
    )
    .expect("upstash");
    cache.start().await;
    cache
}

/// A Redis Cluster from its nodes' URLs, comma-separated.
async fn cluster_cache(nodes: &str) -> HotCache {
    let nodes: Vec<String> = nodes.split(',').map(str::to_string).collect();
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    let cache =
        HotCache::redis_cluster(&nodes, &prefix, Duration::from_millis(500), TTL).expect("cluster");
    cache.start().await;
    cache
}

/// Every backend under test: always the in-process cache; Redis over TCP and over the Upstash
/// REST protocol when `GENESIS_TEST_REDIS_URL` is set; a Redis Cluster when
/// `GENESIS_TEST_REDIS_CLUSTER` names its nodes (`.ci/redis_cluster.sh` starts one).
async fn backends() -> Vec<(&'static str, HotCache)> {
    let mut all = vec![("memory", HotCache::memory(TTL, 64 * 1024 * 1024))];
    if let Ok(url) = std::env::var("GENESIS_TEST_REDIS_URL") {
        all.push(("redis", redis_cache(&url).await));
        all.push(("upstash-rest", upstash_cache(&url).await));
    }
    if let Ok(nodes) = std::env::var("GENESIS_TEST_REDIS_CLUSTER") {
        all.push(("redis-cluster", cluster_cache(&nodes).await));
    }
    all
}

#[tokio::test]
async fn every_write_restarts_the_time_to_live() {
    for (name, cache) in backends().await {
        cache
            .append_guest_message("g", &msg(1))
            .await
            .expect("append");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        cache
            .append_guest_message("g", &msg(2))
            .await
            .expect("append");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            sequences(&cache, "g").await,
            Some(vec![1, 2]),
            "{name}: the second write should have restarted the TTL"
        );
        tokio::time::sleep(Duration::from_millis(2300)).await;
        assert_eq!(sequences(&cache, "g").await, None, "{name}: expired");
    }
}

#[tokio::test]
async fn a_history_past_the_cap_is_left_to_sql() {
    for (name, cache) in backends().await {
        let all: Vec<SharedMessage> = (1..=MAX_CACHED_MESSAGES as i64).map(msg).collect();
        cache.fill_guest("g", &all).await.expect("fill");
        let held = sequences(&cache, "g").await.map(|s| s.len());
        assert_eq!(held, Some(MAX_CACHED_MESSAGES), "{name}: at the cap");
        let next = msg(MAX_CACHED_MESSAGES as i64 + 1);
        cache
            .append_guest_message("g", &next)
            .await
            .expect("append");
        assert_eq!(sequences(&cache, "g").await, None, "{name}: past the cap");

        let too_many: Vec<SharedMessage> = (1..=MAX_CACHED_MESSAGES as i64 + 1).map(msg).collect();
        cache.fill_guest("h", &too_many).await.expect("fill");
        assert_eq!(
            sequences(&cache, "h").await,
            None,
            "{name}: refill past the cap"
        );
    }
}

#[tokio::test]
async fn a_refill_keeps_an_append_that_raced_it() {
    for (name, cache) in backends().await {
        // The append of message 3 lands after the refill read SQL (messages 1 and 2).
        cache
            .append_guest_message("g", &msg(3))
            .await
            .expect("append");
        let partial = cache
            .guest_messages("g")
            .await
            .expect("read")
            .expect("list");
        assert!(
            !is_complete(&partial),
            "{name}: a list with a gap is partial"
        );
        cache
            .fill_guest("g", &[msg(1), msg(2)])
            .await
            .expect("fill");
        assert_eq!(
            sequences(&cache, "g").await,
            Some(vec![1, 2, 3]),
            "{name}: merged by sequence"
        );
        // A refill with what the list already holds changes nothing.
        cache
            .fill_guest("g", &[msg(1), msg(2)])
            .await
            .expect("fill");
        assert_eq!(sequences(&cache, "g").await, Some(vec![1, 2, 3]), "{name}");
    }
}

#[tokio::test]
async fn a_removed_guest_is_a_miss() {
    for (name, cache) in backends().await {
        cache
            .append_guest_message("g", &msg(1))
            .await
            .expect("append");
        cache.remove_guest("g").await.expect("remove");
        assert_eq!(sequences(&cache, "g").await, None, "{name}");
        assert_eq!(sequences(&cache, "never-written").await, None, "{name}");
    }
}

/// The in-process cache cannot miss a write (it is in the writing process); Redis can, and then
/// the key is never served until it has been dropped.
#[tokio::test]
async fn a_key_that_missed_a_write_is_never_served_stale() {
    let Ok(url) = std::env::var("GENESIS_TEST_REDIS_URL") else {
        return;
    };
    let upstream = url
        .trim_start_matches("redis://")
        .to_socket_addrs()
        .expect("redis address")
        .next()
        .expect("an address");
    // Redis over TCP, cut between Genesis and Redis.
    let proxy = proxy::Proxy::start(upstream).await;
    let cache = redis_cache(&format!("redis://127.0.0.1:{}", proxy.port)).await;
    missed_write_is_never_served("redis", &cache, &proxy).await;
    // Redis over Upstash's REST protocol, cut between Genesis and the REST endpoint.
    let shim = upstash_shim::UpstashShim::start(&url).await;
    let shim_addr = shim
        .url
        .trim_start_matches("http://")
        .to_socket_addrs()
        .expect("shim address")
        .next()
        .expect("an address");
    let proxy = proxy::Proxy::start(shim_addr).await;
    let prefix = format!("t{}:", Uuid::new_v4().simple());
    let cache = HotCache::upstash(
        &format!("http://127.0.0.1:{}", proxy.port),
        &shim.token,
        &prefix,
        Duration::from_millis(500),
        TTL,
    )
    .expect("upstash");
    cache.start().await;
    missed_write_is_never_served("upstash-rest", &cache, &proxy).await;
}

async fn missed_write_is_never_served(name: &str, cache: &HotCache, proxy: &proxy::Proxy) {
    cache
        .append_guest_message("g", &msg(1))
        .await
        .expect("append");
    proxy.cut();
    assert!(
        cache.append_guest_message("g", &msg(2)).await.is_err(),
        "{name}: a cut write fails"
    );
    assert_eq!(cache.state().as_str(), "down", "{name}: marked down");
    proxy.restore();
    // Until the probe sees Redis again the key is a miss; after it, the key is gone.
    for _ in 0..30 {
        assert_eq!(
            cache
                .guest_messages("g")
                .await
                .ok()
                .flatten()
                .map(|l| l.len()),
            None,
            "{name}: the list without message 2 must not be served"
        );
        if cache.state().as_str() == "up" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache.state().as_str(), "up", "{name}: back up");
    assert_eq!(sequences(cache, "g").await, None, "{name}");
}
