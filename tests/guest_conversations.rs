//! A guest with several conversations: starting one makes it the default for appends, reads and
//! the context; each stays reachable by its `conversation_id` (another guest's is 404); the
//! daily quota is the guest's; signing up takes all of them along in one migration; erasing the
//! guest erases all of them.

mod common;

use common::{TestApp, assert_error, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "admin-test-token-of-at-least-32-characters";

async fn start(app: &TestApp, guest: &str, token: &str) -> (StatusCode, Value) {
    let path = format!("/v1/guest/chat/{guest}/conversations");
    let resp = app.request(Method::POST, &path, Some(token), None).await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn started(app: &TestApp, guest: &str, token: &str) -> String {
    let (status, body) = start(app, guest, token).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["latest"], true);
    body["conversation_id"].as_str().expect("id").to_string()
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let resp = app.request(Method::GET, path, Some(token), None).await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn contents(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_string())
        .collect()
}

/// A guest with three conversations: ("first", "second", "third"), each with its messages.
async fn three_conversations(app: &TestApp) -> (String, String, [String; 3]) {
    let (guest, token) = app.new_guest().await;
    let first = app.say(&guest, &token, "user", "first: hello").await["conversation_id"]
        .as_str()
        .expect("id")
        .to_string();
    app.say(&guest, &token, "assistant", "first: hi there")
        .await;
    let second = started(app, &guest, &token).await;
    // Appends that name none go to the newest conversation.
    let ack = app
        .say(&guest, &token, "user", "second: what is bread?")
        .await;
    assert_eq!(ack["conversation_id"], second.as_str());
    assert_eq!(ack["sequence"], 1, "each conversation counts from 1");
    let third = started(app, &guest, &token).await;
    let ack = app.say(&guest, &token, "user", "third: and cheese?").await;
    assert_eq!(ack["conversation_id"], third.as_str());
    // Naming one, in the body or the query.
    let body = json!({"role": "assistant", "content": "second: flour and water", "conversation_id": second});
    let (status, ack) = app.post_message(&guest, Some(&token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{ack}");
    assert_eq!(ack["sequence"], 2);
    let path = format!("/v1/guest/chat/{guest}?conversation_id={first}");
    let body = json!({"role": "user", "content": "first: still here"});
    let resp = app
        .request(Method::POST, &path, Some(&token), Some(&body))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let ack: Value = resp.json().await.expect("json");
    assert_eq!(ack["conversation_id"], first.as_str());
    assert_eq!(ack["sequence"], 3);
    (guest, token, [first, second, third])
}

#[tokio::test]
async fn a_guest_keeps_several_conversations_apart() {
    let app = spawn_app().await;
    let (guest, token, [first, second, third]) = three_conversations(&app).await;

    let (status, list) = get(
        &app,
        &token,
        &format!("/v1/guest/chat/{guest}/conversations"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["conversation_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [third.as_str(), second.as_str(), first.as_str()],
        "newest first"
    );
    let counts: Vec<i64> = list["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["message_count"].as_i64().expect("count"))
        .collect();
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(list["conversations"][0]["latest"], true);
    assert_eq!(list["conversations"][2]["latest"], false);
    assert_eq!(list["conversations"][1]["title"], "second: what is bread?");

    // Reads: the newest by default, any by id, with the list parameters.
    let (status, newest) = get(&app, &token, &format!("/v1/guest/chat/{guest}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(newest["conversation_id"], third.as_str());
    assert_eq!(contents(&newest), ["third: and cheese?"]);
    let (_, one) = get(
        &app,
        &token,
        &format!("/v1/guest/chat/{guest}?conversation_id={first}"),
    )
    .await;
    assert_eq!(
        contents(&one),
        ["first: hello", "first: hi there", "first: still here"]
    );
    // Read twice: once from SQL, then from the hot cache; the same answer.
    for _ in 0..2 {
        let path = format!("/v1/guest/chat/{guest}?conversation_id={second}&last=1");
        let (status, two) = get(&app, &token, &path).await;
        assert_eq!(status, StatusCode::OK, "{two}");
        assert_eq!(contents(&two), ["second: flour and water"]);
    }
    let path = format!("/v1/guest/chat/{guest}/context?token_budget=1000&conversation_id={second}");
    let (status, window) = get(&app, &token, &path).await;
    assert_eq!(status, StatusCode::OK, "{window}");
    assert_eq!(window["conversation_id"], second.as_str());
    assert_eq!(
        contents(&window),
        ["second: what is bread?", "second: flour and water"]
    );

    // Another guest's conversation, or an unknown one, is not found — for reads and writes.
    let (other, other_token) = app.new_guest().await;
    let theirs = started(&app, &other, &other_token).await;
    let (status, body) = get(
        &app,
        &token,
        &format!("/v1/guest/chat/{guest}?conversation_id={theirs}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
    let body = json!({"role": "user", "content": "sneaky", "conversation_id": theirs});
    let (status, answer) = app.post_message(&guest, Some(&token), body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (_, theirs_read) = get(&app, &other_token, &format!("/v1/guest/chat/{other}")).await;
    assert_eq!(
        contents(&theirs_read),
        Vec::<String>::new(),
        "nothing was written there"
    );
    // A token is needed to start one, and it must be this guest's.
    let (status, _) = start(&app, &guest, &other_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Query and body naming different conversations: refused.
    let path = format!("/v1/guest/chat/{guest}?conversation_id={first}");
    let body = json!({"role": "user", "content": "which?", "conversation_id": second});
    let resp = app
        .request(Method::POST, &path, Some(&token), Some(&body))
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn signing_up_takes_all_three_conversations_along() {
    let app = spawn_app_with(&[("GENESIS__ADMIN__TOKEN", ADMIN)]).await;
    let (guest, token, [first, second, third]) = three_conversations(&app).await;
    // A fourth, empty one creates nothing in the account.
    let empty = started(&app, &guest, &token).await;
    let (_, access) = app.signup("three@example.com").await;
    let (status, moved) = app.migrate(&guest, &access, &token).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["messages_migrated"], 6);
    let ids = moved["conversation_ids"].as_array().expect("ids").clone();
    assert_eq!(ids.len(), 3, "{moved}");
    let mut by_title = std::collections::BTreeMap::new();
    for id in &ids {
        let id = id.as_str().expect("id");
        let path = format!("/v1/conversations/{id}/messages");
        let (status, list) = app.authed(Method::GET, &path, &access, None).await;
        assert_eq!(status, StatusCode::OK);
        let texts = contents(&list);
        by_title.insert(texts[0].clone(), texts);
    }
    assert_eq!(by_title["first: hello"].len(), 3);
    assert_eq!(
        by_title["second: what is bread?"],
        ["second: what is bread?", "second: flour and water"]
    );
    assert_eq!(by_title["third: and cheese?"], ["third: and cheese?"]);
    let (_, list) = app
        .authed(Method::GET, "/v1/conversations", &access, None)
        .await;
    assert_eq!(
        list["conversations"].as_array().map(Vec::len),
        Some(3),
        "{list}"
    );

    // Again: the same answer, nothing copied twice.
    let (status, again) = app.migrate(&guest, &access, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_migrated"], true);
    assert_eq!(again["conversation_ids"], moved["conversation_ids"]);
    // The guest's conversations are the account's now: 409 on every one of them.
    for id in [&first, &second, &third, &empty] {
        let body = json!({"role": "user", "content": "more", "conversation_id": id});
        let (status, answer) = app.post_message(&guest, Some(&token), body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_error(&answer, "guest_migrated");
    }
    let (status, _) = start(&app, &guest, &token).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The audit trail and verification agree.
    let sql = format!(
        "SELECT COUNT(*) FROM cache_migrations WHERE guest_id = '{guest}' AND status = 'completed' \
         AND conversations_migrated = 3 AND messages_migrated = 6"
    );
    assert_eq!(app.count(&sql).await, 1);
    let sql = format!("SELECT COUNT(*) FROM conversation_cache WHERE guest_root = '{guest}'");
    assert_eq!(app.count(&sql).await, 2, "the empty conversation is gone");
    let (status, verify) = app
        .authed(Method::GET, "/v1/admin/verify", ADMIN, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn the_daily_quota_is_the_guests_and_erasing_takes_every_conversation() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_MESSAGES_PER_DAY", "3")]).await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "one").await;
    app.say(&guest, &token, "user", "two").await;
    started(&app, &guest, &token).await;
    app.say(&guest, &token, "user", "three").await;
    let (status, body) = app
        .post_message(
            &guest,
            Some(&token),
            json!({"role": "user", "content": "four"}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_error(&body, "guest_quota_exceeded");

    assert_eq!(
        app.erase(&guest, Some(&token)).await,
        StatusCode::NO_CONTENT
    );
    let sql = format!(
        "SELECT COUNT(*) FROM conversation_cache WHERE guest_id = '{guest}' OR guest_root = '{guest}'"
    );
    assert_eq!(app.count(&sql).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM message_cache").await, 0);
    let (status, _) = get(
        &app,
        &token,
        &format!("/v1/guest/chat/{guest}/conversations"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
