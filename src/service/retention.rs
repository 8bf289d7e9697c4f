//! Retention: unmigrated guests whose `expires_at` has passed are deleted from every layer — their
//! cache rows, ledger rows, usage row, vectors no other message uses, and hot-cache key — in batches of at most [`BATCH`] guests,
//! one transaction each, so appends keep flowing. Migrated data never expires. Run by a
//! background job every `guest.cleanup_interval_secs` and by `genesis cleanup [--dry-run]`.

use chrono::{DateTime, Utc};
use entity::{cache_content_mapping, conversation_cache, message_cache, usage_metrics};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};
use tracing::{info, instrument, warn};
use uuid::Uuid;

use std::sync::Arc;

use super::{
    ServiceError,
    cache_metrics::{CacheMetrics, Layer, Op},
    clock::now,
    embeddings,
    usage::UsageCounters,
};
use crate::{
    hot::HotCache,
    store::{Store, Write},
};

/// Most guests deleted in one transaction.
pub const BATCH: u64 = 1000;

/// What a cleanup deleted (or, in a dry run, would delete).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub guests: u64,
    pub messages: u64,
}

#[derive(Clone)]
pub struct RetentionService {
    store: Store,
    hot: HotCache,
    usage: Arc<UsageCounters>,
    metrics: Arc<CacheMetrics>,
}

/// An expired guest: unmigrated, its expiry passed at `now` (a guest's record is its first
/// conversation; the ones it started later go with it).
fn expired(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(conversation_cache::Column::GuestRoot.is_null())
        .add(conversation_cache::Column::MainConversationId.is_null())
        .add(conversation_cache::Column::ExpiresAt.lt(now))
}

impl RetentionService {
    pub fn new(
        store: Store,
        hot: HotCache,
        usage: Arc<UsageCounters>,
        metrics: Arc<CacheMetrics>,
    ) -> Self {
        Self {
            store,
            hot,
            usage,
            metrics,
        }
    }

    /// Deletes every guest expired now; with `dry_run`, only counts them.
    #[instrument(skip_all, fields(dry_run))]
    pub async fn cleanup(&self, dry_run: bool) -> Result<CleanupReport, ServiceError> {
        let now = now();
        if dry_run {
            return self.count(now).await;
        }
        let mut report = CleanupReport::default();
        loop {
            let started = std::time::Instant::now();
            let done = self.delete_batch(now).await;
            self.metrics.timed(Layer::L2, Op::Erase, started, &done);
            let done = done?;
            report.guests += done.guests;
            report.messages += done.messages;
            if done.guests < BATCH {
                break;
            }
        }
        let removed = &crate::metrics::global().retention_removed;
        removed.with_label_values(&["guests"]).inc_by(report.guests);
        removed
            .with_label_values(&["messages"])
            .inc_by(report.messages);
        if report.guests > 0 {
            info!(
                guests = report.guests,
                messages = report.messages,
                "expired guests deleted"
            );
        }
        Ok(report)
    }

    async fn count(&self, now: DateTime<Utc>) -> Result<CleanupReport, ServiceError> {
        let db = self.store.conn();
        let guests = conversation_cache::Entity::find()
            .filter(expired(now))
            .count(db)
            .await?;
        let roots = Query::select()
            .column(conversation_cache::Column::GuestId)
            .from(conversation_cache::Entity)
            .cond_where(expired(now))
            .to_owned();
        let ids = Query::select()
            .column(conversation_cache::Column::Id)
            .from(conversation_cache::Entity)
            .cond_where(
                Condition::any()
                    .add(conversation_cache::Column::GuestId.in_subquery(roots.clone()))
                    .add(conversation_cache::Column::GuestRoot.in_subquery(roots)),
            )
            .to_owned();
        let messages = message_cache::Entity::find()
            .filter(message_cache::Column::ConversationId.in_subquery(ids))
            .count(db)
            .await?;
        Ok(CleanupReport { guests, messages })
    }

    /// One transaction: up to [`BATCH`] expired guests, read with their rows locked and the
    /// condition checked again inside it (a guest written to meanwhile is no longer expired).
    async fn delete_batch(&self, now: DateTime<Utc>) -> Result<CleanupReport, ServiceError> {
        let backend = self.store.backend();
        let (report, (guest_ids, keys)) = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    let rows: Vec<(Uuid, String)> = backend
                        .lock_rows(
                            conversation_cache::Entity::find()
                                .select_only()
                                .column(conversation_cache::Column::Id)
                                .column(conversation_cache::Column::GuestId)
                                .filter(expired(now))
                                .order_by_asc(conversation_cache::Column::ExpiresAt)
                                .limit(BATCH),
                        )
                        .into_tuple()
                        .all(txn)
                        .await?;
                    if rows.is_empty() {
                        return Ok::<_, ServiceError>(Write::Discard((
                            CleanupReport::default(),
                            (Vec::new(), Vec::new()),
                        )));
                    }
                    let (mut ids, guest_ids): (Vec<Uuid>, Vec<String>) = rows.into_iter().unzip();
                    // The conversations each guest started after its first go with it.
                    let further: Vec<(Uuid, String)> = conversation_cache::Entity::find()
                        .select_only()
                        .column(conversation_cache::Column::Id)
                        .column(conversation_cache::Column::GuestId)
                        .filter(conversation_cache::Column::GuestRoot.is_in(guest_ids.clone()))
                        .into_tuple()
                        .all(txn)
                        .await?;
                    ids.extend(further.iter().map(|(id, _)| *id));
                    let mut keys = guest_ids.clone();
                    keys.extend(further.into_iter().map(|(_, key)| key));
                    let message_ids = Query::select()
                        .column(message_cache::Column::Id)
                        .from(message_cache::Entity)
                        .and_where(
                            Expr::col(message_cache::Column::ConversationId).is_in(ids.clone()),
                        )
                        .to_owned();
                    cache_content_mapping::Entity::delete_many()
                        .filter(cache_content_mapping::Column::CacheType.eq("message"))
                        .filter(cache_content_mapping::Column::CacheId.in_subquery(message_ids))
                        .exec(txn)
                        .await?;
                    let hashes: Vec<String> = message_cache::Entity::find()
                        .select_only()
                        .column(message_cache::Column::MessageHash)
                        .distinct()
                        .filter(message_cache::Column::ConversationId.is_in(ids.clone()))
                        .into_tuple()
                        .all(txn)
                        .await?;
                    let messages = message_cache::Entity::delete_many()
                        .filter(message_cache::Column::ConversationId.is_in(ids.clone()))
                        .exec(txn)
                        .await?
                        .rows_affected;
                    embeddings::sql::forget_unreferenced(txn, hashes).await?;
                    usage_metrics::Entity::delete_many()
                        .filter(usage_metrics::Column::UserId.is_in(guest_ids.clone()))
                        .exec(txn)
                        .await?;
                    conversation_cache::Entity::delete_many()
                        .filter(conversation_cache::Column::Id.is_in(ids))
                        .exec(txn)
                        .await?;
                    let guests = guest_ids.len() as u64;
                    Ok(Write::Commit((
                        CleanupReport { guests, messages },
                        (guest_ids, keys),
                    )))
                })
            })
            .await?;
        for guest_id in &guest_ids {
            self.usage.forget(guest_id);
        }
        for key in &keys {
            if let Err(err) = self.hot.remove_guest(key).await {
                warn!(error = %err, "hot cache key of an expired guest could not be dropped");
            }
        }
        Ok(report)
    }
}
