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
