//! The context for the next model call: the system prompt and the newest messages that fit the
//! budget, never over it, always ending at the newest message; counts from a real tokenizer
//! stored at write time (a client's own `tokens` win); the same for a guest.

mod common;

use common::{TestApp, assert_error, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn context(app: &TestApp, access: &str, id: &str, budget: i64) -> (StatusCode, Value) {
    let path = format!("/v1/conversations/{id}/context?token_budget={budget}");
    app.authed(Method::GET, &path, access, None).await
}

fn contents(window: &Value) -> Vec<String> {
    window["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_context_is_the_newest_messages_that_fit() {
    let app = spawn_app().await;
    let (_, access) = app.signup("context@example.com").await;
    let body = json!({"title": "Ctx", "system_prompt": "You are terse.", "model_used": "gpt-4o"});
    let id = app.new_conversation(&access, body).await;
    let texts: Vec<String> = (1..=30)
        .map(|i| {
            format!(
                "message {i}: {}",
                "the quick brown fox jumps over the lazy dog ".repeat(i % 4 + 1)
            )
        })
        .collect();
    let mut tokens = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let mut body =
            json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": text});
        if i == 29 {
            body["tokens"] = json!(7); // the client's own count wins
        }
        let m = app.add_message(&access, &id, body).await;
        tokens.push(m["tokens_used"].as_i64().expect("counted at write time"));
    }
    assert_eq!(tokens[29], 7);
    // The counts of OpenAI's o200k_base (as js-tiktoken 1.x gives them for the same strings).
    assert_eq!(tokens[..4], [23, 32, 41, 14], "{tokens:?}");
    let (_, c) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}"),
            &access,
            None,
        )
        .await;
    assert_eq!(c["token_count"].as_i64(), Some(tokens.iter().sum::<i64>()));

    let (status, all) = context(&app, &access, &id, 1_000_000).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["system_prompt"], "You are terse.");
    assert_eq!(all["truncated"], false);
    assert_eq!(contents(&all), texts);
    let system = all["tokens"].as_i64().expect("tokens") - tokens.iter().sum::<i64>();
    assert!(system > 0, "the system prompt counts");

    for budget in [
        system,
        system + 7,
        system + 8,
        system + 100,
        system + 333,
        system + 700,
    ] {
        let (status, window) = context(&app, &access, &id, budget).await;
        assert_eq!(status, StatusCode::OK, "{window}");
        let used = window["tokens"].as_i64().expect("tokens");
        assert!(used <= budget, "{used} > {budget}");
        let shown = contents(&window);
        let n = shown.len();
        // The newest n messages, in order, and the next older one would not have fit.
        assert_eq!(shown, texts[30 - n..], "budget {budget}");
        let sum: i64 = tokens[30 - n..].iter().sum();
        assert_eq!(used, system + sum);
        assert_eq!(window["truncated"], n < 30);
        if n < 30 {
            assert!(
                used + tokens[29 - n] > budget,
                "an older message would have fit"
            );
        }
    }
    let (status, body) = context(&app, &access, &id, 2).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "budget_too_small");
    for bad in ["0", "-5", "lots"] {
        let path = format!("/v1/conversations/{id}/context?token_budget={bad}");
        let (status, _) = app.authed(Method::GET, &path, &access, None).await;
        assert!(status.is_client_error(), "{bad}");
    }
    let (_, other) = app.signup("context-other@example.com").await;
    let (status, _) = context(&app, &other, &id, 100).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn gpt_4_conversations_count_with_cl100k() {
    let app = spawn_app().await;
    let (_, access) = app.signup("cl100k@example.com").await;
    let mut counts = Vec::new();
    for model in ["gpt-4o", "gpt-4"] {
        let body = json!({"title": model, "model_used": model});
        let id = app.new_conversation(&access, body).await;
        // Text where the two encodings differ (js-tiktoken: o200k_base 6, cl100k_base 8).
        let body = json!({"role": "user", "content": "Привет, как дела?"});
        let m = app.add_message(&access, &id, body).await;
        counts.push(m["tokens_used"].as_i64().expect("counted"));
    }
    assert_eq!(counts, [6, 8]);
}

#[tokio::test]
async fn a_guest_gets_its_context_too() {
    let app = spawn_app().await;
    let (guest_id, token) = app.new_guest().await;
    let texts: Vec<String> = (1..=12)
        .map(|i| format!("guest line {i} about bread"))
        .collect();
    for (i, text) in texts.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        app.say(&guest_id, &token, role, text).await;
    }
    let (_, history) = app.history(&guest_id, &token).await;
    let tokens: Vec<i64> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["tokens"].as_i64().expect("counted at write time"))
        .collect();
    let budget = tokens[8..].iter().sum::<i64>() + 1;
    let resp = app
        .client
        .get(app.url(&format!(
            "/v1/guest/chat/{guest_id}/context?token_budget={budget}"
        )))
        .header("X-Guest-Token", &token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let window: Value = resp.json().await.expect("json");
    assert_eq!(contents(&window), texts[8..]);
    assert_eq!(window["tokens"].as_i64(), Some(budget - 1));
    assert_eq!(window["truncated"], true);
    assert!(window["system_prompt"].is_null());
    assert_eq!(window["guest_id"], guest_id.as_str());

    let resp = app
        .client
        .get(app.url(&format!(
            "/v1/guest/chat/{guest_id}/context?token_budget=10"
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}
