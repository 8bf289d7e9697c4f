//! The one seam for SQL dialect differences. Every place where SQLite and PostgreSQL need
//! different SQL or a different strategy asks [`Backend`]; no other code branches on the database.

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbErr, QuerySelect, SqliteTransactionMode, Statement,
    TransactionOptions,
};

use crate::config::DatabaseKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One file; one writer at a time, so every write goes through the group-commit writer.
    Sqlite,
    /// Concurrent writers: each write is its own transaction, except the kinds merged in the
    /// group commit (appends), whose batches share one.
    Postgres,
}

impl From<DatabaseKind> for Backend {
    fn from(kind: DatabaseKind) -> Self {
        match kind {
            DatabaseKind::Sqlite => Backend::Sqlite,
            DatabaseKind::Postgres => Backend::Postgres,
        }
    }
}

impl Backend {
    /// `sqlite` or `postgres`, for `/readyz` and logs.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// True when every write is queued to the one group-commit writer (SQLite). Otherwise only
    /// merged kinds go through it; the rest run in transactions of their own, side by side.
    pub fn serialises_writes(self) -> bool {
        self == Backend::Sqlite
    }

    /// How a write transaction begins. On SQLite it takes the write lock at `BEGIN` (IMMEDIATE),
    /// so two writers never both hold read locks and dead-lock when upgrading.
    pub fn write_transaction(self) -> TransactionOptions {
        TransactionOptions {
            sqlite_transaction_mode: (self == Backend::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        }
    }

    /// `query` with the rows it reads locked until the transaction ends, so concurrent
    /// transactions that read the same rows queue behind this one. PostgreSQL: `FOR UPDATE`.
    /// SQLite: unchanged — the write transaction already holds the database's one write lock.
    pub fn lock_rows<Q: QuerySelect>(self, query: Q) -> Q {
        match self {
            Backend::Postgres => query.lock_exclusive(),
            Backend::Sqlite => query,
        }
    }

    /// Adds `FOR SHARE` on PostgreSQL: the rows cannot be deleted until this transaction ends.
    /// SQLite needs nothing: its writes are serialised.
    pub fn share_rows<Q: QuerySelect>(self, query: Q) -> Q {
        match self {
            Backend::Postgres => query.lock_shared(),
            Backend::Sqlite => query,
        }
    }

    /// The `n`-th bind parameter in raw SQL: `$n` on PostgreSQL, `?` on SQLite.
    pub fn param(self, n: usize) -> String {
        match self {
            Backend::Postgres => format!("${n}"),
            Backend::Sqlite => "?".into(),
        }
    }

    /// True when a failed statement leaves the transaction unusable until it is rolled back to
    /// a savepoint (PostgreSQL). On SQLite only the failed statement is undone.
    pub fn failure_aborts_transaction(self) -> bool {
        self == Backend::Postgres
    }

    /// Runs `statements` as one unit: all kept, or on `Err` none. SQLite: one call, inside a
    /// savepoint opened and released in that same call and rolled back to on failure — no
    /// round trips of its own. PostgreSQL: [`Self::execute_all`]; there a failed statement
    /// aborts the transaction, so the caller runs in a savepoint already (a merged lane's
    /// `together`: see `MergeLane`).
    pub async fn execute_atomically(
        self,
        txn: &DatabaseTransaction,
        statements: Vec<Statement>,
    ) -> Result<(), DbErr> {
        if self.failure_aborts_transaction() {
            return self.execute_all(txn, statements).await;
        }
        const MARK: &str = "atomic_writes";
        let db = txn.get_database_backend();
        let mut all = Vec::with_capacity(statements.len() + 2);
        all.push(Statement::from_string(db, format!("SAVEPOINT {MARK}")));
        all.extend(statements);
        all.push(Statement::from_string(db, format!("RELEASE {MARK}")));
        let result = self.execute_all(txn, all).await;
        if result.is_err() {
            // What ran before the failing statement is undone; the transaction goes on. (If the
            // connection is gone these fail too, and the caller learns it from its next write.)
            let _ = txn.execute_unprepared(&format!("ROLLBACK TO {MARK}")).await;
            let _ = txn.execute_unprepared(&format!("RELEASE {MARK}")).await;
        }
        result
    }

    /// Runs `queries` in order. SQLite: as one call (its statements joined, their parameters in
    /// order), one round trip to the connection's thread instead of one each — on the writer's
    /// hot path those round trips, not SQLite's work, were much of a batch's time. PostgreSQL
    /// prepares one statement per call, so each goes alone.
    pub async fn execute_all(
        self,
        txn: &DatabaseTransaction,
        statements: Vec<Statement>,
    ) -> Result<(), DbErr> {
        match self {
            Backend::Sqlite => {
                let mut sql = String::new();
                let mut values = Vec::new();
                for s in statements {
                    sql.push_str(&s.sql);
                    sql.push_str(";\n");
                    values.extend(s.values.map(|v| v.0).unwrap_or_default());
                }
                if !sql.is_empty() {
                    let db = txn.get_database_backend();
                    txn.execute_raw(Statement::from_sql_and_values(db, sql, values))
                        .await?;
                }
            }
            Backend::Postgres => {
                for s in statements {
                    txn.execute_raw(s).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};

    use super::Backend;

    async fn count(txn: &sea_orm::DatabaseTransaction) -> i64 {
        let stmt = Statement::from_string(txn.get_database_backend(), "SELECT COUNT(*) FROM t");
        let row = txn.query_one_raw(stmt).await.expect("count").expect("row");
        row.try_get_by_index::<i64>(0).expect("integer")
    }

    /// A failing statement among atomic writes undoes the ones before it, and the transaction
    /// goes on (SQLite, where no savepoint is set around the caller).
    #[tokio::test]
    async fn atomic_writes_on_sqlite_are_all_or_nothing_and_the_transaction_goes_on() {
        // One connection: each connection to `:memory:` is a database of its own.
        let mut options = sea_orm::ConnectOptions::new("sqlite::memory:");
        options.max_connections(1);
        let db = Database::connect(options).await.expect("sqlite");
        db.execute_unprepared("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .await
            .expect("table");
        let sql = |k: i64| {
            Statement::from_sql_and_values(
                db.get_database_backend(),
                "INSERT INTO t (k) VALUES (?)",
                [k.into()],
            )
        };
        let txn = db.begin().await.expect("begin");
        Backend::Sqlite
            .execute_atomically(&txn, vec![sql(1)])
            .await
            .expect("first write");
        let failed = Backend::Sqlite
            .execute_atomically(&txn, vec![sql(2), sql(3), sql(1)])
            .await;
        assert!(failed.is_err(), "the repeated key fails the unit");
        assert_eq!(count(&txn).await, 1, "2 and 3 were undone with it");
        Backend::Sqlite
            .execute_atomically(&txn, vec![sql(4), sql(5)])
            .await
            .expect("the transaction goes on");
        txn.commit().await.expect("commit");
        let keys = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT k FROM t ORDER BY k",
            ))
            .await
            .expect("keys")
            .iter()
            .map(|r| r.try_get_by_index::<i64>(0).expect("k"))
            .collect::<Vec<_>>();
        assert_eq!(keys, [1, 4, 5]);
    }
}
