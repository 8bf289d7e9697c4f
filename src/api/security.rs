//! Who is calling, as OpenAPI security schemes: handlers take these as parameters, so the spec
//! declares `components.securitySchemes` and each operation's `security` (Swagger UI's Authorize
//! button and generated clients send the right header), and no handler reads a credential by hand.
//!
//! - `GuestToken` (`X-Guest-Token: <token>`) or `GuestBearer` (`Authorization: Bearer <token>`):
//!   the guest's token, checked against the guest id by the guest service.
//! - `UserBearer`: a user's JWT, checked here (401 `auth_required` / `token_invalid`).
//! - `AdminBearer`: the admin token from config (404 when the admin API is off).

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use super::parse_errors::Refused;
use crate::{service::ServiceError, state::AppState};

const GUEST_TOKEN: &str = "GuestToken";
const GUEST_BEARER: &str = "GuestBearer";
const USER_BEARER: &str = "UserBearer";
const ADMIN_BEARER: &str = "AdminBearer";

fn register_schemes(registry: &mut Registry, names: &[&'static str]) {
    for &name in names {
        let scheme = match name {
            GUEST_TOKEN => MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "The guest token from `POST /v1/guest/sessions` or from the first write to a \
                     client-chosen guest id.",
                ),
                name: Some("X-Guest-Token"),
                key_in: Some("header"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
            GUEST_BEARER => bearer("The guest token, sent as `Authorization: Bearer`.", None),
            USER_BEARER => bearer(
                "A user's access token from signup or login (or an outside identity provider).",
                Some("JWT"),
            ),
            _ => bearer("The admin token from `admin.token`.", None),
        };
        registry.create_security_scheme(name, scheme);
    }
}

fn bearer(description: &'static str, format: Option<&'static str>) -> MetaSecurityScheme {
    MetaSecurityScheme {
        ty: "http",
        description: Some(description),
        name: None,
        key_in: None,
        scheme: Some("bearer"),
        bearer_format: format,
        flows: None,
        openid_connect_url: None,
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The guest token from `X-Guest-Token`, else from `Authorization: Bearer`.
fn guest_token(req: &Request) -> Option<String> {
    req.header("x-guest-token")
        .or_else(|| bearer_token(req))
        .map(str::to_string)
}

fn state(req: &Request) -> poem::Result<&AppState> {
    req.data::<AppState>()
        .ok_or_else(|| Refused::from(ServiceError::Internal("no state".into())).into())
}

/// Implements [`ApiExtractor`] for a security-scheme parameter type.
macro_rules! security_scheme {
    ($ty:ty, [$($name:expr),+], optional = $optional:expr, |$req:ident| $extract:expr) => {
        impl<'a> ApiExtractor<'a> for $ty {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                register_schemes(registry, &[$($name),+]);
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![$($name),+]
            }

            fn has_security_fallback() -> bool {
                $optional
            }

            async fn from_request(
                $req: &'a Request,
                _body: &mut RequestBody,
                _options: ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                $extract
            }
        }
    };
}

/// The guest's token, required: the guest service answers 401 `guest_token_required` without
/// one and `guest_token_invalid` for one that is not this guest's.
pub struct GuestToken(pub Option<String>);

security_scheme!(
    GuestToken,
    [GUEST_TOKEN, GUEST_BEARER],
    optional = false,
    |req| Ok(GuestToken(guest_token(req)))
);

/// The guest's token where none is needed to claim an unheld guest id by writing to it.
pub struct GuestTokenOrClaim(pub Option<String>);

security_scheme!(
    GuestTokenOrClaim,
    [GUEST_TOKEN, GUEST_BEARER],
    optional = true,
    |req| Ok(GuestTokenOrClaim(guest_token(req)))
);

/// The guest's token in `X-Guest-Token` (for calls whose `Authorization` holds the user's token).
pub struct GuestTokenHeader(pub Option<String>);

security_scheme!(GuestTokenHeader, [GUEST_TOKEN], optional = false, |req| {
    Ok(GuestTokenHeader(
        req.header("x-guest-token").map(str::to_string),
    ))
});

/// A guest (its token, checked against the `guest_id` the operation names) or a signed-in user
/// (their access token): the operation decides which from whether a `guest_id` is named.
pub struct GuestOrUser {
    /// `X-Guest-Token`.
    pub guest_token: Option<String>,
    /// `Authorization: Bearer` — the user's access token, or a guest's token.
    pub bearer: Option<String>,
}

security_scheme!(
    GuestOrUser,
    [USER_BEARER, GUEST_TOKEN, GUEST_BEARER],
    optional = false,
    |req| Ok(GuestOrUser {
        guest_token: req.header("x-guest-token").map(str::to_string),
        bearer: bearer_token(req).map(str::to_string),
    })
);

/// The signed-in user.
pub struct UserBearer(pub entity::users::Model);

security_scheme!(UserBearer, [USER_BEARER], optional = false, |req| {
    let user = state(req)?
        .auth
        .authenticate(bearer_token(req))
        .await
        .map_err(Refused::from)?;
    Ok(UserBearer(user))
});

/// The admin, proven by the configured admin token.
pub struct AdminBearer;

security_scheme!(AdminBearer, [ADMIN_BEARER], optional = false, |req| {
    let state = state(req)?;
    let expected = state.settings.admin.token.expose();
    if expected.is_empty() {
        return Err(Refused::from(ServiceError::AdminDisabled).into());
    }
    // Guessing is limited: an address past `limits.admin_failures_per_ip_per_hour` wrong tokens
    // is refused, right token or not, until the window slides on.
    let ip = state.client_ip(req);
    let limited = |retry_after_secs| Refused::from(ServiceError::RateLimited { retry_after_secs });
    if let Some(ip) = ip
        && state.admin_failures.is_blocked(&ip)
    {
        let wait = state.admin_failures.check(ip).err().unwrap_or(60);
        return Err(limited(wait).into());
    }
    match bearer_token(req) {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(AdminBearer),
        _ => {
            if let Some(ip) = ip {
                state.admin_failures.check(ip).map_err(limited)?;
            }
            Err(Refused::from(ServiceError::AdminTokenInvalid).into())
        }
    }
});

/// Compares secrets in time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
