//! Mass assignment and ownership: on every write a client cannot choose ids, owners, positions,
//! counters or times of record (the fields are ignored), and another user's conversation is 404
//! wherever its id is named.

mod common;

use common::{TestApp, assert_error, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

const OLD: &str = "2000-01-01T00:00:00Z";

fn recent(value: &Value) -> bool {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| (chrono::Utc::now().timestamp() - t.timestamp()).abs() < 300)
}

async fn new_conversation(app: &TestApp, access: &str, body: Value) -> Value {
    let (status, conversation) = app
        .authed(Method::POST, "/v1/conversations", access, Some(&body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conversation}");
    conversation
}

#[tokio::test]
async fn a_client_cannot_set_ids_owners_positions_counters_or_times() {
    let app = spawn_app().await;
    let chosen = Uuid::now_v7().to_string();
    let (other_id, _) = app.signup("other@example.com").await;

    // Guest message: id, conversation, sequence and times are the server's.
    let (guest, token) = app.new_guest().await;
    let (status, ack) = app
        .post_message(
            &guest,
            Some(&token),
            json!({"role": "user", "content": "hi", "id": chosen, "message_id": chosen,
                   "sequence": 99, "created_at": OLD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ack}");
    // A conversation_id names one of the guest's own conversations; a made-up one is 404.
    let (status, refused) = app
        .post_message(
            &guest,
            Some(&token),
            json!({"role": "user", "content": "hi", "conversation_id": chosen}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert_ne!(ack["message_id"], chosen.as_str());
    assert_ne!(ack["conversation_id"], chosen.as_str());
    assert_eq!(ack["sequence"], 1);
    let (_, history) = app.history(&guest, &token).await;
    assert!(recent(&history["messages"][0]["created_at"]), "{history}");

    // Sign-up: the id and tier are the server's.
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(
            &json!({"email": "me@example.com", "password": "correct horse battery",
                      "id": chosen, "tier": "enterprise", "created_at": OLD}),
        )
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let session: Value = resp.json().await.expect("json");
    assert_ne!(session["user"]["id"], chosen.as_str());
    assert_eq!(session["user"]["tier"], "free");
    let access = session["access_token"].as_str().expect("token").to_string();

    // Conversation: id, owner, counters, origin and times are the server's.
    let conversation = new_conversation(
        &app,
        &access,
        json!({"title": "mine", "id": chosen, "user_id": other_id, "message_count": 50,
               "token_count": 7, "created_at": OLD, "updated_at": OLD, "origin_guest_id": guest}),
    )
    .await;
    assert_ne!(conversation["id"], chosen.as_str());
    assert_eq!(conversation["message_count"], 0);
    assert_eq!(conversation["token_count"], 0);
    assert!(
        conversation.get("origin_guest_id").is_none(),
        "{conversation}"
    );
    assert!(recent(&conversation["created_at"]) && recent(&conversation["updated_at"]));
    let id = conversation["id"].as_str().expect("id").to_string();
    let (status, _) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}"),
            &access,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "owned by the caller, not the user_id sent"
    );

    // Account message: id, position, conversation, owner and times are the server's.
    let path = format!("/v1/conversations/{id}/messages");
    let (status, message) = app
        .authed(
            Method::POST,
            &path,
            &access,
            Some(
                &json!({"role": "user", "content": "hello", "id": chosen, "message_index": 42,
                         "conversation_id": chosen, "user_id": other_id, "created_at": OLD}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_ne!(message["id"], chosen.as_str());
    assert_eq!(message["message_index"], 1);
    assert_eq!(message["conversation_id"], id.as_str());
    assert!(recent(&message["created_at"]), "{message}");
}

#[tokio::test]
async fn another_users_conversation_is_404_wherever_it_is_named() {
    let app = spawn_app().await;
    let (_, owner) = app.signup("owner@example.com").await;
    let (_, intruder) = app.signup("intruder@example.com").await;
    let conversation = new_conversation(&app, &owner, json!({"title": "private"})).await;
    let id = conversation["id"].as_str().expect("id").to_string();
    let (status, _) = app
        .authed(
            Method::POST,
            &format!("/v1/conversations/{id}/messages"),
            &owner,
            Some(&json!({"role": "user", "content": "secret plans"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let named = [
        (Method::GET, format!("/v1/conversations/{id}"), None),
        (
            Method::GET,
            format!("/v1/conversations/{id}/messages"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/conversations/{id}/messages"),
            Some(json!({"role": "user", "content": "let me in"})),
        ),
        (Method::GET, format!("/v1/conversations/{id}/export"), None),
        (
            Method::GET,
            format!("/v1/search?q=secret&conversation_id={id}"),
            None,
        ),
        (
            Method::POST,
            "/v1/cache/lookup".to_string(),
            Some(json!({"prompt": "secret plans", "conversation_id": id})),
        ),
    ];
    for (method, path, body) in named {
        let (status, answer) = app
            .authed(method.clone(), &path, &intruder, body.as_ref())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_error(&answer, "conversation_not_found");
    }
    // A guest naming it is refused the same way.
    let (guest, token) = app.new_guest().await;
    let resp = app
        .request(
            Method::GET,
            &format!("/v1/search?q=secret&guest_id={guest}&conversation_id={id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The owner still sees it all.
    let (status, page) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}/messages"),
            &owner,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["messages"].as_array().map(Vec::len),
        Some(1),
        "nothing was added"
    );
}
