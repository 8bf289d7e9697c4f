//! Refresh tokens: random, stored only as their SHA-256, one family per sign-in. A refresh marks
//! its token used and adds the next one to the family (rotation); presenting a used token again
//! means it was stolen or replayed, so the whole family is revoked. Logout revokes the family; a
//! password change revokes every family of the user but the caller's.

use chrono::{DateTime, Duration, Utc};
use entity::refresh_tokens;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    service::{
        ServiceError,
        clock::now,
        digest::{hex, sha256_hex},
    },
    store::{Store, Write},
};

/// Every refresh token starts with this (and 64 hex characters follow).
const PREFIX: &str = "grt_";

/// A new refresh token, for the client (never stored).
pub struct Issued {
    pub token: String,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// What a refresh found.
pub enum Rotation {
    /// The token was current: here is the next one.
    Next { user_id: Uuid, issued: Issued },
    /// Unknown, expired, revoked — or reused, in which case its family is now revoked.
    Refused,
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    format!("{PREFIX}{}", hex(&bytes))
}

async fn insert(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    family_id: Uuid,
    ttl: Duration,
) -> Result<Issued, ServiceError> {
    let token = new_token();
    let at = now();
    let expires_at = at + ttl;
    refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family_id),
        token_hash: Set(sha256_hex(&token)),
        created_at: Set(at),
        expires_at: Set(expires_at),
        used_at: Set(None),
        revoked_at: Set(None),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(Issued {
        token,
        family_id,
        expires_at,
    })
}

/// The stored row of `token`, found by its hash.
async fn find(
    txn: &DatabaseTransaction,
    token: &str,
) -> Result<Option<refresh_tokens::Model>, ServiceError> {
    Ok(refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(sha256_hex(token)))
        .one(txn)
        .await?)
}

/// Starts a new family (a sign-in) for `user_id`.
pub async fn start(store: &Store, user_id: Uuid, ttl: Duration) -> Result<Issued, ServiceError> {
    store
        .write(move |txn| {
            Box::pin(async move {
                let issued = insert(txn, user_id, Uuid::now_v7(), ttl).await?;
                Ok::<_, ServiceError>(Write::Commit(issued))
            })
        })
        .await
}

/// Exchanges `token` for the next one of its family.
pub async fn rotate(store: &Store, token: &str, ttl: Duration) -> Result<Rotation, ServiceError> {
    if !token.starts_with(PREFIX) {
        return Ok(Rotation::Refused);
    }
    let token = token.to_string();
    store
        .write(move |txn| {
            Box::pin(async move {
                let found = find(txn, &token).await?;
                let at = now();
                let Some(row) = found else {
                    return Ok(Write::Discard(Rotation::Refused));
                };
                if row.used_at.is_some() {
                    // A rotated token came back: whoever holds the family now may be a thief.
                    revoke_family(txn, row.family_id, at).await?;
                    return Ok(Write::Commit(Rotation::Refused));
                }
                if row.revoked_at.is_some() || row.expires_at <= at {
                    return Ok(Write::Discard(Rotation::Refused));
                }
                // Only one exchange of a token wins, even when two race.
                let used = refresh_tokens::Entity::update_many()
                    .col_expr(refresh_tokens::Column::UsedAt, Expr::value(Some(at)))
                    .filter(refresh_tokens::Column::Id.eq(row.id))
                    .filter(refresh_tokens::Column::UsedAt.is_null())
                    .exec(txn)
                    .await?;
                if used.rows_affected != 1 {
                    return Ok(Write::Discard(Rotation::Refused));
                }
                let issued = insert(txn, row.user_id, row.family_id, ttl).await?;
                Ok::<_, ServiceError>(Write::Commit(Rotation::Next {
                    user_id: row.user_id,
                    issued,
                }))
            })
        })
        .await
}

async fn revoke_family(
    txn: &DatabaseTransaction,
    family_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Some(at)))
        .filter(refresh_tokens::Column::FamilyId.eq(family_id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(txn)
        .await?;
    Ok(())
}

/// Revokes the family `token` belongs to (logout). An unknown token changes nothing.
pub async fn revoke(store: &Store, token: &str) -> Result<(), ServiceError> {
    let token = token.to_string();
    store
        .write(move |txn| {
            Box::pin(async move {
                if let Some(row) = find(txn, &token).await? {
                    revoke_family(txn, row.family_id, now()).await?;
                }
                Ok::<_, ServiceError>(Write::Commit(()))
            })
        })
        .await
}

/// Revokes every family of `user_id` except `keep` (the caller's own sign-in).
pub async fn revoke_others(
    store: &Store,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<(), ServiceError> {
    store
        .write(move |txn| {
            Box::pin(async move {
                let mut update = refresh_tokens::Entity::update_many()
                    .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(Some(now())))
                    .filter(refresh_tokens::Column::UserId.eq(user_id))
                    .filter(refresh_tokens::Column::RevokedAt.is_null());
                if let Some(keep) = keep {
                    update = update.filter(refresh_tokens::Column::FamilyId.ne(keep));
                }
                update.exec(txn).await?;
                Ok::<_, ServiceError>(Write::Commit(()))
            })
        })
        .await
}
