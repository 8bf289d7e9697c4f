//! `search_text`: one row per distinct message content (by its hash), with a full-text index:
//! SQLite FTS5 (`search_fts`, external content, porter stemming) or a PostgreSQL `tsvector`
//! column with a GIN index. Filled by the embedding pipeline beside the vectors, so no append
//! pays for indexing; searches join it to the caller's own messages by hash.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &[&str] = &[
    "CREATE TABLE search_text (id INTEGER PRIMARY KEY, content_hash TEXT NOT NULL UNIQUE, \
     content TEXT NOT NULL)",
    "CREATE VIRTUAL TABLE search_fts USING fts5(content, content='search_text', \
     content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER search_text_insert AFTER INSERT ON search_text BEGIN \
     INSERT INTO search_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER search_text_delete AFTER DELETE ON search_text BEGIN \
     INSERT INTO search_fts(search_fts, rowid, content) VALUES ('delete', old.id, old.content); END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS search_text_delete",
    "DROP TRIGGER IF EXISTS search_text_insert",
    "DROP TABLE IF EXISTS search_fts",
    "DROP TABLE IF EXISTS search_text",
];

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE search_text (id BIGSERIAL PRIMARY KEY, content_hash TEXT NOT NULL UNIQUE, \
     content TEXT NOT NULL, \
     tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED)",
    "CREATE INDEX idx_search_text_tsv ON search_text USING GIN (tsv)",
];

const POSTGRES_DOWN: &[&str] = &["DROP TABLE IF EXISTS search_text"];

async fn run(manager: &SchemaManager<'_>, sqlite: &[&str], postgres: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let statements = match db.get_database_backend() {
        DbBackend::Sqlite => sqlite,
        _ => postgres,
    };
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, SQLITE_UP, POSTGRES_UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, SQLITE_DOWN, POSTGRES_DOWN).await
    }
}
