//! Monitoring: `GET /metrics` in the Prometheus text format with bounded labels, the access log
//! with request ids, JSON logs, and no secret or message content in any log line.

mod common;

use common::{TestApp, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a very private passphrase";
const CONTENT: &str = "my bank PIN is 2468";

/// A full session: a guest claims an id, writes, reads; a user signs up with it and writes on.
/// Returns the guest id, guest token, access token and conversation id.
async fn session(app: &TestApp) -> (String, String, String, String) {
    let guest = "monitored-guest-7f3a".to_string();
    let (status, body) = app
        .post_message(&guest, None, json!({"role":"user","content":CONTENT}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["guest_token"].as_str().expect("token").to_string();
    app.say(&guest, &token, "assistant", "noted").await;
    for _ in 0..2 {
        let (status, _) = app.history(&guest, &token).await;
        assert_eq!(status, StatusCode::OK);
    }
    let resp = app
        .client
        .post(app.url("/v1/auth/signup"))
        .json(&json!({"email":"watched@example.com","password":PASSWORD,
                      "guest_id":guest,"guest_token":token}))
        .send()
        .await
        .expect("signup");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.expect("json");
    let access = body["access_token"].as_str().expect("access").to_string();
    let conversation = body["migration"]["conversation_ids"][0]
        .as_str()
        .expect("conversation")
        .to_string();
    let (status, _) = app
        .authed(
            Method::POST,
            &format!("/v1/conversations/{conversation}/messages"),
            &access,
            Some(&json!({"role":"user","content":CONTENT})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    (guest, token, access, conversation)
}

#[tokio::test]
async fn metrics_parse_and_no_label_is_an_id() {
    let app = spawn_app().await;
    let (guest, _, _, conversation) = session(&app).await;
    let resp = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("text");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let mut routes = Vec::new();
    for sample in &scrape.samples {
        for (name, value) in sample.labels.iter() {
            assert!(
                !value.contains(&guest) && !value.contains(&conversation),
                "label {name}={value} of {} holds an id",
                sample.metric
            );
            if name == "route" {
                routes.push(value.clone());
            }
        }
    }
    assert!(
        routes.iter().any(|r| r == "/v1/guest/chat/:guest_id"),
        "{routes:?}"
    );
    assert!(routes.iter().any(|r| r == "/v1/conversations/:id/messages"));
    let has = |metric: &str, label: &str, value: &str| {
        scrape
            .samples
            .iter()
            .any(|s| s.metric == metric && s.labels.get(label).is_some_and(|v| v == value))
    };
    let ops = "genesis_cache_operation_duration_seconds";
    assert!(has(ops, "result", "hit"), "L1 hits");
    assert!(has(ops, "layer", "main"));
    assert!(has(
        "genesis_http_request_duration_seconds",
        "status",
        "201"
    ));
    assert!(has("genesis_migrations_total", "result", "completed"));
    assert!(has("genesis_db_pool_connections", "state", "in_use"));
    assert!(text.contains("genesis_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn a_metrics_token_guards_the_endpoint() {
    let app = spawn_app_with(&[("GENESIS__METRICS__TOKEN", "scrape-token")]).await;
    let resp = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-token")
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_log_has_an_access_line_per_request_and_no_secret() {
    let app = spawn_app().await;
    let (_, guest_token, access, _) = session(&app).await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("healthz");
    assert_eq!(resp.status(), StatusCode::OK);
    let log = app.log();
    for secret in [PASSWORD, CONTENT, guest_token.as_str(), access.as_str()] {
        assert!(
            !log.contains(secret),
            "the log holds a secret or message content"
        );
    }
    let access_line = log
        .lines()
        .find(|l| l.contains("trace-me-123") && l.contains("genesis::access"))
        .expect("an access line with the request id");
    assert!(
        access_line.contains("/healthz") && access_line.contains("200"),
        "{access_line}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("genesis::access") && l.contains("/v1/guest/chat/:guest_id")),
        "access lines name the route template"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colours when stderr is not a terminal"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let app = spawn_app_with(&[("GENESIS__LOG__FORMAT", "json")]).await;
    let resp = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let log = app.log();
    let mut access = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if value["target"] == "genesis::access" {
            access += 1;
            assert_eq!(value["fields"]["route"], "/healthz");
            assert!(value["span"]["request_id"].is_string(), "{value}");
        }
    }
    assert!(access >= 1);
}
