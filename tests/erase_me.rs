//! "Erase me": `DELETE /v1/users/me` removes the user and everything they own from every table
//! and layer, keeps the migration audit with hashed ids, and leaves other users untouched.

mod common;

use std::{collections::HashSet, time::Duration};

use common::{TestApp, assert_error, spawn_app};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn erase(app: &TestApp, access: &str, body: Value) -> (StatusCode, Value) {
    app.authed(Method::DELETE, "/v1/users/me", access, Some(&body))
        .await
}

/// Every content hash some stored message still uses.
async fn hashes_in_use(app: &TestApp) -> HashSet<String> {
    let db = app.db().await;
    let cached = entity::message_cache::Entity::find()
        .all(&db)
        .await
        .expect("cache");
    let kept = entity::messages::Entity::find()
        .all(&db)
        .await
        .expect("messages");
    cached
        .into_iter()
        .map(|m| m.message_hash)
        .chain(kept.into_iter().map(|m| m.content_hash))
        .collect()
}

async fn search_text_hashes(app: &TestApp) -> HashSet<String> {
    let db = app.db().await;
    let stmt = Statement::from_string(
        db.get_database_backend(),
        "SELECT content_hash FROM search_text",
    );
    db.query_all_raw(stmt)
        .await
        .expect("search_text")
        .iter()
        .map(|row| row.try_get::<String>("", "content_hash").expect("hash"))
        .collect()
}

