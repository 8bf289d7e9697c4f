//! Bringing chats in: a ChatGPT export's shown branch in order, the `genesis.export` round trip,
//! a broken file refused whole with the JSON path of its first problem, a second import skipped,
//! and the import's own body limit.

mod common;

use common::{TestApp, assert_error, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CHATGPT: &str = include_str!("fixtures/chatgpt_conversations.json");

async fn import(app: &TestApp, access: &str, body: &Value) -> (StatusCode, Value) {
    app.authed(Method::POST, "/v1/conversations/import", access, Some(body))
        .await
}

async fn export_all(app: &TestApp, access: &str) -> Value {
    let (status, doc) = app
        .authed(Method::GET, "/v1/users/me/export", access, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    doc
}

async fn conversation_count(app: &TestApp, access: &str) -> usize {
    let (status, list) = app
        .authed(Method::GET, "/v1/conversations", access, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["conversations"].as_array().expect("list").len()
}

/// A conversation's messages as (role, content, content_type, timestamp, model_used).
fn shown(conversation: &Value) -> Vec<(String, String, String, String, String)> {
    conversation["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (
                text("role"),
                text("content"),
                text("content_type"),
                text("timestamp"),
                text("model_used"),
            )
        })
        .collect()
}

fn row(
    role: &str,
    content: &str,
    ct: &str,
    at: &str,
    model: &str,
) -> (String, String, String, String, String) {
    (
        role.into(),
        content.into(),
        ct.into(),
        at.into(),
        model.into(),
    )
}

#[tokio::test]
async fn a_chatgpt_export_imports_the_branch_chatgpt_shows_in_order() {
    let app = spawn_app().await;
    let (_, access) = app.signup("chatgpt@example.com").await;
    let file: Value = serde_json::from_str(CHATGPT).expect("fixture");

    let (status, answer) = import(&app, &access, &file).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // The third conversation holds only a hidden system message: nothing to show, skipped.
    assert_eq!(answer["skipped"], 1, "{answer}");
    let imported = answer["imported"].as_array().expect("imported");
    let titles: Vec<&str> = imported
        .iter()
        .map(|c| c["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(titles, ["Capitals of Europe", "Bread"]);
    assert_eq!(imported[0]["messages"], 7);
    assert_eq!(imported[1]["messages"], 2);

    let doc = export_all(&app, &access).await;
    let conversations = doc["conversations"].as_array().expect("conversations");
    let geo = conversations
        .iter()
        .find(|c| c["title"] == "Capitals of Europe")
        .expect("imported conversation");
    assert_eq!(geo["id"], imported[0]["conversation_id"]);
    assert_eq!(geo["created_at"], "2024-11-21T09:00:00Z");
    assert_eq!(geo["model_used"], "gpt-4o");
    assert_eq!(geo["status"], "active");
    // Root to current_node: the hidden system scaffolding, the custom instructions, the first
    // (abandoned) answer, the empty node and the reasoning are not shown in ChatGPT and are not
    // imported; the image part of a multimodal message is not text.
    assert_eq!(
        shown(geo),
        vec![
            row(
                "system",
                "You are a geography tutor.",
                "text",
                "2024-11-21T09:00:00Z",
                ""
            ),
            row(
                "user",
                "What is the capital of France?",
                "text",
                "2024-11-21T09:00:01.250Z",
                ""
            ),
            row(
                "assistant",
                "The capital of France is **Paris**.",
                "markdown",
                "2024-11-21T09:00:10Z",
                "gpt-4o"
            ),
            row(
                "user",
                "And which city is this? Compute Italy's capital with code.",
                "text",
                "2024-11-21T09:01:00Z",
                ""
            ),
            row(
                "assistant",
                "```python\nprint('Rome')\n```",
                "markdown",
                "2024-11-21T09:01:01Z",
                "gpt-4o"
            ),
            row("tool", "Rome", "text", "2024-11-21T09:01:02Z", ""),
            row(
                "assistant",
                "The capital of Italy is Rome.",
                "markdown",
                "2024-11-21T09:01:03Z",
                "gpt-4o"
            ),
        ]
    );
    let indexes: Vec<i64> = geo["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["message_index"].as_i64().expect("index"))
        .collect();
    assert_eq!(indexes, (1..=7).collect::<Vec<_>>());
    let bread = conversations
        .iter()
        .find(|c| c["title"] == "Bread")
        .expect("bread");
    assert_eq!(bread["status"], "archived");

    // The conversation reads like any other: counters and the message list agree.
    let id = geo["id"].as_str().expect("id");
    let (status, one) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}"),
            &access,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["message_count"], 7);
    let page = app.messages(&access, id).await;
    assert_eq!(page["messages"][5]["role"], "tool");

    // The same file again: everything is already there.
    let (status, again) = import(&app, &access, &file).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, json!({"imported": [], "skipped": 3}));
    assert_eq!(conversation_count(&app, &access).await, 2);

    // Another user importing the same file gets conversations of their own.
    let (_, other) = app.signup("chatgpt-too@example.com").await;
    let (status, theirs) = import(&app, &other, &file).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_ne!(
        theirs["imported"][0]["conversation_id"],
        imported[0]["conversation_id"]
    );
}

/// What a round trip keeps: everything but ids, times of record and where a conversation came
/// from.
fn comparable(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let list = doc["conversations"].as_array_mut().expect("conversations");
    for c in list.iter_mut() {
        let c = c.as_object_mut().expect("conversation");
        for key in ["id", "updated_at", "origin_guest_id"] {
            c.remove(key);
        }
        for m in c["messages"].as_array_mut().expect("messages") {
            let m = m.as_object_mut().expect("message");
            m.remove("id");
            m.remove("created_at");
        }
    }
    list.sort_by_key(|c| c["title"].as_str().unwrap_or_default().to_string());
    doc
}

/// A message as (role, content, content_type).
type Said = (&'static str, &'static str, &'static str);

#[tokio::test]
async fn export_then_import_then_export_gives_the_same_conversations() {
    let app = spawn_app().await;
    let (_, alice) = app.signup("round-trip-a@example.com").await;
    let plan: [(&str, &[Said]); 2] = [
        (
            "Bread",
            &[
                ("system", "You bake.", "text"),
                ("user", "How do I bake bread?", "text"),
                ("assistant", "**Flour**, water, salt, time.", "markdown"),
            ],
        ),
        (
            "Weather",
            &[
                ("user", "Weather in Paris?", "text"),
                ("assistant", "{\"call\":\"weather\"}", "json"),
                ("tool", "12 °C, rain", "text"),
                ("assistant", "12 °C and rain — take an umbrella ☂", "text"),
            ],
        ),
    ];
    for (n, (title, messages)) in plan.iter().enumerate() {
        let body = json!({"title": title, "tags": ["round", "trip"], "model_used": "gpt-4o",
                          "system_prompt": "Be kind.", "temperature": 0.5, "max_tokens": 256});
        let id = app.new_conversation(&alice, body).await;
        for (i, (role, content, ct)) in messages.iter().enumerate() {
            let body = json!({"role": role, "content": content, "content_type": ct,
                              "timestamp": format!("2025-0{}-0{}T10:00:0{}.5Z", n + 1, n + 1, i),
                              "tokens": 3 + i, "model_used": "gpt-4o"});
            app.add_message(&alice, &id, body).await;
        }
    }
    let first = export_all(&app, &alice).await;
    assert_eq!(first["conversations"].as_array().map(Vec::len), Some(2));

    // Alice's own export is still hers: importing it again changes nothing.
    let (status, answer) = import(&app, &alice, &first).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["skipped"], 2);

    let (_, bob) = app.signup("round-trip-b@example.com").await;
    let (status, answer) = import(&app, &bob, &first).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["skipped"], 0);
    let second = export_all(&app, &bob).await;
    assert_eq!(comparable(&second), comparable(&first));
    let (status, list) = app
        .authed(Method::GET, "/v1/conversations", &bob, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let weather = list["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["title"] == "Weather")
        .expect("weather")
        .clone();
    assert_eq!(weather["message_count"], 4);
    assert_eq!(weather["token_count"], 3 + 4 + 5 + 6);
}

#[tokio::test]
async fn a_broken_file_imports_nothing_and_names_the_path_of_its_problem() {
    let app = spawn_app().await;
    let (_, access) = app.signup("broken@example.com").await;
    let good = json!({"title": "fine", "messages": [{"role": "user", "content": "hello",
                      "timestamp": "2025-01-01T00:00:00Z"}]});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"format": "genesis.export", "version": 1, "conversations": [good.clone(),
                {"title": "bad", "messages": [{"role": "user", "content": "ok"},
                                              {"role": "robot", "content": "beep"}]}]}),
            "$.conversations[1].messages[1].role",
        ),
        (
            json!({"format": "genesis.export", "version": 1, "conversations": [
                {"title": "bad", "messages": [{"role": "user", "content": "   "}]}]}),
            "$.conversations[0].messages[0].content",
        ),
        (
            json!({"format": "genesis.export", "version": 1, "conversations": [
                {"title": "bad", "created_at": "yesterday", "messages": []}]}),
            "$.conversations[0].created_at",
        ),
        (
            json!({"format": "genesis.export", "version": 1, "conversations": [
                {"title": 7, "messages": []}]}),
            "$.conversations[0].title",
        ),
        (
            json!({"format": "genesis.export", "version": 2, "conversations": []}),
            "$.version",
        ),
        (json!({"format": "something.else"}), "$.format"),
        (json!(42), "$"),
        (
            json!([{"title": "t", "current_node": "nowhere", "mapping": {
                "root": {"id": "root", "message": null, "parent": null, "children": []}}}]),
            "$[0].current_node",
        ),
        (
            json!([{"title": "t", "current_node": "b", "mapping": {
                "a": {"id": "a", "message": null, "parent": "b", "children": ["b"]},
                "b": {"id": "b", "message": null, "parent": "a", "children": ["a"]}}}]),
            "$[0].mapping.a.parent",
        ),
        (
            // An unshown node that is not shaped as documented is refused too.
            json!([{"title": "t", "mapping": {
                "root": {"id": "root", "message": null, "parent": null, "children": []},
                "stray": {"id": "stray", "message": null, "parent": {}, "children": []}}}]),
            "$[0].mapping.stray.parent",
        ),
        (
            json!([{"title": "t", "current_node": "m 1", "mapping": {
                "m 1": {"id": "m 1", "parent": null, "children": [], "message": {
                    "author": {"role": "critic"}, "create_time": 1.0,
                    "content": {"content_type": "text", "parts": ["hm"]}}}}}]),
            "$[0].mapping[\"m 1\"].message.author.role",
        ),
    ];
    for (file, path) in cases {
        let (status, body) = import(&app, &access, &file).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{file} → {body}");
        let message = assert_error(&body, "invalid_import");
        assert!(
            message.starts_with(&format!("{path}: ")),
            "{path} not in {message:?}"
        );
    }
    // The first conversation of the first file was fine, but nothing of that file was stored.
    assert_eq!(conversation_count(&app, &access).await, 0);

    // Not JSON at all, and no token.
    let resp = app
        .client
        .post(app.url("/v1/conversations/import"))
        .bearer_auth(&access)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = app
        .client
        .post(app.url("/v1/conversations/import"))
        .json(&json!([]))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn imports_have_their_own_body_limit() {
    // Messages are limited to 1 KiB (so other bodies to about 70 KiB); imports to 150 kB.
    let app = spawn_app_with(&[
        ("GENESIS__LIMITS__MAX_MESSAGE_BYTES", "1024"),
        ("GENESIS__LIMITS__MAX_IMPORT_BYTES", "150000"),
    ])
    .await;
    let (_, access) = app.signup("limits@example.com").await;
    let messages: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"role": if i % 2 == 0 { "user" } else { "assistant" },
                        "content": format!("message number {i} of a long conversation"),
                        "timestamp": "2025-01-01T00:00:00Z"})
        })
        .collect();
    let file = json!({"format": "genesis.export", "version": 1,
                      "conversations": [{"title": "long", "messages": messages}]});
    let size = serde_json::to_vec(&file).expect("json").len();
    assert!((100_000..150_000).contains(&size), "{size}");
    let (status, answer) = import(&app, &access, &file).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["imported"][0]["messages"], 1000);

    // The same body is too large anywhere else.
    let (status, body) = app
        .authed(Method::POST, "/v1/conversations", &access, Some(&file))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    let twice = json!({"format": "genesis.export", "version": 1,
                       "conversations": [{"title": "a", "messages": messages},
                                         {"title": "b", "messages": messages}]});
    let (status, body) = import(&app, &access, &twice).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_error(&body, "payload_too_large");
}
