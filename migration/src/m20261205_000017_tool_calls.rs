//! Tool calls, as OpenAI-style chat apps send them: a `tool` message's `tool_call_id` (the call
//! it answers) and an assistant message's `tool_calls` (a JSON array, kept as sent), on guest and
//! account messages alike.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261122_000003_create_messages::Messages, m20261122_000006_create_message_cache::MessageCache,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Added {
    ToolCallId,
    ToolCalls,
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Messages::Table.into_iden(), MessageCache::Table.into_iden()] {
            // SQLite adds one column per ALTER TABLE.
            for column in [string_null(Added::ToolCallId), text_null(Added::ToolCalls)] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table.clone())
                            .add_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Messages::Table.into_iden(), MessageCache::Table.into_iden()] {
            for column in [Added::ToolCallId, Added::ToolCalls] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table.clone())
                            .drop_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
