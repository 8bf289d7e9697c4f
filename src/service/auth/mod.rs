//! Accounts and access tokens: sign-up and login with argon2id passwords, built-in JWTs (HS256,
//! signed with a key derived from the server secret, `aud` and `exp` checked), and tokens from an
//! outside identity provider (HS256 secret or RS256/ES256 public key; `sub` → `external_id`).

use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{conversations, users};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::instrument;
use uuid::Uuid;

mod credentials;
mod refresh;
mod sessions;

use credentials::{DUMMY_HASH, hash_password, validate_password, verify_password};
pub use credentials::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, normalize_email};

use super::{ErrorCode, ServiceError, clock::now, limits::RateLimiter};
use crate::{
    config::AuthSettings,
    store::{Store, Write},
};

const ISSUER: &str = "genesis";

/// A signed-in user, their new access token, and the refresh token that gets the next one.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: users::Model,
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iss: String,
    exp: i64,
    iat: i64,
    /// The sign-in (refresh-token family) this access token belongs to.
    sid: String,
}

/// The claims read from any accepted token.
#[derive(Debug, Deserialize)]
struct SubjectClaims {
    sub: String,
}

/// When a token was issued and in which sign-in (read from a token already verified by
/// [`AuthService::authenticate`]).
#[derive(Deserialize)]
struct TokenFacts {
    iat: Option<i64>,
    sid: Option<String>,
}

impl TokenFacts {
    fn of(token: &str) -> Self {
        jsonwebtoken::dangerous::insecure_decode_claims::<TokenFacts>(token).unwrap_or(TokenFacts {
            iat: None,
            sid: None,
        })
    }
}

/// How recent a sign-in must be for an outside-provider user to confirm an erasure.
const RECENT_SIGN_IN_SECS: i64 = 300;

struct External {
    algorithm: Algorithm,
    key: DecodingKey,
    audience: String,
}

#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    encoding: EncodingKey,
    decoding: DecodingKey,
    audience: String,
    ttl: chrono::Duration,
    refresh_ttl: chrono::Duration,
    external: Option<External>,
    login_per_ip: RateLimiter<IpAddr>,
    /// Per e-mail *and* client address: an attacker elsewhere cannot lock the owner out.
    login_per_email: RateLimiter<(String, Option<IpAddr>)>,
}

