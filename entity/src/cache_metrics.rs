//! `cache_metrics`: per layer, operation and time window counters, flushed from memory.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cache_metrics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `l1` or `l2`.
    pub layer: String,
    pub operation: String,
    pub window_start: DateTimeUtc,
    pub hits: i64,
    pub misses: i64,
    pub errors: i64,
    pub count: i64,
    pub total_latency_us: i64,
    pub max_latency_us: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
