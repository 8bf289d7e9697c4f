//! Guest → account migration: in ONE transaction each of the guest's cached conversations that
//! holds messages is re-owned and copied into `conversations`/`messages` in sequence order
//! ([`copy`]), the ledger rows are marked synced, a completed `cache_migrations` row is written,
//! and counts and checksum are verified before commit. Then the guests' hot-cache keys are
//! dropped.

mod copy;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{cache_migrations, conversation_cache};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder,
};
use tracing::{error, info, instrument, warn};

use uuid::Uuid;

use super::{
    ServiceError,
    cache_metrics::{CacheMetrics, Layer, Op},
    checksum,
    clock::now,
    guest::{
        GuestService,
        rules::{check_write_access, validate_guest_id},
    },
    usage::{self, UsageCounters},
};
use crate::{
    failpoint::Failpoint,
    hot::HotCache,
    store::{Backend, Store, Write, WriteError},
};

/// What a migration did (or, for a repeat, what it had done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    pub migration_id: Uuid,
    pub user_id: Uuid,
    pub guest_id: String,
    pub conversation_ids: Vec<Uuid>,
    pub messages_migrated: i64,
    pub checksum: String,
    pub already_migrated: bool,
    pub completed_at: Option<DateTime<Utc>>,
    /// The guest's cache conversations that moved, with their hot-cache keys (their copies
    /// there must never come back).
    pub moved: Vec<(String, Uuid)>,
}

pub struct MigrationService {
    store: Store,
    hot: HotCache,
    guests: GuestService,
    usage: Arc<UsageCounters>,
    metrics: Arc<CacheMetrics>,
    failpoint: Failpoint,
}

impl MigrationService {
    pub fn new(
        store: Store,
        hot: HotCache,
        guests: GuestService,
        usage: Arc<UsageCounters>,
        metrics: Arc<CacheMetrics>,
    ) -> Self {
        Self {
            store,
            hot,
            guests,
            usage,
            metrics,
            failpoint: Failpoint::from_env("migrate_after_messages"),
        }
    }

    /// Moves the guest's conversation into `user_id`'s account, once (the guest's token proves
    /// the caller holds it).
    #[instrument(skip_all, fields(guest_id = %guest_id, user_id = %user_id))]
    pub async fn migrate(
        &self,
        user_id: Uuid,
        guest_id: &str,
        guest_token: Option<&str>,
    ) -> Result<MigrationReport, ServiceError> {
        validate_guest_id(guest_id)?;
        let holder = self.guests.authorize(guest_id, guest_token).await?;
        self.migrate_held(user_id, guest_id, holder).await
    }

    /// The same migration asked for by the server that links accounts (the admin API): no guest
    /// token; the guest's current conversation is the one moved.
    #[instrument(skip_all, fields(guest_id = %guest_id, user_id = %user_id))]
    pub async fn migrate_trusted(
        &self,
        user_id: Uuid,
        guest_id: &str,
    ) -> Result<MigrationReport, ServiceError> {
        validate_guest_id(guest_id)?;
        let holder = self.guests.conversation_of(guest_id).await?;
        self.migrate_held(user_id, guest_id, holder).await
    }

