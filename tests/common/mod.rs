//! `spawn_app()`: starts the real `genesis` binary on port 0 with a fresh database per test —
//! a temp-file SQLite database by default, or a fresh PostgreSQL database and Redis key prefix
//! when `GENESIS_TEST_DATABASE_URL` / `GENESIS_TEST_REDIS_URL` are set.
#![allow(dead_code)]

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::{Client, Method, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Variables from the outer environment that must not leak into a test server.
const SCRUBBED: [&str; 8] = [
    "DATABASE_URL",
    "REDIS_URL",
    "UPSTASH_REDIS_URL",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_TOKEN",
    "UPSTASH_REDIS_REST_TOKEN",
    "REDIS_USE_LOCAL",
    "GENESIS_CONFIG",
];

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

/// Which backends this test run uses, for messages.
pub fn backends() -> &'static str {
    if std::env::var("GENESIS_TEST_DATABASE_URL").is_ok() {
        "postgres+redis"
    } else {
        "sqlite+memory"
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts a server with extra `GENESIS__…` (or other) variables.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env: Vec<(String, String)> = vec![
        ("GENESIS__DATA_DIR".into(), dir.path().display().to_string()),
        ("GENESIS__SERVER__BIND".into(), "127.0.0.1:0".into()),
        ("GENESIS__METRICS__FLUSH_INTERVAL_SECS".into(), "1".into()),
        ("RUST_LOG".into(), "info,sqlx=warn".into()),
    ];
    let database_url = match std::env::var("GENESIS_TEST_DATABASE_URL") {
        Ok(admin_url) => {
            let url = fresh_postgres_database(&admin_url).await;
            env.push(("DATABASE_URL".into(), url.clone()));
            url
        }
        Err(_) => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("genesis.db").display()
        ),
    };
    if let Ok(redis_url) = std::env::var("GENESIS_TEST_REDIS_URL") {
        env.push(("REDIS_URL".into(), redis_url));
        env.push(("REDIS_USE_LOCAL".into(), "false".into()));
        env.push((
            "GENESIS__REDIS__KEY_PREFIX".into(),
            format!("t{}:", uuid::Uuid::new_v4().simple()),
        ));
    }
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    let mut app = TestApp {
        base: String::new(),
        client: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
        dir,
        database_url,
        env,
        child: None,
    };
    app.start().await;
    app
}

async fn fresh_postgres_database(admin_url: &str) -> String {
    let name = format!("genesis_t_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url)
        .await
        .expect("connect to test PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    match admin_url.rfind('/') {
        Some(at) if admin_url[..at].ends_with(|c: char| c != '/') => {
            format!("{}/{name}", &admin_url[..at])
        }
        _ => format!("{}/{name}", admin_url.trim_end_matches('/')),
    }
}

/// The `genesis` binary built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genesis"))
}

/// A `genesis` command with the outer environment's Genesis variables removed.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    for name in SCRUBBED {
        cmd.env_remove(name);
    }
    for (name, _) in std::env::vars() {
        if name.starts_with("GENESIS__") {
            cmd.env_remove(name);
        }
    }
    cmd.kill_on_drop(true);
    cmd
}

impl TestApp {
    /// Starts (or restarts) the server process on the same data and waits for its address.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let mut cmd = command();
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawn genesis");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("server did not start; log:\n{}", self.log()))
            .expect("read stdout")
            .unwrap_or_else(|| panic!("server exited; log:\n{}", self.log()));
        let addr = line
            .strip_prefix("genesis listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        self.base = addr.to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// A second server on the same database and Redis prefix (and the same environment, so
    /// `GENESIS__AUTH__SECRET` must be set for both to accept each other's tokens), with its own
    /// data folder and log — another instance behind the same load balancer.
    pub async fn sibling(&self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = self.env.clone();
        env.retain(|(k, _)| k != "GENESIS__DATA_DIR");
        env.push(("GENESIS__DATA_DIR".into(), dir.path().display().to_string()));
        let mut app = TestApp {
            base: String::new(),
            client: self.client.clone(),
            dir,
            database_url: self.database_url.clone(),
            env,
            child: None,
        };
        app.start().await;
        app
    }

    /// SIGKILL: no shutdown, no flush.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill");
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("pid");
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("send SIGTERM");
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("exit after SIGTERM")
            .expect("wait")
    }

