//! `usage_metrics`: per user or guest request and storage counters, flushed in batches.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_metrics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// A user id, or a guest id for guests.
    #[sea_orm(unique)]
    pub user_id: String,
    /// `guest` or the account's tier.
    pub tier: String,
    pub total_requests: i64,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub messages_stored: i64,
    pub tokens_total: i64,
    pub last_request_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