    /// Runs the migration of `holder`, the guest's conversation, in one transaction (retried on
    /// a serialisation conflict), then the layers outside SQL.
    async fn migrate_held(
        &self,
        user_id: Uuid,
        guest_id: &str,
        holder: Uuid,
    ) -> Result<MigrationReport, ServiceError> {
        let started_at = now();
        let started = std::time::Instant::now();
        let mut attempt = 0;
        let result = loop {
            let (id, fail, backend) = (
                guest_id.to_string(),
                self.failpoint.fire(),
                self.store.backend(),
            );
            let result = self
                .store
                .write(move |txn| {
                    Box::pin(migrate_in(
                        txn, backend, user_id, id, holder, started_at, fail,
                    ))
                })
                .await;
            match result {
                Err(ServiceError::Contended(err)) if attempt < 3 => {
                    attempt += 1;
                    warn!(error = %err, attempt, "migration conflict; retrying");
                }
                other => break other,
            }
        };
        self.metrics
            .timed(Layer::Main, Op::Migrate, started, &result);
        let outcome = match &result {
            Ok(report) if report.already_migrated => "already_migrated",
            Ok(_) => "completed",
            Err(ServiceError::GuestNotFound | ServiceError::GuestAlreadyClaimed) => "refused",
            Err(_) => "failed",
        };
        crate::metrics::global()
            .migrations
            .with_label_values(&[outcome])
            .inc();
        match &result {
            Ok(report) if report.moved.is_empty() && !report.already_migrated => {
                info!("guest had no messages: nothing migrated");
            }
            Ok(report) if !report.already_migrated => {
                info!(messages = report.messages_migrated, "guest migrated");
                self.guests.forget_key(guest_id).await;
                self.usage.transfer(guest_id, &user_id.to_string());
                for (key, conversation) in &report.moved {
                    let started = std::time::Instant::now();
                    let removed = self.hot.forget_conversation(key, Some(*conversation)).await;
                    self.metrics.timed(Layer::L1, Op::Erase, started, &removed);
                    if let Err(err) = removed {
                        warn!(error = %err, "hot cache key of a migrated guest could not be dropped");
                    }
                }
            }
            Ok(_) => {}
            Err(
                ServiceError::GuestNotFound
                | ServiceError::GuestAlreadyClaimed
                | ServiceError::Unavailable(_),
            ) => {}
            Err(err) => {
                self.record_failure(user_id, guest_id, started_at, err)
                    .await
            }
        }
        result
    }

    /// Writes a `failed` audit row (best effort, outside the rolled-back transaction).
    async fn record_failure(
        &self,
        user_id: Uuid,
        guest_id: &str,
        started_at: DateTime<Utc>,
        err: &ServiceError,
    ) {
        error!(error = %err, "migration failed and was rolled back");
        let row = cache_migrations::ActiveModel {
            id: Set(Uuid::now_v7()),
            guest_id: Set(guest_id.to_string()),
            user_id: Set(user_id.to_string()),
            status: Set("failed".into()),
            conversations_migrated: Set(0),
            messages_migrated: Set(0),
            checksum: Set(None),
            conversation_ids: Set(serde_json::json!([])),
            error: Set(Some(err.to_string())),
            started_at: Set(started_at),
            completed_at: Set(Some(now())),
        };
        let written = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    cache_migrations::Entity::insert(row)
                        .exec_without_returning(txn)
                        .await?;
                    Ok::<_, WriteError>(Write::Commit(()))
                })
            })
            .await;
        if let Err(e) = written {
            error!(error = %e, "could not record the failed migration");
        }
    }
}

