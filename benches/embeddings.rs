//! The embedding benchmark, in process (no HTTP in the numbers):
//!
//! 1. embedder throughput: texts per second for `lexical` and, when the weights are there,
//!    `minilm` (batches of 32);
//! 2. the pipeline: 10,000 guest messages appended, then the time until every one has its vector;
//! 3. search at 10,000 messages of one owner: semantic and text, p50 / p99 of 200 queries each.
//!
//! ```sh
//! cargo bench --bench embeddings                         # SQLite in a temp dir
//! GENESIS_MINILM_DIR=~/.cache/genesis/all-MiniLM-L6-v2 cargo bench --bench embeddings
//! cargo bench --bench embeddings -- --messages 2000      # a smaller owner
//! ```

use std::time::{Duration, Instant};

use genesis::{
    config::Settings,
    embed::Embedder,
    service::{
        guest::NewMessage,
        search::{Mode, Owner},
    },
    startup::{Role, build_state},
};

const WORDS: [&str; 24] = [
    "password",
    "reset",
    "account",
    "weather",
    "Paris",
    "recipe",
    "bread",
    "train",
    "ticket",
    "refund",
    "invoice",
    "meeting",
    "tomorrow",
    "python",
    "error",
    "server",
    "deploy",
    "music",
    "guitar",
    "holiday",
    "beach",
    "doctor",
    "appointment",
    "garden",
];

/// A chat-like line, different for every `i`.
fn line(i: usize) -> String {
    let w = |k: usize| WORDS[(i / 24usize.pow(k as u32)) % WORDS.len()];
    format!(
        "message {i}: could you help me with my {} {} before the {} {}?",
        w(0),
        w(1),
        w(2),
        w(3)
    )
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn throughput(name: &str, embedder: &Embedder, n: usize) {
    let texts: Vec<String> = (0..n).map(line).collect();
    let started = Instant::now();
    for chunk in texts.chunks(32) {
        embedder.embed(chunk.to_vec()).await.expect("embedded");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "embed {name:8} {n:6} texts in {secs:6.2} s = {:8.0} texts/s",
        n as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut messages = 10_000usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--messages") {
        messages = args[i + 1].parse().expect("--messages N");
    }

    let mut settings = Settings::load_from(|_| None).expect("settings");
    throughput("lexical", &Embedder::lexical(), 20_000).await;
    if let Ok(dir) = std::env::var("GENESIS_MINILM_DIR") {
        settings.embeddings.provider = "minilm".into();
        settings.embeddings.model_dir = dir.into();
        let minilm = Embedder::from_settings(&settings.embeddings)
            .expect("minilm loads")
            .expect("on");
        throughput("minilm", &minilm, 2_000).await;
    } else {
        println!("embed minilm: skipped (set GENESIS_MINILM_DIR to the model folder)");
    }

    // The pipeline and search, on the default (lexical) embedder.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::load_from(|_| None).expect("settings");
    settings.data_dir = dir.path().to_path_buf();
    let state = build_state(settings, Role::Serve).await.expect("state");
    let guest = "bench-search-owner";
    let first = state
        .guests
        .append(guest, None, None, message(0))
        .await
        .expect("first write");
    let token = first.issued_token.expect("token");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let (guests, token) = (state.guests.clone(), token.clone());
        tasks.spawn(async move {
            let mut i = 1 + worker;
            while i < messages {
                guests
                    .append(guest, Some(&token), None, message(i))
                    .await
                    .expect("append");
                i += 32;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let appended = started.elapsed();
    while state.embeddings.backlog() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let embedded = started.elapsed();
    println!(
        "pipeline: {messages} messages appended in {:.2} s; every vector stored {:.2} s after the \
         first append ({:.0} vectors/s end to end)",
        appended.as_secs_f64(),
        embedded.as_secs_f64(),
        messages as f64 / embedded.as_secs_f64()
    );

    let conversation = state
        .guests
        .owned_conversation(guest, Some(&token))
        .await
        .expect("owner");
    let owner = Owner::Guest {
        guest_id: guest.into(),
        conversation,
    };
    for (mode, name) in [(Mode::Semantic, "semantic"), (Mode::Text, "text")] {
        let mut times = Vec::new();
        for q in 0..200 {
            let query = format!("{} {}", WORDS[q % 24], WORDS[(q * 7 + 3) % 24]);
            let started = Instant::now();
            let found = state
                .search
                .search(&owner, &query, mode, 10, None)
                .await
                .expect("search");
            times.push(started.elapsed());
            assert!(
                !found.is_empty(),
                "{name} search for {query:?} found nothing"
            );
        }
        times.sort();
        println!(
            "search {name:8} over {messages} messages of one owner: p50 {:.2} ms, p99 {:.2} ms",
            pct(&times, 0.5),
            pct(&times, 0.99)
        );
    }
}

fn message(i: usize) -> NewMessage {
    NewMessage {
        role: if i.is_multiple_of(2) {
            "user"
        } else {
            "assistant"
        }
        .into(),
        content: line(i),
        timestamp: None,
        tokens: None,
        content_type: None,
        idempotency_key: None,
        tool_call_id: None,
        tool_calls: None,
    }
}
