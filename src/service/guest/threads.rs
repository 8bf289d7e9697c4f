//! A guest's several conversations. The first one (its row's `guest_id` is the guest's id) is
//! the guest's record: token salt, daily quota, expiry, migration, and `latest_conversation_id`,
//! the newest conversation. Each further one is a row of its own whose `guest_root` is the
//! guest's id and whose `guest_id` is [`key_of`] both ids, so the write and read paths — keyed by
//! that column and by the hot-cache key — serve it unchanged. Appends and reads name one with
//! `conversation_id`, or go to the newest.

use chrono::{DateTime, Utc};
use entity::conversation_cache;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, sea_query::Expr,
};
use tracing::instrument;
use uuid::Uuid;

use super::{GuestService, access::GuestKey, rules, sql};
use crate::{
    service::{ErrorCode, ServiceError, clock::now},
    store::{Backend, Write},
};

/// Most conversations one guest may hold (sign up to keep more).
pub const MAX_CONVERSATIONS: u64 = 100;

/// The key (`conversation_cache.guest_id`, the hot-cache key) of a guest's further
/// conversation. `~` is outside the guest id pattern, so no guest id can take it.
pub fn key_of(guest_id: &str, conversation_id: Uuid) -> String {
    format!("{guest_id}~{}", conversation_id.simple())
}

/// The guest a further conversation's key belongs to; `None` for a guest's own id.
pub(super) fn guest_of_key(key: &str) -> Option<&str> {
    key.split_once('~').map(|(guest, _)| guest)
}

/// The conversation a request acts on.
#[derive(Clone, Debug)]
pub(super) struct Target {
    /// Its key: the guest id for the first conversation, else [`key_of`].
    pub key: String,
    pub conversation_id: Uuid,
}

impl Target {
    /// True for a guest's further conversation.
    pub fn is_further(&self) -> bool {
        guest_of_key(&self.key).is_some()
    }
}

/// One of a guest's conversations, as the guest's list shows it.
#[derive(Clone, Debug)]
pub struct GuestThread {
    pub conversation_id: Uuid,
    pub title: Option<String>,
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    /// The last write or read.
    pub accessed_at: DateTime<Utc>,
    /// True for the one appends and reads go to when they name none.
    pub latest: bool,
}

/// Every conversation of `guest_id`: its first and its further ones.
pub(super) fn all_of(guest_id: &str) -> Condition {
    Condition::any()
        .add(conversation_cache::Column::GuestId.eq(guest_id))
        .add(conversation_cache::Column::GuestRoot.eq(guest_id))
}

/// The further conversation `id` of `guest_id`, if it is one.
async fn further<C: ConnectionTrait>(
    db: &C,
    guest_id: &str,
    id: Uuid,
) -> Result<Option<conversation_cache::Model>, ServiceError> {
    Ok(conversation_cache::Entity::find_by_id(id)
        .filter(conversation_cache::Column::GuestRoot.eq(guest_id))
        .one(db)
        .await?)
}

impl GuestService {
    /// The conversation of `guest_id` (whose token gave `key`) that `wanted` names, or its
    /// newest; another guest's (or an unknown) id is 404 `conversation_not_found`.
    pub(super) async fn target(
        &self,
        guest_id: &str,
        key: &GuestKey,
        wanted: Option<Uuid>,
    ) -> Result<Target, ServiceError> {
        let id = wanted.or(key.latest).unwrap_or(key.conversation_id);
        if id == key.conversation_id {
            return Ok(Target {
                key: guest_id.to_string(),
                conversation_id: id,
            });
        }
        let known = Some(id) == key.latest;
        if !known {
            self.store.check_available()?;
            if further(self.store.conn(), guest_id, id).await?.is_none() {
                return Err(ServiceError::ConversationNotFound);
            }
        }
        Ok(Target {
            key: key_of(guest_id, id),
            conversation_id: id,
        })
    }

