//! The `openai` embedder against a fake OpenAI-compatible server started here: the request's
//! shape (model, input list, bearer key), batching, a 429 answered by a retry, a vector of the
//! wrong size refused — and the whole pipeline running on it.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::spawn_app_with;
use genesis::{config::Settings, embed::Embedder};
use poem::{
    EndpointExt, Response, Route, Server, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::{Data, Json},
};
use reqwest::Method;
use serde_json::{Value, json};

const DIMS: usize = 8;

#[derive(Default)]
struct Fake {
    /// Every request body and its `Authorization` header.
    seen: Mutex<Vec<(Value, Option<String>)>>,
    /// Answer this many calls with 429 first.
    throttle: Mutex<u32>,
    /// Answer every call with vectors of this size instead.
    wrong_size: Mutex<Option<usize>>,
}

/// A deterministic vector for `text`.
fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; dims];
    for (i, b) in text.bytes().enumerate() {
        v[(i + b as usize) % dims] += 1.0;
    }
    v
}

#[handler]
fn embeddings(fake: Data<&Arc<Fake>>, req: &poem::Request, body: Json<Value>) -> Response {
    let auth = req.header("authorization").map(str::to_string);
    fake.seen.lock().expect("lock").push((body.0.clone(), auth));
    {
        let mut throttle = fake.throttle.lock().expect("lock");
        if *throttle > 0 {
            *throttle -= 1;
            return Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("Retry-After", "0")
                .body(r#"{"error":{"message":"rate limited"}}"#);
        }
    }
    let dims = fake.wrong_size.lock().expect("lock").unwrap_or(DIMS);
    let inputs = body.0["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object":"embedding","index":i,"embedding":vector(t.as_str().unwrap_or(""), dims)}))
        .collect();
    Response::builder()
        .content_type("application/json")
        .body(json!({"object":"list","data":data,"model":body.0["model"]}).to_string())
}

async fn start_fake() -> (Arc<Fake>, SocketAddr) {
    let fake = Arc::new(Fake::default());
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let addr = *acceptor.local_addr()[0].as_socket_addr().expect("addr");
    let app = Route::new()
        .at("/v1/embeddings", post(embeddings))
        .data(fake.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (fake, addr)
}

fn settings(addr: SocketAddr, batch: usize) -> Settings {
    let mut settings =
        Settings::load_from(|name| (name == "OPENAI_API_KEY").then(|| "sk-test-key".to_string()))
            .expect("settings");
    settings.embeddings.provider = "openai".into();
    settings.embeddings.base_url = format!("http://{addr}/v1");
    settings.embeddings.model = "fake-embed".into();
    settings.embeddings.dimensions = DIMS;
    settings.embeddings.batch_size = batch;
    settings
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text number {i}")).collect()
}

#[tokio::test]
async fn requests_have_the_openai_shape_and_are_batched() {
    let (fake, addr) = start_fake().await;
    let embedder = Embedder::from_settings(&settings(addr, 4).embeddings)
        .expect("embedder")
        .expect("on");
    assert_eq!(embedder.model_id(), "openai:fake-embed:8");
    let vectors = embedder.embed(texts(10)).await.expect("embedded");
    assert_eq!(vectors.len(), 10);
    for (v, t) in vectors.iter().zip(texts(10)) {
        let mut expected = vector(&t, DIMS);
        let norm = expected.iter().map(|x| x * x).sum::<f32>().sqrt();
        expected.iter_mut().for_each(|x| *x /= norm);
        assert!(
            v.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "in input order, normalised"
        );
    }
    let seen = fake.seen.lock().expect("lock").clone();
    let sizes: Vec<usize> = seen
        .iter()
        .map(|(b, _)| b["input"].as_array().expect("input").len())
        .collect();
    assert_eq!(sizes, vec![4, 4, 2], "batches of at most batch_size");
    let (body, auth) = &seen[0];
    assert_eq!(body["model"], "fake-embed");
    assert_eq!(body["encoding_format"], "float");
    assert_eq!(body["input"][0], "text number 0");
    assert!(
        body.get("dimensions").is_none(),
        "dimensions only with send_dimensions"
    );
    assert_eq!(
        auth.as_deref(),
        Some("Bearer sk-test-key"),
        "the key from OPENAI_API_KEY"
    );
}

#[tokio::test]
async fn a_429_is_retried_and_a_wrong_size_is_an_error() {
    let (fake, addr) = start_fake().await;
    let embedder = Embedder::from_settings(&settings(addr, 32).embeddings)
        .expect("embedder")
        .expect("on");
    *fake.throttle.lock().expect("lock") = 1;
    let vectors = embedder
        .embed(texts(3))
        .await
        .expect("a retry after the 429");
    assert_eq!(vectors.len(), 3);
    assert_eq!(
        fake.seen.lock().expect("lock").len(),
        2,
        "one 429, one success"
    );

    *fake.wrong_size.lock().expect("lock") = Some(DIMS + 1);
    let err = embedder.embed(texts(1)).await.expect_err("wrong size");
    assert!(
        err.to_string().contains("9 dimensions, expected 8"),
        "{err}"
    );

    // Throttled past the retries: an error the pipeline retries later.
    *fake.wrong_size.lock().expect("lock") = None;
    *fake.throttle.lock().expect("lock") = 10;
    let err = embedder.embed(texts(1)).await.expect_err("still throttled");
    assert!(err.to_string().contains("429"), "{err}");
}

#[tokio::test]
async fn the_pipeline_runs_on_an_openai_compatible_server() {
    let (fake, addr) = start_fake().await;
    *fake.throttle.lock().expect("lock") = 1;
    let base = format!("http://{addr}/v1");
    let app = spawn_app_with(&[
        ("GENESIS__EMBEDDINGS__PROVIDER", "openai"),
        ("GENESIS__EMBEDDINGS__BASE_URL", &base),
        ("GENESIS__EMBEDDINGS__MODEL", "fake-embed"),
        ("GENESIS__EMBEDDINGS__DIMENSIONS", "8"),
        ("OPENAI_API_KEY", "sk-test-key"),
    ])
    .await;
    let (guest, token) = app.new_guest().await;
    for i in 0..6 {
        app.say(&guest, &token, "user", &format!("remote message {i}"))
            .await;
    }
    let done = app
        .eventually(Duration::from_secs(10), || async {
            app.count("SELECT COUNT(*) FROM cache_embeddings WHERE model = 'openai:fake-embed:8' AND dims = 8")
                .await
                == 6
        })
        .await;
    assert!(done, "log:\n{}", app.log());
    assert!(
        !app.log().contains("sk-test-key"),
        "the key never reaches the log"
    );
    let resp = app
        .request(
            Method::GET,
            &format!("/v1/search?q=remote%20message%203&guest_id={guest}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let found: Value = resp.json().await.expect("json");
    assert_eq!(
        found["results"][0]["content"], "remote message 3",
        "{found}"
    );
}
