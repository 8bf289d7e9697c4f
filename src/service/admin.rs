//! Audit and verification: the migrations audit trail, `verify` (every layer checked against the
//! others and the audit trail) and `repair` (re-sync what verify finds missing, idempotently).

use chrono::{DateTime, Utc};
use entity::cache_migrations;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use serde::Serialize;
use uuid::Uuid;

use super::{ServiceError, checksum, clock::now};
use crate::store::Store;

/// One verification check.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The verification report.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// What `repair` changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairReport {
    pub mapping_rows_added: u64,
    pub mappings_marked_synced: u64,
    pub messages_resynced: u64,
    pub audit_rows_added: u64,
}

/// Filters for the migrations audit trail.
#[derive(Clone, Debug, Default)]
pub struct MigrationFilter {
    pub guest_id: Option<String>,
    pub user_id: Option<String>,
    /// `completed` or `failed`.
    pub status: Option<&'static str>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u64,
}

#[derive(Clone)]
pub struct AdminService {
    store: Store,
}

/// (name, SQL counting offending rows, what an offence means).
const COUNT_CHECKS: [(&str, &str, &str); 5] = [
    (
        "message_cache_mapped",
        "SELECT COUNT(*) FROM message_cache m LEFT JOIN cache_content_mapping c \
         ON c.cache_type = 'message' AND c.cache_id = m.id WHERE c.id IS NULL",
        "cached messages without a ledger row",
    ),
    (
        "synced_mappings_resolve",
        "SELECT COUNT(*) FROM cache_content_mapping c LEFT JOIN messages m ON m.id = c.main_id \
         WHERE c.is_synced = TRUE AND (m.id IS NULL OR m.content_hash <> c.content_hash)",
        "synced ledger rows whose main message is missing or differs",
    ),
    (
        "cache_sequences_gapless",
        "SELECT COUNT(*) FROM conversation_cache cc WHERE cc.message_count <> \
         (SELECT COUNT(*) FROM message_cache m WHERE m.conversation_id = cc.id) OR EXISTS \
         (SELECT 1 FROM message_cache m WHERE m.conversation_id = cc.id \
          AND (m.sequence < 1 OR m.sequence > cc.message_count))",
        "guest conversations whose sequences have gaps or duplicates",
    ),
    (
        "message_indexes_gapless",
        "SELECT COUNT(*) FROM conversations c WHERE c.message_count <> \
         (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) OR EXISTS \
         (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
          AND (m.message_index < 1 OR m.message_index > c.message_count))",
        "account conversations whose message indexes have gaps or duplicates",
    ),
    (
        "guest_state_consistent",
        "SELECT COUNT(*) FROM conversation_cache WHERE \
         (platform = 'guest' AND main_conversation_id IS NOT NULL) OR \
         (platform = 'authenticated' AND main_conversation_id IS NULL)",
        "guest conversations that are both guest and migrated",
    ),
];

