//! The HTTP API: the only code that knows HTTP. Builds the OpenAPI service (which needs no
//! database, so `genesis openapi` works anywhere) and the route tree with its envelope: request
//! ids, body limits, and the JSON error shape for every error, poem's own included.

pub mod admin;
pub mod auth;
pub mod conversations;
mod envelope;
pub mod error;
pub mod guest;
pub mod health;
pub mod migration;
pub mod types;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

#[derive(Tags)]
pub enum ApiTags {
    /// Guest chat: no account needed.
    Guest,
    /// Accounts and access tokens.
    Auth,
    /// An account's conversations and messages.
    Conversations,
    /// Audit trail and verification (admin token).
    Admin,
    /// Health and readiness.
    Operations,
}

pub type Apis = (
    health::HealthApi,
    guest::GuestApi,
    migration::MigrationApi,
    auth::AuthApi,
    conversations::ConversationsApi,
    admin::AdminApi,
);

/// The OpenAPI service (also the source of `/openapi.json` and `genesis openapi`).
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            guest::GuestApi,
            migration::MigrationApi,
            auth::AuthApi,
            conversations::ConversationsApi,
            admin::AdminApi,
        ),
        "Genesis",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Chat history for LLM chat apps. Guests chat before they have an account; when they \
         sign up or log in their conversation moves into the account with zero loss. Every \
         error is `{\"error\":{\"code\",\"message\"}}`.",
    )
}

/// The spec as pretty JSON, exactly as `/openapi.json` serves it.
pub fn spec_json() -> String {
    openapi_service().spec()
}

/// Every route, wrapped in the envelope, with `state` attached.
pub fn routes(state: AppState) -> impl Endpoint {
    let body_limit = envelope::body_limit(state.settings.limits.max_message_bytes);
    let service = openapi_service();
    let docs = service.swagger_ui();
    let spec = service.spec_endpoint();
    let app = Route::new()
        .nest("/", service)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .data(state);
    envelope::wrap(app, body_limit)
}
