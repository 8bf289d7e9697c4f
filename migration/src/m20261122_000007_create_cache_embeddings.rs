use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CacheEmbeddings::Table)
                    .if_not_exists()
                    .col(uuid(CacheEmbeddings::Id).primary_key())
                    .col(string(CacheEmbeddings::ContentHash))
                    .col(string(CacheEmbeddings::Model))
                    .col(integer(CacheEmbeddings::Dims))
                    .col(blob(CacheEmbeddings::Vector))
                    .col(timestamp_with_time_zone(CacheEmbeddings::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "uq_cache_embeddings_hash_model",
                CacheEmbeddings::Table,
                &[CacheEmbeddings::ContentHash, CacheEmbeddings::Model],
                true,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CacheEmbeddings::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum CacheEmbeddings {
    Table,
    Id,
    ContentHash,
    Model,
    Dims,
    Vector,
    CreatedAt,
}
