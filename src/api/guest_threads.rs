//! `POST` and `GET /v1/guest/chat/{guest_id}/conversations`: a guest starts another
//! conversation, and lists its conversations (one OpenApi unit for the path).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, statuses},
    security::GuestToken,
    types::{GuestId, Timestamp},
};
use crate::{service::guest::GuestThread, state::AppState};

statuses! {
    /// Starting a guest conversation.
    StartErrors: 400, 401, 404, 409, 422, 500, 503;
    /// Listing a guest's conversations.
    ListErrors: 400, 401, 404, 409, 422, 500, 503;
}

/// One of a guest's conversations.
#[derive(Debug, Object)]
#[oai(example)]
pub struct GuestConversationSummary {
    pub conversation_id: Uuid,
    /// From its first user message; absent until then.
    #[oai(skip_serializing_if_is_none)]
    pub title: Option<String>,
    pub message_count: i64,
    pub created_at: Timestamp,
    /// Its last write or read.
    pub last_activity_at: Timestamp,
    /// True for the one appends and reads go to when they name no `conversation_id`.
    pub latest: bool,
}

impl From<GuestThread> for GuestConversationSummary {
    fn from(t: GuestThread) -> Self {
        Self {
            conversation_id: t.conversation_id,
            title: t.title,
            message_count: t.message_count,
            created_at: t.created_at.into(),
            last_activity_at: t.accessed_at.into(),
            latest: t.latest,
        }
    }
}

/// A guest's conversations, newest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct GuestConversations {
    pub guest_id: String,
    pub conversations: Vec<GuestConversationSummary>,
}

#[derive(Debug, ApiResponse)]
pub enum StartResponse {
    /// The conversation was started; appends and reads that name none go to it now.
    #[oai(status = 201)]
    Created(Json<GuestConversationSummary>),
}

#[derive(Debug, ApiResponse)]
pub enum ListResponse {
    #[oai(status = 200)]
    Ok(Json<GuestConversations>),
}

pub struct GuestThreadsApi;

#[OpenApi(tag = "ApiTags::Guest")]
impl GuestThreadsApi {
    /// Start another guest conversation
    ///
    /// A guest may hold several conversations (at most 100; then 409 `guest_history_full`).
    /// From now on appends, reads and the context that name no `conversation_id` go to the new
    /// one; the others stay readable and writable by their `conversation_id`. Signing up or
    /// logging in takes all of them into the account, in one transaction. Needs the guest token.
    #[oai(
        path = "/v1/guest/chat/:guest_id/conversations",
        method = "post",
        operation_id = "start_guest_conversation"
    )]
    async fn start(
        &self,
        state: Data<&AppState>,
        token: GuestToken,
        guest_id: Path<GuestId>,
    ) -> ApiResult<StartResponse, StartErrors> {
        let thread = state
            .guests
            .start_conversation(&guest_id, token.0.as_deref())
            .await?;
        Ok(StartResponse::Created(Json(thread.into())))
    }

    /// List a guest's conversations
    ///
    /// Newest first; `latest` marks the one used when a request names none. Needs the guest
    /// token.
    #[oai(
        path = "/v1/guest/chat/:guest_id/conversations",
        method = "get",
        operation_id = "list_guest_conversations"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        token: GuestToken,
        guest_id: Path<GuestId>,
    ) -> ApiResult<ListResponse, ListErrors> {
        let threads = state
            .guests
            .conversations(&guest_id, token.0.as_deref())
            .await?;
        Ok(ListResponse::Ok(Json(GuestConversations {
            guest_id: guest_id.0.0.clone(),
            conversations: threads.into_iter().map(Into::into).collect(),
        })))
    }
}
