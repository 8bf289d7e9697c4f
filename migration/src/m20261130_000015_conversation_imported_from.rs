//! Where an imported conversation came from (`genesis:{id}` or `chatgpt:{id}`), unique per user:
//! importing the same file twice skips what is already there instead of doubling it.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000002_create_conversations::Conversations;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Added {
    ImportedFrom,
}

const INDEX: &str = "uq_conversations_user_imported_from";

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(string_null(Added::ImportedFrom))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                INDEX,
                Conversations::Table,
                &[Alias::new("user_id"), Alias::new("imported_from")],
                true,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(Conversations::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .drop_column(Added::ImportedFrom)
                    .to_owned(),
            )
            .await
    }
}
