//! Guest → account migration: atomic, idempotent, audited, verifiable.

mod common;

use std::time::Duration;

use common::{assert_error, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "admin-test-token-of-at-least-32-characters";

fn contents(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_string())
        .collect()
}

async fn verify_ok(app: &common::TestApp) {
    let (status, report) = app
        .authed(Method::GET, "/v1/admin/verify", ADMIN, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    let out = app.cli(&["verify"]).await;
    assert!(
        out.status.success(),
        "genesis verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn the_seeds_flow_four_guest_messages_signup_migrate_continue_verify() {
    let app = spawn_app_with(&[("GENESIS__ADMIN__TOKEN", ADMIN)]).await;
    let (status, first) = app
        .post_message(
            "test-guest-001",
            None,
            json!({"role":"user","content":"Hello","timestamp":"2025-12-21T12:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let guest_token = first["guest_token"].as_str().expect("token").to_string();
    app.say(
        "test-guest-001",
        &guest_token,
        "assistant",
        "Hi! How can I help?",
    )
    .await;
    app.say(
        "test-guest-001",
        &guest_token,
        "user",
        "What's the weather?",
    )
    .await;
    app.say("test-guest-001", &guest_token, "assistant", "Sunny.")
        .await;

    let (_, user) = app.signup("seed@example.com").await;
    let (status, result) = app.migrate("test-guest-001", &user, &guest_token).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["already_migrated"], false);
    assert_eq!(result["messages_migrated"], 4);
    assert!(result["migration_id"].is_string() && result["user_id"].is_string());
    let conversation = result["conversation_ids"][0]
        .as_str()
        .expect("conversation")
        .to_string();
    let path = format!("/v1/conversations/{conversation}/messages");
    let (_, page) = app.authed(Method::GET, &path, &user, None).await;
    assert_eq!(
        contents(&page),
        [
            "Hello",
            "Hi! How can I help?",
            "What's the weather?",
            "Sunny."
        ]
    );
    let indexes: Vec<i64> = page["messages"]
        .as_array()
        .expect("m")
        .iter()
        .map(|m| m["message_index"].as_i64().expect("i"))
        .collect();
    assert_eq!(indexes, [1, 2, 3, 4]);
    assert_eq!(
        page["messages"][0]["id"], first["message_id"],
        "ids survive the move"
    );
    assert_eq!(page["messages"][0]["timestamp"], "2025-12-21T12:00:00Z");

    let (status, added) = app
        .authed(
            Method::POST,
            &path,
            &user,
            Some(&json!({"role":"user","content":"And tomorrow?"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(added["message_index"], 5);
    let (_, page) = app.authed(Method::GET, &path, &user, None).await;
    assert_eq!(contents(&page).len(), 5);
    let (status, _) = app
        .authed(
            Method::GET,
            "/conversations/".to_string().as_str(),
            &user,
            None,
        )
        .await;
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
    verify_ok(&app).await;

    let (status, audit) = app
        .authed(
            Method::GET,
            "/v1/admin/migrations?guest_id=test-guest-001",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rows = audit["migrations"].as_array().expect("migrations");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "completed");
    assert_eq!(rows[0]["messages_migrated"], 4);
    assert_eq!(rows[0]["checksum"], result["checksum"]);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM cache_content_mapping WHERE is_synced = TRUE")
            .await,
        4
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM conversation_cache WHERE platform = 'authenticated'")
            .await,
        1
    );
    let (status, _) = app
        .authed(Method::GET, "/v1/admin/verify", "wrong", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn migration_checks_both_tokens_and_is_idempotent_per_user() {
    let app = spawn_app().await;
    let (guest, guest_token) = app.new_guest().await;
    app.say(&guest, &guest_token, "user", "mine").await;
    let (_, alice) = app.signup("alice@example.com").await;
    let (_, bob) = app.signup("bob@example.com").await;

    let (status, body) = app.migrate(&guest, &alice, "0000").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "guest_token_invalid");
    let resp = app
        .client
        .post(app.url(&format!("/v1/guest/migrate/{guest}")))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no guest token");
    let resp = app
        .client
        .post(app.url(&format!("/v1/guest/migrate/{guest}")))
        .header("X-Guest-Token", &guest_token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no user token");

    let (status, first) = app.migrate(&guest, &alice, &guest_token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = app.migrate(&guest, &alice, &guest_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_migrated"], true);
    assert_eq!(again["conversation_ids"], first["conversation_ids"]);
    assert_eq!(again["migration_id"], first["migration_id"]);
    let (status, body) = app.migrate(&guest, &bob, &guest_token).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "guest_already_claimed");

    // The guest id is read-only now: writes and reads name the conversation (its messages are
    // the account's), while the migrate call above stays an idempotent 200.
    let (status, body) = app
        .post_message(
            &guest,
            Some(&guest_token),
            json!({"role":"user","content":"late"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = assert_error(&body, "guest_migrated");
    assert!(
        message.contains(first["conversation_ids"][0].as_str().expect("id")),
        "{message}"
    );
    let (status, body) = app.history(&guest, &guest_token).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let message = assert_error(&body, "guest_migrated");
    assert!(
        message.contains(first["conversation_ids"][0].as_str().expect("id")),
        "{message}"
    );
    let (status, again) = app.migrate(&guest, &alice, &guest_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_migrated"], true);
    // The seed alias works too.
    let resp = app
        .client
        .post(app.url(&format!("/migrate/{guest}")))
        .bearer_auth(&alice)
        .header("X-Guest-Token", &guest_token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn concurrent_migrations_of_one_guest_happen_exactly_once() {
    let app = spawn_app().await;
    let (guest, guest_token) = app.new_guest().await;
    for i in 0..20 {
        app.say(&guest, &guest_token, "user", &format!("m{i}"))
            .await;
    }
    let (_, user) = app.signup("race@example.com").await;
    let calls = (0..10).map(|_| app.migrate(&guest, &user, &guest_token));
    let results = common::join_all(calls).await;
    let fresh = results
        .iter()
        .filter(|(_, b)| b["already_migrated"] == false)
        .count();
    assert_eq!(fresh, 1, "exactly one call migrated");
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["conversation_ids"], results[0].1["conversation_ids"]);
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM conversations").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 20);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM cache_migrations WHERE status = 'completed'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_account_keeps_its_conversations_and_gains_the_guests() {
    let app = spawn_app().await;
    let (_, user) = app.signup("keeper@example.com").await;
    let (_, existing) = app
        .authed(
            Method::POST,
            "/v1/conversations",
            &user,
            Some(&json!({"title":"Old"})),
        )
        .await;
    let existing_path = format!(
        "/v1/conversations/{}/messages",
        existing["id"].as_str().expect("id")
    );
    app.authed(
        Method::POST,
        &existing_path,
        &user,
        Some(&json!({"role":"user","content":"old words"})),
    )
    .await;

    let (guest, guest_token) = app.new_guest().await;
    app.say(&guest, &guest_token, "user", "new words").await;
    // Login carries the guest.
    let resp = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email":"keeper@example.com","password":"correct horse battery","guest_id":guest,"guest_token":guest_token}))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::OK);
    let login: Value = resp.json().await.expect("json");
    assert_eq!(login["migration"]["messages_migrated"], 1);
    let (_, list) = app
        .authed(Method::GET, "/v1/conversations", &user, None)
        .await;
    assert_eq!(list["conversations"].as_array().map(Vec::len), Some(2));
    let (_, old) = app.authed(Method::GET, &existing_path, &user, None).await;
    assert_eq!(contents(&old), ["old words"]);

    // Signup with a bad guest token creates nothing.
    let (other, _) = app.new_guest().await;
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(&json!({"email":"new@example.com","password":"correct horse","guest_id":other,"guest_token":"bad"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE email = 'new@example.com'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_failure_mid_transaction_rolls_everything_back_and_a_retry_succeeds() {
    let app = spawn_app_with(&[
        ("GENESIS_TEST_FAILPOINTS", "migrate_after_messages:1"),
        ("GENESIS__ADMIN__TOKEN", ADMIN),
    ])
    .await;
    let (guest, guest_token) = app.new_guest().await;
    for text in ["a", "b", "c"] {
        app.say(&guest, &guest_token, "user", text).await;
    }
    let (_, user) = app.signup("unlucky@example.com").await;
    let (status, body) = app.migrate(&guest, &user, &guest_token).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM conversations").await,
        0,
        "rolled back"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages").await,
        0,
        "rolled back"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM cache_content_mapping WHERE is_synced = TRUE")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM cache_migrations WHERE status = 'failed'")
            .await,
        1
    );
    // Still a guest: it can write.
    app.say(&guest, &guest_token, "user", "d").await;

    let (status, body) = app.migrate(&guest, &user, &guest_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["messages_migrated"], 4);
    verify_ok(&app).await;
}

#[tokio::test]
async fn sigkill_during_a_burst_of_migrations_leaves_each_complete_or_absent() {
    let mut app = spawn_app().await;
    let (_, user) = app.signup("burst@example.com").await;
    let mut guests = Vec::new();
    for _ in 0..24 {
        let (guest, token) = app.new_guest().await;
        for i in 0..5 {
            app.say(&guest, &token, "user", &format!("{guest} {i}"))
                .await;
        }
        guests.push((guest, token));
    }
    let base = app.base.clone();
    let client = app.client.clone();
    let burst = {
        let guests = guests.clone();
        let user = user.clone();
        tokio::spawn(async move {
            let calls = guests.iter().map(|(g, t)| {
                client
                    .post(format!("{base}/v1/guest/migrate/{g}"))
                    .bearer_auth(&user)
                    .header("X-Guest-Token", t)
                    .send()
            });
            common::join_all(calls).await
        })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    app.kill().await;
    let answered = burst.await.expect("burst");
    app.start().await;

    let mut complete = 0;
    for ((guest, token), answer) in guests.iter().zip(answered) {
        let migrated_count = app
            .count(&format!(
                "SELECT COUNT(*) FROM conversations WHERE origin_guest_id = '{guest}'"
            ))
            .await;
        let audit = app
            .count(&format!("SELECT COUNT(*) FROM cache_migrations WHERE guest_id = '{guest}' AND status = 'completed'"))
            .await;
        assert_eq!(
            migrated_count, audit,
            "{guest}: conversation and audit row together or neither"
        );
        if let Ok(resp) = answer
            && resp.status() == StatusCode::OK
        {
            assert_eq!(migrated_count, 1, "{guest}: acknowledged migration lost");
        }
        if migrated_count == 1 {
            complete += 1;
            let n = app
                .count(&format!(
                    "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                     WHERE c.origin_guest_id = '{guest}'"
                ))
                .await;
            assert_eq!(n, 5, "{guest}: all or nothing");
        } else {
            // Absent: still a guest, and migrating now works.
            let (status, _) = app.migrate(guest, &user, token).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    eprintln!(
        "{complete} of {} migrations completed before the kill",
        guests.len()
    );
    let out = app.cli(&["verify"]).await;
    assert!(
        out.status.success(),
        "verify after crash: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn verify_finds_damage_and_repair_mends_it_idempotently() {
    let mut app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    for text in ["x", "y"] {
        app.say(&guest, &token, "user", text).await;
    }
    let (_, user) = app.signup("mend@example.com").await;
    let (status, _) = app.migrate(&guest, &user, &token).await;
    assert_eq!(status, StatusCode::OK);
    let (other, other_token) = app.new_guest().await;
    app.say(&other, &other_token, "user", "unmigrated").await;
    app.kill().await;

    let db = app.db().await;
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("DELETE FROM cache_content_mapping")
        .await
        .expect("damage ledger");
    db.execute_unprepared("DELETE FROM cache_migrations")
        .await
        .expect("damage audit");
    db.close().await.ok();

    let out = app.cli(&["verify"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify must fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(report.contains("FAIL message_cache_mapped"), "{report}");

    let out = app.cli(&["repair"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(first.contains("3 ledger rows added"), "{first}");
    assert!(first.contains("1 audit rows rebuilt"), "{first}");
    let out = app.cli(&["verify"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = app.cli(&["repair"]).await;
    let second = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        second.contains("0 ledger rows added") && second.contains("0 audit rows rebuilt"),
        "{second}"
    );
    app.start().await;
}
