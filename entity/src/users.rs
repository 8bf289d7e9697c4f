//! `users`: accounts, built-in (email + argon2id password) or from an outside identity provider.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `sub` of a token from an outside identity provider.
    #[sea_orm(unique)]
    pub external_id: Option<String>,
    /// Lower-cased e-mail address of a built-in account.
    #[sea_orm(unique)]
    pub email: Option<String>,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
    pub display_name: Option<String>,
    pub tier: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
