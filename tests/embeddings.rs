//! Embeddings end to end: every stored message gets its vector in the background (after a failing
//! embedder, after a restart with a backlog), search and the semantic cache see only the caller's
//! own messages, and `none` turns them off with 409.

mod common;

use std::time::Duration;

use common::{TestApp, assert_error, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Messages (guest and account) whose content has no vector of the current model.
const WITHOUT_VECTOR: &str = "SELECT \
    (SELECT COUNT(*) FROM message_cache m WHERE NOT EXISTS (SELECT 1 FROM cache_embeddings e \
      WHERE e.content_hash = m.message_hash)) + \
    (SELECT COUNT(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM cache_embeddings e \
      WHERE e.content_hash = m.content_hash))";

async fn all_embedded(app: &TestApp, within: Duration) -> bool {
    app.eventually(within, || async { app.count(WITHOUT_VECTOR).await == 0 })
        .await
}

async fn search_as_guest(
    app: &TestApp,
    guest: &str,
    token: &str,
    query: &str,
) -> (StatusCode, Value) {
    let resp = app
        .request(
            Method::GET,
            &format!("/v1/search?{query}&guest_id={guest}"),
            Some(token),
            None,
        )
        .await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn lookup_as_guest(
    app: &TestApp,
    guest: &str,
    token: &str,
    prompt: &str,
) -> (StatusCode, Value) {
    let body = json!({"prompt": prompt, "guest_id": guest});
    let resp = app
        .request(Method::POST, "/v1/cache/lookup", Some(token), Some(&body))
        .await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn contents(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["content"].as_str().expect("content").to_string())
        .collect()
}

#[tokio::test]
async fn the_seeds_guest_session_leaves_vectors_within_seconds() {
    let app = spawn_app().await;
    let (status, first) = app
        .post_message(
            "seed-guest-embed",
            None,
            json!({"role":"user","content":"Test message","timestamp":"2025-12-21T12:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let token = first["guest_token"].as_str().expect("token").to_string();
    app.say(
        "seed-guest-embed",
        &token,
        "assistant",
        "Hello! How can I help?",
    )
    .await;
    let filled = app
        .eventually(Duration::from_secs(5), || async {
            app.count("SELECT COUNT(*) FROM cache_embeddings").await > 0
        })
        .await;
    assert!(filled, "cache_embeddings is still empty");
    assert!(all_embedded(&app, Duration::from_secs(5)).await);
    let ready: Value = app
        .request(Method::GET, "/readyz", None, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ready["embeddings"], "lexical");
    assert_eq!(ready["embedding_backlog"], 0);
}

#[tokio::test]
async fn search_and_the_cache_never_cross_owners() {
    let app = spawn_app().await;
    let (alice, alice_token) = app.new_guest().await;
    let (bob, bob_token) = app.new_guest().await;
    for (guest, token, secret) in [
        (&alice, &alice_token, "alice's locker code is 1234"),
        (&bob, &bob_token, "bob's locker code is 9876"),
    ] {
        app.say(guest, token, "user", "what is my locker code")
            .await;
        app.say(guest, token, "assistant", secret).await;
    }
    // A user with the same words, in an account conversation.
    let (_, carol) = app.signup("carol@example.com").await;
    let (status, conversation) = app
        .authed(Method::POST, "/v1/conversations", &carol, Some(&json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let messages = format!(
        "/v1/conversations/{}/messages",
        conversation["id"].as_str().expect("id")
    );
    for (role, content) in [
        ("user", "what is my locker code"),
        ("assistant", "carol's locker code is 5555"),
    ] {
        let (status, _) = app
            .authed(
                Method::POST,
                &messages,
                &carol,
                Some(&json!({"role": role, "content": content})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert!(all_embedded(&app, Duration::from_secs(5)).await);

    for mode in ["semantic", "text"] {
        let (status, found) = search_as_guest(
            &app,
            &alice,
            &alice_token,
            &format!("q=locker%20code&mode={mode}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let found = contents(&found);
        assert_eq!(
            found.len(),
            2,
            "{mode}: alice sees her two messages only: {found:?}"
        );
        assert!(
            found
                .iter()
                .all(|c| !c.contains("bob") && !c.contains("carol")),
            "{found:?}"
        );

        let (status, found) = app
            .authed(
                Method::GET,
                &format!("/v1/search?q=locker%20code&mode={mode}"),
                &carol,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let found = contents(&found);
        assert_eq!(
            found.len(),
            2,
            "{mode}: carol sees her two messages only: {found:?}"
        );
        assert!(
            found
                .iter()
                .all(|c| !c.contains("alice") && !c.contains("bob")),
            "{found:?}"
        );
    }

    // The cache: the same prompt hits each owner's own answer.
    let (status, hit) = lookup_as_guest(&app, &bob, &bob_token, "what is my locker code").await;
    assert_eq!(status, StatusCode::OK, "{hit}");
    assert_eq!(hit["hit"], true, "{hit}");
    assert_eq!(hit["response"]["content"], "bob's locker code is 9876");
    assert_eq!(hit["response"]["role"], "assistant");
    assert!(hit["similarity"].as_f64().expect("similarity") > 0.99);
    let (status, hit) = app
        .authed(
            Method::POST,
            "/v1/cache/lookup",
            &carol,
            Some(&json!({"prompt": "what is my locker code"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hit}");
    assert_eq!(hit["response"]["content"], "carol's locker code is 5555");

    // Alice's token cannot read Bob's messages, by search or by cache.
    let (status, body) = search_as_guest(&app, &bob, &alice_token, "q=locker").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "guest_token_invalid");
    let (status, body) = lookup_as_guest(&app, &bob, &alice_token, "what is my locker code").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "guest_token_invalid");
    // Neither credential: 401.
    let resp = app
        .request(Method::GET, "/v1/search?q=locker", None, None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_cache_miss_and_search_input_errors() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let (status, miss) = lookup_as_guest(&app, &guest, &token, "anything at all").await;
    assert_eq!(status, StatusCode::OK, "{miss}");
    assert_eq!(
        miss,
        json!({"hit": false, "best_similarity": null}),
        "nothing answered yet"
    );

    app.say(&guest, &token, "user", "how do I bake sourdough bread")
        .await;
    app.say(&guest, &token, "assistant", "feed the starter, then knead")
        .await;
    assert!(all_embedded(&app, Duration::from_secs(5)).await);
    let (status, miss) = lookup_as_guest(&app, &guest, &token, "weather in Paris today").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(miss["hit"], false, "{miss}");
    let best = miss["best_similarity"]
        .as_f64()
        .expect("a number once a prompt was answered");
    assert!(best < 0.92, "{best}");
    // A looser threshold on the same prompt as asked: a hit.
    let body =
        json!({"prompt": "how do I bake sourdough bread?", "guest_id": guest, "threshold": 0.5});
    let resp = app
        .request(Method::POST, "/v1/cache/lookup", Some(&token), Some(&body))
        .await;
    let hit: Value = resp.json().await.expect("json");
    assert_eq!(hit["hit"], true, "{hit}");
    assert_eq!(hit["response"]["content"], "feed the starter, then knead");

    let body = json!({"prompt": "x", "guest_id": guest, "threshold": 1.5});
    let resp = app
        .request(Method::POST, "/v1/cache/lookup", Some(&token), Some(&body))
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A prompt holding U+0000 is outside the documented pattern: refused, like a message.
    let body = json!({"prompt": "bread\u{0}", "guest_id": guest});
    let resp = app
        .request(Method::POST, "/v1/cache/lookup", Some(&token), Some(&body))
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&resp.json().await.expect("json"), "content_invalid");
    let (status, body) = search_as_guest(&app, &guest, &token, "q=%20%20").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid_query");
    let (status, body) = search_as_guest(&app, &guest, &token, "q=%2A%2A&mode=text").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid_query");
    let (status, _) = search_as_guest(&app, &guest, &token, "q=bread&limit=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, found) = search_as_guest(&app, &guest, &token, "q=breads&mode=text").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        contents(&found),
        vec!["how do I bake sourdough bread"],
        "stemmed words match"
    );

    // Usage counts the lookups: one hit, two misses.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits = app
        .count(&format!(
            "SELECT cache_hits FROM usage_metrics WHERE user_id = '{guest}'"
        ))
        .await;
    let misses = app
        .count(&format!(
            "SELECT cache_misses FROM usage_metrics WHERE user_id = '{guest}'"
        ))
        .await;
    assert!(hits >= 1 && misses >= 2, "hits {hits}, misses {misses}");
    let semantic = app
        .count("SELECT COUNT(*) FROM cache_metrics WHERE layer = 'semantic'")
        .await;
    assert!(semantic > 0, "semantic cache metrics are flushed");
}

#[tokio::test]
async fn a_failing_embedder_is_retried_until_every_message_has_its_vector() {
    let app = spawn_app_with(&[("GENESIS_TEST_FAILPOINTS", "embed_fail:2")]).await;
    let (guest, token) = app.new_guest().await;
    for i in 0..5 {
        app.say(&guest, &token, "user", &format!("message number {i}"))
            .await;
    }
    // Two failures, backoff 1 s then 2 s, then success.
    assert!(
        all_embedded(&app, Duration::from_secs(20)).await,
        "messages left without a vector; log:\n{}",
        app.log()
    );
    let log = app.log();
    assert!(
        log.contains("ERROR") && log.contains("embedding failed"),
        "failures are logged at ERROR:\n{log}"
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("genesis_embeddings_total{result=\"failed\"} 2"),
        "failures are counted:\n{metrics}"
    );
}

#[tokio::test]
async fn a_restart_with_a_backlog_ends_with_every_message_embedded() {
    // Written with embeddings off: nothing is embedded, nothing is queued.
    let mut app = spawn_app_with(&[("GENESIS__EMBEDDINGS__PROVIDER", "none")]).await;
    let (guest, token) = app.new_guest().await;
    for i in 0..30 {
        app.say(&guest, &token, "user", &format!("backlog message {i}"))
            .await;
    }
    let (status, body) = search_as_guest(&app, &guest, &token, "q=backlog").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "embeddings_disabled");
    assert_eq!(app.count("SELECT COUNT(*) FROM cache_embeddings").await, 0);
    app.kill().await;
    // Restarted with the default embedder: the start-up scan finds all 30.
    app.set_env("GENESIS__EMBEDDINGS__PROVIDER", "lexical");
    app.start().await;
    assert!(
        all_embedded(&app, Duration::from_secs(10)).await,
        "log:\n{}",
        app.log()
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM cache_embeddings").await, 30);
    let (status, found) =
        search_as_guest(&app, &guest, &token, "q=backlog%20message%207&mode=text").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contents(&found), vec!["backlog message 7"]);
}

#[tokio::test]
async fn erasing_a_guest_removes_its_vectors_and_search_text() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let (other, other_token) = app.new_guest().await;
    app.say(&guest, &token, "user", "only the erased guest says this")
        .await;
    app.say(&guest, &token, "user", "both guests say this")
        .await;
    app.say(&other, &other_token, "user", "both guests say this")
        .await;
    assert!(all_embedded(&app, Duration::from_secs(5)).await);
    assert_eq!(app.count("SELECT COUNT(*) FROM cache_embeddings").await, 2);
    let resp = app
        .request(
            Method::DELETE,
            &format!("/v1/guest/chat/{guest}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM cache_embeddings").await,
        1,
        "the shared vector stays"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM search_text").await, 1);
    let (status, found) = search_as_guest(&app, &other, &other_token, "q=guests&mode=text").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contents(&found), vec!["both guests say this"]);
}

#[tokio::test]
async fn migration_keeps_the_vectors_usable_for_the_account() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "what is the capital of France")
        .await;
    app.say(&guest, &token, "assistant", "Paris").await;
    assert!(all_embedded(&app, Duration::from_secs(5)).await);
    let vectors = app.count("SELECT COUNT(*) FROM cache_embeddings").await;
    let (_, user) = app.signup("moved@example.com").await;
    let (status, _) = app.migrate(&guest, &user, &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, hit) = app
        .authed(
            Method::POST,
            "/v1/cache/lookup",
            &user,
            Some(&json!({"prompt": "what is the capital of France"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hit["response"]["content"], "Paris", "{hit}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM cache_embeddings").await,
        vectors,
        "no vector re-made"
    );
    // The guest's messages belong to the account now.
    let (status, body) = search_as_guest(&app, &guest, &token, "q=France").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "guest_migrated");
}
