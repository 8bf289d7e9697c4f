//! `message_cache`: every guest message (L2), gapless `sequence` per cached conversation.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "message_cache")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The `conversation_cache` row.
    pub conversation_id: Uuid,
    pub role: String,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// MD5 of `content`, hex.
    pub message_hash: String,
    pub tokens: Option<i32>,
    /// 1-based, gapless, in write order.
    pub sequence: i64,
    pub is_edited: bool,
    pub quality_score: Option<f64>,
    pub migration_version: String,
    /// The timestamp the client sent; part of retry detection.
    pub client_timestamp: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// `text`, `markdown` or `json`.
    pub content_type: String,
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
