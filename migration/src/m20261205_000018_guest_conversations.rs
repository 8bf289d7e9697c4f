//! A guest may hold several conversations. The first (`guest_id` = the guest's id) stays the
//! guest's record — its token salt, quota, expiry and migration state — and names the newest
//! conversation in `latest_conversation_id`; each further one is a row of its own whose
//! `guest_root` is the guest's id (its `guest_id` is a key derived from both ids, unique).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000005_create_conversation_cache::ConversationCache;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Added {
    GuestRoot,
    LatestConversationId,
}

const INDEX: &str = "idx_conversation_cache_guest_root";

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            string_null(Added::GuestRoot),
            uuid_null(Added::LatestConversationId),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ConversationCache::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(crate::index(
                INDEX,
                ConversationCache::Table,
                &[Added::GuestRoot],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(ConversationCache::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Added::GuestRoot, Added::LatestConversationId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ConversationCache::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
