//! Usage counters (`usage_metrics`): aggregated in memory per user or guest and flushed in
//! batches, so the request path never writes a counter row.

use chrono::{DateTime, Utc};
use entity::usage_metrics::{self, Column};
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbErr, EntityTrait,
    sea_query::{Alias, Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use super::pending::{Absorb, Pending};
use crate::store::{BoxFuture, Store, WriteError};

/// The tier of a guest's counters.
pub const GUEST_TIER: &str = "guest";
/// Marks a user's counters: written with the tier in `users.tier` (one vocabulary).
pub const ACCOUNT_TIER: &str = "account";

/// What one subject did since the last flush.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageDelta {
    pub tier: String,
    pub requests: i64,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub messages_stored: i64,
    pub tokens: i64,
    pub last_request_at: Option<DateTime<Utc>>,
}

impl Absorb for UsageDelta {
    fn absorb(&mut self, other: UsageDelta) {
        self.requests += other.requests;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.messages_stored += other.messages_stored;
        self.tokens += other.tokens;
        self.last_request_at = Ord::max(self.last_request_at, other.last_request_at);
    }
}

/// In-memory usage counters.
#[derive(Default)]
pub struct UsageCounters {
    pending: Pending<String, UsageDelta>,
}

const BATCH: usize = 200;

impl UsageCounters {
    /// Counts one request by `subject` (a user id or guest id); `f` adds what it did.
    pub fn record(&self, subject: &str, tier: &str, f: impl FnOnce(&mut UsageDelta)) {
        let mut pending = self.pending.lock();
        // Look up before inserting: the hot path should not allocate a key per request.
        if !pending.contains_key(subject) {
            pending.insert(
                subject.to_string(),
                UsageDelta {
                    tier: tier.to_string(),
                    ..UsageDelta::default()
                },
            );
        }
        let Some(delta) = pending.get_mut(subject) else {
            return;
        };
        delta.requests += 1;
        delta.last_request_at = Some(Utc::now());
        f(delta);
    }

    /// What is pending in memory for `subject`.
    pub fn pending_for(&self, subject: &str) -> UsageDelta {
        self.pending
            .lock()
            .get(subject)
            .cloned()
            .unwrap_or_default()
    }

    /// The flushed row for `subject`.
    pub async fn stored<C: ConnectionTrait>(
        &self,
        db: &C,
        subject: &str,
    ) -> Result<Option<usage_metrics::Model>, DbErr> {
        use sea_orm::{ColumnTrait, QueryFilter};
        usage_metrics::Entity::find()
            .filter(Column::UserId.eq(subject))
            .one(db)
            .await
    }

    /// Moves what is pending for `from` (a migrated guest) onto `to` (its account).
    pub fn transfer(&self, from: &str, to: &str) {
        let mut pending = self.pending.lock();
        if let Some(mut delta) = pending.remove(from) {
            delta.tier = ACCOUNT_TIER.to_string();
            pending
                .entry(to.to_string())
                .and_modify(|d| d.absorb(delta.clone()))
                .or_insert(delta);
        }
    }

    /// Drops what is pending for `subject` (its data was erased).
    pub fn forget(&self, subject: &str) {
        self.pending.lock().remove(subject);
    }

    /// Writes everything pending in batched upserts; on failure the counts are kept for the next
    /// flush. Returns how many subjects were written.
    pub async fn flush(&self, store: &Store) -> Result<usize, WriteError> {
        self.pending.flush(store, BATCH, upsert_batch).await
    }
}

fn upsert_batch<'a>(
    txn: &'a sea_orm::DatabaseTransaction,
    batch: &'a [(String, UsageDelta)],
) -> BoxFuture<'a, Result<(), DbErr>> {
    Box::pin(async move {
        let batch = with_account_tiers(txn, batch).await?;
        upsert(txn, &batch).await
    })
}

/// `batch` with each user's counters carrying the tier in `users.tier`.
async fn with_account_tiers<C: ConnectionTrait>(
    db: &C,
    batch: &[(String, UsageDelta)],
) -> Result<Vec<(String, UsageDelta)>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
    let ids: Vec<Uuid> = batch
        .iter()
        .filter(|(_, d)| d.tier == ACCOUNT_TIER)
        .filter_map(|(subject, _)| Uuid::parse_str(subject).ok())
        .collect();
    let tiers: std::collections::HashMap<String, String> = if ids.is_empty() {
        Default::default()
    } else {
        entity::users::Entity::find()
            .select_only()
            .column(entity::users::Column::Id)
            .column(entity::users::Column::Tier)
            .filter(entity::users::Column::Id.is_in(ids))
            .into_tuple::<(Uuid, String)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(id, tier)| (id.to_string(), tier))
            .collect()
    };
    Ok(batch
        .iter()
        .map(|(subject, d)| {
            let mut d = d.clone();
            if d.tier == ACCOUNT_TIER
                && let Some(tier) = tiers.get(subject)
            {
                d.tier = tier.clone();
            }
            (subject.clone(), d)
        })
        .collect())
}

/// Inside a migration's transaction: adds `guest_id`'s stored counters to `user_id`'s row (made
/// if missing, with the user's tier) and removes the guest's row.
pub async fn move_stored<C: ConnectionTrait>(
    db: &C,
    guest_id: &str,
    user_id: &str,
) -> Result<(), DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let Some(row) = usage_metrics::Entity::find()
        .filter(Column::UserId.eq(guest_id))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    let delta = UsageDelta {
        tier: ACCOUNT_TIER.to_string(),
        requests: row.total_requests,
        cache_hits: row.cache_hits,
        cache_misses: row.cache_misses,
        messages_stored: row.messages_stored,
        tokens: row.tokens_total,
        last_request_at: row.last_request_at,
    };
    let moved = with_account_tiers(db, &[(user_id.to_string(), delta)]).await?;
    upsert(db, &moved).await?;
    usage_metrics::Entity::delete_many()
        .filter(Column::UserId.eq(guest_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn upsert<C: ConnectionTrait>(db: &C, batch: &[(String, UsageDelta)]) -> Result<(), DbErr> {
    let now = Utc::now();
    let rows = batch.iter().map(|(subject, d)| usage_metrics::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(subject.clone()),
        tier: Set(d.tier.clone()),
        total_requests: Set(d.requests),
        cache_hits: Set(d.cache_hits),
        cache_misses: Set(d.cache_misses),
        messages_stored: Set(d.messages_stored),
        tokens_total: Set(d.tokens),
        last_request_at: Set(d.last_request_at),
        created_at: Set(now),
        updated_at: Set(now),
    });
    let add = |col: Column| {
        (
            col,
            Expr::col((usage_metrics::Entity, col)).add(Expr::col((Alias::new("excluded"), col))),
        )
    };
    let excluded = |col: Column| (col, Expr::col((Alias::new("excluded"), col)));
    let on_conflict = OnConflict::column(Column::UserId)
        .values([
            add(Column::TotalRequests),
            add(Column::CacheHits),
            add(Column::CacheMisses),
            add(Column::MessagesStored),
            add(Column::TokensTotal),
            excluded(Column::Tier),
            excluded(Column::LastRequestAt),
            excluded(Column::UpdatedAt),
        ])
        .to_owned();
    usage_metrics::Entity::insert_many(rows)
        .on_conflict(on_conflict)
        .exec_without_returning(db)
        .await?;
    Ok(())
}
