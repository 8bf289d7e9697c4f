use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_create_users::Users;
use crate::m20261122_000002_create_conversations::Conversations;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(uuid(Messages::Id).primary_key())
                    .col(uuid(Messages::ConversationId))
                    .col(uuid(Messages::UserId))
                    .col(string(Messages::Role))
                    .col(text(Messages::Content))
                    .col(string(Messages::ContentType).default("text"))
                    .col(big_integer(Messages::MessageIndex))
                    .col(integer_null(Messages::TokensUsed))
                    .col(string_null(Messages::ModelUsed))
                    .col(small_integer_null(Messages::UserRating))
                    .col(boolean(Messages::IsEdited).default(false))
                    .col(boolean(Messages::IsRegeneration).default(false))
                    .col(uuid_null(Messages::ParentMessageId))
                    .col(boolean(Messages::Flagged).default(false))
                    .col(timestamp_with_time_zone(Messages::CreatedAt))
                    .col(timestamp_with_time_zone(Messages::UpdatedAt))
                    .col(string(Messages::ContentHash))
                    .col(uuid_null(Messages::OriginCacheMessageId).unique_key())
                    .col(timestamp_with_time_zone_null(Messages::ClientTimestamp))
                    .col(string_null(Messages::IdempotencyKey))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_conversation")
                            .from(Messages::Table, Messages::ConversationId)
                            .to(Conversations::Table, Conversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_user")
                            .from(Messages::Table, Messages::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for stmt in [
            crate::index(
                "uq_messages_conversation_index",
                Messages::Table,
                &[Messages::ConversationId, Messages::MessageIndex],
                true,
            ),
            crate::index(
                "uq_messages_conversation_idempotency",
                Messages::Table,
                &[Messages::ConversationId, Messages::IdempotencyKey],
                true,
            ),
            crate::index(
                "idx_messages_conversation_hash",
                Messages::Table,
                &[Messages::ConversationId, Messages::ContentHash],
                false,
            ),
        ] {
            manager.create_index(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Messages::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Messages {
    Table,
    Id,
    ConversationId,
    UserId,
    Role,
    Content,
    ContentType,
    MessageIndex,
    TokensUsed,
    ModelUsed,
    UserRating,
    IsEdited,
    IsRegeneration,
    ParentMessageId,
    Flagged,
    CreatedAt,
    UpdatedAt,
    ContentHash,
    OriginCacheMessageId,
    ClientTimestamp,
    IdempotencyKey,
}
