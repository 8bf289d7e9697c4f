//! A sidebar and a chat view: rename, archive and change a conversation; soft and hard delete;
//! lists by latest activity with status, tag and title filters; message lists by `last=N`,
//! order, index and time bounds; counters exact after a concurrent burst.

mod common;

use common::{TestApp, assert_error, join_all, spawn_app, spawn_app_with};

const ADMIN: &str = "conversations-admin-token-0123456789abcdef";
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn titles(app: &TestApp, access: &str, query: &str) -> Vec<String> {
    let (status, list) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations{query}"),
            access,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn patch(app: &TestApp, access: &str, id: &str, body: Value) -> (StatusCode, Value) {
    app.authed(
        Method::PATCH,
        &format!("/v1/conversations/{id}"),
        access,
        Some(&body),
    )
    .await
}

#[tokio::test]
async fn a_conversation_is_renamed_archived_and_changed() {
    let app = spawn_app().await;
    let (_, access) = app.signup("patch@example.com").await;
    let id = app
        .new_conversation(
            &access,
            json!({"title": "Draft", "description": "old", "temperature": 0.3, "tags": ["a"]}),
        )
        .await;
    let (status, c) = patch(
        &app,
        &access,
        &id,
        json!({"title": "Bread baking", "description": null, "system_prompt": "You bake.",
               "model_used": "gpt-4o", "temperature": 1.5, "max_tokens": 512,
               "tags": ["food", "weekend"], "status": "archived", "is_public": true,
               "is_shared": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["title"], "Bread baking");
    assert!(c.get("description").is_none_or(Value::is_null), "{c}");
    assert_eq!(c["system_prompt"], "You bake.");
    assert_eq!(c["temperature"], 1.5);
    assert_eq!(c["max_tokens"], 512);
    assert_eq!(c["tags"], json!(["food", "weekend"]));
    assert_eq!(c["status"], "archived");
    let (_, read) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}"),
            &access,
            None,
        )
        .await;
    assert_eq!(read, c, "a read shows what the change answered");

    // Absent fields stay; bad values are refused and change nothing.
    let (status, c) = patch(&app, &access, &id, json!({"status": "active"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (c["title"].as_str(), c["status"].as_str()),
        (Some("Bread baking"), Some("active"))
    );
    for bad in [json!({"temperature": 3}), json!({"max_tokens": 0})] {
        let (status, body) = patch(&app, &access, &id, bad.clone()).await;
        assert!(status.is_client_error(), "{bad} → {status} {body}");
    }
    let (status, _) = patch(&app, &access, &id, json!({"status": "deleted"})).await;
    assert!(status.is_client_error());
    let (_, c) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}"),
            &access,
            None,
        )
        .await;
    assert_eq!(c["temperature"], 1.5);

    // Someone else's: 404, unchanged.
    let (_, other) = app.signup("patch-other@example.com").await;
    let (status, body) = patch(&app, &other, &id, json!({"title": "mine now"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "conversation_not_found");
}

#[tokio::test]
async fn lists_follow_activity_and_filter_by_status_tag_and_title() {
    let app = spawn_app().await;
    let (_, access) = app.signup("sidebar@example.com").await;
    let bread = app
        .new_conversation(
            &access,
            json!({"title": "Bread 100% rye", "tags": ["food"]}),
        )
        .await;
    let _tax = app
        .new_conversation(&access, json!({"title": "Taxes", "tags": ["money"]}))
        .await;
    let trip = app
        .new_conversation(
            &access,
            json!({"title": "Trip to Rome", "tags": ["travel", "food"]}),
        )
        .await;
    assert_eq!(
        titles(&app, &access, "").await,
        ["Trip to Rome", "Taxes", "Bread 100% rye"]
    );

    // A message moves its conversation to the top.
    app.add_message(
        &access,
        &bread,
        json!({"role": "user", "content": "How long to proof?"}),
    )
    .await;
    assert_eq!(
        titles(&app, &access, "").await,
        ["Bread 100% rye", "Trip to Rome", "Taxes"]
    );

    // Pages continue in the same order.
    let (_, first) = app
        .authed(Method::GET, "/v1/conversations?limit=2", &access, None)
        .await;
    let cursor = first["next_cursor"].as_str().expect("more follow");
    let rest = titles(
        &app,
        &access,
        &format!("?limit=2&cursor={}", urlencode(cursor)),
    )
    .await;
    assert_eq!(rest, ["Taxes"]);
    let (status, body) = app
        .authed(
            Method::GET,
            "/v1/conversations?cursor=nonsense",
            &access,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid_cursor");

    patch(&app, &access, &trip, json!({"status": "archived"})).await;
    assert_eq!(
        titles(&app, &access, "?status=archived").await,
        ["Trip to Rome"]
    );
    assert_eq!(
        titles(&app, &access, "?status=active").await,
        ["Bread 100% rye", "Taxes"]
    );
    assert_eq!(
        titles(&app, &access, "?tag=food").await,
        ["Bread 100% rye", "Trip to Rome"]
    );
    assert_eq!(
        titles(&app, &access, "?tag=foo").await,
        Vec::<String>::new()
    );
    assert_eq!(titles(&app, &access, "?q=rOMe").await, ["Trip to Rome"]);
    assert_eq!(titles(&app, &access, "?q=100%25").await, ["Bread 100% rye"]);
    assert_eq!(titles(&app, &access, "?q=0_r").await, Vec::<String>::new());
    assert_eq!(
        titles(&app, &access, "?q=E&tag=food&status=active").await,
        ["Bread 100% rye"]
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_soft_delete_hides_and_a_hard_delete_erases_every_layer() {
    let app = spawn_app().await;
    let (_, access) = app.signup("delete@example.com").await;
    let soft = app
        .new_conversation(&access, json!({"title": "Soft"}))
        .await;
    app.add_message(
        &access,
        &soft,
        json!({"role": "user", "content": "keep me for now"}),
    )
    .await;
    let path = format!("/v1/conversations/{soft}");
    let (status, _) = app.authed(Method::DELETE, &path, &access, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::GET, format!("{path}/messages"), None),
        (
            Method::POST,
            format!("{path}/messages"),
            Some(json!({"role": "user", "content": "hi"})),
        ),
        (Method::PATCH, path.clone(), Some(json!({"title": "back?"}))),
        (Method::GET, format!("{path}/export"), None),
        (Method::DELETE, path.clone(), None),
    ] {
        let (status, body) = app.authed(method.clone(), &p, &access, body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {p}: {body}");
    }
    assert!(titles(&app, &access, "").await.is_empty());
    let (_, search) = app
        .authed(
            Method::GET,
            "/v1/search?q=keep%20me&mode=text",
            &access,
            None,
        )
        .await;
    assert_eq!(search["results"], json!([]), "{search}");
    // The rows are still there until erased…
    // (Ids are compared through other columns: SQLite stores them as bytes.)
    let rows = "SELECT COUNT(*) FROM messages WHERE content = 'keep me for now'";
    assert_eq!(app.count(rows).await, 1);
    // …and a hard delete erases them, deleted or not.
    let (status, _) = app
        .authed(Method::DELETE, &format!("{path}?hard=true"), &access, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.count(rows).await, 0);
    let convs = "SELECT COUNT(*) FROM conversations WHERE title = 'Soft'";
    assert_eq!(app.count(convs).await, 0);

    // A conversation that came from a guest takes the guest's rows with it.
    let (guest_id, token) = app.new_guest().await;
    app.say(&guest_id, &token, "user", "a secret recipe").await;
    app.say(&guest_id, &token, "assistant", "flour and patience")
        .await;
    let (status, moved) = app.migrate(&guest_id, &access, &token).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let id = moved["conversation_ids"][0]
        .as_str()
        .expect("id")
        .to_string();
    let guest_rows = format!(
        "SELECT COUNT(*) FROM message_cache WHERE conversation_id IN \
         (SELECT id FROM conversation_cache WHERE guest_id = '{guest_id}')"
    );
    assert_eq!(app.count(&guest_rows).await, 2);
    let audit = format!("SELECT COUNT(*) FROM cache_migrations WHERE guest_id = '{guest_id}'");
    assert_eq!(app.count(&audit).await, 1);
    let (status, _) = app
        .authed(
            Method::DELETE,
            &format!("/v1/conversations/{id}?hard=true"),
            &access,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.count(&guest_rows).await, 0);
    let ledger = format!("SELECT COUNT(*) FROM conversation_cache WHERE guest_id = '{guest_id}'");
    assert_eq!(app.count(&ledger).await, 0);
    let messages =
        "SELECT COUNT(*) FROM messages WHERE content IN ('a secret recipe', 'flour and patience')";
    assert_eq!(app.count(messages).await, 0);
    let moved = format!("SELECT COUNT(*) FROM conversations WHERE origin_guest_id = '{guest_id}'");
    assert_eq!(app.count(&moved).await, 0);
    let (status, _) = app.history(&guest_id, &token).await;
    assert!(
        status.is_client_error(),
        "the guest's copy is gone too: {status}"
    );
    // The audit row of the migration stays.
    assert_eq!(app.count(&audit).await, 1);
}

/// (message_index, content) of a list.
fn shown(list: &Value) -> Vec<(i64, String)> {
    list["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["message_index"].as_i64().expect("index"),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn message_lists_serve_the_newest_ranges_and_both_orders() {
    let app = spawn_app().await;
    let (_, access) = app.signup("lists@example.com").await;
    let id = app
        .new_conversation(&access, json!({"title": "Long"}))
        .await;
    for i in 1..=10 {
        let at = format!("2026-01-01T10:{i:02}:00Z");
        app.add_message(
            &access,
            &id,
            json!({"role": "user", "content": format!("m{i}"), "timestamp": at}),
        )
        .await;
    }
    let get = |query: String| {
        let app = &app;
        let access = &access;
        let id = &id;
        async move {
            let path = format!("/v1/conversations/{id}/messages{query}");
            let (status, list) = app.authed(Method::GET, &path, access, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {list}");
            list
        }
    };
    let indexes = |list: &Value| shown(list).into_iter().map(|(i, _)| i).collect::<Vec<_>>();

    let last = get("?last=3".into()).await;
    assert_eq!(indexes(&last), [8, 9, 10]);
    assert!(last.get("next_cursor").is_none_or(Value::is_null));
    assert_eq!(indexes(&get("?last=3&order=desc".into()).await), [10, 9, 8]);
    assert_eq!(
        indexes(&get("?last=3&before_index=5".into()).await),
        [2, 3, 4]
    );
    assert_eq!(indexes(&get("?after_index=7".into()).await), [8, 9, 10]);
    assert_eq!(
        indexes(&get("?after_index=2&before_index=6".into()).await),
        [3, 4, 5]
    );

    // Newest first, a page at a time.
    let page = get("?order=desc&limit=4".into()).await;
    assert_eq!(indexes(&page), [10, 9, 8, 7]);
    let cursor = page["next_cursor"].as_str().expect("more");
    let next = get(format!("?order=desc&limit=4&cursor={cursor}")).await;
    assert_eq!(indexes(&next), [6, 5, 4, 3]);

    // Time bounds: since inclusive, until exclusive.
    let window = get("?since=2026-01-01T10:03:00Z&until=2026-01-01T10:06:00Z".into()).await;
    assert_eq!(indexes(&window), [3, 4, 5]);
    let (status, _) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}/messages?since=yesterday"),
            &access,
            None,
        )
        .await;
    assert!(status.is_client_error());
    let (status, _) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}/messages?last=0"),
            &access,
            None,
        )
        .await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn counters_stay_exact_under_a_concurrent_burst() {
    let app = spawn_app().await;
    let (_, access) = app.signup("burst@example.com").await;
    let id = app
        .new_conversation(&access, json!({"title": "Burst"}))
        .await;
    let writes = (0..40).map(|i| {
        let app = &app;
        let access = &access;
        let id = &id;
        async move {
            app.add_message(
                access,
                id,
                json!({"role": "user", "content": format!("burst {i}"), "tokens": i}),
            )
            .await
        }
    });
    let stored = join_all(writes).await;
    let (_, c) = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}"),
            &access,
            None,
        )
        .await;
    assert_eq!(c["message_count"], 40);
    assert_eq!(c["token_count"], (0..40).sum::<i64>());
    let newest = stored
        .iter()
        .map(|m| m["created_at"].as_str().expect("created_at").to_string())
        .max()
        .expect("some");
    assert_eq!(c["last_message_at"].as_str(), Some(newest.as_str()));
    let list = app
        .authed(
            Method::GET,
            &format!("/v1/conversations/{id}/messages?limit=1000"),
            &access,
            None,
        )
        .await
        .1;
    let indexes: Vec<i64> = shown(&list).into_iter().map(|(i, _)| i).collect();
    assert_eq!(indexes, (1..=40).collect::<Vec<_>>(), "gapless");
}

#[tokio::test]
async fn a_guest_that_never_wrote_leaves_no_empty_conversation() {
    let app = spawn_app_with(&[("GENESIS__ADMIN__TOKEN", ADMIN)]).await;
    let (guest_id, token) = app.new_guest().await;
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(
            &json!({"email": "empty-guest@example.com", "password": "correct horse battery",
                      "guest_id": guest_id, "guest_token": token}),
        )
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let session: Value = resp.json().await.expect("json");
    assert_eq!(
        session["migration"]["conversation_ids"],
        json!([]),
        "{session}"
    );
    assert_eq!(session["migration"]["messages_migrated"], 0);
    let access = session["access_token"].as_str().expect("token").to_string();
    assert!(
        titles(&app, &access, "").await.is_empty(),
        "no empty conversation"
    );
    let audit = format!(
        "SELECT COUNT(*) FROM cache_migrations WHERE guest_id = '{guest_id}' AND status = 'completed'"
    );
    assert_eq!(app.count(&audit).await, 1, "the call is audited");

    // The guest is still a guest: what it writes now is taken along by the next migration.
    app.say(&guest_id, &token, "user", "now I have something to say")
        .await;
    let (status, moved) = app.migrate(&guest_id, &access, &token).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["messages_migrated"], 1);
    assert_eq!(titles(&app, &access, "").await.len(), 1);
    let (status, verify) = app
        .authed(Method::GET, "/v1/admin/verify", ADMIN, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{verify}");
    assert_eq!(verify["ok"], true, "the audit trail checks out: {verify}");
}
