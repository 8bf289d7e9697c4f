use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CacheMetrics::Table)
                    .if_not_exists()
                    .col(uuid(CacheMetrics::Id).primary_key())
                    .col(string(CacheMetrics::Layer))
                    .col(string(CacheMetrics::Operation))
                    .col(timestamp_with_time_zone(CacheMetrics::WindowStart))
                    .col(big_integer(CacheMetrics::Hits).default(0))
                    .col(big_integer(CacheMetrics::Misses).default(0))
                    .col(big_integer(CacheMetrics::Errors).default(0))
                    .col(big_integer(CacheMetrics::Count).default(0))
                    .col(big_integer(CacheMetrics::TotalLatencyUs).default(0))
                    .col(big_integer(CacheMetrics::MaxLatencyUs).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "uq_cache_metrics_window",
                CacheMetrics::Table,
                &[
                    CacheMetrics::Layer,
                    CacheMetrics::Operation,
                    CacheMetrics::WindowStart,
                ],
                true,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CacheMetrics::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum CacheMetrics {
    Table,
    Id,
    Layer,
    Operation,
    WindowStart,
    Hits,
    Misses,
    Errors,
    Count,
    TotalLatencyUs,
    MaxLatencyUs,
}
