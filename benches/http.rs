//! The HTTP benchmark: starts the release server on port 0 (SQLite + in-process cache, or
//! PostgreSQL + Redis when `DATABASE_URL` / `REDIS_URL` are set) and drives it over real HTTP.
//!
//! ```sh
//! cargo bench --bench http                       # 64 connections, 10 s per operation
//! cargo bench --bench http -- --connections 32 --duration 5 --json bench.json
//! cargo bench --bench http -- --smoke            # a few seconds: CI's no-regression run
//! cargo bench --bench http -- --only a,b         # just these operations (and the ceiling)
//! cargo bench --bench http -- --only m --l1-mb 16 # 100k guests against a 16 MiB in-process cache
//! ```
//!
//! Operations: (a) guest append over many guests, (b) guest history read with L1 warm,
//! (c) guest history read with L1 cold (a server whose hot cache holds almost nothing), (d)
//! migration of 20-message guests, (e) authenticated append, (f) authenticated history page,
//! (g) `GET /healthz`, the same run's ceiling, and (m) 100,000 new guests writing one message each
//! (memory under many guests). Each prints req/s, p50, p99, p99.9, errors, the
//! server's RSS, and its ratio to (g).

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Client, RequestBuilder, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

struct Args {
    connections: usize,
    duration: Duration,
    smoke: bool,
    json: PathBuf,
    /// Operation letters to run (e.g. `a,b`); empty = all. (g), the ceiling, always runs.
    only: Vec<char>,
    /// The main server's in-process cache capacity in MiB (its default when unset).
    l1_mb: Option<u32>,
}

impl Args {
    fn runs(&self, op: char) -> bool {
        self.only.is_empty() || self.only.contains(&op)
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        connections: 64,
        duration: Duration::from_secs(10),
        smoke: false,
        json: PathBuf::from("target/bench-http.json"),
        only: Vec::new(),
        l1_mb: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--connections" => {
                args.connections = it.next().and_then(|v| v.parse().ok()).unwrap_or(64)
            }
            "--duration" => {
                args.duration =
                    Duration::from_secs_f64(it.next().and_then(|v| v.parse().ok()).unwrap_or(10.0))
            }
            "--json" => args.json = it.next().map(PathBuf::from).unwrap_or(args.json),
            "--smoke" => args.smoke = true,
            "--l1-mb" => args.l1_mb = it.next().and_then(|v| v.parse().ok()),
            "--only" => {
                args.only = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|op| op.trim().chars().next())
                    .collect()
            }
            _ => {} // cargo passes --bench; ignore what is not ours
        }
    }
    if args.smoke {
        args.connections = args.connections.min(16);
        args.duration = Duration::from_secs(1);
    }
    args
}

struct Server {
    base: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(database_url: Option<&str>, extra: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_genesis"));
        for name in [
            "DATABASE_URL",
            "REDIS_URL",
            "UPSTASH_REDIS_URL",
            "UPSTASH_REDIS_REST_URL",
            "UPSTASH_REDIS_TOKEN",
            "UPSTASH_REDIS_REST_TOKEN",
            "REDIS_USE_LOCAL",
            "GENESIS_CONFIG",
        ] {
            cmd.env_remove(name);
        }
        cmd.env("GENESIS__DATA_DIR", dir.path())
            .env("GENESIS__SERVER__BIND", "127.0.0.1:0")
            .env("GENESIS__LIMITS__GUEST_SESSIONS_PER_IP_PER_HOUR", "0")
            .env("GENESIS__LIMITS__GUEST_MESSAGES_PER_DAY", "0")
            .env("GENESIS__LIMITS__GUEST_MAX_MESSAGES", "0")
            .env("GENESIS__LIMITS__LOGIN_ATTEMPTS_PER_IP_PER_HOUR", "0")
            .env("GENESIS__LIMITS__SIGNUPS_PER_IP_PER_HOUR", "0")
            .env("GENESIS__DATABASE__MAX_CONNECTIONS", "16")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(url) = database_url {
            cmd.env("DATABASE_URL", url);
        }
        if let Ok(redis) = std::env::var("REDIS_URL") {
            cmd.env("REDIS_URL", redis)
                .env("REDIS_USE_LOCAL", "false")
                .env(
                    "GENESIS__REDIS__KEY_PREFIX",
                    format!("bench{}:", uuid::Uuid::new_v4().simple()),
                );
        }
        cmd.envs(extra.iter().copied());
        let mut child = cmd.spawn().expect("start genesis");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines.next_line().await.expect("read").expect("listen line");
        let base = line
            .strip_prefix("genesis listening on ")
            .expect("listen line")
            .to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            base,
            child,
            _dir: dir,
        }
    }

    /// Resident set size of the server process, in MiB.
    fn rss_mib(&self) -> f64 {
        let pid = self.child.id().unwrap_or(0);
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: Duration,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Runs `make(i)` requests from `connections` tasks until `duration` passes or `limit` requests
/// were issued. Non-2xx answers and transport errors count as errors.
async fn load<F>(connections: usize, duration: Duration, limit: u64, make: F) -> Stats
where
    F: Fn(u64) -> RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let make = make.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let t = Instant::now();
                match make(i).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut stats = Stats::default();
    for t in tasks {
        let (lat, errors) = t.await.expect("load task");
        stats.latencies_us.extend(lat);
        stats.errors += errors;
    }
    stats.elapsed = start.elapsed();
    stats.latencies_us.sort_unstable();
    stats
}

