//! The embedding pipeline's statements: which vectors exist, which messages still exist, the
//! vector and search-text rows, messages still without a vector, and forgetting content no
//! message uses any more.

use chrono::Utc;
use entity::{cache_embeddings, message_cache, messages};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

use crate::{service::ServiceError, store::Backend};

/// Where a message lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `message_cache` (a guest's).
    Cache,
    /// `messages` (an account's).
    Main,
}

/// The hashes among `hashes` that already have a vector of `model`.
pub async fn embedded(
    db: &impl ConnectionTrait,
    model: &str,
    hashes: Vec<String>,
) -> Result<Vec<String>, ServiceError> {
    Ok(cache_embeddings::Entity::find()
        .select_only()
        .column(cache_embeddings::Column::ContentHash)
        .filter(cache_embeddings::Column::Model.eq(model))
        .filter(cache_embeddings::Column::ContentHash.is_in(hashes))
        .into_tuple::<String>()
        .all(db)
        .await?)
}

/// The ids among `ids` (of `source`) that still exist, held against deletion until the
/// transaction ends, so an erase that races the pipeline cannot leave a vector behind.
pub async fn still_stored(
    txn: &DatabaseTransaction,
    backend: Backend,
    source: Source,
    ids: Vec<Uuid>,
) -> Result<Vec<Uuid>, ServiceError> {
    Ok(match source {
        Source::Cache => {
            let q = message_cache::Entity::find()
                .select_only()
                .column(message_cache::Column::Id)
                .filter(message_cache::Column::Id.is_in(ids));
            backend.share_rows(q).into_tuple::<Uuid>().all(txn).await?
        }
        Source::Main => {
            let q = messages::Entity::find()
                .select_only()
                .column(messages::Column::Id)
                .filter(messages::Column::Id.is_in(ids));
            backend.share_rows(q).into_tuple::<Uuid>().all(txn).await?
        }
    })
}

/// Stores one vector per hash (kept if another writer got there first) and the hash's text for
/// full-text search.
pub async fn insert(
    txn: &DatabaseTransaction,
    model: &str,
    rows: Vec<(String, String, Vec<u8>)>,
) -> Result<(), ServiceError> {
    if rows.is_empty() {
        return Ok(());
    }
    let at = Utc::now();
    let dims = |bytes: &Vec<u8>| i32::try_from(bytes.len() / 4).unwrap_or(i32::MAX);
    let vectors = rows
        .iter()
        .map(|(hash, _, bytes)| cache_embeddings::ActiveModel {
            id: sea_orm::Set(Uuid::now_v7()),
            content_hash: sea_orm::Set(hash.clone()),
            model: sea_orm::Set(model.to_string()),
            dims: sea_orm::Set(dims(bytes)),
            vector: sea_orm::Set(bytes.clone()),
            created_at: sea_orm::Set(at),
        });
    cache_embeddings::Entity::insert_many(vectors)
        .on_conflict_do_nothing_on([
            cache_embeddings::Column::ContentHash,
            cache_embeddings::Column::Model,
        ])
        .exec_without_returning(txn)
        .await?;
    let mut text = Query::insert();
    text.into_table(SearchText::Table)
        .columns([SearchText::ContentHash, SearchText::Content]);
    for (hash, content, _) in rows {
        text.values_panic([hash.into(), content.into()]);
    }
    text.on_conflict(
        OnConflict::column(SearchText::ContentHash)
            .do_nothing()
            .to_owned(),
    );
    txn.execute(&text).await?;
    Ok(())
}

#[derive(sea_orm::DeriveIden)]
pub enum SearchText {
    Table,
    ContentHash,
    Content,
}

/// A message found without a vector: its id, hash and content.
pub type Missing = (Uuid, String, String);

