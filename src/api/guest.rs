//! Guest chat endpoints: `/v1/guest/sessions` and `/v1/guest/chat/{guest_id}` (the seeds'
//! `/chat/{guest_id}` is rewritten to it by the envelope).

use chrono::{DateTime, FixedOffset, Utc};
use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    conversations::Order,
    error::{ApiResult, statuses},
    security::{GuestToken, GuestTokenOrClaim},
    types::{
        Content, ContentType, GuestId, IdempotencyKey, JsonBytes, Role, StrictString, Timestamp,
    },
};
use crate::{
    hot::CachedMessage,
    service::{
        ErrorCode, ServiceError,
        guest::{Appended, GuestHistory, NewMessage, Source},
        page::MessageQuery,
    },
    state::AppState,
};

statuses! {
    /// Starting a guest session.
    SessionErrors: 429, 500, 503;
    /// Storing a guest message.
    AppendErrors: 400, 401, 404, 409, 413, 415, 422, 429, 500, 503;
    /// Reading a guest conversation.
    ReadErrors: 400, 401, 404, 409, 422, 500, 503;
    /// Erasing a guest.
    EraseErrors: 401, 404, 409, 422, 500, 503;
}

/// A message to store.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewGuestMessage {
    pub role: Role,
    /// The message text, stored and returned byte-for-byte. Not empty, no U+0000, at most
    /// `limits.max_message_bytes` bytes of UTF-8. Required, except on an assistant message
    /// carrying `tool_calls` (absent or null: stored as `""`).
    pub content: Option<Content>,
    /// When the client says the message was written (RFC 3339). A retry with the same role,
    /// content and timestamp is recognised and not stored twice.
    pub timestamp: Option<DateTime<FixedOffset>>,
    /// Token count of the message, if known.
    #[oai(validator(minimum(value = "0")))]
    pub tokens: Option<i32>,
    pub content_type: Option<ContentType>,
    #[oai(flatten)]
    pub tools: ToolParts,
    /// Which of the guest's conversations it goes to (default: the newest; see `POST
    /// /v1/guest/chat/{guest_id}/conversations`). Also taken as a query parameter.
    pub conversation_id: Option<Uuid>,
}

/// Tool calls, as OpenAI-style chat apps send them (422 `invalid_tool_call` on another role).
#[derive(Debug, Default, Object)]
pub struct ToolParts {
    /// On a `tool` message: the id of the call it answers (1-256 bytes).
    #[oai(validator(min_length = 1, max_length = 256))]
    pub tool_call_id: Option<StrictString>,
    /// On an `assistant` message: the calls it makes, stored and returned as sent (text and
    /// calls together count against `limits.max_message_bytes`).
    pub tool_calls: Option<Vec<serde_json::Value>>,
}

impl ToolParts {
    /// The stored form: the id, and the calls as JSON text.
    pub fn into_stored(self) -> (Option<String>, Option<String>) {
        let calls = self
            .tool_calls
            .map(|calls| serde_json::Value::Array(calls).to_string());
        (self.tool_call_id.map(|id| id.0), calls)
    }
}

/// Where a stored message landed.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MessageAck {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    /// 1-based position in the guest's conversation.
    pub sequence: i64,
    /// True when this request repeated a stored message; the original is returned.
    pub duplicate: bool,
    /// Present only on the write that claimed a client-chosen guest id: keep it, every later
    /// request for this guest needs it.
    #[oai(skip_serializing_if_is_none)]
    pub guest_token: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum AppendResponse {
    /// Stored as a new message.
    #[oai(status = 201)]
    Created(
        Json<MessageAck>,
        /// The guest token, on the write that claimed the guest id.
        #[oai(header = "X-Guest-Token")]
        Option<String>,
    ),
    /// A retry of a message already stored; nothing was stored twice. A retry of the claiming
    /// write with its `Idempotency-Key` (and no token) carries the guest token again.
    #[oai(status = 200)]
    Duplicate(
        Json<MessageAck>,
        /// The guest token, on a retry of the write that claimed the guest id.
        #[oai(header = "X-Guest-Token")]
        Option<String>,
    ),
}

