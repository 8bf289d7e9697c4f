use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .if_not_exists()
                    .col(uuid(Conversations::Id).primary_key())
                    .col(uuid(Conversations::UserId))
                    .col(string(Conversations::Title))
                    .col(text_null(Conversations::Description))
                    .col(string(Conversations::AgentType).default("text-generation"))
                    .col(string_null(Conversations::ModelUsed))
                    .col(text_null(Conversations::SystemPrompt))
                    .col(double_null(Conversations::Temperature))
                    .col(integer_null(Conversations::MaxTokens))
                    .col(string(Conversations::Status).default("active"))
                    .col(big_integer(Conversations::MessageCount).default(0))
                    .col(big_integer(Conversations::TokenCount).default(0))
                    .col(boolean(Conversations::IsPublic).default(false))
                    .col(boolean(Conversations::IsShared).default(false))
                    .col(json_binary(Conversations::Tags))
                    .col(timestamp_with_time_zone_null(Conversations::LastMessageAt))
                    .col(timestamp_with_time_zone(Conversations::CreatedAt))
                    .col(timestamp_with_time_zone(Conversations::UpdatedAt))
                    .col(string_null(Conversations::OriginGuestId).unique_key())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_conversations_user")
                            .from(Conversations::Table, Conversations::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_conversations_user_updated",
                Conversations::Table,
                &[Conversations::UserId, Conversations::UpdatedAt],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Conversations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Conversations {
    Table,
    Id,
    UserId,
    Title,
    Description,
    AgentType,
    ModelUsed,
    SystemPrompt,
    Temperature,
    MaxTokens,
    Status,
    MessageCount,
    TokenCount,
    IsPublic,
    IsShared,
    Tags,
    LastMessageAt,
    CreatedAt,
    UpdatedAt,
    OriginGuestId,
}
