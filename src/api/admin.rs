//! The admin API (bearer = `admin.token`; off when none is configured): the migrations audit
//! trail, the cross-layer verification report, table counts, and one guest's layers.
// poem-openapi takes one handler argument per documented query parameter.
#![allow(clippy::too_many_arguments)]

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    Object, OpenApi, Union,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, statuses},
    migration::MigrationResult,
    security::AdminBearer,
    types::{GuestId, MigrationStatus, StrictString, Timestamp},
};
use crate::{
    service::{
        admin::MigrationFilter, guest::rules::validate_text, inspect::why_empty, page::page_size,
    },
    state::AppState,
};

statuses! {
    /// Reading the audit trail.
    AuditErrors: 400, 401, 404, 422, 429, 500, 503;
    /// Verifying the layers, or counting rows.
    VerifyErrors: 401, 404, 429, 500, 503;
    /// Inspecting one guest.
    InspectErrors: 401, 404, 422, 429, 500, 503;
    /// Migrating a guest for an auth server.
    AdminMigrateErrors: 400, 401, 404, 409, 413, 415, 422, 429, 500, 503;
}

/// Whom a guest moves to: a user of Genesis by id, or a user of your identity provider by its
/// id there (the user row is created when new). Exactly one of the two.
#[derive(Debug, Union)]
#[oai(one_of)]
pub enum AdminMigrate {
    ToUser(ToUser),
    ToExternal(ToExternal),
}

/// A user of Genesis.
#[derive(Debug, Object)]
pub struct ToUser {
    pub user_id: Uuid,
}

/// A user of your identity provider.
#[derive(Debug, Object)]
pub struct ToExternal {
    /// The user's id at the identity provider (the `sub` of its tokens), 1 to 255 characters.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: StrictString,
}

/// Row counts and the hot cache's state.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Stats {
    /// Rows in every table (`users`, `conversations`, `messages`, `usage_metrics`,
    /// `conversation_cache`, `message_cache`, `cache_content_mapping`, `cache_migrations`,
    /// `cache_metrics`, `cache_embeddings`).
    pub tables: std::collections::BTreeMap<String, i64>,
    /// For each table at 0 rows, why it may be empty (when known), e.g. `embeddings provider is
    /// none (GENESIS__EMBEDDINGS__PROVIDER)`.
    pub empty: std::collections::BTreeMap<String, String>,
    pub l1: L1Stats,
    pub embeddings: EmbeddingStats,
    pub uptime_secs: u64,
}

#[derive(Debug, Object)]
pub struct EmbeddingStats {
    /// `lexical`, `minilm`, `openai` or `none`.
    pub provider: String,
    /// What `cache_embeddings.model` says for this embedder's vectors; absent when off.
    #[oai(skip_serializing_if_is_none)]
    pub model: Option<String>,
    /// Messages waiting for their vector.
    pub backlog: u64,
    /// Vectors stored since start.
    pub stored: u64,
    /// Failed embedding batches since start (each logged at ERROR and retried).
    pub failures: u64,
}

#[derive(Debug, Object)]
pub struct L1Stats {
    /// `memory` or `redis`.
    pub backend: String,
    /// `up` or `down`.
    pub state: String,
    /// Share of guest reads since start answered by the hot cache, 0 to 1.
    pub hit_ratio: f64,
}

/// Where one guest's data is right now.
#[derive(Debug, Object)]
#[oai(example)]
pub struct GuestLayersView {
    pub guest_id: String,
    pub l1: L1View,
    /// The guest's conversation in the cache tables; absent once cleanup deleted it.
    pub l2: Option<L2View>,
    pub mapping: MappingView,
    /// Stored vectors of this guest's messages.
    pub embeddings: u64,
    /// The guest's usage row, when flushed.
    pub usage: Option<UsageView>,
    /// The latest audit record of a migration of this guest (absent when it never migrated).
    #[oai(skip_serializing_if_is_none)]
    pub migration: Option<MigrationRecord>,
    /// The newest messages (up to 50) in the cache tables, of all the guest's conversations,
    /// oldest first.
    pub messages: Vec<LayerMessage>,
}

/// A message as the cache tables hold it.
#[derive(Debug, Object)]
pub struct LayerMessage {
    pub conversation_id: Uuid,
    pub sequence: i64,
    pub role: String,
    pub content: String,
    pub created_at: Timestamp,
}

impl From<entity::message_cache::Model> for LayerMessage {
    fn from(m: entity::message_cache::Model) -> Self {
        Self {
            conversation_id: m.conversation_id,
            sequence: m.sequence,
            role: m.role,
            content: m.content,
            created_at: Timestamp(m.created_at),
        }
    }
}

#[derive(Debug, Object)]
pub struct L1View {
    pub present: bool,
    pub messages: u64,
    /// Seconds left (Redis); null for the in-process cache or when absent.
    pub ttl_secs: Option<i64>,
}

#[derive(Debug, Object)]
pub struct L2View {
    pub conversation_id: Uuid,
    pub messages: u64,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Object)]
pub struct MappingView {
    /// Ledger rows of the guest's messages.
    pub rows: u64,
    /// Of those, synced into an account.
    pub synced: u64,
}

