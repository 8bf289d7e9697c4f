//! Accounts: `/v1/auth/signup`, `/v1/auth/login` (both may carry a guest to migrate) and
//! `/v1/users/me`.

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, ErrorDetail, statuses},
    migration::MigrationResult,
    security::{UserBearer, bearer_token},
    types::{Email, GuestId, Password, StrictString, Timestamp},
};
use crate::{
    service::{ErrorCode, ServiceError, auth::Session},
    state::AppState,
};

statuses! {
    /// Signup (which may migrate a guest).
    SignupErrors: 400, 401, 404, 409, 413, 415, 422, 429, 500, 503;
    /// Login (which may migrate a guest).
    LoginErrors: 400, 401, 404, 409, 413, 415, 422, 429, 500, 503;
    /// Reading the signed-in user.
    MeErrors: 401, 500, 503;
    /// Exchanging a refresh token.
    RefreshErrors: 400, 401, 413, 415, 422, 500, 503;
    /// Logging out.
    LogoutErrors: 400, 413, 415, 422, 500, 503;
    /// Changing the password.
    PasswordErrors: 400, 401, 413, 415, 422, 500, 503;
    /// Erasing the signed-in user.
    EraseMeErrors: 400, 401, 403, 413, 415, 422, 500, 503;
}

/// E-mail and password, optionally with a guest whose conversation moves into the account.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Credentials {
    pub email: Email,
    pub password: Password,
    /// A guest to migrate into the account in the same call (needs `guest_token`).
    pub guest_id: Option<GuestId>,
    /// The guest's token; only with `guest_id` (alone it is 422 `guest_id_required`).
    pub guest_token: Option<StrictString>,
}

#[derive(Debug, Object)]
pub struct User {
    pub id: Uuid,
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub display_name: Option<String>,
    pub tier: String,
    pub created_at: Timestamp,
}

impl From<entity::users::Model> for User {
    fn from(u: entity::users::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            tier: u.tier,
            created_at: u.created_at.into(),
        }
    }
}

/// A signed-in user.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AuthSession {
    pub user: User,
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// When the access token expires (`auth.token_ttl_secs`, 15 minutes by default).
    pub expires_at: Timestamp,
    /// Exchange at `POST /v1/auth/refresh` for new tokens before or after the access token
    /// expires; each use returns a new one (the old one is spent — presenting it again ends the
    /// sign-in). Keep it secret.
    pub refresh_token: String,
    pub refresh_expires_at: Timestamp,
    /// The guest migration done in this call, when `guest_id` was sent.
    #[oai(skip_serializing_if_is_none)]
    pub migration: Option<MigrationResult>,
    /// Sign-up only, and rare: the account was created but the guest could not be moved into
    /// it, nor the account taken back (e.g. the database went away in between). Retry the move
    /// with `POST /v1/guest/migrate/{guest_id}`.
    #[oai(skip_serializing_if_is_none)]
    pub migration_error: Option<ErrorDetail>,
}

#[derive(Debug, ApiResponse)]
pub enum SignupResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<AuthSession>),
}

