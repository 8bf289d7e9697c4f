//! Tool calls as OpenAI-style chat apps send them: an assistant message carrying `tool_calls`
//! (text optional) and `tool` messages naming the call they answer, stored and returned as
//! sent on guest and account paths, in lists, the context window, migration and export.

mod common;

use common::{TestApp, assert_error, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn calls() -> Value {
    json!([{
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}
    }])
}

/// The turn of a chat that calls a tool: question, the call (no text), the result, the answer.
fn turn() -> Vec<Value> {
    vec![
        json!({"role": "user", "content": "What is the weather in Paris?"}),
        json!({"role": "assistant", "content": null, "tool_calls": calls()}),
        json!({"role": "tool", "content": "{\"temp\":21}", "tool_call_id": "call_weather_1"}),
        json!({"role": "assistant", "content": "It is 21 °C in Paris."}),
    ]
}

/// The tool parts of listed messages, in order.
fn tool_parts(messages: &Value) -> Vec<(Value, Value, String)> {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["tool_call_id"].clone(),
                m["tool_calls"].clone(),
                m["content"].as_str().expect("content").to_string(),
            )
        })
        .collect()
}

fn expected_parts() -> Vec<(Value, Value, String)> {
    vec![
        (
            Value::Null,
            Value::Null,
            "What is the weather in Paris?".into(),
        ),
        (Value::Null, calls(), String::new()),
        (json!("call_weather_1"), Value::Null, "{\"temp\":21}".into()),
        (Value::Null, Value::Null, "It is 21 °C in Paris.".into()),
    ]
}

#[tokio::test]
async fn a_guest_turn_with_a_tool_call_is_kept_as_sent_and_moves_with_the_guest() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    for body in turn() {
        let (status, ack) = app.post_message(&guest, Some(&token), body).await;
        assert_eq!(status, StatusCode::CREATED, "{ack}");
    }
    let (status, history) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tool_parts(&history["messages"]), expected_parts());

    // The context for the next call carries them too, counted with the calls' text.
    let (status, window) = app
        .request(
            Method::GET,
            &format!("/v1/guest/chat/{guest}/context?token_budget=1000"),
            Some(&token),
            None,
        )
        .await
        .json::<Value>()
        .await
        .map(|v| (StatusCode::OK, v))
        .expect("json");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tool_parts(&window["messages"]), expected_parts());
    let call_tokens = window["messages"][1]["tokens"].as_i64().expect("counted");
    assert!(
        call_tokens > 10,
        "the calls' text is counted: {call_tokens}"
    );

    // Signing up takes them along, unchanged, and an export keeps them.
    let (_, access) = app.signup("tools-guest@example.com").await;
    let (status, moved) = app.migrate(&guest, &access, &token).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let id = moved["conversation_ids"][0].as_str().expect("conversation");
    let list = app.messages(&access, id).await;
    assert_eq!(tool_parts(&list["messages"]), expected_parts());
    let (status, export) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}/export"),
            &access,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let exported = &export["conversations"][0]["messages"];
    assert_eq!(exported[1]["tool_calls"], calls(), "{export}");
    assert_eq!(exported[2]["tool_call_id"], "call_weather_1");

    // …and importing that file elsewhere brings them back.
    let (_, other) = app.signup("tools-import@example.com").await;
    let (status, imported) = app
        .authed(
            Method::POST,
            "/v1/conversations/import",
            &other,
            Some(&export),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let copy = imported["imported"][0]["conversation_id"]
        .as_str()
        .expect("imported id");
    let (_, list) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{copy}/messages"),
            &other,
            None,
        )
        .await;
    assert_eq!(tool_parts(&list["messages"]), expected_parts());
}

#[tokio::test]
async fn an_account_turn_with_a_tool_call_is_kept_as_sent() {
    let app = spawn_app().await;
    let (_, access) = app.signup("tools@example.com").await;
    let id = app
        .new_conversation(&access, json!({"title": "Tools"}))
        .await;
    let mut stored = Vec::new();
    for body in turn() {
        stored.push(app.add_message(&access, &id, body).await);
    }
    assert_eq!(stored[1]["tool_calls"], calls());
    assert_eq!(stored[1]["content"], "");
    assert_eq!(stored[2]["tool_call_id"], "call_weather_1");
    let (_, list) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}/messages"),
            &access,
            None,
        )
        .await;
    assert_eq!(tool_parts(&list["messages"]), expected_parts());
    let (_, window) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}/context?token_budget=1000"),
            &access,
            None,
        )
        .await;
    assert_eq!(tool_parts(&window["messages"]), expected_parts());

    // Two results at the same moment with the same text answer different calls: two messages.
    let at = "2026-12-05T10:00:00Z";
    for call in ["call_a", "call_b"] {
        let body = json!({"role": "tool", "content": "ok", "tool_call_id": call, "timestamp": at});
        let m = app.add_message(&access, &id, body).await;
        assert_eq!(m["tool_call_id"], call);
    }
    // …and a retry of one of them is recognised.
    let body = json!({"role": "tool", "content": "ok", "tool_call_id": "call_b", "timestamp": at});
    let path = format!("/v1/conversations/{id}/messages");
    let (status, again) = app.authed(Method::POST, &path, &access, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], true);
}

async fn refused(app: &TestApp, guest: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.post_message(guest, Some(token), body).await
}

#[tokio::test]
async fn tool_parts_on_the_wrong_message_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let cases = [
        (
            json!({"role": "user", "content": "hi", "tool_calls": calls()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tool_call",
        ),
        (
            json!({"role": "assistant", "content": "hi", "tool_call_id": "call_1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tool_call",
        ),
        (
            json!({"role": "tool", "content": "ok", "tool_call_id": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            json!({"role": "assistant", "content": null}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "content_empty",
        ),
        (
            json!({"role": "user"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "content_empty",
        ),
        (
            json!({"role": "assistant", "tool_calls": {"id": "call_1"}}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = refused(&app, &guest, &token, body.clone()).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert_error(&answer, code);
    }
    let big = json!([{"id": "call_1", "arguments": "x".repeat(70_000)}]);
    let (got, answer) = refused(
        &app,
        &guest,
        &token,
        json!({"role": "assistant", "tool_calls": big}),
    )
    .await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(0),
        "{history}"
    );
}
