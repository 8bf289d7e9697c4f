//! Bringing data in: `POST /v1/conversations/import` takes a `genesis.export` document or a
//! ChatGPT data export's `conversations.json` (its own body limit, `limits.max_import_bytes`).

use std::{borrow::Cow, collections::HashMap};

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    payload::Json,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    ApiTags,
    error::{ApiResult, statuses},
    security::UserBearer,
};
use crate::{
    service::{
        export::ExportDocument,
        import::{ImportOutcome, ImportedSummary},
    },
    state::AppState,
};

statuses! {
    /// Importing conversations.
    ImportErrors: 400, 401, 413, 415, 422, 500, 503;
}

/// A file to import: a `genesis.export` document (version 1, as the export endpoints write it)
/// or a ChatGPT data export's `conversations.json` (an array of conversations; one conversation
/// object alone is read too).
pub struct ImportFile(pub Value);

const IMPORT_FILE: &str = "ImportFile";

impl Type for ImportFile {
    const IS_REQUIRED: bool = true;
    type RawValueType = Value;
    type RawElementValueType = Value;

    fn name() -> Cow<'static, str> {
        IMPORT_FILE.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(IMPORT_FILE.into())
    }

    fn register(registry: &mut Registry) {
        ExportDocument::register(registry);
        ChatGptConversation::register(registry);
        registry.create_schema::<Self, _>(IMPORT_FILE.into(), |_| {
            let mut chatgpt = MetaSchema::new("array");
            chatgpt.items = Some(Box::new(ChatGptConversation::schema_ref()));
            chatgpt.description = Some("A ChatGPT data export's conversations.json");
            let mut schema = MetaSchema::ANY;
            schema.description = Some(
                "A genesis.export document, or a ChatGPT export's conversations.json. A file \
                 that breaks a rule is refused whole (422 invalid_import, the message naming the \
                 JSON path of the first problem).",
            );
            schema.one_of = vec![
                ExportDocument::schema_ref(),
                MetaSchemaRef::Inline(Box::new(chatgpt)),
            ];
            schema
        });
    }

    fn as_raw_value(&self) -> Option<&Value> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Value> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for ImportFile {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        // Every shape is read by the service, which names the path of what is wrong.
        Ok(ImportFile(value.unwrap_or_default()))
    }
}

impl ToJSON for ImportFile {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

/// A conversation of a ChatGPT export (the fields Genesis reads; others are ignored). The shown
/// branch runs from `current_node` back to the root through `parent`.
#[derive(Object)]
pub struct ChatGptConversation {
    pub title: Option<String>,
    /// Seconds since 1970.
    pub create_time: Option<f64>,
    pub update_time: Option<f64>,
    pub conversation_id: Option<String>,
    /// The same as `conversation_id` in older exports.
    pub id: Option<String>,
    pub current_node: Option<String>,
    pub default_model_slug: Option<String>,
    pub mapping: HashMap<String, ChatGptNode>,
}

/// A node of the conversation tree.
#[derive(Object)]
pub struct ChatGptNode {
    pub id: Option<String>,
    pub message: Option<ChatGptMessage>,
    pub parent: Option<String>,
    pub children: Option<Vec<String>>,
}

/// A message: `author.role` is `user`, `assistant`, `system` or `tool`; `content.content_type`
/// `text` / `multimodal_text` (string `parts`), `code` (`text`, `language`) or
/// `execution_output` (`text`); other kinds and hidden messages are left out.
#[derive(Object)]
pub struct ChatGptMessage {
    pub author: ChatGptAuthor,
    pub create_time: Option<f64>,
    pub content: ChatGptContent,
    pub metadata: Option<Value>,
}

#[derive(Object)]
pub struct ChatGptAuthor {
    pub role: String,
}

#[derive(Object)]
pub struct ChatGptContent {
    pub content_type: String,
    pub parts: Option<Vec<Value>>,
    pub text: Option<String>,
    pub language: Option<String>,
}

/// What an import did.
#[derive(Object)]
#[oai(example)]
pub struct ImportResult {
    /// The conversations created, in the file's order.
    pub imported: Vec<ImportedConversation>,
    /// Conversations left out: already imported by you (or, from a `genesis.export`, still yours),
    /// or with no text on their shown branch.
    pub skipped: u64,
}

/// A conversation the import created.
#[derive(Object)]
pub struct ImportedConversation {
    pub conversation_id: Uuid,
    pub title: String,
    /// How many messages it holds.
    pub messages: u64,
}

impl From<ImportedSummary> for ImportedConversation {
    fn from(s: ImportedSummary) -> Self {
        Self {
            conversation_id: s.conversation_id,
            title: s.title,
            messages: s.messages as u64,
        }
    }
}

#[derive(ApiResponse)]
pub enum ImportResponse {
    /// At least one conversation was created.
    #[oai(status = 201)]
    Created(Json<ImportResult>),
    /// Nothing new: every conversation of the file was skipped.
    #[oai(status = 200)]
    NothingNew(Json<ImportResult>),
}

pub struct ImportApi;

#[OpenApi(tag = "ApiTags::Conversations")]
impl ImportApi {
    /// Import conversations
    ///
    /// From a `genesis.export` document or a ChatGPT data export's `conversations.json` (the
    /// branch ChatGPT shows, in order, with roles, titles and times). All or nothing: a file that
    /// breaks a rule imports nothing and is answered 422 `invalid_import` naming the JSON path of
    /// the first problem. Importing the same file again skips what is already there. The body may
    /// be up to `limits.max_import_bytes` (50 MiB by default).
    #[oai(
        path = "/v1/conversations/import",
        method = "post",
        operation_id = "import_conversations"
    )]
    async fn import(
        &self,
        state: Data<&AppState>,
        user: UserBearer,
        file: Json<ImportFile>,
    ) -> ApiResult<ImportResponse, ImportErrors> {
        let ImportOutcome { imported, skipped } =
            state.imports.import(user.0.id, &file.0.0).await?;
        let result = ImportResult {
            imported: imported.into_iter().map(Into::into).collect(),
            skipped: skipped as u64,
        };
        Ok(if result.imported.is_empty() {
            ImportResponse::NothingNew(Json(result))
        } else {
            ImportResponse::Created(Json(result))
        })
    }
}
