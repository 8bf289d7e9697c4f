//! A stand-in for Upstash's REST API in front of the real local Redis, speaking the protocol as
//! Upstash documents it: `POST /` with a command as a JSON array of strings, answered
//! `{"result": …}` (or `{"error": "…"}`, status 400); `POST /pipeline` and `POST /multi-exec` with
//! an array of commands, answered with one such object per command (`/multi-exec` as one
//! MULTI/EXEC transaction); every request needs `Authorization: Bearer <token>` (else 401).
#![allow(dead_code)]

use poem::{
    EndpointExt, Request, Response, Route, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::{Data, Json},
};
use redis::{RedisError, Value, aio::MultiplexedConnection};
use serde_json::{Value as JsonValue, json};

pub struct UpstashShim {
    pub url: String,
    pub token: String,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shim {
    redis: MultiplexedConnection,
    token: String,
}

impl UpstashShim {
    /// Starts the shim on a free 127.0.0.1 port in front of `redis_url`.
    pub async fn start(redis_url: &str) -> Self {
        let client = redis::Client::open(redis_url).expect("redis url");
        let redis = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis");
        let token = format!("shim-{}", uuid::Uuid::new_v4().simple());
        let app = Route::new()
            .at("/", post(single))
            .at("/pipeline", post(pipeline))
            .at("/multi-exec", post(multi_exec))
            .data(Shim {
                redis,
                token: token.clone(),
            });
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind");
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .expect("address");
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            url: format!("http://{addr}"),
            token,
            server,
        }
    }
}

impl Drop for UpstashShim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn authorized(req: &Request, shim: &Shim) -> bool {
    req.header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| t == shim.token)
}

fn answer(status: StatusCode, body: JsonValue) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

fn unauthorized() -> Response {
    answer(StatusCode::UNAUTHORIZED, json!({"error": "Unauthorized"}))
}

/// A JSON array of strings as a Redis command.
fn command(args: &JsonValue) -> Result<redis::Cmd, String> {
    let args = args
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("ERR empty command")?;
    let text = |v: &JsonValue| match v {
        JsonValue::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut cmd = redis::cmd(&text(&args[0]));
    for arg in &args[1..] {
        cmd.arg(text(arg));
    }
    Ok(cmd)
}

fn error_text(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

fn to_json(v: Value) -> Result<JsonValue, String> {
    Ok(match v {
        Value::Nil => JsonValue::Null,
        Value::Int(i) => json!(i),
        Value::BulkString(bytes) => json!(String::from_utf8_lossy(&bytes)),
        Value::SimpleString(s) => json!(s),
        Value::Okay => json!("OK"),
        Value::Double(d) => json!(d),
        Value::Boolean(b) => json!(b),
        Value::Array(items) | Value::Set(items) => JsonValue::Array(
            items
                .into_iter()
                .map(to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Value::ServerError(e) => return Err(error_text(&RedisError::from(e))),
        other => json!(format!("{other:?}")),
    })
}

fn entry(result: Result<Value, String>) -> JsonValue {
    match result.and_then(to_json) {
        Ok(v) => json!({"result": v}),
        Err(e) => json!({"error": e}),
    }
}

async fn run(shim: &Shim, args: &JsonValue) -> Result<Value, String> {
    let cmd = command(args)?;
    let mut conn = shim.redis.clone();
    cmd.query_async::<Value>(&mut conn)
        .await
        .map_err(|e| error_text(&e))
}

#[handler]
async fn single(req: &Request, Data(shim): Data<&Shim>, Json(body): Json<JsonValue>) -> Response {
    if !authorized(req, shim) {
        return unauthorized();
    }
    let e = entry(run(shim, &body).await);
    let status = if e.get("error").is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    answer(status, e)
}

#[handler]
async fn pipeline(req: &Request, Data(shim): Data<&Shim>, Json(body): Json<JsonValue>) -> Response {
    if !authorized(req, shim) {
        return unauthorized();
    }
    let mut entries = Vec::new();
    for args in body.as_array().into_iter().flatten() {
        entries.push(entry(run(shim, args).await));
    }
    answer(StatusCode::OK, JsonValue::Array(entries))
}

#[handler]
async fn multi_exec(
    req: &Request,
    Data(shim): Data<&Shim>,
    Json(body): Json<JsonValue>,
) -> Response {
    if !authorized(req, shim) {
        return unauthorized();
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for args in body.as_array().into_iter().flatten() {
        match command(args) {
            Ok(cmd) => {
                pipe.add_command(cmd);
            }
            Err(e) => return answer(StatusCode::BAD_REQUEST, json!({"error": e})),
        }
    }
    let mut conn = shim.redis.clone();
    match pipe.query_async::<Vec<Value>>(&mut conn).await {
        Ok(values) => answer(
            StatusCode::OK,
            JsonValue::Array(values.into_iter().map(|v| entry(Ok(v))).collect()),
        ),
        Err(e) => answer(StatusCode::BAD_REQUEST, json!({"error": error_text(&e)})),
    }
}
