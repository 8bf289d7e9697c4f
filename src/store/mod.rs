//! SQL access: the connection pool (SQLite in WAL mode, or PostgreSQL), schema migrations, and
//! write transactions that cannot dead-lock on a read→write upgrade.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

use crate::config::{DatabaseKind, Settings};

/// The SQL database: L2 cache tables and the main tables live in it together.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    kind: DatabaseKind,
}

impl Store {
    /// Opens the pool (creating the SQLite file if needed). Does not migrate.
    pub async fn connect(settings: &Settings) -> Result<Self, DbErr> {
        let kind = settings
            .database_kind()
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let mut options = ConnectOptions::new(settings.database_url());
        let busy = Duration::from_millis(settings.database.busy_timeout_ms);
        options
            .max_connections(settings.database.max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_millis(settings.database.acquire_timeout_ms))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(busy)
                    .foreign_keys(true)
                    .create_if_missing(true)
            });
        let db = Database::connect(options).await?;
        Ok(Self { db, kind })
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Applies every pending migration.
    pub async fn migrate_up(&self) -> Result<(), DbErr> {
        Migrator::up(&self.db, None).await
    }

    /// `(name, applied)` for every known migration.
    pub async fn migration_status(&self) -> Result<Vec<(String, bool)>, DbErr> {
        let applied: Vec<String> = Migrator::get_applied_migrations(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        Ok(Migrator::migrations()
            .iter()
            .map(|m| {
                let name = m.name().to_string();
                let done = applied.contains(&name);
                (name, done)
            })
            .collect())
    }

    /// Begins a write transaction. On SQLite it takes the write lock at `BEGIN` (IMMEDIATE), so
    /// two writers never both hold read locks and dead-lock when upgrading.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.kind == DatabaseKind::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.db.begin_with_options(options).await
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.execute_unprepared("SELECT 1").await.map(|_| ())
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}