/// One stored guest message.
#[derive(Debug, Object)]
pub struct GuestMessage {
    pub id: Uuid,
    pub role: Role,
    pub content: String,
    /// The client's timestamp, or the time the server stored the message when none was sent.
    pub timestamp: Timestamp,
    pub sequence: i64,
    pub content_type: ContentType,
    #[oai(skip_serializing_if_is_none)]
    pub tokens: Option<i32>,
    pub created_at: Timestamp,
    /// On a `tool` message: the call it answers.
    #[oai(skip_serializing_if_is_none)]
    pub tool_call_id: Option<String>,
    /// On an assistant message: the calls it makes, as sent.
    #[oai(skip_serializing_if_is_none)]
    pub tool_calls: Option<Vec<serde_json::Value>>,
}

/// Which layer answered a read: `l1` (hot cache) or `l2` (SQL cache tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ReadSource {
    L1,
    L2,
}

/// One page of a guest's conversation, in sequence order.
#[derive(Debug, Object)]
#[oai(example)]
pub struct GuestConversation {
    pub guest_id: String,
    pub conversation_id: Uuid,
    pub messages: Vec<GuestMessage>,
    pub source: ReadSource,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// The serde twin of [`GuestConversation`], borrowing the cached messages (no copies, no
/// intermediate JSON tree). Field names and presence must match it exactly.
#[derive(serde::Serialize)]
struct GuestConversationView<'a> {
    guest_id: &'a str,
    conversation_id: Uuid,
    messages: Vec<GuestMessageView<'a>>,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(serde::Serialize)]
pub(super) struct GuestMessageView<'a> {
    id: Uuid,
    role: &'a str,
    content: &'a str,
    timestamp: &'a str,
    sequence: i64,
    content_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<i32>,
    created_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    /// The stored JSON array, written out as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a serde_json::value::RawValue>,
}

impl<'a> From<&'a CachedMessage> for GuestMessageView<'a> {
    fn from(m: &'a CachedMessage) -> Self {
        Self {
            id: m.id,
            role: &m.role,
            content: &m.content,
            timestamp: &m.timestamp,
            sequence: m.sequence,
            content_type: &m.content_type,
            tokens: m.tokens,
            created_at: &m.created_at,
            tool_call_id: m.tool_call_id.as_deref(),
            tool_calls: m
                .tool_calls
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        }
    }
}

#[derive(ApiResponse)]
pub enum ConversationResponse {
    /// The guest's messages in sequence order.
    #[oai(status = 200)]
    Ok(JsonBytes<GuestConversation>),
}

fn conversation_body(
    guest_id: &str,
    h: &GuestHistory,
) -> Result<ConversationResponse, ServiceError> {
    let view = GuestConversationView {
        guest_id,
        conversation_id: h.conversation_id,
        messages: h
            .messages()
            .iter()
            .map(|m| GuestMessageView::from(m.as_ref()))
            .collect(),
        source: match h.source {
            Source::L1 => "l1",
            Source::L2 => "l2",
        },
        next_cursor: h.next_cursor.map(|c| c.to_string()),
    };
    JsonBytes::new(&view)
        .map(ConversationResponse::Ok)
        .map_err(|e| ServiceError::Internal(format!("serialize history: {e}")))
}

/// A new guest with a server-chosen id.
#[derive(Debug, Object)]
#[oai(example)]
pub struct GuestSession {
    pub guest_id: String,
    /// Send as `Authorization: Bearer <token>` or `X-Guest-Token: <token>`.
    pub guest_token: String,
    /// When cleanup may delete the guest if it is never written to (`guest.session_ttl_secs`);
    /// each write or read moves it to `guest.retention_secs` after that access.
    pub expires_at: Timestamp,
}

