//! The HTTP API: the only code that knows HTTP. Builds the OpenAPI service (which needs no
//! database, so `genesis openapi` works anywhere) and the route tree with its envelope: request
//! ids, body limits, and the JSON error shape for every error, poem's own included.

pub mod admin;
pub mod admin_guests;
pub mod auth;
pub mod client_ip;
pub mod context;
pub mod conversation;
pub mod conversations;
mod cors;
mod dashboard;
mod envelope;
pub mod error;
mod examples;
pub mod export;
pub mod guest;
pub mod guest_threads;
pub mod health;
pub mod import;
pub mod message;
pub mod metrics;
pub mod migration;
mod parse_errors;
pub mod search;
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
    /// Search over your own messages and the semantic response cache.
    Search,
    /// Audit trail and verification (admin token).
    Admin,
    /// Health and readiness.
    Operations,
}

pub type Apis = (
    health::HealthApi,
    guest::GuestApi,
    guest_threads::GuestThreadsApi,
    migration::MigrationApi,
    auth::AuthApi,
    conversations::ConversationsApi,
    conversation::ConversationApi,
    context::ContextApi,
    message::MessageApi,
    export::ExportApi,
    import::ImportApi,
    search::SearchApi,
    admin::AdminApi,
    admin_guests::AdminGuestsApi,
);

/// The OpenAPI service (also the source of `/openapi.json` and `genesis openapi`).
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            guest::GuestApi,
            guest_threads::GuestThreadsApi,
            migration::MigrationApi,
            auth::AuthApi,
            conversations::ConversationsApi,
            conversation::ConversationApi,
            context::ContextApi,
            message::MessageApi,
            export::ExportApi,
            import::ImportApi,
            search::SearchApi,
            admin::AdminApi,
            admin_guests::AdminGuestsApi,
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

/// What the framework cannot say about the spec by itself:
/// - an operation that takes both a user's bearer token and the `X-Guest-Token` header needs
///   both at once (one security requirement, not two alternatives);
/// - an optional field may also be sent as `null`, which the server reads as absent.
///
/// One rule stays in prose (the field's description) only: `guest_token` needs `guest_id`. Its
/// schema form (`anyOf` over `required`) makes generators split the credentials model in two.
fn finish_spec(generated: &str) -> String {
    let Ok(mut spec) = serde_json::from_str::<serde_json::Value>(generated) else {
        return generated.to_string();
    };
    if let Some(schemas) = spec
        .pointer_mut("/components/schemas")
        .and_then(|s| s.as_object_mut())
    {
        for schema in schemas.values_mut() {
            optional_fields_take_null(schema);
        }
    }
    examples::add_to_spec(&mut spec);
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
        // Migration: the user's bearer token and `X-Guest-Token` together. (Search and the
        // semantic cache take one of them, so they also list `GuestBearer` and stay
        // alternatives.)
        if needs("UserBearer") && needs("GuestToken") && !needs("GuestBearer") {
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

/// Marks the properties `schema` does not require as nullable (poem-openapi reads `null` as
/// absent); a `$ref` becomes `oneOf: [$ref]` so that `nullable` is not a sibling tools ignore.
fn optional_fields_take_null(schema: &mut serde_json::Value) {
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        if let Some(reference) = property.get("$ref").cloned() {
            let mut wrapped = serde_json::json!({"oneOf": [{"$ref": reference}], "nullable": true});
            if let Some(description) = property.get("description") {
                wrapped["description"] = description.clone();
            }
            *property = wrapped;
        } else if property.get("type").is_some() {
            property["nullable"] = serde_json::Value::Bool(true);
        }
    }
}

/// Every route, wrapped in the envelope, with `state` attached.
pub fn routes(state: AppState) -> impl Endpoint {
    let limits = &state.settings.limits;
    let body_limit = envelope::BodyLimits {
        default: envelope::body_limit(limits.max_message_bytes),
        import: limits.max_import_bytes,
    };
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
        .at("/metrics", poem::get(metrics::metrics_text))
        .nest("/admin", dashboard::routes())
        .data(state.clone());
    let cors = cors::Cors::new(&state.settings.server.cors_origins);
    envelope::wrap(app, body_limit, allowed, cors)
}
