//! Every migration runs up → down → up on the test database (SQLite, or PostgreSQL when
//! `GENESIS_TEST_DATABASE_URL` is set).

mod common;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, Statement};

const TABLES: [&str; 10] = [
    "users",
    "conversations",
    "messages",
    "usage_metrics",
    "conversation_cache",
    "message_cache",
    "cache_embeddings",
    "cache_content_mapping",
    "cache_metrics",
    "cache_migrations",
];

async fn table_count(db: &sea_orm::DatabaseConnection) -> usize {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        _ => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .expect("list tables");
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").expect("name"))
        .collect();
    TABLES
        .iter()
        .filter(|t| names.iter().any(|n| n == *t))
        .count()
}

#[tokio::test]
async fn every_migration_runs_up_down_up() {
    let app = common::spawn_app().await;
    // The server applied everything at start-up; stop it and drive the migrator directly.
    let mut app = app;
    app.kill().await;
    let db = Database::connect(app.database_url.as_str())
        .await
        .expect("connect");
    assert_eq!(table_count(&db).await, TABLES.len());
    Migrator::down(&db, None).await.expect("down");
    assert_eq!(table_count(&db).await, 0);
    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(table_count(&db).await, TABLES.len());
    let pending = Migrator::get_pending_migrations(&db)
        .await
        .expect("pending");
    assert!(pending.is_empty());
    db.close().await.ok();
}