fn client(connections: usize) -> Client {
    Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn json_ok(req: RequestBuilder) -> Value {
    // A busy server (e.g. the bounded password-hashing queue under a burst of sign-ups) answers
    // 503 with Retry-After: wait as told and send the same request again.
    let mut resp = req
        .try_clone()
        .expect("cloneable")
        .send()
        .await
        .expect("send");
    while resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        let wait = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(1);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        resp = req
            .try_clone()
            .expect("cloneable")
            .send()
            .await
            .expect("send");
    }
    assert!(
        resp.status().is_success() || resp.status() == StatusCode::OK,
        "setup request failed: {}",
        resp.status()
    );
    resp.json().await.expect("json")
}

/// Creates `n` guests with `messages` messages each, concurrently.
async fn seed_guests(c: &Client, base: &str, n: usize, messages: usize) -> Vec<(String, String)> {
    let mut tasks = Vec::new();
    let per = n.div_ceil(32).max(1);
    for chunk in 0..n.div_ceil(per) {
        let c = c.clone();
        let base = base.to_string();
        let count = per.min(n - chunk * per);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..count {
                let s = json_ok(c.post(format!("{base}/v1/guest/sessions"))).await;
                let (g, t) = (s["guest_id"].as_str().expect("id").to_string(), s["guest_token"].as_str().expect("t").to_string());
                for m in 0..messages {
                    let role = if m % 2 == 0 { "user" } else { "assistant" };
                    json_ok(
                        c.post(format!("{base}/v1/guest/chat/{g}"))
                            .header("X-Guest-Token", &t)
                            .json(&json!({"role": role, "content": format!("seed message {m} with some ordinary chat text in it")})),
                    )
                    .await;
                }
                out.push((g, t));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("seed"));
    }
    all
}

struct Row {
    name: &'static str,
    stats: Stats,
    rss: f64,
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args();
    let (database_url, bench_db) = fresh_database().await;
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let l1 = if std::env::var("REDIS_URL").is_ok() {
        "Redis"
    } else {
        "memory"
    };
    let scale = if args.smoke { 1 } else { 10 };
    let l1_mb = args.l1_mb.map(|mb| mb.to_string());
    let l1_env: Vec<(&str, &str)> = l1_mb
        .iter()
        .map(|mb| ("GENESIS__L1__CAPACITY_MB", mb.as_str()))
        .collect();
    let server = Server::start(database_url.as_deref(), &l1_env).await;
    let base = server.base.clone();
    let c = client(args.connections);
    let conns = args.connections;
    let dur = args.duration;
    let idle_rss = server.rss_mib();
    eprintln!(
        "genesis bench: {backend} + {l1}, {conns} connections, {:?} per operation",
        dur
    );

    let mut rows = Vec::new();
    // (g) first: the ceiling.
    let b = base.clone();
    let cc = c.clone();
    let stats = load(conns, dur, u64::MAX, move |_| {
        cc.get(format!("{b}/healthz"))
    })
    .await;
    rows.push(Row {
        name: "(g) GET /healthz (ceiling)",
        stats,
        rss: server.rss_mib(),
    });