/// Usage counters (counted in memory, flushed every few seconds; a migrated guest's counters
/// are the account's).
#[derive(Debug, Object)]
pub struct Usage {
    /// The account's tier (`users.tier`).
    pub tier: String,
    pub total_requests: i64,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub messages_stored: i64,
    pub tokens_total: i64,
    pub last_request_at: Option<Timestamp>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct Me {
    pub user: User,
    pub usage: Usage,
}

pub struct AuthApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// Returns an access token. With `guest_id` and `guest_token`, the guest's conversation moves
    /// into the new account in the same call. 409 when the e-mail is taken; 422 for an invalid
    /// e-mail or a password under 8 characters; 429 past `limits.signups_per_ip_per_hour`;
    /// 503 with `Retry-After` when password hashing is saturated.
    #[oai(path = "/v1/auth/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<Credentials>,
    ) -> ApiResult<SignupResponse, SignupErrors> {
        if let Some(ip) = state.client_ip(req) {
            state
                .signup_limiter
                .check(ip)
                .map_err(|retry_after_secs| ServiceError::RateLimited { retry_after_secs })?;
        }
        let guest = guest_of(&state, &body.0).await?;
        // One outcome: the account and the guest's move into it, or neither. What can be known
        // before the account exists is checked first (unknown guest 404, another account's 409).
        if let Some((guest_id, token)) = &guest {
            state
                .guests
                .owned_conversation(guest_id, Some(token))
                .await
                .map_err(|err| match err {
                    ServiceError::GuestMigrated { .. } => ServiceError::GuestAlreadyClaimed,
                    other => other,
                })?;
        }
        let session = state.auth.signup(&body.email.0, &body.password.0).await?;
        let user_id = session.user.id;
        match carry_guest(&state, &session, guest).await {
            Ok(migration) => Ok(SignupResponse::Created(Json(to_session(
                session, migration,
            )))),
            // The move failed after the account was made: take the account back. Only if
            // that fails too does the client get the account, with the error beside it.
            Err(err) => match state.auth.undo_signup(user_id).await {
                Ok(true) => {
                    state.usage.forget(&user_id.to_string());
                    Err(err.into())
                }
                _ => {
                    let mut body = to_session(session, None);
                    body.migration_error = Some(ErrorDetail {
                        code: err.code(),
                        message: public_message(&err),
                    });
                    Ok(SignupResponse::Created(Json(body)))
                }
            },
        }
    }

    /// Log in
    ///
    /// Returns an access token (401 on a wrong e-mail or password; 429 past the per-address or
    /// per-e-mail attempt limit). May carry a guest to migrate, as signup does.
    #[oai(path = "/v1/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<Credentials>,
    ) -> ApiResult<Json<AuthSession>, LoginErrors> {
        let guest = guest_of(&state, &body.0).await?;
        let ip = state.client_ip(req);
        let session = state
            .auth
            .login(&body.email.0, &body.password.0, ip)
            .await?;
        let migration = carry_guest(&state, &session, guest).await?;
        Ok(Json(to_session(session, migration)))
    }

    /// The signed-in user, with usage
    #[oai(path = "/v1/users/me", method = "get", operation_id = "get_me")]
    async fn me(&self, state: Data<&AppState>, user: UserBearer) -> ApiResult<Json<Me>, MeErrors> {
        let user = user.0;
        let tier = user.tier.clone();
        let usage = state.usage_of(&user.id.to_string()).await?;
        Ok(Json(Me {
            user: user.into(),
            usage: Usage {
                tier,
                total_requests: usage.requests,
                cache_hits: usage.cache_hits,
                cache_misses: usage.cache_misses,
                messages_stored: usage.messages_stored,
                tokens_total: usage.tokens,
                last_request_at: usage.last_request_at.map(Timestamp),
            },
        }))
    }

    /// New tokens for a refresh token
    ///
    /// The refresh token is spent and a new one returned with a new access token, in the login
    /// answer's shape. A spent token presented again ends that sign-in (every token rotated
    /// from it): a sign of theft. Unknown, expired or revoked → 401 `token_invalid`.
    #[oai(path = "/v1/auth/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        body: Json<RefreshRequest>,
    ) -> ApiResult<Json<AuthSession>, RefreshErrors> {
        let session = state.auth.refresh(&body.refresh_token.0).await?;
        Ok(Json(to_session(session, None)))
    }

    /// Log out
    ///
    /// Ends the sign-in the refresh token belongs to: it and every token rotated from it stop
    /// working (access tokens already issued run out within `auth.token_ttl_secs`). An unknown
    /// token changes nothing; the answer is 204 either way.
    #[oai(path = "/v1/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        body: Json<RefreshRequest>,
    ) -> ApiResult<NoContent, LogoutErrors> {
        state.auth.logout(&body.refresh_token.0).await?;
        Ok(NoContent::Done)
    }

    /// Change your password
    ///
    /// Needs the current password (401 if wrong). Every other sign-in's refresh tokens are
    /// revoked; this one's keep working. Accounts from an outside identity provider have no
    /// password here (422).
    #[oai(
        path = "/v1/users/me/password",
        method = "put",
        operation_id = "change_password"
    )]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        req: &Request,
        user: UserBearer,
        body: Json<PasswordChange>,
    ) -> ApiResult<NoContent, PasswordErrors> {
        let bearer = bearer_token(req).unwrap_or_default();
        let body = body.0;
        state
            .auth
            .change_password(
                user.0,
                bearer,
                &body.current_password.0,
                &body.new_password.0,
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// Erase your account and everything in it
    ///
    /// Deletes the account, its conversations and messages, the guests it migrated (their cache
    /// and ledger rows), vectors and search text nothing else uses, its usage rows and hot-cache
    /// keys. The migration audit rows stay, with the user and guest ids replaced by their
    /// SHA-256. Needs the password (401 if wrong), or for an outside-provider account a token
    /// issued in the last 5 minutes (403 otherwise). Afterwards the account's tokens are refused
    /// and login fails.
    #[oai(path = "/v1/users/me", method = "delete", operation_id = "erase_me")]
    async fn erase_me(
        &self,
        state: Data<&AppState>,
        req: &Request,
        user: UserBearer,
        body: Json<EraseMe>,
    ) -> ApiResult<ErasedResponse, EraseMeErrors> {
        let token = bearer_token(req).unwrap_or_default();
        let password = body.0.password.as_ref().map(|p| p.0.as_str());
        state.auth.confirm_owner(&user.0, password, token).await?;
        state.erasure.erase_user(user.0.id).await?;
        Ok(ErasedResponse::Erased)
    }
}

/// A refresh token from sign-up, login or an earlier refresh.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RefreshRequest {
    pub refresh_token: StrictString,
}

