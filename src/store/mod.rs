//! SQL access: the connection pool (SQLite in WAL mode, or PostgreSQL), schema migrations, and
//! write transactions that cannot dead-lock on a read→write upgrade.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    TransactionTrait,
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

use crate::config::Settings;

mod backend;
mod error;
mod merge;
mod writer;

pub use backend::Backend;
pub use error::{BatchFailure, StoreError, WriteError, is_contended, is_unavailable};
pub use merge::{Decided, Merge, MergeLane};
use writer::Writer;
pub use writer::{BoxFuture, Write, WriterHealth};

/// Ends `txn` (a transaction or a savepoint) as `result` asks: commit on `Write::Commit`, roll
/// back on `Write::Discard` or an error.
pub async fn finish<T, E: From<DbErr>>(
    txn: DatabaseTransaction,
    result: Result<Write<T>, E>,
) -> Result<T, E> {
    match result {
        Ok(Write::Commit(v)) => {
            txn.commit().await?;
            Ok(v)
        }
        Ok(Write::Discard(v)) => {
            txn.rollback().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// The SQL database: L2 cache tables and the main tables live in it together.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: Backend,
    breaker: Arc<Breaker>,
    /// The group-commit writer: on SQLite every write goes through it; on PostgreSQL only the
    /// merged kinds (appends), the rest run in their own transactions.
    writer: Option<Writer>,
}

/// After the database is found unreachable, requests fail fast for a short window instead of
/// each waiting out the pool's acquire timeout; then one request tries again.
struct Breaker {
    epoch: Instant,
    open_until_ms: AtomicU64,
}

const BREAKER_WINDOW: Duration = Duration::from_secs(1);

/// The SQLite writer connection's page cache: negative = KiB (SQLite's default is 2 MiB).
const WRITER_CACHE_KIB: &str = "-16384";

/// Prepared statements the SQLite writer keeps: a multi-row statement is one per row count.
const WRITER_STATEMENTS: usize = 1024;

impl Breaker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// How often the SQLite WAL is copied back into the database file while writes come in.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Copies SQLite's WAL back into the database file, on a pooled connection, while the writer
/// runs. The writer's own automatic checkpoint is off: it ran inside a commit, writing pages and
/// syncing the file while every append of the batch waited. A passive checkpoint never blocks
/// the writer or readers; the WAL starts over from its beginning once one has caught up.
async fn checkpoint_wal(db: DatabaseConnection, writer: Arc<WriterHealth>) {
    let mut seen = writer.commits();
    while writer.is_running() {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        let commits = writer.commits();
        if commits == seen {
            continue;
        }
        seen = commits;
        if let Err(err) = db
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::warn!(error = %err, "WAL checkpoint failed; trying again");
        }
    }
}

/// Every SQLite connection's settings.
fn sqlite_options(o: SqliteConnectOptions, busy: Duration) -> SqliteConnectOptions {
    o.journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(busy)
        .foreign_keys(true)
        .create_if_missing(true)
        // Statement journals and sorts in memory, not in short-lived temp files.
        .pragma("temp_store", "MEMORY")
}

impl Store {
    /// Opens the pool (creating the SQLite file if needed). Does not migrate.
    pub async fn connect(settings: &Settings) -> Result<Self, DbErr> {
        let backend = Backend::from(
            settings
                .database_kind()
                .map_err(|e| DbErr::Custom(e.to_string()))?,
        );
        let mut options = ConnectOptions::new(settings.database_url());
        let busy = Duration::from_millis(settings.database.busy_timeout_ms);
        let statement_timeout = settings.database.statement_timeout_ms;
        options
            .max_connections(settings.database.max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_millis(settings.database.acquire_timeout_ms))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |o| sqlite_options(o, busy))
            .map_sqlx_postgres_opts(move |o| {
                if statement_timeout == 0 {
                    o
                } else {
                    o.options([("statement_timeout", statement_timeout.to_string())])
                }
            });
        let db = Database::connect(options.clone()).await?;
        let mut store = Self {
            db: db.clone(),
            backend,
            breaker: Arc::new(Breaker {
                epoch: Instant::now(),
                open_until_ms: AtomicU64::new(0),
            }),
            writer: None,
        };
        if backend.serialises_writes() {
            // The writer keeps one connection of its own: SQLite drops a connection's page cache
            // whenever another connection wrote since it last looked, so a writer taking any
            // pooled connection would read every page it touches from the file again.
            options
                .max_connections(1)
                .min_connections(1)
                .test_before_acquire(false)
                .map_sqlx_sqlite_opts(move |o| {
                    sqlite_options(o, busy)
                        .pragma("cache_size", WRITER_CACHE_KIB)
                        .statement_cache_capacity(WRITER_STATEMENTS)
                        // Checkpoints are `checkpoint_wal`'s, on another connection.
                        .pragma("wal_autocheckpoint", "0")
                });
            let writer_db = Database::connect(options).await?;
            let writer = store.spawn_writer(writer_db);
            tokio::spawn(checkpoint_wal(db, writer.health_handle()));
            store.writer = Some(writer);
        } else {
            // Each batch takes a pooled connection: a reconnect after the server restarts is
            // the pool's, as for every other write.
            store.writer = Some(store.spawn_writer(db));
        }
        Ok(store)
    }

    fn spawn_writer(&self, db: DatabaseConnection) -> Writer {
        let opener = self.clone();
        Writer::spawn(
            db,
            Box::new(move |db| {
                let opener = opener.clone();
                Box::pin(async move { opener.begin_write_on(&db).await })
            }),
        )
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True when the SQLite writer has had nothing to do for at least `quiet` (always true on
    /// PostgreSQL, where other writes do not queue behind the merged ones).
    pub fn writer_quiet_for(&self, quiet: std::time::Duration) -> bool {
        !self.backend.serialises_writes()
            || self
                .writer
                .as_ref()
                .is_none_or(|w| w.health().idle_for().is_some_and(|idle| idle >= quiet))
    }

    /// Jobs waiting for the group-commit writer.
    pub fn writer_queue_depth(&self) -> usize {
        self.writer.as_ref().map_or(0, Writer::queue_depth)
    }

    /// Pool connections `(in use, idle)`.
    pub fn pool_state(&self) -> (u64, u64) {
        let (size, idle) = match self.backend {
            Backend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            Backend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
        };
        let idle = idle as u64;
        (u64::from(size).saturating_sub(idle), idle)
    }

    /// The group-commit writer's state.
    pub fn writer_health(&self) -> Option<&WriterHealth> {
        self.writer.as_ref().map(Writer::health)
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
        self.begin_write_on(&self.db).await
    }

    async fn begin_write_on(&self, db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
        self.check_available()?;
        let result = db
            .begin_with_options(self.backend.write_transaction())
            .await;
        if let Err(err) = &result {
            self.note_error(err);
        }
        result
    }

    /// Runs `f` in a write transaction and commits (or rolls back on `Err` / `Write::Discard`).
    /// On SQLite it joins the group-commit batch in its own savepoint; the result comes back
    /// after the commit. On PostgreSQL it is a transaction of its own.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: StoreError,
        F: for<'a> FnOnce(&'a DatabaseTransaction) -> BoxFuture<'a, Result<Write<T>, E>>
            + Send
            + 'static,
    {
        self.check_available()?;
        if let Some(writer) = &self.writer
            && self.backend.serialises_writes()
        {
            return writer.write(f).await;
        }
        let txn = self.begin_write().await?;
        let result = f(&txn).await;
        finish(txn, result).await
    }

    /// A lane for writes of kind `M`, which the group-commit writer stores together (one
    /// transaction per batch, on either database).
    pub fn merge_lane<M: Merge>(&self, merge: M) -> std::sync::Arc<MergeLane<M>> {
        MergeLane::new(merge, self.backend.failure_aborts_transaction())
    }

    /// Stores `item` together with the other items of its lane waiting in the group commit.
    pub async fn write_merged<M: Merge>(
        &self,
        lane: &std::sync::Arc<MergeLane<M>>,
        item: M::Item,
    ) -> Result<M::Output, M::Error> {
        self.check_available()?;
        match &self.writer {
            Some(writer) => writer.write_merged(lane, item).await,
            None => Err(M::Error::from(BatchFailure::Stopped)),
        }
    }

    /// Fails fast while the database was recently found unreachable.
    pub fn check_available(&self) -> Result<(), DbErr> {
        if self.breaker.now_ms() < self.breaker.open_until_ms.load(Ordering::Acquire) {
            return Err(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout));
        }
        Ok(())
    }

    /// Records an error: if it means the database is unreachable, fail fast for a moment.
    pub fn note_error(&self, err: &DbErr) {
        if is_unavailable(err) {
            let until = self.breaker.now_ms() + BREAKER_WINDOW.as_millis() as u64;
            self.breaker.open_until_ms.store(until, Ordering::Release);
        }
    }

    /// A cheap round trip, for `/readyz`. Bypasses the breaker and closes it on success.
    pub async fn ping(&self) -> Result<(), DbErr> {
        match self.db.execute_unprepared("SELECT 1").await {
            Ok(_) => {
                self.breaker.open_until_ms.store(0, Ordering::Release);
                Ok(())
            }
            Err(err) => {
                self.note_error(&err);
                Err(err)
            }
        }
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}
