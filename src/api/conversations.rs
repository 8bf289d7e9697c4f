//! An account's conversations: `/v1/conversations` and `/v1/conversations/{id}/messages` (the
//! seeds' unversioned paths are rewritten to these by the envelope).

use chrono::{DateTime, FixedOffset};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    conversation::SettableStatus,
    error::{ApiResult, statuses},
    guest::{NewGuestMessage, ToolParts},
    security::UserBearer,
    types::{
        Content, ContentType, ConversationStatus, IdempotencyKey, ListCursor, Role, StrictString,
        Timestamp,
    },
};
use crate::{
    service::{
        Page,
        conversations::{ListFilter, NewAccountMessage, NewConversation},
        page::MessageQuery,
    },
    state::AppState,
};

statuses! {
    /// Creating a conversation.
    CreateErrors: 400, 401, 413, 415, 422, 500, 503;
    /// Listing conversations.
    ListErrors: 400, 401, 422, 500, 503;
    /// Adding a message.
    AddMessageErrors: 400, 401, 404, 409, 413, 415, 422, 500, 503;
    /// Reading messages.
    MessagesErrors: 400, 401, 404, 422, 500, 503;
}

#[derive(Debug, Object, Default)]
#[oai(example)]
pub struct ConversationInput {
    pub title: Option<StrictString>,
    pub description: Option<StrictString>,
    /// Default `text-generation`.
    pub agent_type: Option<StrictString>,
    pub model_used: Option<StrictString>,
    pub system_prompt: Option<StrictString>,
    /// 0 to 2.
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    pub temperature: Option<f64>,
    /// 1 or more.
    #[oai(validator(minimum(value = "1")))]
    pub max_tokens: Option<i32>,
    pub tags: Option<Vec<StrictString>>,
}

