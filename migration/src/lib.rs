//! The schema history of Genesis. Every migration runs on SQLite and PostgreSQL; `up` is applied at
//! start-up by `genesis serve` and by `genesis db up`.
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_users;
mod m20261122_000002_create_conversations;
mod m20261122_000003_create_messages;
mod m20261122_000004_create_usage_metrics;
mod m20261122_000005_create_conversation_cache;
mod m20261122_000006_create_message_cache;
mod m20261122_000007_create_cache_embeddings;
mod m20261122_000008_create_cache_content_mapping;
mod m20261122_000009_create_cache_metrics;
mod m20261122_000010_create_cache_migrations;
mod m20261122_000011_lean_message_cache_indexes;
mod m20261130_000012_create_search_text;
mod m20261130_000013_guest_token_salt_and_quota;
mod m20261130_000014_create_refresh_tokens;
mod m20261130_000015_conversation_imported_from;
mod m20261130_000016_message_versions;
mod m20261205_000017_tool_calls;
mod m20261205_000018_guest_conversations;

pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_conversations::Migration),
            Box::new(m20261122_000003_create_messages::Migration),
            Box::new(m20261122_000004_create_usage_metrics::Migration),
            Box::new(m20261122_000005_create_conversation_cache::Migration),
            Box::new(m20261122_000006_create_message_cache::Migration),
            Box::new(m20261122_000007_create_cache_embeddings::Migration),
            Box::new(m20261122_000008_create_cache_content_mapping::Migration),
            Box::new(m20261122_000009_create_cache_metrics::Migration),
            Box::new(m20261122_000010_create_cache_migrations::Migration),
            Box::new(m20261122_000011_lean_message_cache_indexes::Migration),
            Box::new(m20261130_000012_create_search_text::Migration),
            Box::new(m20261130_000013_guest_token_salt_and_quota::Migration),
            Box::new(m20261130_000014_create_refresh_tokens::Migration),
            Box::new(m20261130_000015_conversation_imported_from::Migration),
            Box::new(m20261130_000016_message_versions::Migration),
            Box::new(m20261205_000017_tool_calls::Migration),
            Box::new(m20261205_000018_guest_conversations::Migration),
        ]
    }
}

/// A named index over `columns` of `table`, optionally unique.
pub(crate) fn index<T, C>(name: &str, table: T, columns: &[C], unique: bool) -> IndexCreateStatement
where
    T: IntoIden + Clone + 'static,
    C: IntoIden + Clone + 'static,
{
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for column in columns {
        stmt.col(column.clone());
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}
