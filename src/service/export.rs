//! A user's data out, in the versioned `genesis.export` format (JSON) or as Markdown: one
//! conversation, or every conversation of the user streamed a page at a time (a conversation,
//! then its messages 500 at a time), so memory stays flat however large the account is.
//!
//! ```json
//! {"format":"genesis.export","version":1,"conversations":[{…conversation…,"messages":[…]}]}
//! ```

use std::fmt::Write as _;

use entity::{conversations, messages};
use futures_util::{Stream, stream};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ServiceError, clock::rfc3339};

/// The format's name and version, the first two fields of every document.
pub const FORMAT: &str = "genesis.export";
pub const VERSION: u32 = 1;
const MESSAGES_PER_READ: u64 = 500;

/// A `genesis.export` document: one conversation, or all of a user's. `format` is always
/// `genesis.export`; `version` is 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(example)]
pub struct ExportDocument {
    pub format: String,
    pub version: u32,
    pub conversations: Vec<ExportedConversation>,
}

/// A conversation as exported; `messages` in `message_index` order. Times are RFC 3339 UTC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct ExportedConversation {
    pub id: Uuid,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    pub agent_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub model_used: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub max_tokens: Option<i32>,
    pub status: String,
    pub tags: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub origin_guest_id: Option<String>,
    pub messages: Vec<ExportedMessage>,
}

/// A message as exported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, poem_openapi::Object)]
pub struct ExportedMessage {
    pub id: Uuid,
    pub role: String,
    pub content: String,
    pub content_type: String,
    pub message_index: i64,
    /// When the client says it was written, else when it was stored.
    pub timestamp: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub tokens_used: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub model_used: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub user_rating: Option<i16>,
    #[serde(default)]
    #[oai(default)]
    pub is_edited: bool,
    #[serde(default)]
    #[oai(default)]
    pub is_regeneration: bool,
    #[serde(default)]
    #[oai(default)]
    pub flagged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub tool_call_id: Option<String>,
    /// A JSON array, as the message was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub tool_calls: Option<Vec<serde_json::Value>>,
}

