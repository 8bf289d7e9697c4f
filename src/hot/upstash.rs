//! Redis over Upstash's REST API, for deployments that reach their Redis only over HTTPS
//! (`UPSTASH_REDIS_URL=https://…` with `UPSTASH_REDIS_TOKEN`). It speaks the protocol as Upstash
//! documents it: a command is a JSON array of strings POSTed to the URL with
//! `Authorization: Bearer <token>`, answered `{"result": …}` or `{"error": "…"}`; several go
//! to `/pipeline` in one request, and to `/multi-exec` as one transaction, answered with one such
//! object each. It implements redis-rs's async `ConnectionLike`, so the Redis backend's commands
//! and Lua scripts (EVALSHA, then EVAL on NOSCRIPT) run over it unchanged.

use std::time::Duration;

use redis::{
    Arg, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value, aio::ConnectionLike,
};
use serde_json::Value as Json;

use super::HotError;

/// One Upstash REST endpoint.
#[derive(Clone)]
pub struct UpstashRest {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl UpstashRest {
    /// `url` is the REST URL (`https://…`; `http://` for a local stand-in), `token` its bearer.
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, HotError> {
        if token.is_empty() {
            return Err(HotError(
                "the Upstash REST URL needs its token (UPSTASH_REDIS_TOKEN)".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout.max(Duration::from_millis(100)))
            .connect_timeout(timeout.max(Duration::from_millis(500)))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| HotError(format!("Upstash REST client: {e}")))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    async fn post(&self, path: &str, body: &Json) -> RedisResult<Json> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| io_error("Upstash REST request failed", e.to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(RedisError::from((
                ErrorKind::AuthenticationFailed,
                "Upstash REST refused the token",
            )));
        }
        let answer: Json = resp.json().await.map_err(|e| {
            io_error(
                "Upstash REST answered without JSON",
                format!("{status}: {e}"),
            )
        })?;
        // A command error comes as 400 with {"error"}, which the caller turns into a server error.
        if status.is_server_error() || (!status.is_success() && answer.get("error").is_none()) {
            return Err(io_error(
                "Upstash REST failed",
                format!("{status}: {answer}"),
            ));
        }
        Ok(answer)
    }
}

fn io_error(what: &'static str, detail: String) -> RedisError {
    RedisError::from((ErrorKind::Io, what, detail))
}

/// A command as Upstash takes it: its arguments as JSON strings.
fn command_json(cmd: &Cmd) -> RedisResult<Json> {
    let mut args = Vec::new();
    for arg in cmd.args_iter() {
        match arg {
            Arg::Simple(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => args.push(Json::String(text.to_string())),
                Err(_) => {
                    return Err(RedisError::from((
                        ErrorKind::Client,
                        "Upstash REST carries text only",
                    )));
                }
            },
            _ => {
                return Err(RedisError::from((
                    ErrorKind::Client,
                    "cursor iteration is not supported over Upstash REST",
                )));
            }
        }
    }
    Ok(Json::Array(args))
}

/// `{"result": …}` or `{"error": "…"}` as the value a Redis connection would have read.
fn entry_value(entry: &Json) -> RedisResult<Value> {
    if let Some(message) = entry.get("error") {
        let text = message
            .as_str()
            .map_or_else(|| message.to_string(), str::to_string);
        // Parsed as the RESP error line it stands for, so that its kind (NOSCRIPT, WRONGTYPE…)
        // is the one Redis would give.
        let line = format!("-{}\r\n", text.replace(['\r', '\n'], " "));
        return redis::parse_redis_value(line.as_bytes());
    }
    match entry.get("result") {
        Some(result) => Ok(json_value(result)),
        None => Err(io_error(
            "Upstash REST answered neither result nor error",
            entry.to_string(),
        )),
    }
}

fn json_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Int(i64::from(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::BulkString(n.to_string().into_bytes()),
        },
        Json::String(s) => Value::BulkString(s.clone().into_bytes()),
        Json::Array(items) => Value::Array(items.iter().map(json_value).collect()),
        Json::Object(_) => Value::BulkString(v.to_string().into_bytes()),
    }
}

impl ConnectionLike for UpstashRest {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let answer = self.post("", &command_json(cmd)?).await?;
            entry_value(&answer)?.extract_error()
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        _offset: usize,
        _count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let commands = pipeline
                .cmd_iter()
                .map(command_json)
                .collect::<RedisResult<Vec<_>>>()?;
            let path = if pipeline.is_transaction() {
                "/multi-exec"
            } else {
                "/pipeline"
            };
            let answer = self.post(path, &Json::Array(commands)).await?;
            let Some(entries) = answer.as_array() else {
                // A transaction that failed as a whole: one error object.
                return Err(entry_value(&answer)?
                    .extract_error()
                    .err()
                    .unwrap_or_else(|| io_error("Upstash REST failed", answer.to_string())));
            };
            let values = entries
                .iter()
                .map(entry_value)
                .collect::<RedisResult<Vec<_>>>()?;
            // A transaction reads as EXEC's one answer; a pipeline as one answer per command.
            Ok(if pipeline.is_transaction() {
                vec![Value::Array(values)]
            } else {
                values
            })
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_as_a_redis_connection_would() {
        let ok = entry_value(&serde_json::json!({"result": ["a", 2, null]})).expect("value");
        assert_eq!(
            ok,
            Value::Array(vec![
                Value::BulkString(b"a".to_vec()),
                Value::Int(2),
                Value::Nil
            ])
        );
        let missing = entry_value(&serde_json::json!({"error": "NOSCRIPT No matching script"}))
            .and_then(Value::extract_error)
            .expect_err("error");
        assert_eq!(
            missing.kind(),
            ErrorKind::Server(redis::ServerErrorKind::NoScript)
        );
    }

    #[test]
    fn commands_go_as_json_arrays_of_strings() {
        let mut cmd = redis::cmd("EXPIRE");
        cmd.arg("guest:g").arg(60);
        assert_eq!(
            command_json(&cmd).expect("json"),
            serde_json::json!(["EXPIRE", "guest:g", "60"])
        );
    }
}