impl From<ConversationInput> for NewConversation {
    fn from(b: ConversationInput) -> Self {
        let text = |s: Option<StrictString>| s.map(|s| s.0);
        Self {
            title: text(b.title),
            description: text(b.description),
            agent_type: text(b.agent_type),
            model_used: text(b.model_used),
            system_prompt: text(b.system_prompt),
            temperature: b.temperature,
            max_tokens: b.max_tokens,
            tags: b
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.0)
                .collect(),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
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
    pub status: ConversationStatus,
    pub message_count: i64,
    pub token_count: i64,
    pub tags: serde_json::Value,
    #[oai(skip_serializing_if_is_none)]
    pub last_message_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
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
            status: ConversationStatus::from_stored(&c.status),
            message_count: c.message_count,
            token_count: c.token_count,
            tags: c.tags,
            last_message_at: c.last_message_at.map(Timestamp),
            created_at: c.created_at.into(),
            updated_at: c.updated_at.into(),
            origin_guest_id: c.origin_guest_id,
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

impl From<Page<entity::conversations::Model>> for ConversationList {
    fn from(page: Page<entity::conversations::Model>) -> Self {
        Self {
            conversations: page.items.into_iter().map(Conversation::from).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum CreatedConversation {
    /// The conversation was created.
    #[oai(status = 201)]
    Created(Json<Conversation>),
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct AccountMessageInput {
    pub role: Role,
    /// Stored and returned byte-for-byte; not empty, no U+0000, at most the configured size.
    /// Required, except on an assistant message carrying `tool_calls`.
    pub content: Option<Content>,
    /// RFC 3339; a retry with the same role, content and timestamp is not stored twice.
    pub timestamp: Option<DateTime<FixedOffset>>,
    #[oai(validator(minimum(value = "0")))]
    pub tokens: Option<i32>,
    pub content_type: Option<ContentType>,
    pub model_used: Option<StrictString>,
    /// The message this one answers, or with `is_regeneration` replaces (same conversation; another one's is 404).
    pub parent_message_id: Option<Uuid>,
    /// A new answer replacing `parent_message_id`: lists then show only the newest answer.
    pub is_regeneration: Option<bool>,
    #[oai(flatten)]
    pub tools: ToolParts,
}

impl AccountMessageInput {
    fn into_message(self, idempotency_key: Option<String>) -> NewAccountMessage {
        let message = NewGuestMessage {
            role: self.role,
            content: self.content,
            timestamp: self.timestamp,
            tokens: self.tokens,
            content_type: self.content_type,
            tools: self.tools,
            conversation_id: None,
        };
        NewAccountMessage {
            message: message.into_message(idempotency_key),
            model_used: self.model_used.map(|m| m.0),
            parent_message_id: self.parent_message_id,
            is_regeneration: self.is_regeneration.unwrap_or(false),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub role: Role,
    pub content: String,
    pub content_type: ContentType,
    /// 1-based position in the conversation, in order of writing (a deleted message's index
    /// is not given again).
    pub message_index: i64,
    /// The client's timestamp, or when the server stored the message.
    pub timestamp: Timestamp,
    /// The writer's count, else counted when the message was written.
    #[oai(skip_serializing_if_is_none)]
    pub tokens_used: Option<i32>,
    #[oai(skip_serializing_if_is_none)]
    pub model_used: Option<String>,
    /// The message this one answers or (a regeneration) replaces.
    #[oai(skip_serializing_if_is_none)]
    pub parent_message_id: Option<Uuid>,
    pub is_regeneration: bool,
    /// True once its text was edited (`…/versions` has the earlier texts).
    pub is_edited: bool,
    /// 1 to 5.
    #[oai(skip_serializing_if_is_none)]
    pub user_rating: Option<i16>,
    pub flagged: bool,
    pub created_at: Timestamp,
    /// On a `tool` message: the call it answers.
    #[oai(skip_serializing_if_is_none)]
    pub tool_call_id: Option<String>,
    /// On an assistant message: the calls it makes, as sent.
    #[oai(skip_serializing_if_is_none)]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    /// True when this request repeated a stored message (only on writes).
    #[oai(skip_serializing_if_is_none)]
    pub duplicate: Option<bool>,
}

impl Message {
    pub(super) fn new(m: entity::messages::Model, duplicate: Option<bool>) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            role: Role::from_stored(&m.role),
            content: m.content,
            content_type: ContentType::from_stored(&m.content_type),
            message_index: m.message_index,
            timestamp: Timestamp(m.client_timestamp.unwrap_or(m.created_at)),
            tokens_used: m.tokens_used,
            model_used: m.model_used,
            parent_message_id: m.parent_message_id,
            is_regeneration: m.is_regeneration,
            is_edited: m.is_edited,
            user_rating: m.user_rating,
            flagged: m.flagged,
            created_at: m.created_at.into(),
            tool_calls: crate::service::export::tool_calls_value(m.tool_calls.as_deref()),
            tool_call_id: m.tool_call_id,
            duplicate,
        }
    }
}

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct MessageList {
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

impl From<Page<entity::messages::Model>> for MessageList {
    fn from(page: Page<entity::messages::Model>) -> Self {
        Self {
            messages: page
                .items
                .into_iter()
                .map(|m| Message::new(m, None))
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
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
        user: UserBearer,
        body: Json<ConversationInput>,
    ) -> ApiResult<CreatedConversation, CreateErrors> {
        let created = state.conversations.create(user.0.id, body.0.into()).await?;
        Ok(CreatedConversation::Created(Json(created.into())))
    }

    /// List your conversations, most recently active first
    ///
    /// Ordered by `last_message_at` (a conversation without messages by its creation), newest
    /// first. Deleted conversations are never listed.
    #[oai(
        path = "/v1/conversations",
        method = "get",
        operation_id = "list_conversations"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        /// Page size, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<ListCursor>>,
        /// Only `active` or only `archived` conversations (default: both).
        status: Query<Option<SettableStatus>>,
        /// Only conversations carrying this tag.
        tag: Query<Option<StrictString>>,
        /// Only conversations whose title contains this text (case-insensitive).
        q: Query<Option<StrictString>>,
    ) -> ApiResult<Json<ConversationList>, ListErrors> {
        let filter = ListFilter {
            status: status.0.map(|s| s.as_str().to_string()),
            tag: tag.0.map(|t| t.0),
            q: q.0.map(|q| q.0),
        };
        let page = state
            .conversations
            .list(user.0.id, filter, limit.0, cursor.0.as_deref())
            .await?;
        Ok(Json(page.into()))
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
        user: UserBearer,
        id: Path<Uuid>,
        body: Json<AccountMessageInput>,
        /// Makes retries safe: a second write with the same key returns the first message.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<IdempotencyKey>>,
    ) -> ApiResult<AddMessageResponse, AddMessageErrors> {
        let msg = body.0.into_message(idempotency_key.0.map(|k| k.0));
        let (stored, duplicate) = state
            .conversations
            .add_message(user.0.id, id.0, msg)
            .await?;
        let message = Json(Message::new(stored, Some(duplicate)));
        Ok(if duplicate {
            AddMessageResponse::Duplicate(message)
        } else {
            AddMessageResponse::Created(message)
        })
    }

    /// Read messages
    ///
    /// In `message_index` order (`order=desc`: newest first), a page at a time; `last=N` gives
    /// the N most recent (oldest first unless `order=desc`) — what a chat view opens on. Bounds:
    /// `before_index` / `after_index` (exclusive), `since` (inclusive) / `until` (exclusive) on
    /// the time a message is listed under (its `timestamp`).
    #[oai(
        path = "/v1/conversations/:id/messages",
        method = "get",
        operation_id = "list_messages"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn messages(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
        /// Page size, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(minimum(value = "0")))]
        cursor: Query<Option<i64>>,
        /// The N most recent messages, 1-1000 (no further page).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        last: Query<Option<u64>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<Order>>,
        /// Only messages with a smaller `message_index`.
        #[oai(validator(minimum(value = "0")))]
        before_index: Query<Option<i64>>,
        /// Only messages with a larger `message_index`.
        #[oai(validator(minimum(value = "0")))]
        after_index: Query<Option<i64>>,
        /// Only messages at or after this time (RFC 3339).
        since: Query<Option<DateTime<FixedOffset>>>,
        /// Only messages before this time (RFC 3339).
        until: Query<Option<DateTime<FixedOffset>>>,
        /// Also the answers a regeneration replaced (default: only the newest of each).
        include_superseded: Query<Option<bool>>,
    ) -> ApiResult<Json<MessageList>, MessagesErrors> {
        let query = MessageQuery {
            limit: limit.0,
            cursor: cursor.0,
            last: last.0,
            descending: order.0 == Some(Order::Desc),
            before_index: before_index.0,
            after_index: after_index.0,
            since: since.0.map(|t| t.to_utc()),
            until: until.0.map(|t| t.to_utc()),
            include_superseded: include_superseded.0.unwrap_or(false),
        };
        let page = state.conversations.messages(user.0.id, id.0, query).await?;
        Ok(Json(page.into()))
    }
}
