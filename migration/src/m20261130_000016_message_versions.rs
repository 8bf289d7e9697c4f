//! Edits keep what they replace: `message_versions` holds each earlier text of an account message
//! (deleted with it). `conversations.last_index` is the highest `message_index` ever given, so a
//! deleted message's index is never given again while `message_count` stays the number of
//! messages (backfilled: until now no message could be deleted, so both were the same). An index
//! on `messages.parent_message_id` finds the answers a regeneration replaced.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261122_000002_create_conversations::Conversations,
    m20261122_000003_create_messages::Messages,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
pub enum MessageVersions {
    Table,
    Id,
    MessageId,
    Content,
    ContentHash,
    TokensUsed,
    EditedAt,
}

#[derive(DeriveIden)]
enum Added {
    LastIndex,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MessageVersions::Table)
                    .col(uuid(MessageVersions::Id).primary_key())
                    .col(uuid(MessageVersions::MessageId))
                    .col(text(MessageVersions::Content))
                    .col(string(MessageVersions::ContentHash))
                    .col(integer_null(MessageVersions::TokensUsed))
                    .col(timestamp_with_time_zone(MessageVersions::EditedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_message_versions_message")
                            .from(MessageVersions::Table, MessageVersions::MessageId)
                            .to(Messages::Table, Messages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_message_versions_message",
                MessageVersions::Table,
                &[MessageVersions::MessageId],
                false,
            ))
            .await?;
        // Lists hide a message another one regenerated: found through this index.
        manager
            .create_index(crate::index(
                "idx_messages_parent",
                Messages::Table,
                &[Messages::ParentMessageId],
                false,
            ))
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(big_integer(Added::LastIndex).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("UPDATE conversations SET last_index = message_count")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_messages_parent")
                    .table(Messages::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .drop_column(Added::LastIndex)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(MessageVersions::Table).to_owned())
            .await
    }
}
