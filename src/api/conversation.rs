//! One account conversation: `GET /v1/conversations/{id}`, `PATCH` (rename, archive, settings)
//! and `DELETE` (soft, or `?hard=true` for good). (One unit per path: the spec keeps one path
//! item per unit.)

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};
use uuid::Uuid;

use super::{
    ApiTags,
    conversations::Conversation,
    error::{ApiResult, statuses},
    security::UserBearer,
    types::{StrictString, settable},
};
use crate::{service::conversations::ConversationPatch, state::AppState};

statuses! {
    /// Reading one conversation.
    GetErrors: 400, 401, 404, 500, 503;
    /// Changing a conversation.
    PatchErrors: 400, 401, 404, 413, 415, 422, 500, 503;
    /// Deleting a conversation.
    DeleteErrors: 400, 401, 404, 500, 503;
}

/// Where a conversation may be moved: `active` or `archived` (deleting is `DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SettableStatus {
    Active,
    Archived,
}

impl SettableStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SettableStatus::Active => "active",
            SettableStatus::Archived => "archived",
        }
    }
}

/// The fields to change; absent ones stay. `description`, `system_prompt`, `model_used`,
/// `temperature` and `max_tokens` are cleared with `null`.
#[derive(Debug, Object, Default)]
#[oai(example)]
pub struct ConversationChanges {
    /// A blank title is ignored.
    pub title: Option<StrictString>,
    pub description: MaybeUndefined<StrictString>,
    pub system_prompt: MaybeUndefined<StrictString>,
    pub model_used: MaybeUndefined<StrictString>,
    /// 0 to 2.
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    pub temperature: MaybeUndefined<f64>,
    /// 1 or more.
    #[oai(validator(minimum(value = "1")))]
    pub max_tokens: MaybeUndefined<i32>,
    /// Replaces the tags.
    pub tags: Option<Vec<StrictString>>,
    pub status: Option<SettableStatus>,
    pub is_public: Option<bool>,
    pub is_shared: Option<bool>,
}

impl From<ConversationChanges> for ConversationPatch {
    fn from(c: ConversationChanges) -> Self {
        let text = |s: StrictString| s.0;
        Self {
            title: c.title.map(text),
            description: settable(c.description, text),
            system_prompt: settable(c.system_prompt, text),
            model_used: settable(c.model_used, text),
            temperature: settable(c.temperature, |t| t),
            max_tokens: settable(c.max_tokens, |t| t),
            tags: c.tags.map(|tags| tags.into_iter().map(text).collect()),
            status: c.status.map(|s| s.as_str().to_string()),
            is_public: c.is_public,
            is_shared: c.is_shared,
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum Deleted {
    /// Deleted: gone from lists and reads (with `hard=true`, erased from every layer).
    #[oai(status = 204)]
    NoContent,
}

pub struct ConversationApi;

#[OpenApi(tag = "ApiTags::Conversations")]
impl ConversationApi {
    /// One of your conversations (another user's, or a deleted one, is 404)
    #[oai(
        path = "/v1/conversations/:id",
        method = "get",
        operation_id = "get_conversation"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Conversation>, GetErrors> {
        Ok(Json(state.conversations.get(user.0.id, id.0).await?.into()))
    }

    /// Change a conversation
    ///
    /// Rename, archive or restore (`status`), or change its settings. Answers the conversation as
    /// it now is. Another user's conversation, or a deleted one, is 404.
    #[oai(
        path = "/v1/conversations/:id",
        method = "patch",
        operation_id = "update_conversation"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
        body: Json<ConversationChanges>,
    ) -> ApiResult<Json<Conversation>, PatchErrors> {
        let changed = state
            .conversations
            .update(user.0.id, id.0, body.0.into())
            .await?;
        Ok(Json(changed.into()))
    }

    /// Delete a conversation
    ///
    /// By default a soft delete: status `deleted`, gone from lists, reads, search and writes.
    /// With `hard=true` the conversation and its messages are erased from every layer (with the
    /// cache rows of the guest it was migrated from); a soft-deleted one can be erased this way
    /// too.
    #[oai(
        path = "/v1/conversations/:id",
        method = "delete",
        operation_id = "delete_conversation"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
        /// Erase for good instead of marking deleted.
        hard: Query<Option<bool>>,
    ) -> ApiResult<Deleted, DeleteErrors> {
        if hard.0.unwrap_or(false) {
            state.erasure.erase_conversation(user.0.id, id.0).await?;
        } else {
            state.conversations.delete(user.0.id, id.0).await?;
        }
        Ok(Deleted::NoContent)
    }
}
