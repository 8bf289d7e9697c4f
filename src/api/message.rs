//! One message of an account conversation: `PATCH` (edit, rate, flag) and `DELETE`
//! `/v1/conversations/{id}/messages/{message_id}`, and its earlier texts (`…/versions`).

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi, param::Path, payload::Json, types::MaybeUndefined,
};
use uuid::Uuid;

use super::{
    ApiTags,
    conversations::Message,
    error::{ApiResult, statuses},
    security::UserBearer,
    types::{Content, Timestamp, settable},
};
use crate::{service::conversations::MessageEdit, state::AppState};

statuses! {
    /// Changing a message.
    EditErrors: 400, 401, 404, 413, 415, 422, 500, 503;
    /// Deleting a message.
    DeleteMessageErrors: 400, 401, 404, 500, 503;
    /// Reading a message's versions.
    VersionsErrors: 400, 401, 404, 500, 503;
}

/// What to change; absent fields stay.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MessageChanges {
    /// New text: the current one is kept as a version and `is_edited` becomes true; its tokens
    /// are counted again.
    pub content: Option<Content>,
    /// 1 to 5, or null to clear.
    #[oai(validator(minimum(value = "1"), maximum(value = "5")))]
    pub user_rating: MaybeUndefined<i16>,
    pub flagged: Option<bool>,
}

/// An earlier text of a message.
#[derive(Debug, Object)]
pub struct MessageVersion {
    pub content: String,
    #[oai(skip_serializing_if_is_none)]
    pub tokens_used: Option<i32>,
    /// When this text was replaced.
    pub edited_at: Timestamp,
}

/// A message as it is now, and the texts it had before, oldest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MessageVersions {
    pub message: Message,
    pub versions: Vec<MessageVersion>,
}

#[derive(Debug, ApiResponse)]
pub enum MessageDeleted {
    /// Deleted, with its versions; the conversation's counters follow.
    #[oai(status = 204)]
    NoContent,
}

pub struct MessageApi;

#[OpenApi(tag = "ApiTags::Conversations")]
impl MessageApi {
    /// Edit, rate or flag a message
    ///
    /// Answers the message as it now is. A message of another user's conversation, or of a
    /// deleted one, is 404.
    #[oai(
        path = "/v1/conversations/:id/messages/:message_id",
        method = "patch",
        operation_id = "update_message"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
        body: Json<MessageChanges>,
    ) -> ApiResult<Json<Message>, EditErrors> {
        let body = body.0;
        let edit = MessageEdit {
            content: body.content.map(|c| c.0),
            user_rating: settable(body.user_rating, |r| r),
            flagged: body.flagged,
        };
        let message = state
            .conversations
            .edit_message(user.0.id, id.0, message_id.0, edit)
            .await?;
        Ok(Json(Message::new(message, None)))
    }

    /// Delete a message
    #[oai(
        path = "/v1/conversations/:id/messages/:message_id",
        method = "delete",
        operation_id = "delete_message"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
    ) -> ApiResult<MessageDeleted, DeleteMessageErrors> {
        state
            .conversations
            .delete_message(user.0.id, id.0, message_id.0)
            .await?;
        Ok(MessageDeleted::NoContent)
    }

    /// A message's earlier texts
    #[oai(
        path = "/v1/conversations/:id/messages/:message_id/versions",
        method = "get",
        operation_id = "list_message_versions"
    )]
    async fn versions(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
        message_id: Path<Uuid>,
    ) -> ApiResult<Json<MessageVersions>, VersionsErrors> {
        let (message, versions) = state
            .conversations
            .message_versions(user.0.id, id.0, message_id.0)
            .await?;
        Ok(Json(MessageVersions {
            message: Message::new(message, None),
            versions: versions
                .into_iter()
                .map(|v| MessageVersion {
                    content: v.content,
                    tokens_used: v.tokens_used,
                    edited_at: v.edited_at.into(),
                })
                .collect(),
        }))
    }
}
