//! Messages after the fact: an edit keeps the earlier text as a version, ratings and flags, a
//! delete, regenerated answers replacing the ones they supersede in lists and the context, and
//! counters exact under a concurrent mix of appends, edits and deletes.

mod common;

use common::{TestApp, assert_error, join_all, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn list(app: &TestApp, access: &str, id: &str, query: &str) -> Vec<Value> {
    let path = format!("/v1/conversations/{id}/messages?limit=1000{query}");
    let (status, page) = app.authed(Method::GET, &path, access, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["messages"].as_array().expect("messages").clone()
}

async fn conversation_row(app: &TestApp, access: &str, id: &str) -> Value {
    app.authed(
        Method::GET,
        &format!("/v1/conversations/{id}"),
        access,
        None,
    )
    .await
    .1
}

fn message_path(id: &str, message: &Value) -> String {
    format!(
        "/v1/conversations/{id}/messages/{}",
        message["id"].as_str().expect("id")
    )
}

#[tokio::test]
async fn an_edit_keeps_the_earlier_text_and_ratings_and_flags_are_set() {
    let app = spawn_app().await;
    let (_, access) = app.signup("edits@example.com").await;
    let id = app
        .new_conversation(&access, json!({"title": "Edits"}))
        .await;
    let m = app
        .add_message(
            &access,
            &id,
            json!({"role": "user", "content": "Paris is the capitol"}),
        )
        .await;
    assert_eq!(m["is_edited"], false);
    let path = message_path(&id, &m);
    let patch = |body: Value| {
        let (app, access, path) = (&app, &access, &path);
        async move { app.authed(Method::PATCH, path, access, Some(&body)).await }
    };

    let (status, edited) = patch(json!({"content": "Paris is the capital of France"})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["content"], "Paris is the capital of France");
    assert_eq!(edited["is_edited"], true);
    assert_eq!(edited["message_index"], 1);
    assert!(
        edited["tokens_used"].as_i64() > m["tokens_used"].as_i64(),
        "counted again"
    );
    patch(json!({"content": "Paris, the capital of France"})).await;
    let (status, versions) = app
        .authed(Method::GET, &format!("{path}/versions"), &access, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    assert_eq!(
        versions["message"]["content"],
        "Paris, the capital of France"
    );
    let earlier: Vec<&str> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["content"].as_str().expect("content"))
        .collect();
    assert_eq!(
        earlier,
        ["Paris is the capitol", "Paris is the capital of France"]
    );
    let c = conversation_row(&app, &access, &id).await;
    assert_eq!(
        c["token_count"], versions["message"]["tokens_used"],
        "the count follows the edit"
    );

    let (_, rated) = patch(json!({"user_rating": 4, "flagged": true})).await;
    assert_eq!(
        (rated["user_rating"].as_i64(), rated["flagged"].as_bool()),
        (Some(4), Some(true))
    );
    assert_eq!(
        rated["content"], "Paris, the capital of France",
        "absent fields stay"
    );
    let (_, cleared) = patch(json!({"user_rating": null})).await;
    assert!(
        cleared.get("user_rating").is_none_or(Value::is_null),
        "{cleared}"
    );
    assert_eq!(cleared["flagged"], true);
    for bad in [
        json!({"user_rating": 6}),
        json!({"user_rating": 0}),
        json!({"content": "  "}),
    ] {
        let (status, _) = patch(bad.clone()).await;
        assert!(status.is_client_error(), "{bad}");
    }
    let (_, other) = app.signup("edits-other@example.com").await;
    let (status, _) = app
        .authed(
            Method::PATCH,
            &path,
            &other,
            Some(&json!({"flagged": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unknown = format!("/v1/conversations/{id}/messages/00000000-0000-7000-8000-000000000000");
    let (status, body) = app
        .authed(
            Method::PATCH,
            &unknown,
            &access,
            Some(&json!({"flagged": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "message_not_found");
}

#[tokio::test]
async fn a_deleted_message_leaves_the_list_and_the_counters_and_its_index_is_not_reused() {
    let app = spawn_app().await;
    let (_, access) = app.signup("delete-message@example.com").await;
    let id = app
        .new_conversation(&access, json!({"title": "Edits"}))
        .await;
    let mut stored = Vec::new();
    for text in ["one", "two", "three"] {
        stored.push(
            app.add_message(
                &access,
                &id,
                json!({"role": "user", "content": text, "tokens": 5}),
            )
            .await,
        );
    }
    let path = message_path(&id, &stored[1]);
    let (status, _) = app.authed(Method::DELETE, &path, &access, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let indexes: Vec<i64> = list(&app, &access, &id, "")
        .await
        .iter()
        .map(|m| m["message_index"].as_i64().expect("index"))
        .collect();
    assert_eq!(indexes, [1, 3]);
    let c = conversation_row(&app, &access, &id).await;
    assert_eq!(
        (c["message_count"].as_i64(), c["token_count"].as_i64()),
        (Some(2), Some(10))
    );
    let four = app
        .add_message(&access, &id, json!({"role": "user", "content": "four"}))
        .await;
    assert_eq!(four["message_index"], 4);
    let (status, body) = app.authed(Method::DELETE, &path, &access, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "message_not_found");
}

#[tokio::test]
async fn a_regenerated_answer_replaces_the_one_it_supersedes() {
    let app = spawn_app().await;
    let (_, access) = app.signup("regenerate@example.com").await;
    let id = app
        .new_conversation(&access, json!({"title": "Edits"}))
        .await;
    let question = app
        .add_message(
            &access,
            &id,
            json!({"role": "user", "content": "Capital of Italy?"}),
        )
        .await;
    let first = app
        .add_message(
            &access,
            &id,
            json!({"role": "assistant", "content": "Milan.",
                     "parent_message_id": question["id"]}),
        )
        .await;
    let second = app
        .add_message(
            &access,
            &id,
            json!({"role": "assistant", "content": "Rome.",
                      "parent_message_id": first["id"], "is_regeneration": true}),
        )
        .await;
    assert_eq!(second["is_regeneration"], true);
    assert_eq!(second["parent_message_id"], first["id"]);
    let shown: Vec<Value> = list(&app, &access, &id, "")
        .await
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(shown, [json!("Capital of Italy?"), json!("Rome.")]);
    let all = list(&app, &access, &id, "&include_superseded=true").await;
    assert_eq!(all.len(), 3);
    let (_, window) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}/context?token_budget=1000"),
            &access,
            None,
        )
        .await;
    let in_context: Vec<Value> = window["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(in_context, [json!("Capital of Italy?"), json!("Rome.")]);

    // A parent of another conversation is not found, as every foreign id.
    let elsewhere = app
        .new_conversation(&access, json!({"title": "Edits"}))
        .await;
    let (status, body) = app
        .authed(
            Method::POST,
            &format!("/v1/conversations/{elsewhere}/messages"),
            &access,
            Some(&json!({"role": "assistant", "content": "x", "parent_message_id": first["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "message_not_found");
    // A regeneration that names nothing replaces nothing.
    let lone = app
        .add_message(
            &access,
            &elsewhere,
            json!({"role": "assistant", "content": "y", "is_regeneration": true}),
        )
        .await;
    assert_eq!(lone["is_regeneration"], true);
    assert_eq!(list(&app, &access, &elsewhere, "").await.len(), 1);
}

#[tokio::test]
async fn counters_stay_exact_under_appends_edits_and_deletes_at_once() {
    let app = spawn_app().await;
    let (_, access) = app.signup("mix@example.com").await;
    let id = app
        .new_conversation(&access, json!({"title": "Edits"}))
        .await;
    let mut seeded = Vec::new();
    for i in 0..20 {
        seeded.push(
            app.add_message(
                &access,
                &id,
                json!({"role": "user", "content": format!("seed {i}")}),
            )
            .await,
        );
    }
    let work = (0..60).map(|i| {
        let (app, access, id) = (&app, &access, &id);
        let target = seeded[i % 20].clone();
        async move {
            match i % 3 {
                0 => {
                    app.add_message(
                        access,
                        id,
                        json!({"role": "user", "content": format!("more {i}")}),
                    )
                    .await;
                }
                1 => {
                    let body = json!({"content": format!("edited {i} with several more words")});
                    let (status, _) = app
                        .authed(
                            Method::PATCH,
                            &message_path(id, &target),
                            access,
                            Some(&body),
                        )
                        .await;
                    assert!(
                        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                        "{status}"
                    );
                }
                _ => {
                    let (status, _) = app
                        .authed(Method::DELETE, &message_path(id, &target), access, None)
                        .await;
                    assert!(
                        status == StatusCode::NO_CONTENT || status == StatusCode::NOT_FOUND,
                        "{status}"
                    );
                }
            }
        }
    });
    join_all(work).await;
    let messages = list(&app, &access, &id, "&include_superseded=true").await;
    let c = conversation_row(&app, &access, &id).await;
    assert_eq!(c["message_count"].as_i64(), Some(messages.len() as i64));
    let tokens: i64 = messages
        .iter()
        .map(|m| m["tokens_used"].as_i64().expect("tokens"))
        .sum();
    assert_eq!(c["token_count"].as_i64(), Some(tokens));
    let mut indexes: Vec<i64> = messages
        .iter()
        .map(|m| m["message_index"].as_i64().expect("i"))
        .collect();
    let n = indexes.len();
    indexes.dedup();
    assert_eq!(indexes.len(), n, "no index given twice");
}
