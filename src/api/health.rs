//! Liveness and readiness: `/healthz` (the process answers) and `/readyz` (each layer's state).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::ApiTags;
use crate::state::AppState;

#[derive(Debug, Object)]
#[oai(example)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct Readiness {
    /// `ready` when SQL answers, else `unavailable`.
    pub status: String,
    /// The SQL database: `up` or `down`.
    pub sql: String,
    /// `sqlite` or `postgres`.
    pub sql_backend: String,
    /// The hot cache: `up` or `down` (reads and writes still work from SQL while it is down).
    pub l1: String,
    /// `memory` or `redis`.
    pub l1_backend: String,
    /// The SQLite group-commit writer: `up`, `down` (its task stopped: writes fail), or `none`
    /// (PostgreSQL: each write is its own transaction).
    pub writer: String,
    /// Writes that panicked since start (each answered 500 and rolled back; the writer went on).
    pub writer_panics: u64,
    /// The embeddings provider: `lexical`, `minilm`, `openai` or `none`.
    pub embeddings: String,
    /// Messages waiting for their vector (a number, not a failure: they are embedded in the
    /// background).
    pub embedding_backlog: u64,
    /// Embedding batches that failed since start (each logged at ERROR and retried).
    pub embedding_failures: u64,
}

#[derive(Debug, ApiResponse)]
pub enum ReadyResponse {
    /// SQL is reachable; the server can take writes.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// SQL is unreachable: writes answer 503 until it returns.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Operations")]
impl HealthApi {
    /// Liveness
    #[oai(path = "/healthz", method = "get", operation_id = "get_health")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness, with each layer's state
    #[oai(path = "/readyz", method = "get", operation_id = "get_readiness")]
    async fn readyz(&self, state: Data<&AppState>) -> ReadyResponse {
        let sql_up = state.store.ping().await.is_ok();
        let pipeline = state.embeddings.stats();
        let body = Readiness {
            status: if sql_up { "ready" } else { "unavailable" }.into(),
            sql: if sql_up { "up" } else { "down" }.into(),
            sql_backend: state.store.backend().name().into(),
            l1: state.hot.state().as_str().into(),
            l1_backend: state.hot.backend().into(),
            writer: match state.store.writer_health() {
                Some(w) if w.is_running() => "up",
                Some(_) => "down",
                None => "none",
            }
            .into(),
            writer_panics: state.store.writer_health().map_or(0, |w| w.panics()),
            embeddings: state.settings.embeddings.provider.clone(),
            embedding_backlog: pipeline.backlog,
            embedding_failures: pipeline.failures,
        };
        if sql_up {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }
}