/// The current password and the new one.
#[derive(Debug, Object)]
#[oai(example)]
pub struct PasswordChange {
    pub current_password: StrictString,
    /// At least 8 characters.
    pub new_password: Password,
}

#[derive(Debug, ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// Proof that it is the account's owner asking.
#[derive(Debug, Object)]
#[oai(example)]
pub struct EraseMe {
    /// The account's password (accounts from an outside identity provider have none: they send
    /// `{}` with a token issued in the last 5 minutes).
    pub password: Option<StrictString>,
}

#[derive(Debug, ApiResponse)]
pub enum ErasedResponse {
    /// The account and everything it owned are gone; its tokens no longer work.
    #[oai(status = 204)]
    Erased,
}

/// The guest named in the body, with its token checked before anything is created.
async fn guest_of(
    state: &AppState,
    body: &Credentials,
) -> Result<Option<(String, String)>, ServiceError> {
    let guest_id = body.guest_id.as_ref().map(|g| &g.0);
    match (guest_id, &body.guest_token) {
        (None, None) => Ok(None),
        (Some(id), token) => {
            let token = token.as_ref().map(|t| t.0.clone());
            state.guests.authorize(id, token.as_deref()).await?;
            Ok(Some((id.clone(), token.unwrap_or_default())))
        }
        (None, Some(_)) => Err(ServiceError::invalid(
            ErrorCode::GuestTokenInvalid,
            "a guest token needs the guest_id it belongs to",
        )),
    }
}

async fn carry_guest(
    state: &AppState,
    session: &Session,
    guest: Option<(String, String)>,
) -> Result<Option<MigrationResult>, ServiceError> {
    let Some((guest_id, token)) = guest else {
        return Ok(None);
    };
    let report = state
        .migrations
        .migrate(session.user.id, &guest_id, Some(&token))
        .await?;
    Ok(Some(report.into()))
}

fn to_session(s: Session, migration: Option<MigrationResult>) -> AuthSession {
    AuthSession {
        user: s.user.into(),
        access_token: s.access_token,
        token_type: "bearer".into(),
        expires_at: s.expires_at.into(),
        refresh_token: s.refresh_token,
        refresh_expires_at: s.refresh_expires_at.into(),
        migration,
        migration_error: None,
    }
}

/// What a client may be told of `err` (no internals).
fn public_message(err: &ServiceError) -> String {
    match err {
        ServiceError::Internal(_) => "an unexpected error; the server log has the details".into(),
        ServiceError::Unavailable(_) | ServiceError::Contended(_) | ServiceError::RolledBack => {
            "the database is unavailable; nothing was migrated".into()
        }
        other => other.to_string(),
    }
}
