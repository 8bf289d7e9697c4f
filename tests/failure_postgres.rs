//! PostgreSQL stopped and started under a running server. It stops the real server, so it runs
//! alone: `.ci/run` runs it last with `GENESIS_TEST_PG_STOP` / `GENESIS_TEST_PG_START` set to the
//! commands that stop and start PostgreSQL.

mod common;

use std::time::Duration;

use common::{spawn_app, wait_for_l1};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn shell(var: &str) {
    let cmd = std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set"));
    let status = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .status()
        .expect("run shell");
    assert!(status.success(), "{var} failed: {cmd}");
}

#[tokio::test]
#[ignore = "stops PostgreSQL: run alone with GENESIS_TEST_DATABASE_URL, GENESIS_TEST_PG_STOP and GENESIS_TEST_PG_START"]
async fn postgres_restart_gives_503s_while_down_and_loses_no_acknowledged_message() {
    assert!(
        std::env::var("GENESIS_TEST_DATABASE_URL").is_ok(),
        "needs PostgreSQL"
    );
    let app = spawn_app().await;
    if std::env::var("GENESIS_TEST_REDIS_URL").is_ok() {
        assert!(wait_for_l1(&app, "up").await);
    }
    let (guest, token) = app.new_guest().await;
    let mut acked: Vec<String> = Vec::new();
    for text in ["before 1", "before 2", "before 3"] {
        let body = app.say(&guest, &token, "user", text).await;
        acked.push(body["message_id"].as_str().expect("id").to_string());
    }
    let (_, history) = app.history(&guest, &token).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(3));

    shell("GENESIS_TEST_PG_STOP");
    let mut refused = 0;
    for i in 0..10 {
        let resp = app
            .client
            .post(app.url(&format!("/v1/guest/chat/{guest}")))
            .header("X-Guest-Token", &token)
            .json(&json!({"role":"user","content":format!("during {i}")}))
            .send()
            .await
            .expect("the server answers while PostgreSQL is down");
        match resp.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(resp.headers().contains_key("retry-after"));
                let body: Value = resp.json().await.expect("json");
                assert_eq!(body["error"]["code"], "database_unavailable");
                refused += 1;
            }
            StatusCode::CREATED => {
                let body: Value = resp.json().await.expect("json");
                acked.push(body["message_id"].as_str().expect("id").to_string());
            }
            other => panic!("unexpected {other} while PostgreSQL is down"),
        }
    }
    assert!(
        refused > 0,
        "writes must be refused while PostgreSQL is down"
    );
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["sql"], "down");
    if std::env::var("GENESIS_TEST_REDIS_URL").is_ok() {
        // A cached guest is still readable from L1.
        let (status, history) = app.history(&guest, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(history["source"], "l1");
    }

    shell("GENESIS_TEST_PG_START");
    let back = app
        .eventually(Duration::from_secs(60), || async {
            app.client
                .get(app.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
    assert!(back, "readyz never recovered; log:\n{}", app.log());
    let body = app.say(&guest, &token, "user", "after").await;
    acked.push(body["message_id"].as_str().expect("id").to_string());

    let db = app.db().await;
    use sea_orm::{ConnectionTrait, Statement};
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(id AS TEXT) AS id, sequence FROM message_cache ORDER BY sequence"
                .to_string(),
        ))
        .await
        .expect("query");
    let stored: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "id").expect("id"))
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged message {id} lost");
    }
    assert_eq!(
        stored.len(),
        acked.len(),
        "nothing stored that was not acknowledged"
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.try_get::<i64>("", "sequence").expect("seq"), i as i64 + 1);
    }
}
