use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000005_create_conversation_cache::ConversationCache;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MessageCache::Table)
                    .if_not_exists()
                    .col(uuid(MessageCache::Id).primary_key())
                    .col(uuid(MessageCache::ConversationId))
                    .col(string(MessageCache::Role))
                    .col(text(MessageCache::Content))
                    .col(string(MessageCache::MessageHash))
                    .col(integer_null(MessageCache::Tokens))
                    .col(big_integer(MessageCache::Sequence))
                    .col(boolean(MessageCache::IsEdited).default(false))
                    .col(double_null(MessageCache::QualityScore))
                    .col(string(MessageCache::MigrationVersion).default("1.0"))
                    .col(timestamp_with_time_zone_null(MessageCache::ClientTimestamp))
                    .col(timestamp_with_time_zone(MessageCache::CreatedAt))
                    .col(timestamp_with_time_zone(MessageCache::UpdatedAt))
                    .col(string(MessageCache::ContentType).default("text"))
                    .col(string_null(MessageCache::IdempotencyKey))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_message_cache_conversation")
                            .from(MessageCache::Table, MessageCache::ConversationId)
                            .to(ConversationCache::Table, ConversationCache::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for stmt in [
            crate::index(
                "uq_message_cache_conversation_sequence",
                MessageCache::Table,
                &[MessageCache::ConversationId, MessageCache::Sequence],
                true,
            ),
            crate::index(
                "uq_message_cache_conversation_idempotency",
                MessageCache::Table,
                &[MessageCache::ConversationId, MessageCache::IdempotencyKey],
                true,
            ),
            crate::index(
                "idx_message_cache_conversation_hash",
                MessageCache::Table,
                &[MessageCache::ConversationId, MessageCache::MessageHash],
                false,
            ),
        ] {
            manager.create_index(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MessageCache::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum MessageCache {
    Table,
    Id,
    ConversationId,
    Role,
    Content,
    MessageHash,
    Tokens,
    Sequence,
    IsEdited,
    QualityScore,
    MigrationVersion,
    ClientTimestamp,
    CreatedAt,
    UpdatedAt,
    ContentType,
    IdempotencyKey,
}