/// Up to `limit` messages of `source` after `after` (by id) whose content has no vector of
/// `model`.
pub async fn missing(
    db: &impl ConnectionTrait,
    source: Source,
    model: &str,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Missing>, ServiceError> {
    let no_vector = |hash_column: Expr| {
        Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(cache_embeddings::Entity)
                .and_where(
                    Expr::col((
                        cache_embeddings::Entity,
                        cache_embeddings::Column::ContentHash,
                    ))
                    .eq(hash_column),
                )
                .and_where(Expr::col(cache_embeddings::Column::Model).eq(model))
                .to_owned(),
        )
        .not()
    };
    Ok(match source {
        Source::Cache => {
            let mut q = message_cache::Entity::find()
                .select_only()
                .columns([
                    message_cache::Column::Id,
                    message_cache::Column::MessageHash,
                    message_cache::Column::Content,
                ])
                .filter(no_vector(Expr::col((
                    message_cache::Entity,
                    message_cache::Column::MessageHash,
                ))))
                .order_by_asc(message_cache::Column::Id)
                .limit(limit);
            if let Some(after) = after {
                q = q.filter(message_cache::Column::Id.gt(after));
            }
            q.into_tuple().all(db).await?
        }
        Source::Main => {
            let mut q = messages::Entity::find()
                .select_only()
                .columns([
                    messages::Column::Id,
                    messages::Column::ContentHash,
                    messages::Column::Content,
                ])
                .filter(no_vector(Expr::col((
                    messages::Entity,
                    messages::Column::ContentHash,
                ))))
                .order_by_asc(messages::Column::Id)
                .limit(limit);
            if let Some(after) = after {
                q = q.filter(messages::Column::Id.gt(after));
            }
            q.into_tuple().all(db).await?
        }
    })
}

/// How many stored messages have no vector of `model` (the start-up backlog).
pub async fn count_missing(
    db: &impl ConnectionTrait,
    backend: Backend,
    model: &str,
) -> Result<u64, ServiceError> {
    let p = backend.param(1);
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM message_cache m WHERE NOT EXISTS (SELECT 1 FROM \
         cache_embeddings e WHERE e.content_hash = m.message_hash AND e.model = {p})) + \
         (SELECT COUNT(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM cache_embeddings e \
         WHERE e.content_hash = m.content_hash AND e.model = {p})) AS n"
    );
    let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql, [model.into()]);
    let row = db.query_one_raw(stmt).await?;
    let n: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Deletes the vectors and search text of `hashes` that no stored message (guest or account)
/// uses any more. Runs in the transaction that deleted the messages.
pub async fn forget_unreferenced(
    txn: &DatabaseTransaction,
    hashes: Vec<String>,
) -> Result<(), ServiceError> {
    for chunk in hashes.chunks(500) {
        let cached = Query::select()
            .column(message_cache::Column::MessageHash)
            .from(message_cache::Entity)
            .and_where(Expr::col(message_cache::Column::MessageHash).is_in(chunk.to_vec()))
            .to_owned();
        let kept = Query::select()
            .column(messages::Column::ContentHash)
            .from(messages::Entity)
            .and_where(Expr::col(messages::Column::ContentHash).is_in(chunk.to_vec()))
            .to_owned();
        cache_embeddings::Entity::delete_many()
            .filter(cache_embeddings::Column::ContentHash.is_in(chunk.to_vec()))
            .filter(cache_embeddings::Column::ContentHash.not_in_subquery(cached.clone()))
            .filter(cache_embeddings::Column::ContentHash.not_in_subquery(kept.clone()))
            .exec(txn)
            .await?;
        let text = Query::delete()
            .from_table(SearchText::Table)
            .and_where(Expr::col(SearchText::ContentHash).is_in(chunk.to_vec()))
            .and_where(Expr::col(SearchText::ContentHash).not_in_subquery(cached))
            .and_where(Expr::col(SearchText::ContentHash).not_in_subquery(kept))
            .to_owned();
        txn.execute(&text).await?;
    }
    Ok(())
}

/// The content hashes of a guest conversation's messages (before they are deleted).
pub async fn hashes_of_conversation(
    txn: &DatabaseTransaction,
    conversation_id: Uuid,
) -> Result<Vec<String>, ServiceError> {
    Ok(message_cache::Entity::find()
        .select_only()
        .column(message_cache::Column::MessageHash)
        .filter(message_cache::Column::ConversationId.eq(conversation_id))
        .distinct()
        .into_tuple::<String>()
        .all(txn)
        .await?)
}
