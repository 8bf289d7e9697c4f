//! Guest chat, black-box: the real server over real HTTP.

mod common;

use std::time::Duration;

use common::{assert_error, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_guest_session_gives_an_unguessable_id_and_a_token_that_works() {
    let app = spawn_app().await;
    let resp = app
        .request(Method::POST, "/v1/guest/sessions", None, None)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.expect("json");
    let guest_id = body["guest_id"].as_str().expect("guest_id");
    let token = body["guest_token"].as_str().expect("guest_token");
    assert!(
        guest_id.len() >= 32,
        "id {guest_id} is too short to be unguessable"
    );
    assert!(body["expires_at"].as_str().is_some_and(|t| t.contains('T')));
    let (second, _) = app.new_guest().await;
    assert_ne!(second, guest_id);

    let (status, history) = app.history(guest_id, token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["messages"], json!([]));

    let ack = app.say(guest_id, token, "user", "hello").await;
    assert_eq!(ack["sequence"], 1);
    assert_eq!(ack["duplicate"], false);
    assert!(
        ack.get("guest_token").is_none(),
        "token is only issued when an id is claimed"
    );

    // Without the token the server-chosen id is not writable.
    let (status, body) = app
        .post_message(guest_id, None, json!({"role":"user","content":"sneaky"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "guest_token_required");
}

#[tokio::test]
async fn the_first_write_claims_a_client_chosen_id_and_then_the_token_is_required() {
    let app = spawn_app().await;
    let resp = app
        .request(
            Method::POST,
            "/v1/guest/chat/test-guest-001",
            None,
            Some(&json!({"role":"user","content":"Test","timestamp":"2025-12-21T12:00:00Z"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let header_token = resp
        .headers()
        .get("x-guest-token")
        .expect("X-Guest-Token header")
        .to_str()
        .expect("ascii")
        .to_string();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["guest_token"], header_token.as_str());
    assert_eq!(body["sequence"], 1);
    assert_eq!(body["duplicate"], false);
    assert!(body["message_id"].as_str().is_some());
    assert!(body["conversation_id"].as_str().is_some());

    // A second client without the token can neither write nor read.
    let (status, body) = app
        .post_message(
            "test-guest-001",
            None,
            json!({"role":"user","content":"mine now"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "guest_token_required");
    let resp = app
        .request(Method::GET, "/v1/guest/chat/test-guest-001", None, None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The token works as X-Guest-Token and as a bearer token.
    app.say("test-guest-001", &header_token, "assistant", "Hi!")
        .await;
    let resp = app
        .client
        .get(app.url("/v1/guest/chat/test-guest-001"))
        .bearer_auth(&header_token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let history: Value = resp.json().await.expect("json");
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_tampered_or_foreign_token_is_refused() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let (other, other_token) = app.new_guest().await;
    app.say(&guest, &token, "user", "secret plans").await;

    let mut tampered = token.clone().into_bytes();
    tampered[5] = if tampered[5] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for bad in [tampered.as_str(), other_token.as_str(), "garbage", ""] {
        let (status, body) = app.history(&guest, bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {bad:?}");
        assert!(
            body["error"]["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("guest_token"))
        );
        let (status, _) = app
            .post_message(&guest, Some(bad), json!({"role":"user","content":"x"}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {bad:?}");
    }
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(1));
    let (_, history) = app.history(&other, &other_token).await;
    assert_eq!(history["messages"], json!([]));
}

#[tokio::test]
async fn a_retried_message_is_not_stored_twice() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let msg = json!({"role":"user","content":"ok","timestamp":"2025-12-21T12:00:00.123456789Z"});
    let (status, first) = app.post_message(&guest, Some(&token), msg.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, retry) = app.post_message(&guest, Some(&token), msg.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["message_id"], first["message_id"]);
    assert_eq!(retry["sequence"], first["sequence"]);

    // The same instant written with another offset is the same timestamp.
    let same_instant =
        json!({"role":"user","content":"ok","timestamp":"2025-12-21T13:00:00.123456Z"});
    let (status, _) = app.post_message(&guest, Some(&token), same_instant).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a different instant is a new message"
    );
    let offset =
        json!({"role":"user","content":"ok","timestamp":"2025-12-21T14:00:00.123456+02:00"});
    let (status, body) = app.post_message(&guest, Some(&token), offset).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, history) = app.history(&guest, &token).await;
    let seqs: Vec<i64> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["sequence"].as_i64().expect("sequence"))
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

#[tokio::test]
async fn the_same_words_at_another_time_are_a_new_message() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    for (i, ts) in ["2025-12-21T12:00:00Z", "2025-12-21T12:00:01Z"]
        .iter()
        .enumerate()
    {
        let (status, body) = app
            .post_message(
                &guest,
                Some(&token),
                json!({"role":"user","content":"ok","timestamp":ts}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["sequence"], i as i64 + 1);
    }
    // Without a timestamp or key, typing "ok" twice means it twice.
    app.say(&guest, &token, "user", "ok").await;
    app.say(&guest, &token, "user", "ok").await;
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn an_idempotency_key_makes_retries_safe() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let send = |content: &'static str| {
        app.client
            .post(app.url(&format!("/v1/guest/chat/{guest}")))
            .header("X-Guest-Token", &token)
            .header("Idempotency-Key", "retry-42")
            .json(&json!({"role":"user","content":content}))
            .send()
    };
    let first = send("hello").await.expect("send");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("json");
    let again = send("hello").await.expect("send");
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["message_id"], first["message_id"]);
    assert_eq!(again["duplicate"], true);

    let reused = send("something else").await.expect("send");
    assert_eq!(reused.status(), StatusCode::CONFLICT);
    let body: Value = reused.json().await.expect("json");
    assert_error(&body, "idempotency_key_reused");
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn forty_parallel_writes_are_all_stored_with_sequences_1_to_40() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let writes = (0..40).map(|i| {
        let app = &app;
        let guest = guest.clone();
        let token = token.clone();
        async move {
            app.post_message(
                &guest,
                Some(&token),
                json!({"role":"user","content":format!("message {i}")}),
            )
            .await
        }
    });
    let results = common::join_all(writes).await;
    let mut acked: Vec<i64> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            body["sequence"].as_i64().expect("sequence")
        })
        .collect();
    acked.sort_unstable();
    assert_eq!(acked, (1..=40).collect::<Vec<i64>>());

    let (_, history) = app.history(&guest, &token).await;
    let messages = history["messages"].as_array().expect("messages");
    let seqs: Vec<i64> = messages
        .iter()
        .map(|m| m["sequence"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<i64>>());
    let mut contents: Vec<String> = messages
        .iter()
        .map(|m| m["content"].as_str().expect("content").to_string())
        .collect();
    contents.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("message {i}")).collect();
    expected.sort();
    assert_eq!(contents, expected);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM message_cache").await,
        40,
        "stored exactly once each"
    );
}

#[tokio::test]
async fn history_comes_in_order_from_l1_and_from_sql_after_a_restart() {
    let mut app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let said = ["first", "second", "third"];
    for (i, text) in said.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        app.say(&guest, &token, role, text).await;
    }
    let (status, history) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["guest_id"], guest.as_str());
    let conversation_id = history["conversation_id"].clone();
    let expect_messages = |history: &Value| {
        let messages = history["messages"].as_array().expect("messages");
        let got: Vec<(&str, i64, &str)> = messages
            .iter()
            .map(|m| {
                (
                    m["content"].as_str().expect("content"),
                    m["sequence"].as_i64().expect("sequence"),
                    m["role"].as_str().expect("role"),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("first", 1, "user"),
                ("second", 2, "assistant"),
                ("third", 3, "user")
            ]
        );
        for m in messages {
            assert!(m["id"].as_str().is_some() && m["timestamp"].as_str().is_some());
        }
    };
    expect_messages(&history);
    assert_eq!(history["source"], "l1");
    app.restart().await;
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["conversation_id"], conversation_id);
    expect_messages(&history);
    if common::backends() == "sqlite+memory" {
        // The in-process cache dies with the process: the next read comes from SQL, then L1.
        assert_eq!(history["source"], "l2");
    } else {
        // Redis outlives the process.
        assert_eq!(history["source"], "l1");
    }
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["source"], "l1");
    expect_messages(&history);
}

#[tokio::test]
async fn an_unknown_guest_is_404_with_a_valid_shape() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "user", "hi").await;
    // A valid token for an id that was never written is impossible to forge; use a deleted one.
    let resp = app
        .request(
            Method::DELETE,
            &format!("/v1/guest/chat/{guest}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, body) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "guest_not_found");
}

#[tokio::test]
async fn delete_erases_the_guest_from_every_layer() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let (keep, keep_token) = app.new_guest().await;
    app.say(&guest, &token, "user", "forget me").await;
    app.say(&guest, &token, "assistant", "ok").await;
    app.say(&keep, &keep_token, "user", "keep me").await;
    app.history(&guest, &token).await; // warm L1

    let resp = app
        .request(
            Method::DELETE,
            &format!("/v1/guest/chat/{guest}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "erasing needs the token"
    );
    let resp = app
        .request(
            Method::DELETE,
            &format!("/v1/guest/chat/{guest}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let (status, _) = app.history(&guest, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not served from L1 either");
    let q = |table: &str| format!("SELECT COUNT(*) FROM {table}");
    assert_eq!(app.count(&q("message_cache")).await, 1);
    assert_eq!(app.count(&q("cache_content_mapping")).await, 1);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM conversation_cache WHERE guest_id = '{guest}'"
        ))
        .await,
        0
    );
    let (_, kept) = app.history(&keep, &keep_token).await;
    assert_eq!(kept["messages"][0]["content"], "keep me");
    let resp = app
        .request(
            Method::DELETE,
            &format!("/v1/guest/chat/{guest}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error_and_stores_nothing() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let path = format!("/v1/guest/chat/{guest}");
    let too_big = "a".repeat(65537);
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"role":"user","content":""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "content_empty",
        ),
        (
            json!({"role":"user","content":"  \n"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "content_empty",
        ),
        (
            json!({"role":"user","content":too_big}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_large",
        ),
        (
            json!({"role":"user","content":"a\u{0}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "content_invalid",
        ),
        (
            json!({"role":"robot","content":"x"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"content":"x"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"role":"user","content":42}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"role":"user","content":"x","timestamp":"yesterday"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"role":"user","content":"x","content_type":"html"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!(["not", "an", "object"]),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (body, status, code) in cases {
        let resp = app
            .request(Method::POST, &path, Some(&token), Some(&body))
            .await;
        assert_eq!(resp.status(), status, "for {body}");
        assert!(resp.headers().contains_key("x-request-id"));
        let got: Value = resp.json().await.expect("error body is JSON");
        assert_error(&got, code);
    }
    // Exactly the limit is fine.
    app.say(&guest, &token, "user", &"b".repeat(65536)).await;

    let raw = |bytes: Vec<u8>| {
        app.client
            .post(app.url(&path))
            .header("X-Guest-Token", &token)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
    };
    for bytes in [
        b"{\"role\":\"user\",\"content\":\"\xff\xfe\"}".to_vec(),
        b"{\"role\":\"user\",".to_vec(),
        b"".to_vec(),
    ] {
        let resp = raw(bytes.clone()).await.expect("send");
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
        let got: Value = resp.json().await.expect("json");
        assert_error(&got, "bad_request");
    }
    let (status, body) = app
        .post_message(
            "bad id!",
            Some(&token),
            json!({"role":"user","content":"x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid_guest_id");
    let long_id = "a".repeat(129);
    let (status, _) = app
        .post_message(&long_id, None, json!({"role":"user","content":"x"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(1),
        "only the valid one"
    );
}

#[tokio::test]
async fn hostile_text_is_stored_and_returned_byte_for_byte() {
    let mut app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let texts = [
        "'; DROP TABLE message_cache; --",
        "<script>alert('x')</script> & <b>bold</b>",
        "emoji 👩‍👩‍👧‍👦 🇺🇦 and ZWJ",
        "\u{202E}right-to-left override\u{200F} مرحبا שלום",
        "tabs\tand\r\nnewlines\n\u{1}\u{1f} control",
        "backslash \\ quote \" unicode escape \\u0000 literal",
        "  leading and trailing spaces  ",
    ];
    for text in texts {
        app.say(&guest, &token, "user", text).await;
    }
    let check = |history: &Value| {
        let got: Vec<&str> = history["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["content"].as_str().expect("content"))
            .collect();
        assert_eq!(got, texts);
    };
    check(&app.history(&guest, &token).await.1);
    app.restart().await;
    check(&app.history(&guest, &token).await.1);
}

#[tokio::test]
async fn the_seed_paths_work_as_aliases() {
    let app = spawn_app().await;
    let resp = app
        .request(
            Method::POST,
            "/chat/test-guest-001",
            None,
            Some(&json!({"role":"user","content":"Test","timestamp":"2025-12-21T12:00:00Z"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let token = resp.headers()["x-guest-token"]
        .to_str()
        .expect("ascii")
        .to_string();
    let resp = app
        .request(Method::GET, "/chat/test-guest-001", Some(&token), None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["messages"][0]["content"], "Test");
    assert_eq!(body["messages"][0]["timestamp"], "2025-12-21T12:00:00Z");
    let (_, same) = app.history("test-guest-001", &token).await;
    assert_eq!(same["messages"], body["messages"]);
}

#[tokio::test]
async fn guest_sessions_are_rate_limited_per_address() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_SESSIONS_PER_IP_PER_HOUR", "3")]).await;
    for _ in 0..3 {
        app.new_guest().await;
    }
    let resp = app
        .request(Method::POST, "/v1/guest/sessions", None, None)
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry_after));
    let body: Value = resp.json().await.expect("json");
    assert_error(&body, "rate_limited");
}

#[tokio::test]
async fn zero_means_no_session_limit() {
    let app = spawn_app_with(&[("GENESIS__LIMITS__GUEST_SESSIONS_PER_IP_PER_HOUR", "0")]).await;
    for _ in 0..70 {
        app.new_guest().await;
    }
}

#[tokio::test]
async fn a_write_fills_every_cache_table_and_counters_are_flushed_in_batches() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    app.say(&guest, &token, "system", "You are helpful.").await;
    app.say(
        &guest,
        &token,
        "user",
        "What is the capital of France?\nThanks",
    )
    .await;
    app.say(&guest, &token, "assistant", "Paris.").await;
    app.say(&guest, &token, "user", "And Spain?").await;

    let db = app.db().await;
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT title, platform, message_count, conversation_hash, user_id, migration_version \
                 FROM conversation_cache WHERE guest_id = '{guest}'"
            ),
        ))
        .await
        .expect("query")
        .expect("row");
    let title: String = row.try_get("", "title").expect("title");
    assert_eq!(title, "What is the capital of France?");
    assert_eq!(
        row.try_get::<String>("", "platform").expect("platform"),
        "guest"
    );
    assert_eq!(row.try_get::<i64>("", "message_count").expect("count"), 4);
    assert_eq!(row.try_get::<String>("", "user_id").expect("user"), guest);
    assert_eq!(
        row.try_get::<String>("", "migration_version").expect("v"),
        "1.0"
    );
    let hash: String = row.try_get("", "conversation_hash").expect("hash");
    assert_eq!(hash.len(), 64, "SHA-256 hex");

    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT message_hash FROM message_cache WHERE content = 'Paris.'".to_string(),
        ))
        .await
        .expect("query")
        .expect("row");
    let md5: String = row.try_get("", "message_hash").expect("hash");
    assert_eq!(
        md5, "0bdd0a2b6eb2ffc5a824f2a7b3c1bee1",
        "MD5 of the content"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM cache_content_mapping WHERE user_id = '{guest}' \
             AND cache_type = 'message' AND is_synced = false"
        ))
        .await,
        4
    );
    db.close().await.ok();

    // Counters reach usage_metrics within a flush interval (1 s in tests).
    let flushed = app
        .eventually(Duration::from_secs(10), || async {
            app.count(&format!(
                "SELECT CAST(COALESCE(SUM(messages_stored), 0) AS BIGINT) FROM usage_metrics \
                 WHERE user_id = '{guest}' AND tier = 'guest' AND total_requests >= 5"
            ))
            .await
                == 4
        })
        .await;
    assert!(
        flushed,
        "usage_metrics never showed 4 stored messages; log:\n{}",
        app.log()
    );
}

#[tokio::test]
async fn retries_and_refusals_mixed_into_a_burst_leave_sequences_gapless() {
    let app = spawn_app().await;
    let (guest, token) = app.new_guest().await;
    let original = json!({"role":"user","content":"first","timestamp":"2025-12-21T12:00:00Z"});
    let (status, first) = app
        .post_message(&guest, Some(&token), original.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let keyed = app
        .client
        .post(app.url(&format!("/v1/guest/chat/{guest}")))
        .header("X-Guest-Token", &token)
        .header("Idempotency-Key", "k-1")
        .json(&json!({"role":"user","content":"keyed"}))
        .send()
        .await
        .expect("send");
    assert_eq!(keyed.status(), StatusCode::CREATED);

    let requests = (0..30).map(|i| {
        let (app, guest, token, original) = (&app, guest.clone(), token.clone(), original.clone());
        async move {
            let mut req = app
                .client
                .post(app.url(&format!("/v1/guest/chat/{guest}")))
                .header("X-Guest-Token", &token);
            req = match i % 3 {
                0 => req.json(&json!({"role":"user","content":format!("new {i}")})),
                1 => req.json(&original),
                _ => req
                    .header("Idempotency-Key", "k-1")
                    .json(&json!({"role":"user","content":"not keyed"})),
            };
            let resp = req.send().await.expect("send");
            (
                i % 3,
                resp.status(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    for (kind, status, body) in common::join_all(requests).await {
        match kind {
            0 => assert_eq!(status, StatusCode::CREATED, "{body}"),
            1 => {
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body["message_id"], first["message_id"]);
            }
            _ => assert_eq!(status, StatusCode::CONFLICT, "{body}"),
        }
    }
    let (_, history) = app.history(&guest, &token).await;
    let seqs: Vec<i64> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["sequence"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<i64>>(),
        "2 before + 10 new, nothing else"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT message_count FROM conversation_cache WHERE guest_id = '{guest}'"
        ))
        .await,
        12
    );
}

/// Writes that arrive together are stored together (one group commit on SQLite): a message and
/// its retries sent at the same moment still store exactly one message, a reused key with other
/// words is refused, and every guest gets its own gapless sequence and title.
#[tokio::test]
async fn simultaneous_writes_and_their_retries_across_many_guests_store_each_message_once() {
    let app = spawn_app().await;
    let mut guests = Vec::new();
    for _ in 0..8 {
        guests.push(app.new_guest().await);
    }
    let mut requests = Vec::new();
    for (g, (guest, token)) in guests.iter().enumerate() {
        for i in 0..12 {
            let (app, guest, token) = (&app, guest.clone(), token.clone());
            requests.push(async move {
                let mut req = app
                    .client
                    .post(app.url(&format!("/v1/guest/chat/{guest}")))
                    .header("X-Guest-Token", &token);
                // Per guest: 4 copies of one timestamped message, 4 copies of one keyed
                // message, 2 uses of another key with different words, 2 plain messages.
                req = match i {
                    0..=3 => req.json(&json!({"role":"user","content":format!("hello from {g}"),
                        "timestamp":"2026-01-02T03:04:05.123456Z"})),
                    4..=7 => req
                        .header("Idempotency-Key", "same")
                        .json(&json!({"role":"assistant","content":"a reply"})),
                    8 | 9 => req
                        .header("Idempotency-Key", "clash")
                        .json(&json!({"role":"assistant","content":format!("words {i}")})),
                    _ => req.json(&json!({"role":"system","content":format!("note {i}")})),
                };
                let resp = req.send().await.expect("send");
                let status = resp.status();
                (
                    g,
                    i,
                    status,
                    resp.json::<Value>().await.unwrap_or(Value::Null),
                )
            });
        }
    }
    let answers = common::join_all(requests).await;
    for (g, (guest, token)) in guests.iter().enumerate() {
        let mine: Vec<_> = answers.iter().filter(|a| a.0 == g).collect();
        for copies in [0..=3, 4..=7] {
            let group: Vec<_> = mine.iter().filter(|a| copies.contains(&a.1)).collect();
            let created = group.iter().filter(|a| a.2 == StatusCode::CREATED).count();
            assert_eq!(created, 1, "one copy stores, the others are retries");
            for a in &group {
                assert!(
                    a.2 == StatusCode::CREATED || a.2 == StatusCode::OK,
                    "{}",
                    a.3
                );
                assert_eq!(a.3["duplicate"], a.2 == StatusCode::OK, "{}", a.3);
                assert_eq!(a.3["message_id"], group[0].3["message_id"], "same message");
            }
        }
        let clash: Vec<_> = mine.iter().filter(|a| a.1 == 8 || a.1 == 9).collect();
        let mut statuses: Vec<u16> = clash.iter().map(|a| a.2.as_u16()).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "{clash:?}");
        for a in mine.iter().filter(|a| a.1 >= 10) {
            assert_eq!(a.2, StatusCode::CREATED, "{}", a.3);
        }

        let (status, history) = app.history(guest, token).await;
        assert_eq!(status, StatusCode::OK);
        let messages = history["messages"].as_array().expect("messages");
        let seqs: Vec<i64> = messages
            .iter()
            .map(|m| m["sequence"].as_i64().expect("sequence"))
            .collect();
        assert_eq!(seqs, (1..=5).collect::<Vec<i64>>(), "{history}");
        let hello = format!("hello from {g}");
        assert_eq!(
            messages
                .iter()
                .filter(|m| m["content"] == hello.as_str())
                .count(),
            1
        );
        assert_eq!(
            messages
                .iter()
                .filter(|m| m["content"] == "a reply")
                .count(),
            1
        );
        assert_eq!(
            app.count(&format!(
                "SELECT message_count FROM conversation_cache WHERE guest_id = '{guest}'"
            ))
            .await,
            5
        );
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM conversation_cache WHERE guest_id = '{guest}' \
                 AND title = '{hello}'"
            ))
            .await,
            1,
            "the title comes from the first user message"
        );
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM cache_content_mapping WHERE user_id = '{guest}'"
            ))
            .await,
            5,
            "one ledger row per stored message"
        );
    }
}

/// First writes that arrive together: of many writes racing to claim one client-chosen id,
/// exactly one claims it (201 with the token) and the others need that token (401); many new ids
/// claimed at once each get their own conversation, title and token.
#[tokio::test]
async fn simultaneous_first_writes_claim_each_new_id_exactly_once() {
    let app = spawn_app().await;
    let racers = (0..16).map(|i| {
        let app = &app;
        async move {
            app.post_message(
                "contested-id",
                None,
                json!({"role":"user","content":format!("claim attempt {i}")}),
            )
            .await
        }
    });
    let answers = common::join_all(racers).await;
    let winners: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
            assert_error(body, "guest_token_required");
        }
    }
    let token = winners[0].1["guest_token"].as_str().expect("token");
    let (_, history) = app.history("contested-id", token).await;
    assert_eq!(history["messages"].as_array().expect("messages").len(), 1);

    let newcomers = (0..24).map(|i| {
        let app = &app;
        async move {
            let id = format!("newcomer-{i}");
            let (status, body) = app
                .post_message(
                    &id,
                    None,
                    json!({"role":"user","content":format!("I am {i}")}),
                )
                .await;
            (id, status, body)
        }
    });
    for (id, status, body) in common::join_all(newcomers).await {
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["sequence"], 1);
        let token = body["guest_token"].as_str().expect("token");
        let (status, history) = app.history(&id, token).await;
        assert_eq!(status, StatusCode::OK);
        let messages = history["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 1);
        assert_eq!(history["conversation_id"], body["conversation_id"]);
        let said = messages[0]["content"]
            .as_str()
            .expect("content")
            .to_string();
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM conversation_cache WHERE guest_id = '{id}' \
                 AND message_count = 1 AND title = '{said}'"
            ))
            .await,
            1
        );
    }
}