#[tokio::test]
async fn erasing_an_account_leaves_no_row_of_it_in_any_table() {
    let app = spawn_app().await;
    // Alice chats as a guest, signs up taking the guest along, and writes in her account.
    let (guest, guest_token) = app.new_guest().await;
    app.say(&guest, &guest_token, "user", "shared words here")
        .await;
    app.say(&guest, &guest_token, "assistant", "alice guest only answer")
        .await;
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(&json!({"email": "alice@example.com", "password": PASSWORD,
                      "guest_id": guest, "guest_token": guest_token}))
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let session: Value = resp.json().await.expect("json");
    let alice = session["access_token"].as_str().expect("token").to_string();
    let alice_id: Uuid = session["user"]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let moved = session["migration"]["conversation_ids"][0]
        .as_str()
        .expect("conversation")
        .to_string();
    let path = format!("/v1/conversations/{moved}/messages");
    let (status, _) = app
        .authed(
            Method::POST,
            &path,
            &alice,
            Some(&json!({"role": "user", "content": "alice account only"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Bob shares one message's words and must keep everything.
    let (_, bob) = app.signup("bob@example.com").await;
    let (_, conversation) = app
        .authed(
            Method::POST,
            "/v1/conversations",
            &bob,
            Some(&json!({"title": "Bob's"})),
        )
        .await;
    let bob_path = format!(
        "/v1/conversations/{}/messages",
        conversation["id"].as_str().expect("id")
    );
    for text in ["shared words here", "bob only words"] {
        let (status, _) = app
            .authed(
                Method::POST,
                &bob_path,
                &bob,
                Some(&json!({"role": "user", "content": text})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // Vectors and usage rows are written off the request path: wait for them.
    assert!(
        app.eventually(Duration::from_secs(20), || async {
            app.count("SELECT COUNT(*) FROM cache_embeddings").await >= 4
                && app.count("SELECT COUNT(*) FROM usage_metrics").await >= 2
        })
        .await,
        "embeddings and usage written"
    );
    let db = app.db().await;
    let alice_rows: Vec<Uuid> = entity::messages::Entity::find()
        .filter(entity::messages::Column::UserId.eq(alice_id))
        .all(&db)
        .await
        .expect("messages")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        alice_rows.len(),
        3,
        "two migrated, one written in the account"
    );
    // An edited message leaves its earlier text in message_versions: that goes too.
    let alice_message = entity::messages::Entity::find_by_id(alice_rows[0])
        .one(&db)
        .await
        .expect("read")
        .expect("alice's message");
    let (status, edited) = app
        .authed(
            Method::PATCH,
            &format!(
                "/v1/conversations/{}/messages/{}",
                alice_message.conversation_id, alice_message.id
            ),
            &alice,
            Some(&json!({"content": "an edited text of alice"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(app.count("SELECT COUNT(*) FROM message_versions").await, 1);
    let guest_rows = app
        .count(&format!(
            "SELECT COUNT(*) FROM conversation_cache WHERE guest_id = '{guest}'"
        ))
        .await;
    assert_eq!(guest_rows, 1);

    // Wrong or missing password: nothing happens.
    let (status, body) = erase(&app, &alice, json!({"password": "not the password"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = erase(&app, &alice, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(assert_error(&body, "invalid_credentials").contains("password"));
    let (status, body) = erase(&app, &alice, json!({"password": PASSWORD})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Her tokens and password no longer work; her guest is gone too.
    let (status, body) = app.authed(Method::GET, "/v1/users/me", &alice, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let resp = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_error(&resp.json().await.expect("json"), "invalid_credentials");
    let (status, _) = app.history(&guest, &guest_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Every table.
    let users = entity::users::Entity::find().all(&db).await.expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].email.as_deref(), Some("bob@example.com"));
    let conversations = entity::conversations::Entity::find()
        .all(&db)
        .await
        .expect("conversations");
    assert!(conversations.iter().all(|c| c.user_id != alice_id));
    assert_eq!(conversations.len(), 1);
    let messages = entity::messages::Entity::find()
        .all(&db)
        .await
        .expect("messages");
    assert!(
        messages
            .iter()
            .all(|m| m.user_id != alice_id && !alice_rows.contains(&m.id))
    );
    assert_eq!(messages.len(), 2, "bob's two");
    let alice_text = alice_id.to_string();
    for sql in [
        format!(
            "SELECT COUNT(*) FROM conversation_cache WHERE guest_id = '{guest}' OR user_id = '{alice_text}'"
        ),
        "SELECT COUNT(*) FROM message_cache".to_string(),
        "SELECT COUNT(*) FROM message_versions".to_string(),
        "SELECT COUNT(*) FROM cache_content_mapping".to_string(),
        format!("SELECT COUNT(*) FROM usage_metrics WHERE user_id IN ('{guest}', '{alice_text}')"),
        "SELECT COUNT(*) FROM refresh_tokens WHERE user_id NOT IN (SELECT id FROM users)"
            .to_string(),
        format!(
            "SELECT COUNT(*) FROM cache_migrations WHERE user_id = '{alice_text}' OR guest_id = '{guest}'"
        ),
    ] {
        assert_eq!(app.count(&sql).await, 0, "{sql}");
    }
    assert!(
        app.count("SELECT COUNT(*) FROM usage_metrics").await >= 1,
        "bob's usage stays"
    );
    // The audit row stays, about hashes now.
    let audit = format!(
        "SELECT COUNT(*) FROM cache_migrations WHERE user_id = '{}' AND guest_id = '{}' AND status = 'completed'",
        sha256_hex(&alice_text),
        sha256_hex(&guest)
    );
    assert_eq!(app.count(&audit).await, 1, "the audit row, anonymised");
    // Vectors and search text: exactly those a remaining message uses (bob's shared one kept).
    let in_use = hashes_in_use(&app).await;
    assert_eq!(in_use.len(), 2);
    let vectors: HashSet<String> = entity::cache_embeddings::Entity::find()
        .all(&db)
        .await
        .expect("vectors")
        .into_iter()
        .map(|e| e.content_hash)
        .collect();
    assert_eq!(
        vectors, in_use,
        "vectors of erased content gone, shared ones kept"
    );
    assert_eq!(search_text_hashes(&app).await, in_use);
    // cache_metrics holds per-minute hit counters with no user or guest in them: nothing to erase.
    // Bob is untouched.
    let (status, page) = app.authed(Method::GET, &bob_path, &bob, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(2));
}

fn idp_token(sub: &str, issued_secs_ago: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": sub, "aud": "authenticated", "exp": now + 3600,
                        "iat": now - issued_secs_ago});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"idp-secret"),
    )
    .expect("sign")
}

#[tokio::test]
async fn an_outside_provider_user_erases_with_a_recent_sign_in() {
    let app = common::spawn_app_with(&[
        ("GENESIS__AUTH__EXTERNAL_ALGORITHM", "HS256"),
        ("GENESIS__AUTH__EXTERNAL_SECRET", "idp-secret"),
    ])
    .await;
    let stale = idp_token("idp-user-9", 600);
    let (status, _) = app
        .authed(
            Method::POST,
            "/v1/conversations",
            &stale,
            Some(&json!({"title": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = erase(&app, &stale, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(assert_error(&body, "forbidden").contains("sign in again"));
    assert_eq!(app.count("SELECT COUNT(*) FROM conversations").await, 1);
    let fresh = idp_token("idp-user-9", 5);
    let (status, body) = erase(&app, &fresh, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(app.count("SELECT COUNT(*) FROM conversations").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}
