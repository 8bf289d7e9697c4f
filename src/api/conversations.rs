//! An account's conversations: `/v1/conversations` and `/v1/conversations/{id}/messages` (plus
//! the seeds' unversioned aliases).

use chrono::{DateTime, FixedOffset, Utc};
use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    error::ApiResult,
    guest::{ContentType, Role, bearer},
    types::StrictString,
};
use crate::{
    service::{
        conversations::{NewAccountMessage, NewConversation},
        guest::{NewMessage, rfc3339},
    },
    state::AppState,
};

#[derive(Debug, Object, Default)]
pub struct ConversationInput {
    pub title: Option<String>,
    pub description: Option<String>,
    /// Default `text-generation`.
    pub agent_type: Option<String>,
    pub model_used: Option<String>,
    pub system_prompt: Option<String>,
    /// 0 to 2.
    pub temperature: Option<f64>,
    pub max_tokens: Option<i32>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Object)]
pub struct Conversation {
    pub id: Uuid,
    pub title: String,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    pub agent_type: String,
    #[oai(skip_serializing_if_is_none)]
    pub model_used: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub system_prompt: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub temperature: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub max_tokens: Option<i32>,
    /// `active`, `archived` or `deleted`.
    pub status: String,
    pub message_count: i64,
    pub token_count: i64,
    pub tags: serde_json::Value,
    #[oai(skip_serializing_if_is_none)]
    pub last_message_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The guest id this conversation came from, if it was migrated.
    #[oai(skip_serializing_if_is_none)]
    pub origin_guest_id: Option<String>,
}

impl From<entity::conversations::Model> for Conversation {
    fn from(c: entity::conversations::Model) -> Self {
        Self {
            id: c.id,
            title: c.title,
            description: c.description,
            agent_type: c.agent_type,
            model_used: c.model_used,
            system_prompt: c.system_prompt,
            temperature: c.temperature,
            max_tokens: c.max_tokens,
            status: c.status,
            message_count: c.message_count,
            token_count: c.token_count,
            tags: c.tags,
            last_message_at: c.last_message_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            origin_guest_id: c.origin_guest_id,
        }
    }
}

#[derive(Debug, Object)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum CreatedConversation {
    /// The conversation was created.
    #[oai(status = 201)]
    Created(Json<Conversation>),
}

#[derive(Debug, Object)]
pub struct AccountMessageInput {
    pub role: Role,
    /// Stored and returned byte-for-byte; not empty, no U+0000, at most the configured size.
    pub content: StrictString,
    /// RFC 3339; a retry with the same role, content and timestamp is not stored twice.
    pub timestamp: Option<DateTime<FixedOffset>>,
    pub tokens: Option<i32>,
    pub content_type: Option<ContentType>,
    pub model_used: Option<String>,
}

#[derive(Debug, Object)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub role: String,
    pub content: String,
    pub content_type: String,
    /// 1-based, gapless position in the conversation.
    pub message_index: i64,
    /// The client's timestamp, or when the server stored the message.
    pub timestamp: String,
    #[oai(skip_serializing_if_is_none)]
    pub tokens_used: Option<i32>,
    #[oai(skip_serializing_if_is_none)]
    pub model_used: Option<String>,
    pub created_at: DateTime<Utc>,
    /// True when this request repeated a stored message (only on writes).
    #[oai(skip_serializing_if_is_none)]
    pub duplicate: Option<bool>,
}

impl Message {
    fn new(m: entity::messages::Model, duplicate: Option<bool>) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            role: m.role,
            content: m.content,
            content_type: m.content_type,
            message_index: m.message_index,
            timestamp: rfc3339(m.client_timestamp.unwrap_or(m.created_at)),
            tokens_used: m.tokens_used,
            model_used: m.model_used,
            created_at: m.created_at,
            duplicate,
        }
    }
}

