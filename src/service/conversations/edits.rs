//! Changing a message after the fact: edit its text (the earlier text is kept as a version),
//! rate it, flag it, delete it. The conversation's row is locked first, so its counters stay
//! exact under concurrent appends, edits and deletes.

use entity::{cache_content_mapping, conversations, message_versions, messages};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    sea_query::{Expr, ExprTrait},
};
use tracing::instrument;
use uuid::Uuid;

use super::ConversationService;
use crate::{
    service::{
        ErrorCode, ServiceError,
        clock::now,
        digest::md5_hex,
        embeddings::{self, Source, Text},
        guest::rules,
        tokenize::Encoding,
    },
    store::Write,
};

/// A change to a message: each `Some` is set; `user_rating: Some(None)` clears the rating.
#[derive(Clone, Debug, Default)]
pub struct MessageEdit {
    pub content: Option<String>,
    pub user_rating: Option<Option<i16>>,
    pub flagged: Option<bool>,
}

/// Locks the user's (not deleted) conversation for the rest of the transaction; its row.
async fn lock_conversation(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    id: Uuid,
) -> Result<conversations::Model, ServiceError> {
    conversations::Entity::update_many()
        .col_expr(conversations::Column::UpdatedAt, Expr::value(now()))
        .filter(super::live_one(user_id, id))
        .exec_with_returning(txn)
        .await?
        .into_iter()
        .next()
        .ok_or(ServiceError::ConversationNotFound)
}

async fn message_of(
    txn: &DatabaseTransaction,
    id: Uuid,
    message_id: Uuid,
) -> Result<messages::Model, ServiceError> {
    messages::Entity::find_by_id(message_id)
        .filter(messages::Column::ConversationId.eq(id))
        .one(txn)
        .await?
        .ok_or(ServiceError::MessageNotFound)
}

/// Adds `delta` tokens (may be negative) and `count` messages to the conversation's counters.
async fn adjust_counters(
    txn: &DatabaseTransaction,
    id: Uuid,
    count: i64,
    delta: i64,
) -> Result<(), ServiceError> {
    conversations::Entity::update_many()
        .col_expr(
            conversations::Column::MessageCount,
            Expr::col(conversations::Column::MessageCount).add(count),
        )
        .col_expr(
            conversations::Column::TokenCount,
            Expr::col(conversations::Column::TokenCount).add(delta),
        )
        .filter(conversations::Column::Id.eq(id))
        .exec(txn)
        .await?;
    Ok(())
}

impl ConversationService {
    /// Edits, rates or flags one message of the user's conversation; the message as it now is.
    #[instrument(skip_all, fields(user_id = %user_id, conversation_id = %id))]
    pub async fn edit_message(
        &self,
        user_id: Uuid,
        id: Uuid,
        message_id: Uuid,
        edit: MessageEdit,
    ) -> Result<messages::Model, ServiceError> {
        if let Some(Some(rating)) = edit.user_rating
            && !(1..=5).contains(&rating)
        {
            return Err(ServiceError::invalid(
                ErrorCode::Unprocessable,
                "user_rating must be 1 to 5 (or null)",
            ));
        }
        if let Some(content) = &edit.content {
            rules::validate_content(content, self.max_message_bytes)?;
        }
        let edited = self
            .store
            .write(move |txn| {
                Box::pin(async move {
                    let conversation = lock_conversation(txn, user_id, id).await?;
                    let message = message_of(txn, id, message_id).await?;
                    let at = now();
                    let mut row = message.clone().into_active_model();
                    let mut new_text = None;
                    if let Some(content) = edit.content.filter(|c| *c != message.content) {
                        message_versions::Entity::insert(message_versions::ActiveModel {
                            id: Set(Uuid::now_v7()),
                            message_id: Set(message_id),
                            content: Set(message.content.clone()),
                            content_hash: Set(message.content_hash.clone()),
                            tokens_used: Set(message.tokens_used),
                            edited_at: Set(at),
                        })
                        .exec_without_returning(txn)
                        .await?;
                        let model = message.model_used.as_deref();
                        let model = model.or(conversation.model_used.as_deref());
                        let calls = message.tool_calls.as_deref();
                        let tokens = Encoding::for_model(model).count_message(&content, calls);
                        let delta = i64::from(tokens) - i64::from(message.tokens_used.unwrap_or(0));
                        adjust_counters(txn, id, 0, delta).await?;
                        row.content_hash = Set(md5_hex(&content));
                        row.content = Set(content.clone());
                        row.tokens_used = Set(Some(tokens));
                        row.is_edited = Set(true);
                        new_text = Some(content);
                        // The old text's vector and search text, unless another message has it.
                        embeddings::sql::forget_unreferenced(
                            txn,
                            vec![message.content_hash.clone()],
                        )
                        .await?;
                    }
                    if let Some(rating) = edit.user_rating {
                        row.user_rating = Set(rating);
                    }
                    if let Some(flagged) = edit.flagged {
                        row.flagged = Set(flagged);
                    }
                    row.updated_at = Set(at);
                    let updated = row.update(txn).await?;
                    Ok::<_, ServiceError>(Write::Commit((updated, new_text)))
                })
            })
            .await?;
        let (message, new_text) = edited;
        if let Some(text) = new_text {
            self.embeddings
                .enqueue(Source::Main, message.id, Text::Owned(text));
        }
        Ok(message)
    }

