//! "Erase me": a user and everything they own, from every table and layer, in one transaction —
//! their conversations and messages, the cache rows and ledger rows of the guests they migrated,
//! vectors and search text no remaining message uses, usage rows, refresh tokens, the guests'
//! hot-cache keys.
//! The migration audit rows stay, with the user and guest ids replaced by their SHA-256.

use std::sync::Arc;

use entity::{
    cache_content_mapping, cache_migrations, conversation_cache, conversations, message_cache,
    message_versions, messages, refresh_tokens, usage_metrics, users,
};
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};
use tracing::{info, instrument, warn};
use uuid::Uuid;

use super::{
    ServiceError, digest::sha256_hex, embeddings, guest::GuestService, usage::UsageCounters,
};
use crate::{
    hot::HotCache,
    store::{Store, Write},
};

/// What an erasure removed, for the layers outside SQL.
struct Erased {
    /// The migrated guests: id and cache conversation.
    guests: Vec<(String, Uuid)>,
}

#[derive(Clone)]
pub struct ErasureService {
    store: Store,
    hot: HotCache,
    guests: GuestService,
    usage: Arc<UsageCounters>,
}

impl ErasureService {
    pub fn new(
        store: Store,
        hot: HotCache,
        guests: GuestService,
        usage: Arc<UsageCounters>,
    ) -> Self {
        Self {
            store,
            hot,
            guests,
            usage,
        }
    }

    /// Erases `user_id` and all they own (the caller has confirmed it is them).
    #[instrument(skip_all, fields(user_id = %user_id))]
    pub async fn erase_user(&self, user_id: Uuid) -> Result<(), ServiceError> {
        let erased = self
            .store
            .write(move |txn| Box::pin(erase_in(txn, user_id)))
            .await?;
        self.usage.forget(&user_id.to_string());
        self.forget_guests(&erased).await;
        info!(guests = erased.guests.len(), "user erased");
        Ok(())
    }

    /// Erases one of the user's conversations (deleted or not) and its messages from every
    /// layer: with it go the cache rows, ledger rows and hot-cache key of the guest it was
    /// migrated from, and vectors and search text no other message uses.
    #[instrument(skip_all, fields(user_id = %user_id, conversation_id = %id))]
    pub async fn erase_conversation(&self, user_id: Uuid, id: Uuid) -> Result<(), ServiceError> {
        let erased = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    let found = conversations::Entity::find_by_id(id)
                        .filter(conversations::Column::UserId.eq(user_id))
                        .one(txn)
                        .await?;
                    if found.is_none() {
                        return Err(ServiceError::ConversationNotFound);
                    }
                    let owned = Query::select()
                        .column(conversations::Column::Id)
                        .from(conversations::Entity)
                        .and_where(Expr::col(conversations::Column::Id).eq(id))
                        .to_owned();
                    let guests = conversation_cache::Entity::find()
                        .filter(conversation_cache::Column::MainConversationId.eq(id))
                        .all(txn)
                        .await?;
                    let erased = erase_conversations_in(txn, owned, guests).await?;
                    Ok(Write::Commit(erased))
                })
            })
            .await?;
        for (guest_id, _) in &erased.guests {
            self.usage.forget(guest_id);
        }
        self.forget_guests(&erased).await;
        info!("conversation erased");
        Ok(())
    }

    async fn forget_guests(&self, erased: &Erased) {
        for (guest_id, conversation) in &erased.guests {
            self.usage.forget(guest_id);
            self.guests.forget_key(guest_id).await;
            if let Err(err) = self
                .hot
                .forget_conversation(guest_id, Some(*conversation))
                .await
            {
                warn!(error = %err, "hot cache key of an erased guest could not be dropped");
            }
        }
    }
}