#[derive(Debug, ApiResponse)]
pub enum SessionResponse {
    /// The guest was created.
    #[oai(status = 201)]
    Created(Json<GuestSession>),
}

#[derive(Debug, ApiResponse)]
pub enum DeletedResponse {
    /// The guest and all its messages were erased from every layer.
    #[oai(status = 204)]
    Deleted,
}

pub struct GuestApi;

#[OpenApi(tag = "ApiTags::Guest")]
impl GuestApi {
    /// Start a guest session
    ///
    /// Creates a guest with a server-chosen, unguessable id and returns its token. Rate-limited
    /// per client address (`limits.guest_sessions_per_ip_per_hour`, shared with first writes
    /// that claim a client-chosen id).
    #[oai(
        path = "/v1/guest/sessions",
        method = "post",
        operation_id = "create_guest_session"
    )]
    async fn create_session(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> ApiResult<SessionResponse, SessionErrors> {
        new_guest_allowed(&state, req)?;
        let s = state.guests.create_session().await?;
        Ok(SessionResponse::Created(Json(GuestSession {
            guest_id: s.guest_id,
            guest_token: s.guest_token,
            expires_at: s.expires_at.into(),
        })))
    }

    /// Store a guest message
    ///
    /// Commits the message to SQL, then to the hot cache. The first write to an unclaimed
    /// client-chosen id claims it and returns the guest token (body and `X-Guest-Token` header);
    /// after that the token is required. A write without a token counts against the client
    /// address's new-guest limit (`limits.guest_sessions_per_ip_per_hour`). A retry (same role,
    /// content and timestamp, or the same `Idempotency-Key`) answers 200 with the original
    /// message. A guest stores at most `limits.guest_messages_per_day` messages a day (then 429
    /// `guest_quota_exceeded` with `Retry-After`) and `limits.guest_max_messages` in all (then 409
    /// `guest_history_full`).
    #[oai(
        path = "/v1/guest/chat/:guest_id",
        method = "post",
        operation_id = "post_guest_message"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn post_message(
        &self,
        state: Data<&AppState>,
        req: &Request,
        token: GuestTokenOrClaim,
        guest_id: Path<GuestId>,
        body: Json<NewGuestMessage>,
        /// Makes retries safe: a second write with the same key returns the first message.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<IdempotencyKey>>,
        /// Which of the guest's conversations it goes to (default: the newest); the body's
        /// `conversation_id` says the same.
        conversation_id: Query<Option<Uuid>>,
    ) -> ApiResult<AppendResponse, AppendErrors> {
        if token.0.is_none() {
            new_guest_allowed(&state, req)?;
        }
        let conversation = match (conversation_id.0, body.0.conversation_id) {
            (Some(a), Some(b)) if a != b => {
                return Err(ServiceError::invalid(
                    ErrorCode::Unprocessable,
                    "conversation_id differs between the query and the body",
                )
                .into());
            }
            (a, b) => a.or(b),
        };
        let msg = body.0.into_message(idempotency_key.0.map(|k| k.0));
        let appended = state
            .guests
            .append(&guest_id, token.0.as_deref(), conversation, msg)
            .await?;
        Ok(ack(appended))
    }

    /// Read a guest conversation
    ///
    /// One page of messages in sequence order (`limit`, default 100, at most 1000; `cursor` from
    /// the previous page's `next_cursor`), from the hot cache when it holds the full history,
    /// otherwise from SQL. As for account messages: `last=N` the newest N (oldest first unless
    /// `order=desc`), `order=asc|desc`, `before_index` / `after_index` (on `sequence`,
    /// exclusive), `since` (inclusive) / `until` (exclusive) on `timestamp`. Needs the guest
    /// token. A guest migrated into an account answers 409 `guest_migrated` (its messages are the
    /// account's now).
    #[oai(
        path = "/v1/guest/chat/:guest_id",
        method = "get",
        operation_id = "get_guest_conversation"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn get_conversation(
        &self,
        state: Data<&AppState>,
        token: GuestToken,
        guest_id: Path<GuestId>,
        /// Page size, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page (the last `sequence` read).
        #[oai(validator(minimum(value = "0")))]
        cursor: Query<Option<i64>>,
        /// The N most recent messages, 1-1000 (no further page).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        last: Query<Option<u64>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<Order>>,
        /// Only messages with a smaller `sequence`.
        #[oai(validator(minimum(value = "0")))]
        before_index: Query<Option<i64>>,
        /// Only messages with a larger `sequence`.
        #[oai(validator(minimum(value = "0")))]
        after_index: Query<Option<i64>>,
        /// Only messages at or after this time (RFC 3339).
        since: Query<Option<DateTime<FixedOffset>>>,
        /// Only messages before this time (RFC 3339).
        until: Query<Option<DateTime<FixedOffset>>>,
        /// Which of the guest's conversations (default: the newest).
        conversation_id: Query<Option<Uuid>>,
    ) -> ApiResult<ConversationResponse, ReadErrors> {
        let query = MessageQuery {
            limit: limit.0,
            cursor: cursor.0,
            last: last.0,
            descending: order.0 == Some(Order::Desc),
            before_index: before_index.0,
            after_index: after_index.0,
            since: since.0.map(|t| t.to_utc()),
            until: until.0.map(|t| t.to_utc()),
            include_superseded: false,
        };
        let token = token.0.as_deref();
        let history = state
            .guests
            .read(&guest_id, token, conversation_id.0, query)
            .await?;
        Ok(conversation_body(&guest_id, &history)?)
    }

    /// Erase a guest
    ///
    /// Deletes the guest's conversation, messages, ledger rows and counters from every layer.
    /// A guest already migrated into an account answers 409.
    #[oai(
        path = "/v1/guest/chat/:guest_id",
        method = "delete",
        operation_id = "delete_guest"
    )]
    async fn delete_guest(
        &self,
        state: Data<&AppState>,
        token: GuestToken,
        guest_id: Path<GuestId>,
    ) -> ApiResult<DeletedResponse, EraseErrors> {
        state.guests.erase(&guest_id, token.0.as_deref()).await?;
        Ok(DeletedResponse::Deleted)
    }
}

