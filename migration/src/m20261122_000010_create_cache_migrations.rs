use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CacheMigrations::Table)
                    .if_not_exists()
                    .col(uuid(CacheMigrations::Id).primary_key())
                    .col(string(CacheMigrations::GuestId))
                    .col(string(CacheMigrations::UserId))
                    .col(string(CacheMigrations::Status))
                    .col(integer(CacheMigrations::ConversationsMigrated).default(0))
                    .col(big_integer(CacheMigrations::MessagesMigrated).default(0))
                    .col(string_null(CacheMigrations::Checksum))
                    .col(json_binary(CacheMigrations::ConversationIds))
                    .col(text_null(CacheMigrations::Error))
                    .col(timestamp_with_time_zone(CacheMigrations::StartedAt))
                    .col(timestamp_with_time_zone_null(CacheMigrations::CompletedAt))
                    .to_owned(),
            )
            .await?;
        for stmt in [
            crate::index(
                "idx_cache_migrations_guest",
                CacheMigrations::Table,
                &[CacheMigrations::GuestId],
                false,
            ),
            crate::index(
                "idx_cache_migrations_user",
                CacheMigrations::Table,
                &[CacheMigrations::UserId],
                false,
            ),
            crate::index(
                "idx_cache_migrations_started",
                CacheMigrations::Table,
                &[CacheMigrations::StartedAt],
                false,
            ),
        ] {
            manager.create_index(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CacheMigrations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum CacheMigrations {
    Table,
    Id,
    GuestId,
    UserId,
    Status,
    ConversationsMigrated,
    MessagesMigrated,
    Checksum,
    ConversationIds,
    Error,
    StartedAt,
    CompletedAt,
}
