//! `conversation_cache`: one row per guest conversation (L2), kept after migration as the ledger.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversation_cache")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The guest id, or the user id once migrated.
    pub user_id: String,
    /// `guest` or `authenticated`.
    pub platform: String,
    /// From the first user message.
    pub title: Option<String>,
    /// SHA-256 of `user_id`, hex.
    pub conversation_hash: String,
    /// Number of messages; also the last assigned `sequence`.
    pub message_count: i64,
    pub migration_version: String,
    pub created_at: DateTimeUtc,
    pub accessed_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    /// The original guest id, kept after migration.
    #[sea_orm(unique)]
    pub guest_id: String,
    /// The `conversations` row this guest conversation was migrated into.
    pub main_conversation_id: Option<Uuid>,
    /// Random, chosen when the id is claimed: the guest's tokens are bound to it (NULL on rows
    /// claimed before tokens were revocable).
    pub token_salt: Option<String>,
    /// When the current daily message window began.
    pub day_started_at: Option<DateTimeUtc>,
    /// Messages stored since `day_started_at`.
    pub day_messages: i64,
    /// On a guest's further conversation: the guest's id (its `guest_id` is a derived key).
    pub guest_root: Option<String>,
    /// On the guest's first conversation: the newest one, when the guest started others.
    pub latest_conversation_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
