//! The sign-in lifecycle on top of [`AuthService`]: exchanging a refresh token for new tokens,
//! logging out, and changing the password (which signs out every other session).

use chrono::Utc;
use entity::users;
use sea_orm::{ActiveValue::Set, EntityTrait, IntoActiveModel};
use tracing::instrument;
use uuid::Uuid;

use super::{
    AuthService, Session, TokenFacts,
    credentials::{hash_password, validate_password, verify_password},
    refresh::{self, Rotation},
};
use crate::{
    service::{ErrorCode, ServiceError, guest::rules::validate_text},
    store::Write,
};

impl AuthService {
    /// New tokens for a refresh token, which is used up; a used one presented again revokes its
    /// whole sign-in. Anything not current → 401 `token_invalid`.
    #[instrument(skip_all)]
    pub async fn refresh(&self, token: &str) -> Result<Session, ServiceError> {
        validate_text("refresh_token", token)?;
        let rotation = refresh::rotate(&self.inner.store, token, self.inner.refresh_ttl).await?;
        let Rotation::Next { user_id, issued } = rotation else {
            return Err(ServiceError::TokenInvalid);
        };
        let user = users::Entity::find_by_id(user_id)
            .one(self.inner.store.conn())
            .await?
            .ok_or(ServiceError::TokenInvalid)?;
        self.session(user, Some(issued)).await
    }

    /// Ends the sign-in `token` belongs to: it and every token rotated from it stop working.
    pub async fn logout(&self, token: &str) -> Result<(), ServiceError> {
        validate_text("refresh_token", token)?;
        refresh::revoke(&self.inner.store, token).await
    }

    /// Changes the password of `user` (the current one must match: 401) and revokes the refresh
    /// tokens of every other sign-in than the one `bearer` belongs to.
    #[instrument(skip_all, fields(user_id = %user.id))]
    pub async fn change_password(
        &self,
        user: users::Model,
        bearer: &str,
        current: &str,
        new: &str,
    ) -> Result<(), ServiceError> {
        let Some(hash) = user.password_hash.clone() else {
            return Err(ServiceError::invalid(
                ErrorCode::Unprocessable,
                "this account signs in through an outside identity provider: it has no password",
            ));
        };
        if !verify_password(current.to_string(), hash).await? {
            return Err(ServiceError::BadCredentials);
        }
        validate_password(new)?;
        let new_hash = hash_password(new.to_string()).await?;
        let user_id = user.id;
        let mut row = user.into_active_model();
        row.password_hash = Set(Some(new_hash));
        row.updated_at = Set(Utc::now());
        self.inner
            .store
            .write(move |txn| {
                Box::pin(async move {
                    users::Entity::update(row).exec(txn).await?;
                    Ok::<_, ServiceError>(Write::Commit(()))
                })
            })
            .await?;
        let keep = TokenFacts::of(bearer)
            .sid
            .and_then(|sid| Uuid::parse_str(&sid).ok());
        refresh::revoke_others(&self.inner.store, user_id, keep).await
    }
}