#[derive(Debug, Object)]
pub struct MessageList {
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum AddMessageResponse {
    /// Stored at the next `message_index`.
    #[oai(status = 201)]
    Created(Json<Message>),
    /// A retry of a stored message; nothing was stored twice.
    #[oai(status = 200)]
    Duplicate(Json<Message>),
}

pub struct ConversationsApi;

#[OpenApi(tag = "ApiTags::Conversations")]
impl ConversationsApi {
    /// Create a conversation
    #[oai(
        path = "/v1/conversations",
        method = "post",
        operation_id = "create_conversation"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<ConversationInput>,
    ) -> ApiResult<CreatedConversation> {
        let user = state.auth.authenticate(bearer(req)).await?;
        let b = body.0;
        let created = state
            .conversations
            .create(
                user.id,
                NewConversation {
                    title: b.title,
                    description: b.description,
                    agent_type: b.agent_type,
                    model_used: b.model_used,
                    system_prompt: b.system_prompt,
                    temperature: b.temperature,
                    max_tokens: b.max_tokens,
                    tags: b.tags.unwrap_or_default(),
                },
            )
            .await?;
        Ok(CreatedConversation::Created(Json(created.into())))
    }

    /// List your conversations, newest first
    #[oai(
        path = "/v1/conversations",
        method = "get",
        operation_id = "list_conversations"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        req: &Request,
        /// Page size, 1-1000 (default 100).
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<ConversationList>> {
        let user = state.auth.authenticate(bearer(req)).await?;
        let page = state
            .conversations
            .list(user.id, limit.0, cursor.0.as_deref())
            .await?;
        Ok(Json(ConversationList {
            conversations: page.items.into_iter().map(Conversation::from).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// One of your conversations (another user's is 404)
    #[oai(
        path = "/v1/conversations/:id",
        method = "get",
        operation_id = "get_conversation"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        req: &Request,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Conversation>> {
        let user = state.auth.authenticate(bearer(req)).await?;
        Ok(Json(state.conversations.get(user.id, id.0).await?.into()))
    }

    /// Add a message
    ///
    /// Stored at the next `message_index`. A retry (same role, content and timestamp, or the
    /// same `Idempotency-Key`) answers 200 with the original.
    #[oai(
        path = "/v1/conversations/:id/messages",
        method = "post",
        operation_id = "post_message"
    )]
    async fn add_message(
        &self,
        state: Data<&AppState>,
        req: &Request,
        id: Path<Uuid>,
        body: Json<AccountMessageInput>,
        /// Makes retries safe: a second write with the same key returns the first message.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
    ) -> ApiResult<AddMessageResponse> {
        let user = state.auth.authenticate(bearer(req)).await?;
        let b = body.0;
        let msg = NewAccountMessage {
            message: NewMessage {
                role: b.role.as_str().into(),
                content: b.content.0,
                timestamp: b.timestamp.map(|t| t.with_timezone(&Utc)),
                tokens: b.tokens,
                content_type: b.content_type.map(|c| c.as_str().into()),
                idempotency_key: idempotency_key.0,
            },
            model_used: b.model_used,
        };
        let (stored, duplicate) = state.conversations.add_message(user.id, id.0, msg).await?;
        Ok(if duplicate {
            AddMessageResponse::Duplicate(Json(Message::new(stored, Some(true))))
        } else {
            AddMessageResponse::Created(Json(Message::new(stored, Some(false))))
        })
    }

    /// Read messages in order
    #[oai(
        path = "/v1/conversations/:id/messages",
        method = "get",
        operation_id = "list_messages"
    )]
    async fn messages(
        &self,
        state: Data<&AppState>,
        req: &Request,
        id: Path<Uuid>,
        /// Page size, 1-1000 (default 100).
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<MessageList>> {
        let user = state.auth.authenticate(bearer(req)).await?;
        let page = state
            .conversations
            .messages(user.id, id.0, limit.0, cursor.0.as_deref())
            .await?;
        Ok(Json(MessageList {
            messages: page
                .items
                .into_iter()
                .map(|m| Message::new(m, None))
                .collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Seed alias of `POST /v1/conversations`.
    #[oai(path = "/conversations", method = "post", hidden)]
    async fn create_alias(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<ConversationInput>,
    ) -> ApiResult<CreatedConversation> {
        self.create(state, req, body).await
    }

    /// Seed alias of `GET /v1/conversations/{id}/messages`.
    #[oai(path = "/conversations/:id/messages", method = "get", hidden)]
    async fn messages_alias(
        &self,
        state: Data<&AppState>,
        req: &Request,
        id: Path<Uuid>,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<MessageList>> {
        self.messages(state, req, id, limit, cursor).await
    }
}
