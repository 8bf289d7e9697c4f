//! The `genesis.export` format (version 1), as `GET /v1/users/me/export` writes it. Ids, times of
//! record and `origin_guest_id` are not taken from the file; everything a user wrote is.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    Incoming, IncomingMessage,
    json::{
        At, array, field, object, opt_bool, opt_f64, opt_int, opt_string, required, string, time,
    },
};
use crate::service::{
    ServiceError,
    clock::now,
    export::{FORMAT, VERSION},
};

pub(super) fn read(
    file: &Value,
    at: &At,
    max_message_bytes: usize,
) -> Result<Vec<Incoming>, ServiceError> {
    let doc = object(file, at)?;
    let format = string(required(doc, at, "format")?, &at.key("format"))?;
    if format != FORMAT {
        return Err(at.key("format").invalid(format!("expected \"{FORMAT}\"")));
    }
    match required(doc, at, "version")?.as_u64() {
        Some(v) if v == u64::from(VERSION) => {}
        _ => {
            return Err(at
                .key("version")
                .invalid(format!("this server reads version {VERSION}")));
        }
    }
    let at_list = at.key("conversations");
    array(required(doc, at, "conversations")?, &at_list)?
        .iter()
        .enumerate()
        .map(|(i, c)| conversation(c, &at_list.index(i), max_message_bytes))
        .collect()
}

fn conversation(v: &Value, at: &At, max_message_bytes: usize) -> Result<Incoming, ServiceError> {
    let c = object(v, at)?;
    let original_id = match field(c, "id") {
        None => None,
        Some(id) => Some(
            string(id, &at.key("id"))?
                .parse::<Uuid>()
                .map_err(|_| at.key("id").invalid("expected a UUID"))?,
        ),
    };
    let title = string(required(c, at, "title")?, &at.key("title"))?;
    let temperature = opt_f64(c, at, "temperature")?;
    if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(at.key("temperature").invalid("must be between 0 and 2"));
    }
    let max_tokens = opt_int(c, at, "max_tokens", 1..=i64::from(i32::MAX))?;
    let status = opt_string(c, at, "status")?.unwrap_or_else(|| "active".into());
    if !["active", "archived"].contains(&status.as_str()) {
        return Err(at
            .key("status")
            .invalid("expected \"active\" or \"archived\""));
    }
    let mut tags = Vec::new();
    if let Some(list) = field(c, "tags") {
        let at_tags = at.key("tags");
        for (i, tag) in array(list, &at_tags)?.iter().enumerate() {
            tags.push(string(tag, &at_tags.index(i))?.to_string());
        }
    }
    let created_at = optional_time(c, at, "created_at")?.unwrap_or_else(now);
    let updated_at = optional_time(c, at, "updated_at")?.unwrap_or(created_at);
    let at_messages = at.key("messages");
    let mut messages = Vec::new();
    for (i, m) in array(required(c, at, "messages")?, &at_messages)?
        .iter()
        .enumerate()
    {
        let at_m = at_messages.index(i);
        let (index, m) = message(m, &at_m, created_at)?;
        m.check(&at_m, max_message_bytes)?;
        messages.push((index, m));
    }
    // The file's order is `message_index` order when the indexes are given; they must not repeat.
    if messages.iter().all(|(index, _)| index.is_some()) {
        messages.sort_by_key(|(index, _)| *index);
        if let Some(pair) = messages.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(at_messages.invalid(format!(
                "message_index {} appears twice",
                pair[0].0.unwrap_or_default()
            )));
        }
    }
    let incoming = Incoming {
        source: format!(
            "genesis:{}",
            original_id.map_or_else(|| Uuid::new_v4().to_string(), |id| id.to_string())
        ),
        original_id,
        title: if title.trim().is_empty() {
            "Imported conversation".into()
        } else {
            title.to_string()
        },
        description: opt_string(c, at, "description")?,
        agent_type: opt_string(c, at, "agent_type")?.unwrap_or_else(|| "text-generation".into()),
        model_used: opt_string(c, at, "model_used")?,
        system_prompt: opt_string(c, at, "system_prompt")?,
        temperature,
        max_tokens: max_tokens.map(|t| t as i32),
        status,
        tags,
        created_at,
        updated_at,
        messages: messages.into_iter().map(|(_, m)| m).collect(),
    };
    incoming.check_text(at)?;
    Ok(incoming)
}

fn optional_time(
    map: &Map<String, Value>,
    at: &At,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ServiceError> {
    field(map, name).map(|v| time(v, &at.key(name))).transpose()
}

/// A message and its `message_index`, if given.
fn message(
    v: &Value,
    at: &At,
    conversation_created: DateTime<Utc>,
) -> Result<(Option<i64>, IncomingMessage), ServiceError> {
    let m = object(v, at)?;
    let index = opt_int(m, at, "message_index", 1..=i64::MAX)?;
    let timestamp = match optional_time(m, at, "timestamp")? {
        Some(t) => t,
        None => optional_time(m, at, "created_at")?.unwrap_or(conversation_created),
    };
    let message = IncomingMessage {
        role: string(required(m, at, "role")?, &at.key("role"))?.to_string(),
        content: string(required(m, at, "content")?, &at.key("content"))?.to_string(),
        content_type: opt_string(m, at, "content_type")?.unwrap_or_else(|| "text".into()),
        timestamp,
        tokens_used: opt_int(m, at, "tokens_used", 0..=i64::from(i32::MAX))?.map(|t| t as i32),
        model_used: opt_string(m, at, "model_used")?,
        user_rating: opt_int(m, at, "user_rating", 1..=5)?.map(|r| r as i16),
        is_edited: opt_bool(m, at, "is_edited")?,
        is_regeneration: opt_bool(m, at, "is_regeneration")?,
        flagged: opt_bool(m, at, "flagged")?,
        tool_call_id: opt_string(m, at, "tool_call_id")?,
        tool_calls: field(m, "tool_calls")
            .filter(|v| !v.is_null())
            .map(|v| array(v, &at.key("tool_calls")).map(|_| v.to_string()))
            .transpose()?,
    };
    Ok((index, message))
}