/// A new guest (a session, or a first write that may claim an id) counts against the client
/// address's limit.
fn new_guest_allowed(state: &AppState, req: &Request) -> Result<(), ServiceError> {
    match state.client_ip(req) {
        Some(ip) => state
            .guest_session_limiter
            .check(ip)
            .map_err(|retry_after_secs| ServiceError::RateLimited { retry_after_secs }),
        None => Ok(()),
    }
}

impl NewGuestMessage {
    /// The message as the services take it (guest and account writes alike).
    pub fn into_message(self, idempotency_key: Option<String>) -> NewMessage {
        let (tool_call_id, tool_calls) = self.tools.into_stored();
        NewMessage {
            role: self.role.as_str().to_string(),
            content: self.content.map(|c| c.0).unwrap_or_default(),
            timestamp: self.timestamp.map(|t| t.with_timezone(&Utc)),
            tokens: self.tokens,
            content_type: self.content_type.map(|c| c.as_str().to_string()),
            idempotency_key,
            tool_call_id,
            tool_calls,
        }
    }
}

fn ack(a: Appended) -> AppendResponse {
    let body = MessageAck {
        message_id: a.message.id,
        conversation_id: a.message.conversation_id,
        sequence: a.message.sequence,
        duplicate: a.duplicate,
        guest_token: a.issued_token.clone(),
    };
    if a.duplicate {
        AppendResponse::Duplicate(Json(body), a.issued_token)
    } else {
        AppendResponse::Created(Json(body), a.issued_token)
    }
}
