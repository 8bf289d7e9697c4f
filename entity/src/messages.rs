//! `messages`: every message of every account conversation, gapless `message_index` order.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// `text`, `markdown` or `json`.
    pub content_type: String,
    /// 1-based position in the conversation; unique per conversation, gapless.
    pub message_index: i64,
    pub tokens_used: Option<i32>,
    pub model_used: Option<String>,
    pub user_rating: Option<i16>,
    pub is_edited: bool,
    pub is_regeneration: bool,
    pub parent_message_id: Option<Uuid>,
    pub flagged: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// MD5 of `content`, hex.
    pub content_hash: String,
    /// The `message_cache` row this message was synced from; unique, so a re-sync is a no-op.
    #[sea_orm(unique)]
    pub origin_cache_message_id: Option<Uuid>,
    /// The timestamp the client sent with the message, used for retry detection.
    pub client_timestamp: Option<DateTimeUtc>,
    /// The `Idempotency-Key` the message was written with.
    pub idempotency_key: Option<String>,
    /// On a `tool` message: the call it answers.
    pub tool_call_id: Option<String>,
    /// On an assistant message: the calls it asks for, a JSON array as sent.
    #[sea_orm(column_type = "Text", nullable)]
    pub tool_calls: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
