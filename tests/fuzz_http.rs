//! Property tests over the live HTTP API: whatever bytes arrive in a path, a query, a header or a
//! body, the answer is never a 5xx and every error is the JSON envelope
//! `{"error":{"code","message"}}`. Inputs are generated (proptest) against one running server per
//! test; a failing input is printed, shrunk, and becomes a case in `EDGES`.

mod common;

use common::{TestApp, spawn_app};
use proptest::{prelude::*, test_runner::TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Edge inputs sent on every run before the generated ones, and where an input the generator
/// finds breaking a rule is added once fixed: (method, path, body).
const EDGES: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/v1/guest/chat/%00",
        r#"{"role":"user","content":"x"}"#,
    ),
    (
        "GET",
        "/v1/guest/chat/a?cursor=9223372036854775807&limit=1000",
        "",
    ),
    (
        "POST",
        "/v1/guest/chat/a",
        r#"{"role":"user","content":"x","tokens":-1}"#,
    ),
];

const CASES: u32 = 200;

#[derive(Debug)]
struct Request {
    method: Method,
    path: String,
    token: Option<String>,
    idempotency_key: Option<String>,
    body: Option<Vec<u8>>,
}

/// Sends `req`; panics with the request when the answer breaks the rules.
async fn check(app: &TestApp, req: Request) {
    let mut builder = app.client.request(req.method.clone(), app.url(&req.path));
    if let Some(token) = &req.token {
        builder = builder.header("X-Guest-Token", token.as_str());
    }
    if let Some(key) = &req.idempotency_key {
        builder = builder.header("Idempotency-Key", key.as_str());
    }
    if let Some(body) = &req.body {
        builder = builder
            .header("content-type", "application/json")
            .body(body.clone());
    }
    let resp = match builder.send().await {
        Ok(resp) => resp,
        // A header value reqwest itself refuses never reached the server.
        Err(err) if err.is_builder() => return,
        Err(err) => panic!("{} {}: no answer: {err}", req.method, req.path),
    };
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.as_u16() < 500,
        "{} {} answered {status}: {text}",
        req.method,
        req.path
    );
    if status.as_u16() >= 400 {
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{} {}: not JSON: {text}", req.method, req.path));
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{} {}: not the error envelope: {text}",
            req.method,
            req.path
        );
    }
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A message body: sometimes well-formed, often not.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let role = prop_oneof!["user", "assistant", "system", ".{0,12}"];
    let content = prop_oneof![".{0,40}", Just(String::new()), "\\PC{0,8}\u{0}"];
    let timestamp = prop_oneof![
        Just("null".to_string()),
        "\"[0-9T:Z+.-]{0,30}\"",
        Just("\"2026-11-30T12:00:00Z\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    let tokens = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("\"7\"".into())
    ];
    let json = (role, content, timestamp, tokens).prop_map(|(r, c, t, n)| {
        let (r, c) = (serde_json::json!(r), serde_json::json!(c));
        format!(r#"{{"role":{r},"content":{c},"timestamp":{t},"tokens":{n}}}"#).into_bytes()
    });
    prop_oneof![json, proptest::collection::vec(any::<u8>(), 0..64)]
}

fn request() -> impl Strategy<Value = Request> {
    let method = prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::DELETE),
        Just(Method::PUT),
    ];
    let guest = prop_oneof!["[A-Za-z0-9_-]{1,12}", ".{0,20}", "[a-z]{129,140}"];
    let query = prop_oneof![
        Just(String::new()),
        ("-?[0-9]{0,25}", ".{0,6}").prop_map(|(c, l)| format!("?cursor={c}&limit={}", encode(&l))),
        "[0-9]{0,6}".prop_map(|l| format!("?limit={l}")),
    ];
    let route = prop_oneof![
        Just("/v1/guest/chat/"),
        Just("/v1/guest/migrate/"),
        Just("/chat/"),
        Just("/v1/conversations/"),
    ];
    let token = proptest::option::of(prop_oneof!["[0-9a-f]{64}", "[ -~]{0,80}"]);
    let key = proptest::option::of("[ -~]{0,300}");
    (
        method,
        route,
        guest,
        query,
        token,
        key,
        proptest::option::of(body()),
    )
        .prop_map(
            |(method, route, guest, query, token, idempotency_key, body)| Request {
                method,
                path: format!("{route}{}{query}", encode(&guest)),
                token,
                idempotency_key,
                body,
            },
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_makes_the_api_fail_or_answer_outside_the_envelope() {
    let app = spawn_app().await;
    for (method, path, body) in EDGES {
        let req = Request {
            method: method.parse().expect("method"),
            path: path.to_string(),
            token: None,
            idempotency_key: None,
            body: (!body.is_empty()).then(|| body.as_bytes().to_vec()),
        };
        check(&app, req).await;
    }
    // Generated inputs: proptest drives a plain loop here, each case sent on this runtime.
    let handle = tokio::runtime::Handle::current();
    let app = std::sync::Arc::new(app);
    let runner_app = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(ProptestConfig {
            cases: CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&request(), |req| {
                handle.block_on(check(&runner_app, req));
                Ok(())
            })
            .map_err(|failure| failure.to_string())
    })
    .await
    .expect("runner");
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // The server is still healthy afterwards.
    let resp = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("ready");
    assert_eq!(resp.status(), StatusCode::OK);
}
