use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CacheContentMapping::Table)
                    .if_not_exists()
                    .col(uuid(CacheContentMapping::Id).primary_key())
                    .col(string(CacheContentMapping::CacheType))
                    .col(uuid(CacheContentMapping::CacheId))
                    .col(string(CacheContentMapping::UserId))
                    .col(string(CacheContentMapping::ContentHash))
                    .col(uuid_null(CacheContentMapping::MainId))
                    .col(boolean(CacheContentMapping::IsSynced).default(false))
                    .col(timestamp_with_time_zone_null(CacheContentMapping::SyncedAt))
                    .col(timestamp_with_time_zone(CacheContentMapping::CreatedAt))
                    .to_owned(),
            )
            .await?;
        for stmt in [
            crate::index(
                "uq_cache_content_mapping_cache",
                CacheContentMapping::Table,
                &[CacheContentMapping::CacheType, CacheContentMapping::CacheId],
                true,
            ),
            crate::index(
                "idx_cache_content_mapping_user",
                CacheContentMapping::Table,
                &[CacheContentMapping::UserId],
                false,
            ),
        ] {
            manager.create_index(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CacheContentMapping::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum CacheContentMapping {
    Table,
    Id,
    CacheType,
    CacheId,
    UserId,
    ContentHash,
    MainId,
    IsSynced,
    SyncedAt,
    CreatedAt,
}
