use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UsageMetrics::Table)
                    .if_not_exists()
                    .col(uuid(UsageMetrics::Id).primary_key())
                    .col(string(UsageMetrics::UserId).unique_key())
                    .col(string(UsageMetrics::Tier))
                    .col(big_integer(UsageMetrics::TotalRequests).default(0))
                    .col(big_integer(UsageMetrics::CacheHits).default(0))
                    .col(big_integer(UsageMetrics::CacheMisses).default(0))
                    .col(big_integer(UsageMetrics::MessagesStored).default(0))
                    .col(big_integer(UsageMetrics::TokensTotal).default(0))
                    .col(timestamp_with_time_zone_null(UsageMetrics::LastRequestAt))
                    .col(timestamp_with_time_zone(UsageMetrics::CreatedAt))
                    .col(timestamp_with_time_zone(UsageMetrics::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageMetrics::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum UsageMetrics {
    Table,
    Id,
    UserId,
    Tier,
    TotalRequests,
    CacheHits,
    CacheMisses,
    MessagesStored,
    TokensTotal,
    LastRequestAt,
    CreatedAt,
    UpdatedAt,
}