impl ExportedConversation {
    pub fn new(c: &conversations::Model, messages: Vec<ExportedMessage>) -> Self {
        Self {
            id: c.id,
            title: c.title.clone(),
            description: c.description.clone(),
            agent_type: c.agent_type.clone(),
            model_used: c.model_used.clone(),
            system_prompt: c.system_prompt.clone(),
            temperature: c.temperature,
            max_tokens: c.max_tokens,
            status: c.status.clone(),
            tags: c.tags.clone(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            origin_guest_id: c.origin_guest_id.clone(),
            messages,
        }
    }
}

impl From<&messages::Model> for ExportedMessage {
    fn from(m: &messages::Model) -> Self {
        Self {
            id: m.id,
            role: m.role.clone(),
            content: m.content.clone(),
            content_type: m.content_type.clone(),
            message_index: m.message_index,
            timestamp: rfc3339(m.client_timestamp.unwrap_or(m.created_at)),
            created_at: rfc3339(m.created_at),
            tokens_used: m.tokens_used,
            model_used: m.model_used.clone(),
            user_rating: m.user_rating,
            is_edited: m.is_edited,
            is_regeneration: m.is_regeneration,
            flagged: m.flagged,
            tool_call_id: m.tool_call_id.clone(),
            tool_calls: tool_calls_value(m.tool_calls.as_deref()),
        }
    }
}

/// Stored `tool_calls` text as the JSON array it was sent as (stored text is always one).
pub fn tool_calls_value(stored: Option<&str>) -> Option<Vec<serde_json::Value>> {
    stored.and_then(|s| serde_json::from_str(s).ok())
}

/// The user's conversations as an export reads them: all but deleted ones.
fn owned(user_id: Uuid) -> sea_orm::Select<conversations::Entity> {
    conversations::Entity::find().filter(super::conversations::live(user_id))
}

/// Messages of `conversation` after `message_index` `after`, one read's worth.
async fn messages_after(
    db: &DatabaseConnection,
    conversation: Uuid,
    after: i64,
) -> Result<Vec<messages::Model>, ServiceError> {
    Ok(messages::Entity::find()
        .filter(messages::Column::ConversationId.eq(conversation))
        .filter(messages::Column::MessageIndex.gt(after))
        .order_by_asc(messages::Column::MessageIndex)
        .limit(MESSAGES_PER_READ)
        .all(db)
        .await?)
}

/// One conversation of the user (404 for anyone else's) with all its messages.
pub async fn conversation(
    db: &DatabaseConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<ExportedConversation, ServiceError> {
    let c = owned(user_id)
        .filter(conversations::Column::Id.eq(id))
        .one(db)
        .await?
        .ok_or(ServiceError::ConversationNotFound)?;
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = messages_after(db, id, after).await?;
        let Some(last) = page.last() else { break };
        after = last.message_index;
        all.extend(page.iter().map(ExportedMessage::from));
    }
    Ok(ExportedConversation::new(&c, all))
}

/// A document holding `conversations`.
pub fn document(conversations: Vec<ExportedConversation>) -> ExportDocument {
    ExportDocument {
        format: FORMAT.into(),
        version: VERSION,
        conversations,
    }
}

/// Where the streamed export of all conversations is.
enum Step {
    Start,
    /// Between conversations: the next one after this id (none yet: the first).
    Next {
        after: Option<Uuid>,
        first: bool,
    },
    /// Inside a conversation: its messages after this index.
    Messages {
        conversation: Uuid,
        after: i64,
        first: bool,
    },
    Done,
}

/// Every conversation of the user as one `genesis.export` document, produced a piece at a time
/// (conversations in id order). A database error ends the stream early (the body is then cut
/// short, which a client sees as invalid JSON).
pub fn all_conversations(
    db: DatabaseConnection,
    user_id: Uuid,
) -> impl Stream<Item = Result<Vec<u8>, ServiceError>> + Send + 'static {
    stream::unfold(Step::Start, move |step| {
        let db = db.clone();
        async move {
            let (chunk, next) = match step {
                Step::Done => return None,
                Step::Start => {
                    let head =
                        format!(r#"{{"format":"{FORMAT}","version":{VERSION},"conversations":["#);
                    (
                        Ok(head.into_bytes()),
                        Step::Next {
                            after: None,
                            first: true,
                        },
                    )
                }
                Step::Next { after, first } => match next_conversation(&db, user_id, after).await {
                    Ok(Some(c)) => {
                        let mut text = if first { String::new() } else { ",".into() };
                        match opening(&c) {
                            Ok(open) => text.push_str(&open),
                            Err(err) => return Some((Err(err), Step::Done)),
                        }
                        let next = Step::Messages {
                            conversation: c.id,
                            after: 0,
                            first: true,
                        };
                        (Ok(text.into_bytes()), next)
                    }
                    Ok(None) => (Ok(b"]}".to_vec()), Step::Done),
                    Err(err) => (Err(err), Step::Done),
                },
                Step::Messages {
                    conversation,
                    after,
                    first,
                } => match messages_after(&db, conversation, after).await {
                    Ok(page) if page.is_empty() => {
                        let next = Step::Next {
                            after: Some(conversation),
                            first: false,
                        };
                        (Ok(b"]}".to_vec()), next)
                    }
                    Ok(page) => {
                        let last = page.last().map_or(after, |m| m.message_index);
                        let mut text = Vec::new();
                        for (i, m) in page.iter().enumerate() {
                            if !(first && i == 0) {
                                text.push(b',');
                            }
                            if let Err(err) =
                                serde_json::to_writer(&mut text, &ExportedMessage::from(m))
                            {
                                return Some((
                                    Err(ServiceError::Internal(err.to_string())),
                                    Step::Done,
                                ));
                            }
                        }
                        let next = Step::Messages {
                            conversation,
                            after: last,
                            first: false,
                        };
                        (Ok(text), next)
                    }
                    Err(err) => (Err(err), Step::Done),
                },
            };
            Some((chunk, next))
        }
    })
}

async fn next_conversation(
    db: &DatabaseConnection,
    user_id: Uuid,
    after: Option<Uuid>,
) -> Result<Option<conversations::Model>, ServiceError> {
    let mut query = owned(user_id).order_by_asc(conversations::Column::Id);
    if let Some(after) = after {
        query = query.filter(conversations::Column::Id.gt(after));
    }
    Ok(query.one(db).await?)
}

/// The conversation's JSON up to its open `messages` array.
fn opening(c: &conversations::Model) -> Result<String, ServiceError> {
    let mut text = serde_json::to_string(&ExportedConversation::new(c, Vec::new()))
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    // `…,"messages":[]}` → `…,"messages":[`
    match text.strip_suffix("]}") {
        Some(open) => {
            let len = open.len();
            text.truncate(len);
            Ok(text)
        }
        None => Err(ServiceError::Internal("unexpected export shape".into())),
    }
}

/// The conversation as Markdown: its title, then each message under a heading naming the role
/// and time.
pub fn markdown(c: &ExportedConversation) -> String {
    let mut out = format!("# {}\n\n", c.title.trim());
    if let Some(description) = &c.description {
        let _ = write!(out, "{}\n\n", description.trim());
    }
    let _ = write!(
        out,
        "_Exported from Genesis · conversation {} · created {}_\n\n",
        c.id, c.created_at
    );
    for m in &c.messages {
        let _ = write!(
            out,
            "## {} · {}\n\n{}\n\n",
            m.role,
            m.timestamp,
            m.content.trim_end()
        );
        if let Some(calls) = &m.tool_calls {
            let calls = serde_json::to_string_pretty(calls).unwrap_or_default();
            let _ = write!(out, "Tool calls:\n\n```json\n{calls}\n```\n\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opening_of_a_conversation_leaves_its_messages_open() {
        let at = crate::service::clock::now();
        let c = conversations::Model {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            title: "t".into(),
            description: None,
            agent_type: "text-generation".into(),
            model_used: None,
            system_prompt: None,
            temperature: None,
            max_tokens: None,
            status: "active".into(),
            message_count: 0,
            last_index: 0,
            token_count: 0,
            is_public: false,
            is_shared: false,
            tags: serde_json::json!([]),
            last_message_at: None,
            created_at: at,
            updated_at: at,
            origin_guest_id: None,
            imported_from: None,
        };
        let open = opening(&c).expect("opening");
        assert!(open.ends_with(r#""messages":["#), "{open}");
        let whole: ExportedConversation =
            serde_json::from_str(&format!("{open}]}}")).expect("valid JSON");
        assert_eq!(whole.id, c.id);
    }
}