    if args.runs('a') {
        // (a) guest append spread over many guests.
        let guests = Arc::new(seed_guests(&c, &base, 100 * scale, 0).await);
        let (b, cc, g) = (base.clone(), c.clone(), guests.clone());
        let stats = load(conns, dur, u64::MAX, move |i| {
            let (id, token) = &g[(i as usize) % g.len()];
            cc.post(format!("{b}/v1/guest/chat/{id}"))
                .header("X-Guest-Token", token)
                .json(&json!({"role": "user", "content": format!("benchmark message number {i}, a typical short chat line")}))
        })
        .await;
        rows.push(Row {
            name: "(a) guest append",
            stats,
            rss: server.rss_mib(),
        });
    }
    if args.runs('b') {
        // (b) guest history read, L1 warm (20-message histories).
        let readers = Arc::new(seed_guests(&c, &base, 20 * scale, 20).await);
        for (id, token) in readers.iter() {
            json_ok(
                c.get(format!("{base}/v1/guest/chat/{id}"))
                    .header("X-Guest-Token", token),
            )
            .await;
        }
        let (b, cc, g) = (base.clone(), c.clone(), readers.clone());
        let stats = load(conns, dur, u64::MAX, move |i| {
            let (id, token) = &g[(i as usize) % g.len()];
            cc.get(format!("{b}/v1/guest/chat/{id}"))
                .header("X-Guest-Token", token)
        })
        .await;
        rows.push(Row {
            name: "(b) guest read, L1 hit",
            stats,
            rss: server.rss_mib(),
        });
    }
    // (d) migration of 20-message guests, one per request; their new accounts serve (e), (f).
    let needs_users = args.runs('d') || args.runs('e') || args.runs('f');
    let movers = if needs_users {
        seed_guests(&c, &base, 50 * scale, 20).await
    } else {
        Vec::new()
    };
    let mut signups = Vec::new();
    for _ in 0..movers.len() {
        let (c, base) = (c.clone(), base.clone());
        signups.push(tokio::spawn(async move {
            let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
            let s = json_ok(
                c.post(format!("{base}/v1/auth/signup"))
                    .json(&json!({"email": email, "password": "benchmark password"})),
            )
            .await;
            s["access_token"].as_str().expect("token").to_string()
        }));
    }
    let mut users = Vec::new();
    for s in signups {
        users.push(s.await.expect("signup"));
    }
    let movers = Arc::new(movers);
    let users = Arc::new(users);
    if args.runs('d') {
        // First one at a time (the latency of a single migration), then the rest concurrently.
        let half = movers.len() as u64 / 2;
        let (b, cc, g, u) = (base.clone(), c.clone(), movers.clone(), users.clone());
        let stats = load(1, dur * 3, half, move |i| {
            let (id, token) = &g[i as usize];
            cc.post(format!("{b}/v1/guest/migrate/{id}"))
                .bearer_auth(&u[i as usize])
                .header("X-Guest-Token", token)
        })
        .await;
        rows.push(Row {
            name: "(d1) migrate a 20-message guest, 1 connection",
            stats,
            rss: server.rss_mib(),
        });
        let (b, cc, g, u) = (base.clone(), c.clone(), movers.clone(), users.clone());
        let n = movers.len() as u64 - half;
        let stats = load(conns, dur * 3, n, move |i| {
            let i = (half + i) as usize;
            let (id, token) = &g[i];
            cc.post(format!("{b}/v1/guest/migrate/{id}"))
                .bearer_auth(&u[i])
                .header("X-Guest-Token", token)
        })
        .await;
        rows.push(Row {
            name: "(d) migrate a 20-message guest",
            stats,
            rss: server.rss_mib(),
        });
    }
    if args.runs('e') || args.runs('f') {
        // (e) authenticated append and (f) authenticated history page.
        let mut convs = Vec::new();
        for token in users.iter().take(20) {
            let conv = json_ok(
                c.post(format!("{base}/v1/conversations"))
                    .bearer_auth(token)
                    .json(&json!({"title": "bench"})),
            )
            .await;
            let id = conv["id"].as_str().expect("id").to_string();
            for m in 0..20 {
                json_ok(
                    c.post(format!("{base}/v1/conversations/{id}/messages"))
                        .bearer_auth(token)
                        .json(&json!({"role": "user", "content": format!("seed {m}")})),
                )
                .await;
            }
            convs.push((id, token.clone()));
        }
        let convs = Arc::new(convs);
        let (b, cc, g) = (base.clone(), c.clone(), convs.clone());
        let stats = load(conns, dur, u64::MAX, move |i| {
            let (id, token) = &g[(i as usize) % g.len()];
            cc.post(format!("{b}/v1/conversations/{id}/messages"))
                .bearer_auth(token)
                .json(
                    &json!({"role": "user", "content": format!("authenticated benchmark message {i}")}),
                )
        })
        .await;
        rows.push(Row {
            name: "(e) authenticated append",
            stats,
            rss: server.rss_mib(),
        });
        let (b, cc, g) = (base.clone(), c.clone(), convs.clone());
        let stats = load(conns, dur, u64::MAX, move |i| {
            let (id, token) = &g[(i as usize) % g.len()];
            cc.get(format!("{b}/v1/conversations/{id}/messages?limit=20"))
                .bearer_auth(token)
        })
        .await;
        rows.push(Row {
            name: "(f) authenticated history page",
            stats,
            rss: server.rss_mib(),
        });
    }
    // (m) memory under many guests: each request claims a new client-chosen guest id with its
    // first message; the RSS column shows what the server holds afterwards.
    if args.runs('m') {
        let guests: u64 = if args.smoke { 2_000 } else { 100_000 };
        let (b, cc) = (base.clone(), c.clone());
        let stats = load(conns, Duration::from_secs(600), guests, move |i| {
            cc.post(format!("{b}/v1/guest/chat/bench-many-{i}"))
                .json(&json!({"role": "user", "content": format!("hello, I am guest number {i}")}))
        })
        .await;
        rows.push(Row {
            name: if args.smoke {
                "(m) 2,000 new guests, one message each"
            } else {
                "(m) 100,000 new guests, one message each"
            },
            stats,
            rss: server.rss_mib(),
        });
    }