async fn erase_in(txn: &DatabaseTransaction, user_id: Uuid) -> Result<Write<Erased>, ServiceError> {
    let uid = user_id.to_string();
    let owned = Query::select()
        .column(conversations::Column::Id)
        .from(conversations::Entity)
        .and_where(Expr::col(conversations::Column::UserId).eq(user_id))
        .to_owned();
    // The guests this user migrated (their cache rows name the user, or point at their
    // conversations).
    let guests = conversation_cache::Entity::find()
        .filter(
            Condition::any()
                .add(conversation_cache::Column::UserId.eq(uid.as_str()))
                .add(conversation_cache::Column::MainConversationId.in_subquery(owned.clone())),
        )
        .all(txn)
        .await?;
    let erased = erase_conversations_in(txn, owned, guests).await?;
    let mut subjects: Vec<String> = erased.guests.iter().map(|(g, _)| g.clone()).collect();
    subjects.push(uid.clone());
    for chunk in subjects.chunks(500) {
        usage_metrics::Entity::delete_many()
            .filter(usage_metrics::Column::UserId.is_in(chunk.to_vec()))
            .exec(txn)
            .await?;
    }
    // The audit trail keeps its rows; who they were about becomes a one-way hash.
    let audits = cache_migrations::Entity::find()
        .filter(cache_migrations::Column::UserId.eq(uid.as_str()))
        .all(txn)
        .await?;
    for audit in audits {
        cache_migrations::Entity::update_many()
            .col_expr(
                cache_migrations::Column::UserId,
                Expr::value(sha256_hex(&uid)),
            )
            .col_expr(
                cache_migrations::Column::GuestId,
                Expr::value(sha256_hex(&audit.guest_id)),
            )
            .filter(cache_migrations::Column::Id.eq(audit.id))
            .exec(txn)
            .await?;
    }
    refresh_tokens::Entity::delete_many()
        .filter(refresh_tokens::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    users::Entity::delete_by_id(user_id).exec(txn).await?;
    Ok(Write::Commit(erased))
}

/// Deletes the conversations `owned` selects with their messages, and the guests migrated into
/// them (cache rows and ledger rows); then vectors and search text no message uses any more.
async fn erase_conversations_in(
    txn: &DatabaseTransaction,
    owned: sea_orm::sea_query::SelectStatement,
    guests: Vec<conversation_cache::Model>,
) -> Result<Erased, ServiceError> {
    let guest_conversations: Vec<Uuid> = guests.iter().map(|g| g.id).collect();
    let mut hashes: Vec<String> = messages::Entity::find()
        .select_only()
        .column(messages::Column::ContentHash)
        .filter(messages::Column::ConversationId.in_subquery(owned.clone()))
        .distinct()
        .into_tuple::<String>()
        .all(txn)
        .await?;
    for chunk in guest_conversations.chunks(500) {
        let cached_messages = Query::select()
            .column(message_cache::Column::Id)
            .from(message_cache::Entity)
            .and_where(Expr::col(message_cache::Column::ConversationId).is_in(chunk.to_vec()))
            .to_owned();
        hashes.extend(
            message_cache::Entity::find()
                .select_only()
                .column(message_cache::Column::MessageHash)
                .filter(message_cache::Column::ConversationId.is_in(chunk.to_vec()))
                .distinct()
                .into_tuple::<String>()
                .all(txn)
                .await?,
        );
        cache_content_mapping::Entity::delete_many()
            .filter(cache_content_mapping::Column::CacheId.in_subquery(cached_messages))
            .exec(txn)
            .await?;
        message_cache::Entity::delete_many()
            .filter(message_cache::Column::ConversationId.is_in(chunk.to_vec()))
            .exec(txn)
            .await?;
        conversation_cache::Entity::delete_many()
            .filter(conversation_cache::Column::Id.is_in(chunk.to_vec()))
            .exec(txn)
            .await?;
    }
    let own_messages = Query::select()
        .column(messages::Column::Id)
        .from(messages::Entity)
        .and_where(Expr::col(messages::Column::ConversationId).in_subquery(owned.clone()))
        .to_owned();
    message_versions::Entity::delete_many()
        .filter(message_versions::Column::MessageId.in_subquery(own_messages.clone()))
        .exec(txn)
        .await?;
    cache_content_mapping::Entity::delete_many()
        .filter(cache_content_mapping::Column::MainId.in_subquery(own_messages))
        .exec(txn)
        .await?;
    messages::Entity::delete_many()
        .filter(messages::Column::ConversationId.in_subquery(owned.clone()))
        .exec(txn)
        .await?;
    conversations::Entity::delete_many()
        .filter(conversations::Column::Id.in_subquery(owned))
        .exec(txn)
        .await?;
    hashes.sort_unstable();
    hashes.dedup();
    embeddings::sql::forget_unreferenced(txn, hashes).await?;
    Ok(Erased {
        guests: guests.into_iter().map(|g| (g.guest_id, g.id)).collect(),
    })
}