    /// Starts another conversation for the guest; appends and reads that name none go to it
    /// from now on. A migrated guest's conversations belong to the account (409).
    #[instrument(skip_all, fields(guest_id = %guest_id))]
    pub async fn start_conversation(
        &self,
        guest_id: &str,
        token: Option<&str>,
    ) -> Result<GuestThread, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        let key = self.access.check(guest_id, token).await;
        let key = key.inspect_err(|e| self.note(e))?;
        if let Some(conversation_id) = key.migrated_to {
            return Err(ServiceError::GuestMigrated { conversation_id });
        }
        let (backend, id, holder) = (
            self.store.backend(),
            guest_id.to_string(),
            key.conversation_id,
        );
        let retention = self.retention;
        let started = self
            .store
            .write(move |txn| Box::pin(start_in(txn, backend, id, holder, retention)))
            .await;
        // The guest's record changed (its newest conversation): read it again next time.
        self.access.forget(guest_id).await;
        started.inspect_err(|e| self.note(e))
    }

    /// The guest's conversations, newest first.
    pub async fn conversations(
        &self,
        guest_id: &str,
        token: Option<&str>,
    ) -> Result<Vec<GuestThread>, ServiceError> {
        rules::validate_guest_id(guest_id)?;
        let key = self.access.check(guest_id, token).await;
        let key = key.inspect_err(|e| self.note(e))?;
        if let Some(conversation_id) = key.migrated_to {
            return Err(ServiceError::GuestMigrated { conversation_id });
        }
        self.store.check_available()?;
        let rows = conversation_cache::Entity::find()
            .filter(all_of(guest_id))
            .order_by_desc(conversation_cache::Column::CreatedAt)
            .order_by_desc(conversation_cache::Column::Id)
            .all(self.store.conn())
            .await
            .inspect_err(|e| self.note(&e.clone().into()))?;
        let latest = rows
            .iter()
            .find(|r| r.guest_id == guest_id)
            .and_then(|r| r.latest_conversation_id)
            .unwrap_or(key.conversation_id);
        Ok(rows
            .into_iter()
            .map(|r| GuestThread {
                latest: r.id == latest,
                conversation_id: r.id,
                title: r.title,
                message_count: r.message_count,
                created_at: r.created_at,
                accessed_at: r.accessed_at,
            })
            .collect())
    }
}

/// Inserts the further conversation and names it the newest, with the guest's record locked
/// (a concurrent migration or erasure either comes first — then there is nothing to add to —
/// or waits).
async fn start_in(
    txn: &DatabaseTransaction,
    backend: Backend,
    guest_id: String,
    holder: Uuid,
    retention: chrono::Duration,
) -> Result<Write<GuestThread>, ServiceError> {
    let root = backend
        .lock_rows(
            conversation_cache::Entity::find()
                .filter(conversation_cache::Column::GuestId.eq(guest_id.as_str())),
        )
        .one(txn)
        .await?
        .ok_or(ServiceError::GuestNotFound)?;
    rules::check_write_access(Some(root.id), Some(holder))?;
    if let Some(conversation_id) = root.main_conversation_id {
        return Err(ServiceError::GuestMigrated { conversation_id });
    }
    let held = conversation_cache::Entity::find()
        .filter(all_of(&guest_id))
        .count(txn)
        .await?;
    if held >= MAX_CONVERSATIONS {
        return Err(ServiceError::invalid(
            ErrorCode::GuestHistoryFull,
            format!(
                "a guest holds at most {MAX_CONVERSATIONS} conversations; sign up to keep more"
            ),
        ));
    }
    let now = now();
    let mut row = sql::new_conversation(&guest_id, now, rules::expiry(now, retention), 0, None);
    row.guest_id = key_of(&guest_id, row.id);
    row.guest_root = Some(guest_id.clone());
    row.token_salt = None;
    let thread = GuestThread {
        conversation_id: row.id,
        title: None,
        message_count: 0,
        created_at: now,
        accessed_at: now,
        latest: true,
    };
    conversation_cache::Entity::insert(row.into_active_model())
        .exec_without_returning(txn)
        .await?;
    conversation_cache::Entity::update_many()
        .col_expr(
            conversation_cache::Column::LatestConversationId,
            Expr::value(Some(thread.conversation_id)),
        )
        .col_expr(conversation_cache::Column::AccessedAt, Expr::value(now))
        .col_expr(
            conversation_cache::Column::ExpiresAt,
            sql::moved_expiry(now, retention),
        )
        .filter(conversation_cache::Column::Id.eq(root.id))
        .exec(txn)
        .await?;
    Ok(Write::Commit(thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_further_conversation_has_a_key_no_guest_id_can_take() {
        let id = Uuid::now_v7();
        let key = key_of("g_1", id);
        assert!(rules::validate_guest_id(&key).is_err());
        assert!(key.starts_with("g_1~"));
        let target = Target {
            key,
            conversation_id: id,
        };
        assert!(target.is_further());
    }
}
