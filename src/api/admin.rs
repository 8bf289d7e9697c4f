//! The admin API (bearer = `admin.token`; off when none is configured): the migrations audit
//! trail and the cross-layer verification report.
// poem-openapi takes one handler argument per documented query parameter.
#![allow(clippy::too_many_arguments)]

use chrono::{DateTime, Utc};
use poem::{Request, web::Data};
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};
use uuid::Uuid;

use super::{ApiTags, error::ApiResult, guest::bearer};
use crate::{
    service::{ServiceError, admin::MigrationFilter},
    state::AppState,
};

#[derive(Debug, Object)]
pub struct MigrationRecord {
    pub id: Uuid,
    pub guest_id: String,
    pub user_id: String,
    /// `completed` or `failed`.
    pub status: String,
    pub conversations_migrated: i32,
    pub messages_migrated: i64,
    #[oai(skip_serializing_if_is_none)]
    pub checksum: Option<String>,
    pub conversation_ids: serde_json::Value,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct MigrationList {
    pub migrations: Vec<MigrationRecord>,
}

#[derive(Debug, Object)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Object)]
pub struct VerifyResult {
    /// True when every check passed.
    pub ok: bool,
    pub checks: Vec<CheckResult>,
}

fn admin(state: &AppState, req: &Request) -> Result<(), ServiceError> {
    let expected = state.settings.admin.token.expose();
    if expected.is_empty() {
        return Err(ServiceError::AdminDisabled);
    }
    match bearer(req) {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ServiceError::AdminTokenInvalid),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub struct AdminApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// The migrations audit trail, newest first
    #[oai(
        path = "/v1/admin/migrations",
        method = "get",
        operation_id = "list_migrations"
    )]
    async fn migrations(
        &self,
        state: Data<&AppState>,
        req: &Request,
        guest_id: Query<Option<String>>,
        user_id: Query<Option<String>>,
        /// Only migrations started at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Only migrations started before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// At most this many (default 100, max 1000).
        limit: Query<Option<u64>>,
    ) -> ApiResult<Json<MigrationList>> {
        admin(&state, req)?;
        let limit = limit.0.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(
                ServiceError::invalid("invalid_limit", "limit must be between 1 and 1000").into(),
            );
        }
        let rows = state
            .admin
            .migrations(MigrationFilter {
                guest_id: guest_id.0,
                user_id: user_id.0,
                since: since.0,
                until: until.0,
                limit,
            })
            .await?;
        Ok(Json(MigrationList {
            migrations: rows
                .into_iter()
                .map(|m| MigrationRecord {
                    id: m.id,
                    guest_id: m.guest_id,
                    user_id: m.user_id,
                    status: m.status,
                    conversations_migrated: m.conversations_migrated,
                    messages_migrated: m.messages_migrated,
                    checksum: m.checksum,
                    conversation_ids: m.conversation_ids,
                    error: m.error,
                    started_at: m.started_at,
                    completed_at: m.completed_at,
                })
                .collect(),
        }))
    }

    /// Check every layer against the others and the audit trail
    #[oai(path = "/v1/admin/verify", method = "get", operation_id = "verify")]
    async fn verify(&self, state: Data<&AppState>, req: &Request) -> ApiResult<Json<VerifyResult>> {
        admin(&state, req)?;
        let report = state.admin.verify().await?;
        Ok(Json(VerifyResult {
            ok: report.ok,
            checks: report
                .checks
                .into_iter()
                .map(|c| CheckResult {
                    name: c.name.into(),
                    ok: c.ok,
                    detail: c.detail,
                })
                .collect(),
        }))
    }
}
