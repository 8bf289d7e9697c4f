//! `cache_migrations`: the audit trail of guest → account migrations.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cache_migrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub guest_id: String,
    pub user_id: String,
    /// `completed` or `failed`.
    pub status: String,
    pub conversations_migrated: i32,
    pub messages_migrated: i64,
    /// SHA-256 over the ordered message hashes, hex.
    pub checksum: Option<String>,
    /// The conversation ids the guest's messages now live in (JSON array).
    pub conversation_ids: Json,
    pub error: Option<String>,
    pub started_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
