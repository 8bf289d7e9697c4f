//! Revocable guest tokens and the per-guest daily quota: each guest conversation gets
//! `token_salt` (random, chosen when the id is claimed; its tokens are bound to it, so erasing the
//! guest ends them and a re-claimed id gets new ones — NULL on rows from before, whose tokens stay
//! the older deterministic kind) and a daily message window (`day_started_at`, `day_messages`).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000005_create_conversation_cache::ConversationCache;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Added {
    TokenSalt,
    DayStartedAt,
    DayMessages,
}

fn alter() -> TableAlterStatement {
    Table::alter().table(ConversationCache::Table).to_owned()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        manager
            .alter_table(alter().add_column(string_null(Added::TokenSalt)).to_owned())
            .await?;
        manager
            .alter_table(
                alter()
                    .add_column(timestamp_with_time_zone_null(Added::DayStartedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                alter()
                    .add_column(big_integer(Added::DayMessages).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Added::DayMessages, Added::DayStartedAt, Added::TokenSalt] {
            manager
                .alter_table(alter().drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
