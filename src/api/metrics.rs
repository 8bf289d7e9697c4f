//! `GET /metrics`: the Prometheus text format, outside the OpenAPI spec (like `/docs`). Open by
//! default; `metrics.token` puts it behind `Authorization: Bearer`.

use poem::{IntoResponse, Request, Response, handler, http::StatusCode, web::Data};

use super::{error::ErrorBody, security::constant_time_eq};
use crate::{service::ErrorCode, state::AppState};

#[handler]
pub fn metrics_text(state: Data<&AppState>, req: &Request) -> Response {
    let expected = state.settings.metrics.token.expose();
    if !expected.is_empty() {
        let given = req
            .header("authorization")
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if !given.is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes())) {
            return ErrorBody::new(
                ErrorCode::Unauthorized,
                "send the metrics token as Authorization: Bearer",
            )
            .with_status(StatusCode::UNAUTHORIZED)
            .into_response();
        }
    }
    let metrics = crate::metrics::global();
    // Gauges read at scrape time.
    metrics
        .writer_queue
        .with_label_values::<&str>(&[])
        .set(i64::try_from(state.store.writer_queue_depth()).unwrap_or(i64::MAX));
    let (in_use, idle) = state.store.pool_state();
    metrics
        .db_pool
        .with_label_values(&["in_use"])
        .set(i64::try_from(in_use).unwrap_or(i64::MAX));
    metrics
        .db_pool
        .with_label_values(&["idle"])
        .set(i64::try_from(idle).unwrap_or(i64::MAX));
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}
