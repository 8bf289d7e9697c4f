use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConversationCache::Table)
                    .if_not_exists()
                    .col(uuid(ConversationCache::Id).primary_key())
                    .col(string(ConversationCache::UserId))
                    .col(string(ConversationCache::Platform).default("guest"))
                    .col(string_null(ConversationCache::Title))
                    .col(string(ConversationCache::ConversationHash))
                    .col(big_integer(ConversationCache::MessageCount).default(0))
                    .col(string(ConversationCache::MigrationVersion).default("1.0"))
                    .col(timestamp_with_time_zone(ConversationCache::CreatedAt))
                    .col(timestamp_with_time_zone(ConversationCache::AccessedAt))
                    .col(timestamp_with_time_zone_null(ConversationCache::ExpiresAt))
                    .col(string(ConversationCache::GuestId).unique_key())
                    .col(uuid_null(ConversationCache::MainConversationId))
                    .to_owned(),
            )
            .await?;
        for stmt in [
            crate::index(
                "idx_conversation_cache_user",
                ConversationCache::Table,
                &[ConversationCache::UserId],
                false,
            ),
            crate::index(
                "idx_conversation_cache_expires",
                ConversationCache::Table,
                &[ConversationCache::ExpiresAt],
                false,
            ),
        ] {
            manager.create_index(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConversationCache::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ConversationCache {
    Table,
    Id,
    UserId,
    Platform,
    Title,
    ConversationHash,
    MessageCount,
    MigrationVersion,
    CreatedAt,
    AccessedAt,
    ExpiresAt,
    GuestId,
    MainConversationId,
}
