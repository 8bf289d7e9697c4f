//! Taking data out: one conversation as the `genesis.export` JSON or as Markdown, every
//! conversation of the user streamed as one document; another user's conversation is 404.

mod common;

use common::{TestApp, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// 2026-11-30T10:00:00Z: the first message's time; each next one a second later.
const BASE_TIME: chrono::DateTime<chrono::Utc> =
    chrono::DateTime::from_timestamp(1_796_032_800, 0).expect("a valid time");

async fn conversation_with(app: &TestApp, access: &str, title: &str, texts: &[&str]) -> String {
    let (status, conversation) = app
        .authed(
            Method::POST,
            "/v1/conversations",
            access,
            Some(&json!({"title": title, "tags": ["export"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conversation}");
    let id = conversation["id"].as_str().expect("id").to_string();
    for (i, text) in texts.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let at = BASE_TIME + chrono::Duration::seconds(i as i64);
        let timestamp = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let body = json!({"role": role, "content": text, "timestamp": timestamp});
        let path = format!("/v1/conversations/{id}/messages");
        let (status, answer) = app.authed(Method::POST, &path, access, Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    id
}

async fn get(app: &TestApp, path: &str, access: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(access)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn one_conversation_exports_as_json_and_markdown_attachments() {
    let app = spawn_app().await;
    let (_, access) = app.signup("exporter@example.com").await;
    let id = conversation_with(
        &app,
        &access,
        "Bread",
        &["How do I bake bread?", "Flour, water, salt, time."],
    )
    .await;

    let resp = get(&app, &format!("/v1/conversations/{id}/export"), &access).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-disposition"],
        format!("attachment; filename=\"conversation-{id}.json\"").as_str()
    );
    let doc: Value = resp.json().await.expect("json");
    assert_eq!(doc["format"], "genesis.export");
    assert_eq!(doc["version"], 1);
    let conversation = &doc["conversations"][0];
    assert_eq!(conversation["id"], id.as_str());
    assert_eq!(conversation["title"], "Bread");
    assert_eq!(conversation["tags"], json!(["export"]));
    let messages = conversation["messages"].as_array().expect("messages");
    let shown: Vec<(&str, &str, i64, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().expect("role"),
                m["content"].as_str().expect("content"),
                m["message_index"].as_i64().expect("index"),
                m["timestamp"].as_str().expect("timestamp"),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("user", "How do I bake bread?", 1, "2026-11-30T10:00:00Z"),
            (
                "assistant",
                "Flour, water, salt, time.",
                2,
                "2026-11-30T10:00:01Z"
            ),
        ]
    );

    let resp = get(
        &app,
        &format!("/v1/conversations/{id}/export?format=markdown"),
        &access,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/markdown")
    );
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .ends_with(".md\"")
    );
    let text = resp.text().await.expect("text");
    assert!(text.starts_with("# Bread\n"), "{text}");
    let question = text.find("## user · 2026-11-30T10:00:00Z\n\nHow do I bake bread?");
    let answer = text.find("## assistant · 2026-11-30T10:00:01Z\n\nFlour, water, salt, time.");
    assert!(question.is_some() && answer > question, "{text}");

    let resp = get(
        &app,
        &format!("/v1/conversations/{id}/export?format=pdf"),
        &access,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "an unknown format");
}

#[tokio::test]
async fn another_users_conversation_is_not_exported() {
    let app = spawn_app().await;
    let (_, alice) = app.signup("alice@example.com").await;
    let (_, mallory) = app.signup("mallory@example.com").await;
    let id = conversation_with(&app, &alice, "Private", &["my secret"]).await;
    let resp = get(&app, &format!("/v1/conversations/{id}/export"), &mallory).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = get(
        &app,
        &format!("/v1/conversations/{id}/export"),
        "not-a-token",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = get(&app, "/v1/users/me/export", &mallory).await;
    let doc: Value = resp.json().await.expect("json");
    assert_eq!(doc["conversations"], json!([]), "mallory has nothing");
}

#[tokio::test]
async fn everything_exports_as_one_streamed_document() {
    let app = spawn_app().await;
    let (_, access) = app.signup("hoarder@example.com").await;
    // One conversation longer than a read (500 messages), a few short ones, an empty one.
    let long: Vec<String> = (1..=620).map(|i| format!("line {i}")).collect();
    let long_refs: Vec<&str> = long.iter().map(String::as_str).collect();
    let long_id = conversation_with(&app, &access, "Long", &long_refs).await;
    let mut ids = vec![long_id.clone()];
    for n in 0..3 {
        ids.push(conversation_with(&app, &access, &format!("Short {n}"), &["hi", "hello"]).await);
    }
    ids.push(conversation_with(&app, &access, "Empty", &[]).await);

    let resp = get(&app, "/v1/users/me/export", &access).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"genesis-export.json\""
    );
    let doc: Value = resp.json().await.expect("one valid JSON document");
    assert_eq!(doc["format"], "genesis.export");
    let conversations = doc["conversations"].as_array().expect("conversations");
    let mut exported: Vec<&str> = conversations
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    exported.sort_unstable();
    ids.sort_unstable();
    assert_eq!(exported, ids);
    let long = conversations
        .iter()
        .find(|c| c["id"] == long_id.as_str())
        .expect("the long one");
    let indexes: Vec<i64> = long["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["message_index"].as_i64().expect("index"))
        .collect();
    assert_eq!(indexes, (1..=620).collect::<Vec<_>>());
    let empty = conversations
        .iter()
        .find(|c| c["title"] == "Empty")
        .expect("the empty one");
    assert_eq!(empty["messages"], json!([]));
}
