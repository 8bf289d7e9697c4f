//! The in-process all-MiniLM-L6-v2 embedder (candle): its vectors match those of the reference
//! implementation (sentence-transformers on PyTorch; `tests/fixtures/minilm_reference.json`,
//! made by `tests/fixtures/make_minilm_reference.py`) within cosine 0.99, it ranks by meaning,
//! and the server runs the pipeline and search on it.
//!
//! Needs the weights: `GENESIS_TEST_MINILM_DIR` names the folder (README, "Embeddings", says how
//! to get it; `.ci/run` does). Run with `cargo test --test embeddings_minilm -- --ignored`.

mod common;

use std::time::Duration;

use common::spawn_app_with;
use genesis::{
    config::Settings,
    embed::{Embedder, cosine},
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn model_dir() -> String {
    std::env::var("GENESIS_TEST_MINILM_DIR")
        .expect("GENESIS_TEST_MINILM_DIR must name the all-MiniLM-L6-v2 folder")
}

fn embedder() -> Embedder {
    let mut settings = Settings::load_from(|_| None).expect("settings");
    settings.embeddings.provider = "minilm".into();
    settings.embeddings.model_dir = model_dir().into();
    Embedder::from_settings(&settings.embeddings)
        .expect("the model loads")
        .expect("on")
}

#[tokio::test]
#[ignore = "needs the all-MiniLM-L6-v2 weights in GENESIS_TEST_MINILM_DIR"]
async fn vectors_match_the_reference_implementation() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).expect("fixture");
    let sentences: Vec<String> = fixture["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| s.as_str().expect("text").to_string())
        .collect();
    let embedder = embedder();
    assert_eq!(embedder.model_id(), "all-MiniLM-L6-v2");
    assert_eq!(embedder.dims(), 384);
    let ours = embedder.embed(sentences.clone()).await.expect("embedded");
    let mut lowest = f32::MAX;
    for (i, sentence) in sentences.iter().enumerate() {
        let reference: Vec<f32> = fixture["vectors"][i]
            .as_array()
            .expect("vector")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect();
        let similarity = cosine(&ours[i], &reference);
        assert!(
            similarity >= 0.99,
            "sentence {i} ({:.40}…): cosine {similarity} to the reference",
            sentence
        );
        lowest = lowest.min(similarity);
    }
    eprintln!("lowest cosine to the reference: {lowest}");
    // One at a time (no padding) gives the same vectors as the batch.
    let alone = embedder
        .embed(vec![sentences[2].clone()])
        .await
        .expect("embedded");
    assert!(cosine(&alone[0], &ours[2]) > 0.9999);
}

#[tokio::test]
#[ignore = "needs the all-MiniLM-L6-v2 weights in GENESIS_TEST_MINILM_DIR"]
async fn it_ranks_by_meaning() {
    let texts = [
        "how do I reset my password",
        "steps to change a forgotten password",
        "weather in Paris today",
    ]
    .map(String::from)
    .to_vec();
    let v = embedder().embed(texts).await.expect("embedded");
    let near = cosine(&v[0], &v[1]);
    let far = cosine(&v[0], &v[2]);
    assert!(near > far + 0.2, "near {near}, far {far}");
}

#[tokio::test]
#[ignore = "needs the all-MiniLM-L6-v2 weights in GENESIS_TEST_MINILM_DIR"]
async fn the_server_embeds_and_searches_with_minilm() {
    let dir = model_dir();
    let app = spawn_app_with(&[
        ("GENESIS__EMBEDDINGS__PROVIDER", "minilm"),
        ("GENESIS__EMBEDDINGS__MODEL_DIR", &dir),
    ])
    .await;
    let (guest, token) = app.new_guest().await;
    for content in [
        "steps to change a forgotten password",
        "weather in Paris today",
        "a recipe for pancakes",
    ] {
        app.say(&guest, &token, "user", content).await;
    }
    let done = app
        .eventually(Duration::from_secs(30), || async {
            app.count("SELECT COUNT(*) FROM cache_embeddings WHERE model = 'all-MiniLM-L6-v2'")
                .await
                == 3
        })
        .await;
    assert!(done, "log:\n{}", app.log());
    let resp = app
        .request(
            Method::GET,
            &format!("/v1/search?q=how%20do%20I%20reset%20my%20password&guest_id={guest}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let found: Value = resp.json().await.expect("json");
    assert_eq!(
        found["results"][0]["content"], "steps to change a forgotten password",
        "{found}"
    );
}
