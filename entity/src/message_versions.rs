//! `message_versions`: the earlier texts of an edited account message, oldest first.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub message_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// MD5 of `content`, hex.
    pub content_hash: String,
    pub tokens_used: Option<i32>,
    /// When this text was replaced.
    pub edited_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
