//! `POST /v1/guest/migrate/{guest_id}` (the seeds' `/migrate/{guest_id}` is rewritten to it).

use poem::web::Data;
use poem_openapi::{Object, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, statuses},
    security::{GuestTokenHeader, UserBearer},
    types::GuestId,
};
use crate::{service::migration::MigrationReport, state::AppState};

statuses! {
    /// Migrating a guest.
    MigrateErrors: 401, 404, 409, 422, 500, 503;
}

/// The outcome of a guest → account migration.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MigrationResult {
    pub migration_id: Uuid,
    pub user_id: Uuid,
    /// The account conversations the guest's messages now live in.
    pub conversation_ids: Vec<Uuid>,
    pub messages_migrated: i64,
    /// True when this guest had already been migrated into this account: nothing was redone.
    pub already_migrated: bool,
    /// SHA-256 over the ordered message hashes, as recorded in the audit trail.
    pub checksum: String,
}

impl From<MigrationReport> for MigrationResult {
    fn from(r: MigrationReport) -> Self {
        Self {
            migration_id: r.migration_id,
            user_id: r.user_id,
            conversation_ids: r.conversation_ids,
            messages_migrated: r.messages_migrated,
            already_migrated: r.already_migrated,
            checksum: r.checksum,
        }
    }
}

pub struct MigrationApi;

#[OpenApi(tag = "ApiTags::Guest")]
impl MigrationApi {
    /// Move a guest's conversation into the signed-in account
    ///
    /// Needs the user's `Authorization: Bearer` token and the guest's `X-Guest-Token`. Atomic and
    /// idempotent: a repeat by the same user answers 200 with `already_migrated: true`; a guest
    /// already moved into another account is 409 `guest_already_claimed`. Afterwards the guest id
    /// is read-only.
    #[oai(
        path = "/v1/guest/migrate/:guest_id",
        method = "post",
        operation_id = "migrate_guest"
    )]
    async fn migrate(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        guest_token: GuestTokenHeader,
        guest_id: Path<GuestId>,
    ) -> ApiResult<Json<MigrationResult>, MigrateErrors> {
        let report = state
            .migrations
            .migrate(user.0.id, &guest_id, guest_token.0.as_deref())
            .await?;
        Ok(Json(report.into()))
    }
}