#[tokio::test]
async fn a_lost_claim_answer_is_recovered_with_the_same_idempotency_key() {
    let app = spawn_app().await;
    let first = json!({"role": "user", "content": "hello, I am new here"});
    let claim = |key: Option<&'static str>, body: Value| {
        let mut req = app
            .client
            .post(app.url("/v1/guest/chat/lost-answer-guest"))
            .json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        req.send()
    };
    let resp = claim(Some("claim-key-7f3a9"), first.clone())
        .await
        .expect("claim");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let claimed: Value = resp.json().await.expect("json");
    let token = claimed["guest_token"].as_str().expect("token").to_string();

    // The answer was lost; the client sends the same request again.
    let resp = claim(Some("claim-key-7f3a9"), first.clone())
        .await
        .expect("retry");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-guest-token"], token.as_str());
    let again: Value = resp.json().await.expect("json");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["guest_token"], token.as_str());
    assert_eq!(again["message_id"], claimed["message_id"]);
    let (_, history) = app.history("lost-answer-guest", &token).await;
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(1),
        "stored once"
    );

    // Anything else without the token is refused, and re-issues nothing.
    for (key, body) in [
        (None, first.clone()),
        (Some("another-key"), first.clone()),
        (
            Some("claim-key-7f3a9"),
            json!({"role": "user", "content": "something else"}),
        ),
    ] {
        let resp = claim(key, body).await.expect("refused");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().get("x-guest-token").is_none());
        let body: Value = resp.json().await.expect("json");
        assert_error(&body, "guest_token_required");
    }
}

#[tokio::test]
async fn an_id_nobody_claimed_is_not_found_not_claimed() {
    let app = spawn_app().await;
    let resp = app
        .request(Method::GET, "/v1/guest/chat/never-claimed-id", None, None)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.expect("json");
    assert_error(&body, "guest_not_found");
    // Erasing always needs the token, whether or not the id is held.
    let resp = app
        .request(
            Method::DELETE,
            "/v1/guest/chat/never-claimed-id",
            None,
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("json");
    let message = assert_error(&body, "guest_token_required");
    assert!(message.contains("erasing"), "{message}");
    let (guest, _) = app.new_guest().await;
    let resp = app
        .request(Method::GET, &format!("/v1/guest/chat/{guest}"), None, None)
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "a held id needs its token"
    );
}
