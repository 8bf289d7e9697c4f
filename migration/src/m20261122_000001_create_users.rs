use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(uuid(Users::Id).primary_key())
                    .col(string_null(Users::ExternalId).unique_key())
                    .col(string_null(Users::Email).unique_key())
                    .col(string_null(Users::PasswordHash))
                    .col(string_null(Users::DisplayName))
                    .col(string(Users::Tier).default("free"))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Users {
    Table,
    Id,
    ExternalId,
    Email,
    PasswordHash,
    DisplayName,
    Tier,
    CreatedAt,
    UpdatedAt,
}
