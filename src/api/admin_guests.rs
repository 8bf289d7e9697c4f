//! What the admin dashboard reads besides the audit API: the guest list
//! (`GET /v1/admin/guests`) and the live samples behind its charts (`GET /v1/admin/live`).
// poem-openapi takes one handler argument per documented query parameter.
#![allow(clippy::too_many_arguments)]

use poem::web::Data;
use poem_openapi::{Enum, Object, OpenApi, param::Query, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, statuses},
    security::AdminBearer,
    types::{ListCursor, StrictString, Timestamp},
};
use crate::{
    service::{
        guest::rules::validate_text,
        inspect::{GuestQuery, GuestState, GuestSummary},
        live::{INTERVAL_SECS, Sample},
        page::page_size,
    },
    state::AppState,
};

statuses! {
    /// Listing guests.
    GuestListErrors: 400, 401, 404, 422, 429, 500, 503;
    /// Reading the live samples.
    LiveErrors: 401, 404, 429, 500;
}

/// Where a guest stands: `active` (may chat on), `migrated` (moved into an account) or
/// `expired` (past `expires_at` without migrating; retention deletes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum GuestStatus {
    Active,
    Migrated,
    Expired,
}

impl From<GuestStatus> for GuestState {
    fn from(s: GuestStatus) -> Self {
        match s {
            GuestStatus::Active => Self::Active,
            GuestStatus::Migrated => Self::Migrated,
            GuestStatus::Expired => Self::Expired,
        }
    }
}

impl From<GuestState> for GuestStatus {
    fn from(s: GuestState) -> Self {
        match s {
            GuestState::Active => Self::Active,
            GuestState::Migrated => Self::Migrated,
            GuestState::Expired => Self::Expired,
        }
    }
}

/// One guest, its conversations taken together.
#[derive(Debug, Object)]
pub struct GuestListItem {
    pub guest_id: String,
    /// The guest's first conversation in the cache tables.
    pub conversation_id: Uuid,
    /// How many conversations the guest started (1 unless it started others).
    pub conversations: u64,
    /// Messages in all of them.
    pub messages: i64,
    pub created_at: Timestamp,
    pub last_activity_at: Timestamp,
    /// When an unmigrated guest expires (null: never, or migrated).
    pub expires_at: Option<Timestamp>,
    /// The user the guest became (null until it migrates).
    pub migrated_to: Option<String>,
    pub status: GuestStatus,
}

impl From<GuestSummary> for GuestListItem {
    fn from(g: GuestSummary) -> Self {
        Self {
            guest_id: g.guest_id,
            conversation_id: g.conversation_id,
            conversations: g.conversations,
            messages: g.messages,
            created_at: Timestamp(g.created_at),
            last_activity_at: Timestamp(g.last_activity_at),
            expires_at: g.expires_at.map(Timestamp),
            migrated_to: g.migrated_to,
            status: g.state.into(),
        }
    }
}

/// One page of guests, newest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct GuestList {
    pub guests: Vec<GuestListItem>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// What one interval looked like.
#[derive(Debug, Object)]
pub struct LiveSample {
    /// The end of the interval.
    pub at: Timestamp,
    /// Requests answered per second, the admin API's own left out.
    pub requests_per_sec: f64,
    /// 5xx answers per second.
    pub errors_per_sec: f64,
    /// Latency percentiles of the interval's requests in milliseconds (absent without requests;
    /// from the `/metrics` histogram's buckets, so 1000 means "1 s or more").
    #[oai(skip_serializing_if_is_none)]
    pub p50_ms: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub p95_ms: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub p99_ms: Option<f64>,
    /// Jobs waiting for the SQLite group-commit writer (0 on PostgreSQL).
    pub writer_queue: u64,
    /// Mean jobs per writer batch in the interval (absent when it wrote none).
    #[oai(skip_serializing_if_is_none)]
    pub writer_batch: Option<f64>,
    pub embedding_backlog: u64,
    /// The hot cache's hit ratio since start, 0 to 1.
    pub l1_hit_ratio: f64,
}

impl From<Sample> for LiveSample {
    fn from(s: Sample) -> Self {
        Self {
            at: Timestamp(s.at),
            requests_per_sec: s.requests_per_sec,
            errors_per_sec: s.errors_per_sec,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
            writer_queue: s.writer_queue,
            writer_batch: s.writer_batch,
            embedding_backlog: s.embedding_backlog,
            l1_hit_ratio: s.l1_hit_ratio,
        }
    }
}

/// The samples of the last five minutes, oldest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LiveSamples {
    /// Seconds between samples.
    pub interval_secs: u64,
    pub samples: Vec<LiveSample>,
}

pub struct AdminGuestsApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminGuestsApi {
    /// Every guest, newest first
    ///
    /// Searchable by a part of the guest id (`q`) and by `status`, a page at a time.
    #[oai(
        path = "/v1/admin/guests",
        method = "get",
        operation_id = "list_guests"
    )]
    async fn guests(
        &self,
        state: Data<&AppState>,
        _admin: AdminBearer,
        /// A part of the guest id.
        q: Query<Option<StrictString>>,
        status: Query<Option<GuestStatus>>,
        /// At most this many (default 100, max 1000).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// The previous page's `next_cursor`.
        cursor: Query<Option<ListCursor>>,
    ) -> ApiResult<Json<GuestList>, GuestListErrors> {
        let limit = page_size(limit.0)?;
        if let Some(q) = &q.0 {
            validate_text("q", q)?;
        }
        let page = state
            .inspect
            .guests(GuestQuery {
                q: q.0.map(|q| q.0),
                state: status.0.map(GuestState::from),
                limit,
                cursor: cursor.0.map(|c| c.0),
            })
            .await?;
        Ok(Json(GuestList {
            guests: page.items.into_iter().map(GuestListItem::from).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Live samples for the dashboard's charts
    ///
    /// Every two seconds: requests per second, latency percentiles, the writer's queue and batch
    /// size, the embedding backlog and the hot cache's hit ratio; the last five minutes.
    #[oai(path = "/v1/admin/live", method = "get", operation_id = "get_live")]
    async fn live(
        &self,
        state: Data<&AppState>,
        _admin: AdminBearer,
    ) -> ApiResult<Json<LiveSamples>, LiveErrors> {
        Ok(Json(LiveSamples {
            interval_secs: INTERVAL_SECS,
            samples: state.live.samples().into_iter().map(Into::into).collect(),
        }))
    }
}
