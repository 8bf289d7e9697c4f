//! Search over the caller's own messages (`GET /v1/search`) and the semantic response cache
//! (`POST /v1/cache/lookup`). A guest names its `guest_id` and sends its token; a user sends
//! their access token. Nobody sees another owner's messages.

use poem::web::Data;
use poem_openapi::{Enum, Object, OpenApi, param::Query, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, statuses},
    security::GuestOrUser,
    types::{Content, ContentType, GuestId, Role, SearchText, Timestamp},
};
use crate::{
    service::{
        ErrorCode, ServiceError,
        search::{self, FoundMessage, Lookup, Owner},
    },
    state::AppState,
};

statuses! {
    /// Searching.
    SearchErrors: 400, 401, 404, 409, 422, 500, 503;
    /// A cache lookup.
    LookupErrors: 400, 401, 404, 409, 413, 415, 422, 500, 503;
}

/// `semantic` (by meaning, as the configured embedder sees it) or `text` (full-text words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SearchMode {
    Semantic,
    Text,
}

/// One message found.
#[derive(Debug, Object)]
pub struct SearchResult {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub role: Role,
    pub content: String,
    /// The client's timestamp, or when the server stored the message.
    pub timestamp: Timestamp,
    /// Higher is better: cosine similarity (semantic) or the full-text rank (text).
    pub score: f64,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct SearchResults {
    /// Best first.
    pub results: Vec<SearchResult>,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct LookupRequest {
    /// The prompt about to be sent to the model.
    pub prompt: Content,
    /// The similarity an earlier prompt needs, in (0, 1] (default `embeddings.cache_threshold`,
    /// 0.92).
    #[oai(validator(minimum(value = "0", exclusive), maximum(value = "1")))]
    pub threshold: Option<f64>,
    /// Only this conversation's earlier prompts.
    pub conversation_id: Option<Uuid>,
    /// For a guest: its id (the guest token goes in `X-Guest-Token` or `Authorization`).
    pub guest_id: Option<GuestId>,
}

/// A stored message returned by the cache.
#[derive(Debug, Object)]
pub struct CachedAnswer {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub role: Role,
    pub content: String,
    pub content_type: ContentType,
    pub timestamp: Timestamp,
}

impl From<FoundMessage> for CachedAnswer {
    fn from(m: FoundMessage) -> Self {
        Self {
            message_id: m.message_id,
            conversation_id: m.conversation_id,
            role: Role::from_stored(&m.role),
            content: m.content,
            content_type: ContentType::from_stored(&m.content_type),
            timestamp: m.timestamp.into(),
        }
    }
}

/// `hit: true` with the earlier prompt and its answer, or `hit: false` with the best similarity
/// seen (null when the caller has no answered prompt yet).
#[derive(Debug, Object)]
#[oai(example)]
pub struct LookupResult {
    pub hit: bool,
    #[oai(skip_serializing_if_is_none)]
    pub similarity: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub prompt_message_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub response: Option<CachedAnswer>,
    /// On a miss: the nearest earlier answered prompt's similarity, or null.
    #[oai(skip_serializing_if_is_none)]
    pub best_similarity: Option<Option<f64>>,
}

/// The owner the credentials prove: a guest when `guest_id` is named, else the signed-in user.
async fn owner(
    state: &AppState,
    caller: GuestOrUser,
    guest_id: Option<String>,
) -> Result<Owner, ServiceError> {
    match guest_id {
        Some(guest_id) => {
            let token = caller.guest_token.or(caller.bearer);
            let conversation = state
                .guests
                .owned_conversation(&guest_id, token.as_deref())
                .await?;
            Ok(Owner::Guest {
                guest_id,
                conversation,
            })
        }
        None if caller.bearer.is_none() && caller.guest_token.is_some() => {
            Err(ServiceError::invalid(
                ErrorCode::GuestTokenInvalid,
                "a guest token needs the guest_id it belongs to",
            ))
        }
        None => {
            let user = state.auth.authenticate(caller.bearer.as_deref()).await?;
            Ok(Owner::User(user.id))
        }
    }
}

pub struct SearchApi;

#[OpenApi(tag = "ApiTags::Search")]
impl SearchApi {
    /// Search your own messages
    ///
    /// `semantic` ranks by cosine similarity to the query's vector; `text` uses the database's
    /// full-text index (every word must match; stemmed). A message is searchable once the
    /// embedding pipeline has indexed it, normally within a second of its write. Only the
    /// caller's messages are searched: a guest's own (name `guest_id`), or a user's.
    #[oai(path = "/v1/search", method = "get", operation_id = "search")]
    #[allow(clippy::too_many_arguments)] // one per query parameter
    async fn search(
        &self,
        state: Data<&AppState>,
        caller: GuestOrUser,
        /// What to look for (1 to 1000 characters, not only whitespace).
        q: Query<SearchText>,
        /// `semantic` (default) or `text`.
        mode: Query<Option<SearchMode>>,
        /// How many results, 1-100 (default 10).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
        /// Only this conversation.
        conversation_id: Query<Option<Uuid>>,
        /// For a guest: its id.
        guest_id: Query<Option<GuestId>>,
    ) -> ApiResult<Json<SearchResults>, SearchErrors> {
        let owner = owner(&state, caller, guest_id.0.map(|g| g.0)).await?;
        let mode = match mode.0.unwrap_or(SearchMode::Semantic) {
            SearchMode::Semantic => search::Mode::Semantic,
            SearchMode::Text => search::Mode::Text,
        };
        let limit = usize::try_from(limit.0.unwrap_or(10)).unwrap_or(10);
        let found = state
            .search
            .search(&owner, &q.0.0, mode, limit, conversation_id.0)
            .await?;
        Ok(Json(SearchResults {
            results: found
                .into_iter()
                .map(|s| SearchResult {
                    message_id: s.message.message_id,
                    conversation_id: s.message.conversation_id,
                    role: Role::from_stored(&s.message.role),
                    content: s.message.content,
                    timestamp: s.message.timestamp.into(),
                    score: s.score,
                })
                .collect(),
        }))
    }

    /// Look up an earlier answer to a similar prompt
    ///
    /// A hit is an earlier user message of the caller at least `threshold` similar to `prompt`
    /// whose next message is an assistant's: that answer is returned. Hits and misses are counted
    /// in usage and cache metrics (layer `semantic`).
    #[oai(
        path = "/v1/cache/lookup",
        method = "post",
        operation_id = "cache_lookup"
    )]
    async fn lookup(
        &self,
        state: Data<&AppState>,
        caller: GuestOrUser,
        body: Json<LookupRequest>,
    ) -> ApiResult<Json<LookupResult>, LookupErrors> {
        let body = body.0;
        let owner = owner(&state, caller, body.guest_id.map(|g| g.0)).await?;
        let found = state
            .search
            .lookup(&owner, &body.prompt.0, body.threshold, body.conversation_id)
            .await?;
        Ok(Json(match found {
            Lookup::Hit {
                similarity,
                prompt_message_id,
                response,
            } => LookupResult {
                hit: true,
                similarity: Some(similarity),
                prompt_message_id: Some(prompt_message_id),
                response: Some(response.into()),
                best_similarity: None,
            },
            Lookup::Miss { best_similarity } => LookupResult {
                hit: false,
                similarity: None,
                prompt_message_id: None,
                response: None,
                best_similarity: Some(best_similarity),
            },
        }))
    }
}