impl AuthService {
    pub fn new(
        store: Store,
        secret: &[u8],
        settings: &AuthSettings,
        login_per_ip_per_hour: u32,
        login_per_email_per_hour: u32,
    ) -> Result<Self, String> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .map_err(|e| format!("server secret: {e}"))?;
        mac.update(b"genesis/access-token/v1");
        let key = mac.finalize().into_bytes();
        let external = match settings.external_algorithm.as_str() {
            "" => None,
            "HS256" => Some(External {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(settings.external_secret.expose().as_bytes()),
                audience: settings.external_audience.clone(),
            }),
            "RS256" => Some(External {
                algorithm: Algorithm::RS256,
                key: DecodingKey::from_rsa_pem(settings.external_public_key.as_bytes())
                    .map_err(|e| format!("auth.external_public_key is not an RSA PEM key: {e}"))?,
                audience: settings.external_audience.clone(),
            }),
            "ES256" => Some(External {
                algorithm: Algorithm::ES256,
                key: DecodingKey::from_ec_pem(settings.external_public_key.as_bytes())
                    .map_err(|e| format!("auth.external_public_key is not an EC PEM key: {e}"))?,
                audience: settings.external_audience.clone(),
            }),
            other => return Err(format!("unsupported auth.external_algorithm {other}")),
        };
        let hour = Duration::from_secs(3600);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                encoding: EncodingKey::from_secret(&key),
                decoding: DecodingKey::from_secret(&key),
                audience: settings.audience.clone(),
                ttl: chrono::Duration::seconds(
                    i64::try_from(settings.token_ttl_secs).unwrap_or(i64::MAX / 2),
                ),
                refresh_ttl: chrono::Duration::seconds(
                    i64::try_from(settings.refresh_ttl_secs).unwrap_or(i64::MAX / 2),
                ),
                external,
                login_per_ip: RateLimiter::new(login_per_ip_per_hour, hour),
                login_per_email: RateLimiter::new(login_per_email_per_hour, hour),
            }),
        })
    }

    /// Removes an account made by [`signup`](Self::signup) whose guest could not be moved into
    /// it, so the sign-up has one outcome: both or neither. Only an account that owns nothing is
    /// removed; `false` when it was not (it keeps its token and the error is reported).
    pub async fn undo_signup(&self, user_id: Uuid) -> Result<bool, ServiceError> {
        let owns = sea_orm::PaginatorTrait::count(
            conversations::Entity::find().filter(conversations::Column::UserId.eq(user_id)),
            self.inner.store.conn(),
        )
        .await?;
        if owns > 0 {
            return Ok(false);
        }
        entity::refresh_tokens::Entity::delete_many()
            .filter(entity::refresh_tokens::Column::UserId.eq(user_id))
            .exec(self.inner.store.conn())
            .await?;
        let deleted = users::Entity::delete_by_id(user_id)
            .exec(self.inner.store.conn())
            .await?;
        Ok(deleted.rows_affected == 1)
    }

    /// Creates an account. Taken e-mail → 409; invalid e-mail or short password → 422.
    #[instrument(skip_all)]
    pub async fn signup(&self, email: &str, password: &str) -> Result<Session, ServiceError> {
        let email = normalize_email(email)?;
        validate_password(password)?;
        let hash = hash_password(password.to_string()).await?;
        let at = now();
        let user = users::ActiveModel {
            id: Set(Uuid::now_v7()),
            external_id: Set(None),
            email: Set(Some(email)),
            password_hash: Set(Some(hash)),
            display_name: Set(None),
            tier: Set("free".into()),
            created_at: Set(at),
            updated_at: Set(at),
        };
        let inserted = self
            .inner
            .store
            .write(move |txn| {
                Box::pin(async move {
                    let result = users::Entity::insert(user)
                        .on_conflict(
                            OnConflict::column(users::Column::Email)
                                .do_nothing()
                                .to_owned(),
                        )
                        .exec_with_returning(txn)
                        .await;
                    match result {
                        Ok(user) => Ok(Write::Commit(Some(user))),
                        Err(
                            sea_orm::DbErr::RecordNotInserted | sea_orm::DbErr::RecordNotFound(_),
                        ) => Ok(Write::Discard(None)),
                        Err(e) => Err(ServiceError::from(e)),
                    }
                })
            })
            .await?;
        match inserted {
            Some(user) => self.session(user, None).await,
            None => Err(ServiceError::EmailTaken),
        }
    }

    /// Checks an e-mail and password. Rate-limited per client address and per e-mail.
    #[instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<Session, ServiceError> {
        if let Some(ip) = ip {
            self.inner
                .login_per_ip
                .check(ip)
                .map_err(|retry_after_secs| ServiceError::RateLimited { retry_after_secs })?;
        }
        let email = normalize_email(email)?;
        self.inner
            .login_per_email
            .check((email.clone(), ip))
            .map_err(|retry_after_secs| ServiceError::RateLimited { retry_after_secs })?;
        let user = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(self.inner.store.conn())
            .await?;
        let stored = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = verify_password(password.to_string(), stored).await?;
        match user {
            Some(user) if ok && user.password_hash.is_some() => self.session(user, None).await,
            _ => Err(ServiceError::BadCredentials),
        }
    }

    /// A new access token for `user` in the sign-in `refresh` continues (none: a new sign-in).
    async fn session(
        &self,
        user: users::Model,
        refresh: Option<refresh::Issued>,
    ) -> Result<Session, ServiceError> {
        let refresh = match refresh {
            Some(refresh) => refresh,
            None => refresh::start(&self.inner.store, user.id, self.inner.refresh_ttl).await?,
        };
        let issued = Utc::now();
        let expires_at = issued + self.inner.ttl;
        let claims = Claims {
            sub: user.id.to_string(),
            aud: self.inner.audience.clone(),
            iss: ISSUER.into(),
            exp: expires_at.timestamp(),
            iat: issued.timestamp(),
            sid: refresh.family_id.to_string(),
        };
        let access_token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.inner.encoding,
        )
        .map_err(|e| ServiceError::Internal(format!("sign token: {e}")))?;
        Ok(Session {
            user,
            access_token,
            expires_at,
            refresh_token: refresh.token,
            refresh_expires_at: refresh.expires_at,
        })
    }

    /// Proves the caller is the account's owner before something that cannot be undone: the
    /// password of an account that has one (wrong → 401); for an outside-provider account, a
    /// `token` issued in the last five minutes (older → 403: sign in again).
    pub async fn confirm_owner(
        &self,
        user: &users::Model,
        password: Option<&str>,
        token: &str,
    ) -> Result<(), ServiceError> {
        match &user.password_hash {
            Some(hash) => {
                let password = password.ok_or_else(|| {
                    ServiceError::invalid(
                        ErrorCode::InvalidCredentials,
                        "send the account's password to confirm it is you",
                    )
                })?;
                if verify_password(password.to_string(), hash.clone()).await? {
                    Ok(())
                } else {
                    Err(ServiceError::BadCredentials)
                }
            }
            None => {
                let issued = TokenFacts::of(token).iat;
                let now = Utc::now().timestamp();
                match issued {
                    Some(at) if now - at <= RECENT_SIGN_IN_SECS && at <= now + 60 => Ok(()),
                    _ => Err(ServiceError::invalid(
                        ErrorCode::Forbidden,
                        "sign in again: this needs a token issued in the last 5 minutes",
                    )),
                }
            }
        }
    }

    /// The user with this id, or 404 `not_found`.
    pub async fn user(&self, id: Uuid) -> Result<users::Model, ServiceError> {
        users::Entity::find_by_id(id)
            .one(self.inner.store.conn())
            .await?
            .ok_or_else(|| ServiceError::invalid(ErrorCode::NotFound, "no user with this id"))
    }

    /// The user a bearer token belongs to. Missing → `AuthRequired`; anything wrong → `TokenInvalid`.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<users::Model, ServiceError> {
        let token = token.ok_or(ServiceError::AuthRequired)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| ServiceError::TokenInvalid)?;
        if header.alg == Algorithm::HS256 {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_audience(&[self.inner.audience.as_str()]);
            validation.set_issuer(&[ISSUER]);
            validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
            if let Ok(data) =
                jsonwebtoken::decode::<SubjectClaims>(token, &self.inner.decoding, &validation)
            {
                let id =
                    Uuid::parse_str(&data.claims.sub).map_err(|_| ServiceError::TokenInvalid)?;
                return users::Entity::find_by_id(id)
                    .one(self.inner.store.conn())
                    .await?
                    .ok_or(ServiceError::TokenInvalid);
            }
        }
        let external = self
            .inner
            .external
            .as_ref()
            .ok_or(ServiceError::TokenInvalid)?;
        if header.alg != external.algorithm {
            return Err(ServiceError::TokenInvalid);
        }
        let mut validation = Validation::new(external.algorithm);
        validation.set_audience(&[external.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let data = jsonwebtoken::decode::<SubjectClaims>(token, &external.key, &validation)
            .map_err(|_| ServiceError::TokenInvalid)?;
        if data.claims.sub.is_empty() || data.claims.sub.len() > 255 {
            return Err(ServiceError::TokenInvalid);
        }
        self.external_user(&data.claims.sub).await
    }

    /// The user row for an outside identity, created on first use.
    pub async fn external_user(&self, sub: &str) -> Result<users::Model, ServiceError> {
        let db = self.inner.store.conn();
        if let Some(user) = find_external(db, sub).await? {
            return Ok(user);
        }
        let at = now();
        let row = users::ActiveModel {
            id: Set(Uuid::now_v7()),
            external_id: Set(Some(sub.to_string())),
            email: Set(None),
            password_hash: Set(None),
            display_name: Set(None),
            tier: Set("free".into()),
            created_at: Set(at),
            updated_at: Set(at),
        };
        self.inner
            .store
            .write(move |txn| {
                Box::pin(async move {
                    users::Entity::insert(row)
                        .on_conflict(
                            OnConflict::column(users::Column::ExternalId)
                                .do_nothing()
                                .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                    Ok::<_, ServiceError>(Write::Commit(()))
                })
            })
            .await?;
        find_external(db, sub)
            .await?
            .ok_or_else(|| ServiceError::Internal("external user vanished".into()))
    }
}

async fn find_external<C: ConnectionTrait>(
    db: &C,
    sub: &str,
) -> Result<Option<users::Model>, ServiceError> {
    Ok(users::Entity::find()
        .filter(users::Column::ExternalId.eq(sub))
        .one(db)
        .await?)
}
