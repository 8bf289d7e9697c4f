//! The context for the next LLM call: `GET /v1/conversations/{id}/context` and
//! `GET /v1/guest/chat/{guest_id}/context`, each `?token_budget=N`.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    conversations::Message,
    error::{ApiResult, statuses},
    guest::{GuestMessage, GuestMessageView},
    security::{GuestToken, UserBearer},
    types::{GuestId, JsonBytes},
};
use crate::{service::ServiceError, state::AppState};

statuses! {
    /// Building a conversation's context.
    ContextErrors: 400, 401, 404, 422, 500, 503;
    /// Building a guest's context.
    GuestContextErrors: 400, 401, 404, 409, 422, 500, 503;
}

/// What to send a model next: the system prompt, then the most recent messages that fit the
/// budget, oldest first (always ending at the newest message).
#[derive(Debug, Object)]
#[oai(example)]
pub struct ConversationContext {
    /// The conversation's system prompt (null when it has none); its tokens count.
    pub system_prompt: Option<String>,
    pub messages: Vec<Message>,
    /// Tokens of the system prompt and the messages: never over `token_budget`.
    pub tokens: i64,
    /// True when older messages were left out.
    pub truncated: bool,
}

/// What to send a model next from a guest's history: its most recent messages that fit the
/// budget, oldest first. A guest has no system prompt (`system_prompt` is null).
#[derive(Debug, Object)]
#[oai(example)]
pub struct GuestContext {
    pub guest_id: String,
    pub conversation_id: Uuid,
    pub system_prompt: Option<String>,
    pub messages: Vec<GuestMessage>,
    pub tokens: i64,
    pub truncated: bool,
}

/// The serde twin of [`GuestContext`], borrowing the cached messages.
#[derive(serde::Serialize)]
struct GuestContextView<'a> {
    guest_id: &'a str,
    conversation_id: Uuid,
    system_prompt: Option<&'a str>,
    messages: Vec<GuestMessageView<'a>>,
    tokens: i64,
    truncated: bool,
}

#[derive(ApiResponse)]
pub enum GuestContextResponse {
    /// The messages that fit.
    #[oai(status = 200)]
    Ok(JsonBytes<GuestContext>),
}

pub struct ContextApi;

#[OpenApi(tag = "ApiTags::Conversations")]
impl ContextApi {
    /// The context for the next model call
    ///
    /// The system prompt and the most recent messages whose tokens fit `token_budget`, oldest
    /// first. A message's tokens are the `tokens` its writer sent, else counted when it was
    /// written (`o200k_base`; `cl100k_base` for GPT-4 / GPT-3.5 `model_used`). A system prompt
    /// larger than the budget answers 422 `budget_too_small`.
    #[oai(
        path = "/v1/conversations/:id/context",
        method = "get",
        operation_id = "get_context"
    )]
    async fn context(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
        /// Tokens the context may take, 1 or more.
        #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
        token_budget: Query<i64>,
    ) -> ApiResult<Json<ConversationContext>, ContextErrors> {
        let window = state
            .conversations
            .context(user.0.id, id.0, token_budget.0)
            .await?;
        Ok(Json(ConversationContext {
            system_prompt: window.system_prompt,
            messages: window
                .messages
                .into_iter()
                .map(|m| Message::new(m, None))
                .collect(),
            tokens: window.tokens,
            truncated: window.truncated,
        }))
    }

    /// The context of a guest for the next model call
    ///
    /// The guest's most recent messages whose tokens fit `token_budget`, oldest first. Needs the
    /// guest token; a migrated guest answers 409 `guest_migrated`.
    #[oai(
        path = "/v1/guest/chat/:guest_id/context",
        method = "get",
        operation_id = "get_guest_context"
    )]
    async fn guest_context(
        &self,
        state: Data<&AppState>,
        token: GuestToken,
        guest_id: Path<GuestId>,
        /// Tokens the context may take, 1 or more.
        #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
        token_budget: Query<i64>,
        /// Which of the guest's conversations (default: the newest).
        conversation_id: Query<Option<Uuid>>,
    ) -> ApiResult<GuestContextResponse, GuestContextErrors> {
        let (conversation_id, window) = state
            .guests
            .context(
                &guest_id,
                token.0.as_deref(),
                conversation_id.0,
                token_budget.0,
            )
            .await?;
        let view = GuestContextView {
            guest_id: &guest_id,
            conversation_id,
            system_prompt: None,
            messages: window.messages.iter().map(|m| m.as_ref().into()).collect(),
            tokens: window.tokens,
            truncated: window.truncated,
        };
        let body = JsonBytes::new(&view)
            .map_err(|e| ServiceError::Internal(format!("serialize context: {e}")))?;
        Ok(GuestContextResponse::Ok(body))
    }
}
