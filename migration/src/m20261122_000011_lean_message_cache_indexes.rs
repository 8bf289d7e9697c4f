//! Fewer index entries per stored guest message: the idempotency index only holds messages sent
//! with an `Idempotency-Key`, and retries by timestamp are found through an index of the
//! messages that carry a client timestamp (replacing the index on the content hash, whose only
//! use was that search). A message with neither now updates two fewer index pages.

use sea_orm_migration::prelude::*;

use crate::m20261122_000006_create_message_cache::MessageCache;

#[derive(DeriveMigrationName)]
pub struct Migration;

const IDEMPOTENCY: &str = "uq_message_cache_conversation_idempotency";
const HASH: &str = "idx_message_cache_conversation_hash";
const TIMESTAMP: &str = "idx_message_cache_conversation_timestamp";

fn drop(name: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(MessageCache::Table)
        .to_owned()
}

/// An index on `(conversation_id, column)`; `partial` leaves out rows where `column` is NULL.
fn on_conversation(
    name: &str,
    column: MessageCache,
    unique: bool,
    partial: bool,
) -> IndexCreateStatement {
    let mut stmt = crate::index(
        name,
        MessageCache::Table,
        &[MessageCache::ConversationId, column],
        unique,
    );
    if partial {
        stmt.and_where(Expr::col(column).is_not_null());
    }
    stmt
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on every backend: the drops and creates then share one connection
    /// (another pooled SQLite connection would still see the dropped index) and apply together.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(drop(IDEMPOTENCY)).await?;
        manager.drop_index(drop(HASH)).await?;
        let idempotency = on_conversation(IDEMPOTENCY, MessageCache::IdempotencyKey, true, true);
        manager.create_index(idempotency).await?;
        let timestamp = on_conversation(TIMESTAMP, MessageCache::ClientTimestamp, false, true);
        manager.create_index(timestamp).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(drop(IDEMPOTENCY)).await?;
        manager.drop_index(drop(TIMESTAMP)).await?;
        let idempotency = on_conversation(IDEMPOTENCY, MessageCache::IdempotencyKey, true, false);
        manager.create_index(idempotency).await?;
        let hash = on_conversation(HASH, MessageCache::MessageHash, false, false);
        manager.create_index(hash).await
    }
}