impl AdminService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn migrations(
        &self,
        f: MigrationFilter,
    ) -> Result<Vec<cache_migrations::Model>, ServiceError> {
        let mut q =
            cache_migrations::Entity::find().order_by_desc(cache_migrations::Column::StartedAt);
        if let Some(g) = f.guest_id {
            q = q.filter(cache_migrations::Column::GuestId.eq(g));
        }
        if let Some(u) = f.user_id {
            q = q.filter(cache_migrations::Column::UserId.eq(u));
        }
        if let Some(status) = f.status {
            q = q.filter(cache_migrations::Column::Status.eq(status));
        }
        if let Some(t) = f.since {
            q = q.filter(cache_migrations::Column::StartedAt.gte(t));
        }
        if let Some(t) = f.until {
            q = q.filter(cache_migrations::Column::StartedAt.lt(t));
        }
        Ok(q.limit(f.limit).all(self.store.conn()).await?)
    }

    /// Checks every layer against the others and the audit trail.
    pub async fn verify(&self) -> Result<VerifyReport, ServiceError> {
        let db = self.store.conn();
        let mut checks = Vec::new();
        for (name, sql, what) in COUNT_CHECKS {
            let n = count(db, sql).await?;
            checks.push(Check {
                name,
                ok: n == 0,
                detail: if n == 0 {
                    "none found".into()
                } else {
                    format!("{n} {what}")
                },
            });
        }
        checks.push(self.check_migrations().await?);
        Ok(VerifyReport {
            ok: checks.iter().all(|c| c.ok),
            checks,
        })
    }

    /// Every completed migration's counts and checksum against the main database.
    async fn check_migrations(&self) -> Result<Check, ServiceError> {
        let db = self.store.conn();
        let done = cache_migrations::Entity::find()
            .filter(cache_migrations::Column::Status.eq("completed"))
            .all(db)
            .await?;
        let mut bad = Vec::new();
        for m in &done {
            let ids: Vec<Uuid> =
                serde_json::from_value(m.conversation_ids.clone()).unwrap_or_default();
            let (count, sum) = checksum::of_migrated(db, ids).await?;
            if count != m.messages_migrated || m.checksum.as_deref() != Some(sum.as_str()) {
                bad.push(m.guest_id.clone());
            }
        }
        Ok(Check {
            name: "migrations_match_main_db",
            ok: bad.is_empty(),
            detail: if bad.is_empty() {
                format!("{} completed migrations match", done.len())
            } else {
                format!(
                    "{} migrations differ from the main database: {}",
                    bad.len(),
                    bad.join(", ")
                )
            },
        })
    }

    /// Re-syncs from L2: missing ledger rows, unsynced ledger rows of migrated guests, cached
    /// messages missing from a migrated conversation, and missing audit rows. Idempotent.
    pub async fn repair(&self) -> Result<RepairReport, ServiceError> {
        let txn = self.store.begin_write().await?;
        let now = now();
        let mut report = RepairReport::default();
        let p1 = self.store.backend().param(1);
        let backend = txn.get_database_backend();
        let exec = |sql: &str| Statement::from_sql_and_values(backend, sql, [now.into()]);
        report.mapping_rows_added = txn
            .execute_raw(exec(&format!(
                "INSERT INTO cache_content_mapping (id, cache_type, cache_id, user_id, content_hash, is_synced, created_at) \
                 SELECT m.id, 'message', m.id, cc.user_id, m.message_hash, FALSE, {p1} \
                 FROM message_cache m JOIN conversation_cache cc ON cc.id = m.conversation_id \
                 WHERE NOT EXISTS (SELECT 1 FROM cache_content_mapping c WHERE c.cache_type = 'message' AND c.cache_id = m.id)",
            )))
            .await?
            .rows_affected();
        report.messages_resynced = txn
            .execute_raw(exec(&format!(
                "INSERT INTO messages (id, conversation_id, user_id, role, content, content_type, message_index, \
                 tokens_used, is_edited, is_regeneration, flagged, created_at, updated_at, content_hash, \
                 origin_cache_message_id, client_timestamp, idempotency_key) \
                 SELECT m.id, cc.main_conversation_id, c.user_id, m.role, m.content, m.content_type, m.sequence, \
                 m.tokens, m.is_edited, FALSE, FALSE, m.created_at, {p1}, m.message_hash, m.id, m.client_timestamp, m.idempotency_key \
                 FROM message_cache m JOIN conversation_cache cc ON cc.id = m.conversation_id \
                 JOIN conversations c ON c.id = cc.main_conversation_id \
                 WHERE NOT EXISTS (SELECT 1 FROM messages x WHERE x.origin_cache_message_id = m.id) \
                 AND NOT EXISTS (SELECT 1 FROM messages y WHERE y.conversation_id = c.id AND y.message_index = m.sequence)",
            )))
            .await?
            .rows_affected();
        report.mappings_marked_synced = txn
            .execute_raw(exec(&format!(
                "UPDATE cache_content_mapping SET is_synced = TRUE, main_id = cache_id, synced_at = {p1} \
                 WHERE cache_type = 'message' AND is_synced = FALSE AND EXISTS \
                 (SELECT 1 FROM messages x WHERE x.id = cache_content_mapping.cache_id)",
            )))
            .await?
            .rows_affected();
        if report.messages_resynced > 0 {
            txn.execute_unprepared(
                "UPDATE conversations SET message_count = \
                 (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = conversations.id) \
                 WHERE origin_guest_id IS NOT NULL",
            )
            .await?;
        }
        txn.commit().await?;
        report.audit_rows_added = self.repair_audit_trail().await?;
        Ok(report)
    }

    /// A migrated guest without a completed audit row gets one rebuilt from the main database.
    async fn repair_audit_trail(&self) -> Result<u64, ServiceError> {
        let db = self.store.conn();
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT cc.guest_id, cc.user_id, cc.main_conversation_id FROM conversation_cache cc \
                 WHERE cc.main_conversation_id IS NOT NULL AND cc.guest_root IS NULL AND NOT EXISTS \
                 (SELECT 1 FROM cache_migrations a WHERE a.guest_id = cc.guest_id AND a.status = 'completed')",
            ))
            .await?;
        let mut added = 0;
        for row in rows {
            let guest_id: String = row.try_get("", "guest_id")?;
            let user_id: String = row.try_get("", "user_id")?;
            let conversation_id: Uuid = row.try_get("", "main_conversation_id")?;
            let (count, sum) = checksum::of_migrated(db, vec![conversation_id]).await?;
            let at = now();
            cache_migrations::Entity::insert(cache_migrations::ActiveModel {
                id: sea_orm::Set(Uuid::now_v7()),
                guest_id: sea_orm::Set(guest_id),
                user_id: sea_orm::Set(user_id),
                status: sea_orm::Set("completed".into()),
                conversations_migrated: sea_orm::Set(1),
                messages_migrated: sea_orm::Set(count),
                checksum: sea_orm::Set(Some(sum)),
                conversation_ids: sea_orm::Set(serde_json::json!([conversation_id])),
                error: sea_orm::Set(Some("rebuilt by repair".into())),
                started_at: sea_orm::Set(at),
                completed_at: sea_orm::Set(Some(at)),
            })
            .exec_without_returning(db)
            .await?;
            added += 1;
        }
        Ok(added)
    }
}

async fn count<C: ConnectionTrait>(db: &C, sql: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .ok_or_else(|| DbErr::Custom("count returned no row".into()))?;
    row.try_get_by_index::<i64>(0)
}