    // (c) guest history read with L1 cold: the same data behind a server whose hot cache holds
    // almost nothing (1 MiB), read over many guests.
    let rss_loaded = server.rss_mib();
    drop(server);
    if args.runs('c') {
        let cold_db = database_url.clone();
        let cold = Server::start(
            cold_db.as_deref(),
            &[
                ("GENESIS__L1__CAPACITY_MB", "1"),
                ("REDIS_USE_LOCAL", "true"),
            ],
        )
        .await;
        // Reuse the data: the first server's SQLite file lives in its temp dir, so seed afresh here.
        let cold_readers = Arc::new(seed_guests(&c, &cold.base, 200 * scale, 20).await);
        let (b, cc, g) = (cold.base.clone(), c.clone(), cold_readers.clone());
        let stats = load(conns, dur, u64::MAX, move |i| {
            // A stride that walks every guest before repeating one.
            let (id, token) = &g[((i * 7919) as usize) % g.len()];
            cc.get(format!("{b}/v1/guest/chat/{id}"))
                .header("X-Guest-Token", token)
        })
        .await;
        rows.push(Row {
            name: "(c) guest read, L1 cold (SQL)",
            stats,
            rss: cold.rss_mib(),
        });
        drop(cold);
    }

    if let Some(name) = bench_db {
        drop_database(&name).await;
    }
    report(&args, backend, l1, idle_rss, rss_loaded, &rows);
}

fn report(args: &Args, backend: &str, l1: &str, idle_rss: f64, rss_loaded: f64, rows: &[Row]) {
    let ceiling = rows
        .iter()
        .find(|r| r.name.starts_with("(g)"))
        .map_or(1.0, |r| r.stats.rate());
    println!(
        "\nGenesis HTTP benchmark — {backend} + {l1}, {} connections, {:.0} s per operation\n",
        args.connections,
        args.duration.as_secs_f64()
    );
    println!(
        "| operation | req/s | vs ceiling | p50 ms | p99 ms | p99.9 ms | requests | errors | server RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut json_rows = Vec::new();
    for r in rows {
        let s = &r.stats;
        println!(
            "| {} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} | {} | {} | {:.1} |",
            r.name,
            s.rate(),
            100.0 * s.rate() / ceiling,
            s.pct(0.50),
            s.pct(0.99),
            s.pct(0.999),
            s.latencies_us.len(),
            s.errors,
            r.rss
        );
        json_rows.push(json!({
            "operation": r.name, "req_per_s": s.rate(), "ratio_to_ceiling": s.rate() / ceiling,
            "p50_ms": s.pct(0.50), "p99_ms": s.pct(0.99), "p999_ms": s.pct(0.999),
            "requests": s.latencies_us.len(), "errors": s.errors, "server_rss_mib": r.rss,
        }));
    }
    println!("\nserver RSS: {idle_rss:.1} MiB idle at start, {rss_loaded:.1} MiB after the load");
    let out = json!({
        "backend": backend, "l1": l1, "connections": args.connections,
        "duration_s": args.duration.as_secs_f64(), "idle_rss_mib": idle_rss, "rows": json_rows,
    });
    if let Some(dir) = args.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&out).unwrap_or_default(),
    )
    .expect("write json");
    println!("written: {}", args.json.display());
    let errors: u64 = rows.iter().map(|r| r.stats.errors).sum();
    let empty = rows.iter().any(|r| r.stats.latencies_us.is_empty());
    if errors > 0 || empty {
        eprintln!(
            "benchmark FAILED: {errors} errors; an operation with no successful request: {empty}"
        );
        std::process::exit(1);
    }
}

/// A fresh PostgreSQL database on `DATABASE_URL`'s server, if one is set.
async fn fresh_database() -> (Option<String>, Option<String>) {
    let Ok(admin) = std::env::var("DATABASE_URL") else {
        return (None, None);
    };
    let name = format!("genesis_bench_{}", uuid::Uuid::new_v4().simple());
    let db = Database::connect(admin.as_str())
        .await
        .expect("connect DATABASE_URL");
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create bench database");
    db.close().await.ok();
    let at = admin.rfind('/').expect("a database URL");
    (Some(format!("{}/{name}", &admin[..at])), Some(name))
}

async fn drop_database(name: &str) {
    if let Ok(admin) = std::env::var("DATABASE_URL")
        && let Ok(db) = Database::connect(admin.as_str()).await
    {
        let _ = db
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        db.close().await.ok();
    }
}
