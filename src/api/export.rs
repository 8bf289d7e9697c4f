//! Taking data out: `GET /v1/conversations/{id}/export` (the `genesis.export` JSON or Markdown)
//! and `GET /v1/users/me/export` (every conversation, streamed). Both are attachments.

use futures_util::TryStreamExt;
use poem::{Body, web::Data};
use poem_openapi::{
    ApiResponse, Enum, OpenApi, ResponseContent,
    param::{Path, Query},
    payload::Payload,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, statuses},
    security::UserBearer,
    types::JsonBytes,
};
use crate::{
    service::{
        ServiceError,
        export::{self, ExportDocument},
    },
    state::AppState,
};

statuses! {
    /// Exporting one conversation.
    ExportOneErrors: 400, 401, 404, 422, 500, 503;
    /// Exporting everything.
    ExportAllErrors: 401, 500, 503;
}

/// What an export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    /// The `genesis.export` document (version 1), which `POST /v1/conversations/import` reads.
    #[default]
    Json,
    /// For people: the title, then each message under its role and time.
    Markdown,
}

/// Markdown text.
pub struct Markdown(String);

impl Payload for Markdown {
    const CONTENT_TYPE: &'static str = "text/markdown; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }
}

impl poem::IntoResponse for Markdown {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

/// A JSON body of shape `T` written as it is produced.
pub struct JsonStream<T> {
    body: Body,
    _schema: std::marker::PhantomData<fn() -> T>,
}

impl<T: Type> Payload for JsonStream<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> poem::IntoResponse for JsonStream<T> {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(self.body)
    }
}

/// One conversation, in the format asked for.
#[derive(ResponseContent)]
pub enum ExportedContent {
    /// A `genesis.export` document holding the conversation.
    Json(JsonBytes<ExportDocument>),
    /// The conversation as Markdown.
    Markdown(Markdown),
}

#[derive(ApiResponse)]
pub enum ExportOneResponse {
    /// The conversation as a `genesis.export` document (`format=json`) or as Markdown
    /// (`format=markdown`).
    #[oai(status = 200)]
    Ok(
        ExportedContent,
        /// `attachment; filename="conversation-<id>.json"` (or `.md`)
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum ExportAllResponse {
    /// Every conversation of the user, one `genesis.export` document, streamed.
    #[oai(status = 200)]
    Json(
        JsonStream<ExportDocument>,
        /// `attachment; filename="genesis-export.json"`
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

pub struct ExportApi;

#[OpenApi(tag = "ApiTags::Conversations")]
impl ExportApi {
    /// Export one of your conversations
    ///
    /// As the `genesis.export` JSON document (`format=json`, the default; importable) or as
    /// Markdown (`format=markdown`), as an attachment. Another user's conversation is 404.
    #[oai(
        path = "/v1/conversations/:id/export",
        method = "get",
        operation_id = "export_conversation"
    )]
    async fn export_one(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        id: Path<Uuid>,
        /// `json` (default) or `markdown`.
        format: Query<Option<ExportFormat>>,
    ) -> ApiResult<ExportOneResponse, ExportOneErrors> {
        let db = state.store.conn();
        let conversation = export::conversation(db, user.0.id, id.0).await?;
        Ok(match format.0.unwrap_or_default() {
            ExportFormat::Json => {
                let doc = export::document(vec![conversation]);
                let body = JsonBytes::new(&doc)
                    .map_err(|e| ServiceError::Internal(format!("serialize export: {e}")))?;
                ExportOneResponse::Ok(
                    ExportedContent::Json(body),
                    attachment(&format!("conversation-{}.json", id.0)),
                )
            }
            ExportFormat::Markdown => ExportOneResponse::Ok(
                ExportedContent::Markdown(Markdown(export::markdown(&conversation))),
                attachment(&format!("conversation-{}.md", id.0)),
            ),
        })
    }

    /// Export all your conversations
    ///
    /// One `genesis.export` JSON document holding every conversation with its messages, written
    /// as it is read (memory stays flat for a large account), as an attachment.
    #[oai(
        path = "/v1/users/me/export",
        method = "get",
        operation_id = "export_me"
    )]
    async fn export_all(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
    ) -> ApiResult<ExportAllResponse, ExportAllErrors> {
        state.store.check_available().map_err(ServiceError::from)?;
        let chunks = export::all_conversations(state.store.conn().clone(), user.0.id)
            .map_err(|e| std::io::Error::other(e.to_string()));
        let body = Body::from_bytes_stream(chunks);
        Ok(ExportAllResponse::Json(
            JsonStream {
                body,
                _schema: std::marker::PhantomData,
            },
            attachment("genesis-export.json"),
        ))
    }
}

fn attachment(filename: &str) -> String {
    format!("attachment; filename=\"{filename}\"")
}