    /// One message of the user's conversation and its earlier texts, oldest first.
    pub async fn message_versions(
        &self,
        user_id: Uuid,
        id: Uuid,
        message_id: Uuid,
    ) -> Result<(messages::Model, Vec<message_versions::Model>), ServiceError> {
        self.get(user_id, id).await?;
        let db = self.store.conn();
        let message = messages::Entity::find_by_id(message_id)
            .filter(messages::Column::ConversationId.eq(id))
            .one(db)
            .await?
            .ok_or(ServiceError::MessageNotFound)?;
        let versions = message_versions::Entity::find()
            .filter(message_versions::Column::MessageId.eq(message_id))
            .order_by_asc(message_versions::Column::EditedAt)
            .order_by_asc(message_versions::Column::Id)
            .all(db)
            .await?;
        Ok((message, versions))
    }

    /// Deletes one message of the user's conversation, with its versions; the counters follow.
    /// Its `message_index` is not given again.
    #[instrument(skip_all, fields(user_id = %user_id, conversation_id = %id))]
    pub async fn delete_message(
        &self,
        user_id: Uuid,
        id: Uuid,
        message_id: Uuid,
    ) -> Result<(), ServiceError> {
        self.store
            .write(move |txn| {
                Box::pin(async move {
                    lock_conversation(txn, user_id, id).await?;
                    let message = message_of(txn, id, message_id).await?;
                    let mut hashes = vec![message.content_hash.clone()];
                    let versions = message_versions::Entity::find()
                        .filter(message_versions::Column::MessageId.eq(message_id))
                        .all(txn)
                        .await?;
                    hashes.extend(versions.into_iter().map(|v| v.content_hash));
                    message_versions::Entity::delete_many()
                        .filter(message_versions::Column::MessageId.eq(message_id))
                        .exec(txn)
                        .await?;
                    cache_content_mapping::Entity::delete_many()
                        .filter(cache_content_mapping::Column::MainId.eq(message_id))
                        .exec(txn)
                        .await?;
                    messages::Entity::delete_by_id(message_id).exec(txn).await?;
                    let tokens = i64::from(message.tokens_used.unwrap_or(0));
                    adjust_counters(txn, id, -1, -tokens).await?;
                    let newest = messages::Entity::find()
                        .filter(messages::Column::ConversationId.eq(id))
                        .order_by_desc(messages::Column::CreatedAt)
                        .one(txn)
                        .await?;
                    conversations::Entity::update_many()
                        .col_expr(
                            conversations::Column::LastMessageAt,
                            Expr::value(newest.map(|m| m.created_at)),
                        )
                        .filter(conversations::Column::Id.eq(id))
                        .exec(txn)
                        .await?;
                    hashes.sort_unstable();
                    hashes.dedup();
                    embeddings::sql::forget_unreferenced(txn, hashes).await?;
                    Ok::<_, ServiceError>(Write::Commit(()))
                })
            })
            .await
    }
}