    /// Sets a variable for the next `start`.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.start().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header("X-Guest-Token", t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request")
    }

    /// A new server-chosen guest: `(guest_id, guest_token)`.
    pub async fn new_guest(&self) -> (String, String) {
        let resp = self
            .request(Method::POST, "/v1/guest/sessions", None, None)
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.expect("json");
        (
            body["guest_id"].as_str().expect("guest_id").to_string(),
            body["guest_token"]
                .as_str()
                .expect("guest_token")
                .to_string(),
        )
    }

    /// Posts a message; returns status and body.
    pub async fn post_message(
        &self,
        guest_id: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let resp = self
            .request(
                Method::POST,
                &format!("/v1/guest/chat/{guest_id}"),
                token,
                Some(&body),
            )
            .await;
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn say(&self, guest_id: &str, token: &str, role: &str, content: &str) -> Value {
        let (status, body) = self
            .post_message(
                guest_id,
                Some(token),
                json!({"role": role, "content": content}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// `DELETE /v1/guest/chat/{guest_id}` with `token`: the status.
    pub async fn erase(&self, guest_id: &str, token: Option<&str>) -> StatusCode {
        let path = format!("/v1/guest/chat/{guest_id}");
        self.request(Method::DELETE, &path, token, None)
            .await
            .status()
    }

    /// The guest's whole history: every page, followed by `next_cursor`, the messages of all of
    /// them in one `messages` array (the other fields from the first page).
    pub async fn history(&self, guest_id: &str, token: &str) -> (StatusCode, Value) {
        let (status, mut first) = self.history_page(guest_id, token, "").await;
        let mut cursor = first["next_cursor"].as_str().map(str::to_string);
        while let Some(after) = cursor.take() {
            let (status, page) = self
                .history_page(guest_id, token, &format!("?cursor={after}&limit=1000"))
                .await;
            if status != StatusCode::OK {
                return (status, page);
            }
            let more = page["messages"].as_array().cloned().unwrap_or_default();
            if let Some(all) = first["messages"].as_array_mut() {
                all.extend(more);
            }
            cursor = page["next_cursor"].as_str().map(str::to_string);
        }
        if let Some(obj) = first.as_object_mut() {
            obj.remove("next_cursor");
        }
        (status, first)
    }

    /// One page of the guest's history; `query` is `""` or `?limit=…&cursor=…`.
    pub async fn history_page(
        &self,
        guest_id: &str,
        token: &str,
        query: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .request(
                Method::GET,
                &format!("/v1/guest/chat/{guest_id}{query}"),
                Some(token),
                None,
            )
            .await;
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A direct connection to the server's database, to check what it stored.
    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(self.database_url.as_str())
            .await
            .expect("connect to the test database")
    }

    /// Runs `sql` returning one integer.
    pub async fn count(&self, sql: &str) -> i64 {
        let db = self.db().await;
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("query")
            .expect("row");
        let n: i64 = row.try_get_by_index(0).expect("integer");
        db.close().await.ok();
        n
    }

    /// Polls `check` until it returns true or `limit` passes.
    pub async fn eventually<F, Fut>(&self, limit: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// Asserts the error shape and code, returning the message.
pub fn assert_error(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "unexpected body {body}");
    body["error"]["message"]
        .as_str()
        .expect("error.message is a string")
        .to_string()
}

/// Runs `futures` concurrently on the current task and returns their outputs in order.
pub async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("done")).collect()
}

mod accounts;
pub mod proxy;
pub mod upstash_shim;

/// `host:port` of a `redis://` or `postgres://` URL, resolved.
pub fn socket_of(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("an address")
}

/// Waits until `/readyz` reports `l1` as `want`.
pub async fn wait_for_l1(app: &TestApp, want: &str) -> bool {
    app.eventually(Duration::from_secs(15), || async {
        let body: Value = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .json()
            .await
            .unwrap_or(Value::Null);
        body["l1"] == want
    })
    .await
}