/// The migration's one transaction (see the module doc). A repeat writes nothing.
async fn migrate_in(
    txn: &DatabaseTransaction,
    backend: Backend,
    user_id: Uuid,
    guest_id: String,
    holder: Uuid,
    started_at: DateTime<Utc>,
    fail: bool,
) -> Result<Write<MigrationReport>, ServiceError> {
    let guest_id = guest_id.as_str();
    // Concurrent migrations of one guest queue here; the later ones see the result.
    let cached = backend
        .lock_rows(
            conversation_cache::Entity::find()
                .filter(conversation_cache::Column::GuestId.eq(guest_id)),
        )
        .one(txn)
        .await?
        .ok_or(ServiceError::GuestNotFound)?;
    // Erased and re-claimed since the token was checked: the token does not open it.
    check_write_access(Some(cached.id), Some(holder))?;
    if cached.main_conversation_id.is_some() {
        return previous_result(txn, user_id, guest_id)
            .await
            .map(Write::Discard);
    }

    // The guest's first conversation and the ones it started since, oldest first.
    let mut moving = vec![cached.clone()];
    moving.extend(
        conversation_cache::Entity::find()
            .filter(conversation_cache::Column::GuestRoot.eq(guest_id))
            .filter(conversation_cache::Column::MainConversationId.is_null())
            .order_by_asc(conversation_cache::Column::CreatedAt)
            .order_by_asc(conversation_cache::Column::Id)
            .all(txn)
            .await?,
    );
    let at = now();
    let user = user_id.to_string();
    let mut copied = Vec::new();
    for conversation in &moving {
        // A conversation that holds nothing creates none in the account.
        if let Some(done) = copy::copy_one(txn, backend, user_id, conversation, at).await? {
            copied.push(done);
        }
        if fail && !copied.is_empty() {
            return Err(ServiceError::Internal(
                "failpoint migrate_after_messages".into(),
            ));
        }
    }
    if copied.is_empty() {
        // Nothing to take along: no empty conversation in the account. The guest stays a guest
        // (it may still write and be taken along later); the call is audited.
        return empty_guest(txn, user_id, guest_id, started_at, at).await;
    }
    // The guest's record answers for it from now on (409 `guest_migrated` names the first
    // conversation), and its empty conversations are gone.
    copy::close_guest(txn, &moving, &copied, user_id, at).await?;
    let (expected, messages) = copy::verify(txn, &copied).await?;
    let conversation_ids: Vec<Uuid> = copied.iter().map(|c| c.conversation_id).collect();

    usage::move_stored(txn, guest_id, &user).await?;

    let report = MigrationReport {
        migration_id: Uuid::now_v7(),
        user_id,
        guest_id: guest_id.to_string(),
        conversation_ids,
        messages_migrated: messages,
        checksum: expected,
        already_migrated: false,
        completed_at: Some(at),
        moved: copied
            .iter()
            .map(|c| (c.cache_key.clone(), c.cache_id))
            .collect(),
    };
    record_completed(txn, &report, started_at).await?;
    Ok(Write::Commit(report))
}

/// The audit row of a completed migration.
async fn record_completed(
    txn: &DatabaseTransaction,
    report: &MigrationReport,
    started_at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    cache_migrations::Entity::insert(cache_migrations::ActiveModel {
        id: Set(report.migration_id),
        guest_id: Set(report.guest_id.clone()),
        user_id: Set(report.user_id.to_string()),
        status: Set("completed".into()),
        conversations_migrated: Set(report.conversation_ids.len() as i32),
        messages_migrated: Set(report.messages_migrated),
        checksum: Set(Some(report.checksum.clone())),
        conversation_ids: Set(serde_json::json!(report.conversation_ids)),
        error: Set(None),
        started_at: Set(started_at),
        completed_at: Set(report.completed_at),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// The migration of a guest that never wrote: an audit row, nothing moved.
async fn empty_guest(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    guest_id: &str,
    started_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Write<MigrationReport>, ServiceError> {
    let report = MigrationReport {
        migration_id: Uuid::now_v7(),
        user_id,
        guest_id: guest_id.to_string(),
        conversation_ids: Vec::new(),
        messages_migrated: 0,
        checksum: checksum::checksum(std::iter::empty::<(i64, &str)>()),
        already_migrated: false,
        completed_at: Some(at),
        moved: Vec::new(),
    };
    record_completed(txn, &report, started_at).await?;
    Ok(Write::Commit(report))
}

/// The stored result for a guest migrated before: the same user gets it, anyone else 409.
async fn previous_result<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    guest_id: &str,
) -> Result<MigrationReport, ServiceError> {
    let done = cache_migrations::Entity::find()
        .filter(cache_migrations::Column::GuestId.eq(guest_id))
        .filter(cache_migrations::Column::Status.eq("completed"))
        .order_by_desc(cache_migrations::Column::StartedAt)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::Internal("migrated guest without an audit row".into()))?;
    if done.user_id != user_id.to_string() {
        return Err(ServiceError::GuestAlreadyClaimed);
    }
    let conversation_ids: Vec<Uuid> =
        serde_json::from_value(done.conversation_ids.clone()).unwrap_or_default();
    Ok(MigrationReport {
        migration_id: done.id,
        user_id,
        guest_id: guest_id.to_string(),
        conversation_ids,
        messages_migrated: done.messages_migrated,
        checksum: done.checksum.unwrap_or_default(),
        already_migrated: true,
        completed_at: done.completed_at,
        moved: Vec::new(),
    })
}
