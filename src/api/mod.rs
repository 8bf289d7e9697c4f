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
mod parse_errors;
pub mod security;
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
    finish_spec(&openapi_service().spec())
}

/// What the framework cannot say about the spec by itself: an operation that takes both a user's
/// bearer token and a guest token needs both at once (one security requirement, not two
/// alternatives).
fn finish_spec(generated: &str) -> String {
    let Ok(mut spec) = serde_json::from_str::<serde_json::Value>(generated) else {
        return generated.to_string();
    };
    let operations = spec
        .get_mut("paths")
        .and_then(|p| p.as_object_mut())
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|path| path.as_object_mut())
        .flat_map(|methods| methods.values_mut());
    for operation in operations {
        let Some(security) = operation.get_mut("security").and_then(|s| s.as_array_mut()) else {
            continue;
        };
        let needs = |name: &str| security.iter().any(|r| r.get(name).is_some());
        if needs("UserBearer") && needs("GuestToken") {
            let all: serde_json::Map<String, serde_json::Value> = security
                .iter()
                .filter_map(|r| r.as_object())
                .flat_map(|r| r.clone())
                .collect();
            *security = vec![serde_json::Value::Object(all)];
        }
    }
    serde_json::to_string_pretty(&spec).unwrap_or_else(|_| generated.to_string())
}

/// Every route, wrapped in the envelope, with `state` attached.
pub fn routes(state: AppState) -> impl Endpoint {
    let body_limit = envelope::body_limit(state.settings.limits.max_message_bytes);
    let service = openapi_service();
    let generated = service.spec();
    let spec = spec_json();
    // Swagger UI embeds the spec; give it the finished one.
    let docs_html = service.swagger_ui_html().replace(&generated, &spec);
    let allowed = envelope::AllowedMethods::from_spec(&spec);
    let app = Route::new()
        .nest("/", service)
        .at(
            "/openapi.json",
            envelope::static_body(spec, "application/json"),
        )
        .nest(
            "/docs",
            envelope::static_body(docs_html, "text/html; charset=utf-8"),
        )
        .data(state);
    envelope::wrap(app, body_limit, allowed)
}