#[derive(Debug, Object)]
pub struct UsageView {
    pub tier: String,
    pub total_requests: i64,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub messages_stored: i64,
    pub tokens_total: i64,
    pub last_request_at: Option<Timestamp>,
}

impl From<entity::usage_metrics::Model> for UsageView {
    fn from(u: entity::usage_metrics::Model) -> Self {
        Self {
            tier: u.tier,
            total_requests: u.total_requests,
            cache_hits: u.cache_hits,
            cache_misses: u.cache_misses,
            messages_stored: u.messages_stored,
            tokens_total: u.tokens_total,
            last_request_at: u.last_request_at.map(Timestamp),
        }
    }
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
#[oai(example)]
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
#[oai(example)]
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
        /// Only migrations that ended so.
        status: Query<Option<MigrationStatus>>,
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
                status: status.0.map(MigrationStatus::as_str),
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

    /// Row counts of every table, the hot cache's hit ratio, uptime
    #[oai(path = "/v1/admin/stats", method = "get", operation_id = "get_stats")]
    async fn stats(
        &self,
        state: Data<&AppState>,
        _admin: AdminBearer,
    ) -> ApiResult<Json<Stats>, VerifyErrors> {
        let tables = state.inspect.table_counts().await?;
        let provider = &state.settings.embeddings.provider;
        let flush = state.settings.metrics.flush_interval_secs;
        Ok(Json(Stats {
            empty: tables
                .iter()
                .filter(|(_, n)| *n == 0)
                .filter_map(|(t, _)| Some((t.to_string(), why_empty(t, provider, flush)?)))
                .collect(),
            tables: tables
                .into_iter()
                .map(|(t, n)| (t.to_string(), n))
                .collect(),
            l1: L1Stats {
                backend: state.hot.backend().into(),
                state: state.hot.state().as_str().into(),
                hit_ratio: crate::metrics::global().l1_hit_ratio(),
            },
            embeddings: {
                let p = state.embeddings.stats();
                EmbeddingStats {
                    provider: state.settings.embeddings.provider.clone(),
                    model: p.model,
                    backlog: p.backlog,
                    stored: p.stored,
                    failures: p.failures,
                }
            },
            uptime_secs: state.started.elapsed().as_secs(),
        }))
    }

    /// Where one guest's data is, layer by layer
    ///
    /// The hot cache entry, the cache-table conversation, ledger rows, embeddings, usage row and
    /// the latest migration audit record. 404 when no layer knows the guest.
    #[oai(
        path = "/v1/admin/guests/:guest_id/layers",
        method = "get",
        operation_id = "get_guest_layers"
    )]
    async fn guest_layers(
        &self,
        state: Data<&AppState>,
        _admin: AdminBearer,
        guest_id: Path<GuestId>,
    ) -> ApiResult<Json<GuestLayersView>, InspectErrors> {
        let layers = state.inspect.guest_layers(&guest_id).await?;
        Ok(Json(GuestLayersView {
            guest_id: guest_id.0.0,
            l1: L1View {
                present: layers.l1.present,
                messages: layers.l1.messages,
                ttl_secs: layers.l1.ttl_secs,
            },
            l2: layers.l2.map(|l2| L2View {
                conversation_id: l2.conversation_id,
                messages: l2.messages,
                expires_at: l2.expires_at.map(Timestamp),
            }),
            mapping: MappingView {
                rows: layers.mapping_rows,
                synced: layers.mapping_synced,
            },
            embeddings: layers.embeddings,
            usage: layers.usage.map(UsageView::from),
            migration: layers.migration.map(MigrationRecord::from),
            messages: layers
                .messages
                .into_iter()
                .map(LayerMessage::from)
                .collect(),
        }))
    }

    /// Migrate a guest for your auth server
    ///
    /// For apps whose sign-up runs elsewhere (better-auth's anonymous plugin `onLinkAccount`,
    /// Clerk or Auth0 post-sign-up webhooks): the same migration as
    /// `POST /v1/guest/migrate/{guest_id}` — one transaction, an audit row, a repeat answers 200
    /// `already_migrated: true`, 409 `guest_already_claimed` when another user has the guest —
    /// on the admin token instead of the user's and the guest's tokens.
    #[oai(
        path = "/v1/admin/guests/:guest_id/migrate",
        method = "post",
        operation_id = "admin_migrate_guest"
    )]
    async fn migrate_guest(
        &self,
        state: Data<&AppState>,
        _admin: AdminBearer,
        guest_id: Path<GuestId>,
        body: Json<AdminMigrate>,
    ) -> ApiResult<Json<MigrationResult>, AdminMigrateErrors> {
        let user = match body.0 {
            AdminMigrate::ToUser(to) => state.auth.user(to.user_id).await?,
            AdminMigrate::ToExternal(to) => {
                validate_text("external_id", &to.external_id.0)?;
                state.auth.external_user(&to.external_id.0).await?
            }
        };
        let report = state.migrations.migrate_trusted(user.id, &guest_id).await?;
        Ok(Json(report.into()))
    }
}
