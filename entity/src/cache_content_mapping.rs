//! `cache_content_mapping`: the sync ledger, one row per cached message.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cache_content_mapping")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `message` for a `message_cache` row.
    pub cache_type: String,
    pub cache_id: Uuid,
    /// The guest id, or the user id once migrated.
    pub user_id: String,
    pub content_hash: String,
    /// The `messages` row once synced.
    pub main_id: Option<Uuid>,
    pub is_synced: bool,
    pub synced_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
