//! The admin API (bearer = `admin.token`; off when none is configured): the migrations audit
//! trail and the cross-layer verification report.
// poem-openapi takes one handler argument per documented query parameter.
#![allow(clippy::too_many_arguments)]

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, statuses},
    security::AdminBearer,
    types::{MigrationStatus, Timestamp},
};
use crate::{
    service::{admin::MigrationFilter, page::page_size},
    state::AppState,
};

statuses! {
    /// Reading the audit trail.
    AuditErrors: 400, 401, 404, 422, 500, 503;
    /// Verifying the layers.
    VerifyErrors: 401, 404, 500, 503;
}

#[derive(Debug, Object)]
pub struct MigrationRecord {
    pub id: Uuid,
    pub guest_id: String,
    pub user_id: String,
    pub status: MigrationStatus,
    pub conversations_migrated: i32,
    pub messages_migrated: i64,
    #[oai(skip_serializing_if_is_none)]
    pub checksum: Option<String>,
    pub conversation_ids: serde_json::Value,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    pub started_at: Timestamp,
    #[oai(skip_serializing_if_is_none)]
    pub completed_at: Option<Timestamp>,
}

impl From<entity::cache_migrations::Model> for MigrationRecord {
    fn from(m: entity::cache_migrations::Model) -> Self {
        Self {
            id: m.id,
            guest_id: m.guest_id,
            user_id: m.user_id,
            status: MigrationStatus::from_stored(&m.status),
            conversations_migrated: m.conversations_migrated,
            messages_migrated: m.messages_migrated,
            checksum: m.checksum,
            conversation_ids: m.conversation_ids,
            error: m.error,
            started_at: m.started_at.into(),
            completed_at: m.completed_at.map(Timestamp),
        }
    }
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
        _admin: AdminBearer,
        guest_id: Query<Option<String>>,
        user_id: Query<Option<String>>,
        /// Only migrations started at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Only migrations started before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// At most this many (default 100, max 1000).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
    ) -> ApiResult<Json<MigrationList>, AuditErrors> {
        let limit = page_size(limit.0)?;
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
            migrations: rows.into_iter().map(MigrationRecord::from).collect(),
        }))
    }

    /// Check every layer against the others and the audit trail
    #[oai(path = "/v1/admin/verify", method = "get", operation_id = "verify")]
    async fn verify(
        &self,
        state: Data<&AppState>,
        _admin: AdminBearer,
    ) -> ApiResult<Json<VerifyResult>, VerifyErrors> {
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
