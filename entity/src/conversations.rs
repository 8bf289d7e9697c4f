//! `conversations`: an account's conversations (the main database, source of truth).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub agent_type: String,
    pub model_used: Option<String>,
    pub system_prompt: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i32>,
    /// `active`, `archived` or `deleted`.
    pub status: String,
    pub message_count: i64,
    /// The highest `message_index` given (a deleted message's index is never reused).
    pub last_index: i64,
    pub token_count: i64,
    pub is_public: bool,
    pub is_shared: bool,
    pub tags: Json,
    pub last_message_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The guest id this conversation was migrated from, if any (one conversation per guest).
    #[sea_orm(unique)]
    pub origin_guest_id: Option<String>,
    /// Where an imported conversation came from (`genesis:{id}`, `chatgpt:{id}`); unique per user.
    pub imported_from: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
