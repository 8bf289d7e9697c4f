//! A ChatGPT data export's `conversations.json`: an array of conversations, each a `mapping` of
//! nodes (`message`, `parent`, `children`) forming a tree of every branch the user tried. The
//! branch shown in ChatGPT is the path from `current_node` back to the root; that is what is
//! imported, oldest first. Text parts become the content, a code cell becomes a fenced Markdown
//! block, tool output stays a `tool` message; hidden messages (system scaffolding, custom
//! instructions, reasoning) and nodes without text are left out.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    Incoming, IncomingMessage,
    json::{At, array, epoch_seconds, field, object, opt_string, required, string},
};
use crate::service::{ServiceError, clock::now, digest::md5_hex};

/// Reads every conversation; the second value counts those with no text on their shown branch.
pub(super) fn read(
    file: &Value,
    at: &At,
    max_message_bytes: usize,
) -> Result<(Vec<Incoming>, usize), ServiceError> {
    let mut found = Vec::new();
    let mut empty = 0;
    for (i, c) in array(file, at)?.iter().enumerate() {
        let at_c = at.index(i);
        let incoming = conversation(c, &at_c, max_message_bytes)?;
        if incoming.messages.is_empty() {
            empty += 1;
        } else {
            found.push(incoming);
        }
    }
    Ok((found, empty))
}

fn time_of(
    map: &Map<String, Value>,
    at: &At,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ServiceError> {
    field(map, name)
        .map(|v| epoch_seconds(v, &at.key(name)))
        .transpose()
}

fn conversation(v: &Value, at: &At, max_message_bytes: usize) -> Result<Incoming, ServiceError> {
    let c = object(v, at)?;
    let at_mapping = at.key("mapping");
    let mapping = object(required(c, at, "mapping")?, &at_mapping)?;
    for (field, expected) in [
        ("title", Kind::Text),
        ("create_time", Kind::Number),
        ("update_time", Kind::Number),
        ("conversation_id", Kind::Text),
        ("current_node", Kind::Text),
        ("default_model_slug", Kind::Text),
    ] {
        expected.check(c, at, field)?;
    }
    for (id, node) in mapping {
        check_node(node, &at_mapping.key(id))?;
    }
    let created_at = time_of(c, at, "create_time")?.unwrap_or_else(now);
    let updated_at = time_of(c, at, "update_time")?.unwrap_or(created_at);
    let id = match opt_string(c, at, "conversation_id")? {
        Some(id) => id,
        None => match opt_string(c, at, "id")? {
            Some(id) => id,
            // No id: the conversation's own text identifies it.
            None => format!("md5:{}", md5_hex(&v.to_string())),
        },
    };
    let title = opt_string(c, at, "title")?
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "Imported conversation".into());

    let mut messages = Vec::new();
    let mut last_time = created_at;
    for node_id in shown_branch(c, mapping, at)? {
        let at_node = at_mapping.key(&node_id);
        let node = object(&mapping[&node_id], &at_node)?;
        let Some(message) = field(node, "message") else {
            continue;
        };
        let at_message = at_node.key("message");
        if let Some(m) = read_message(message, &at_message, last_time)? {
            m.check(&at_message, max_message_bytes)?;
            last_time = m.timestamp;
            messages.push(m);
        }
    }
    let incoming = Incoming {
        source: format!("chatgpt:{id}"),
        original_id: None,
        title,
        description: None,
        agent_type: "text-generation".into(),
        model_used: opt_string(c, at, "default_model_slug")?,
        system_prompt: None,
        temperature: None,
        max_tokens: None,
        status: if c.get("is_archived").and_then(Value::as_bool) == Some(true) {
            "archived".into()
        } else {
            "active".into()
        },
        tags: Vec::new(),
        created_at,
        updated_at,
        messages,
    };
    incoming.check_text(at)?;
    Ok(incoming)
}

/// What a documented field of the export holds when it is there (`null` stands for absent).
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    Object,
    Array,
}

impl Kind {
    fn check(self, map: &Map<String, Value>, at: &At, name: &str) -> Result<(), ServiceError> {
        let Some(v) = field(map, name) else {
            return Ok(());
        };
        let at = at.key(name);
        match self {
            Kind::Text => string(v, &at).map(drop),
            Kind::Number if v.is_number() => Ok(()),
            Kind::Number => epoch_seconds(v, &at).map(drop),
            Kind::Object => object(v, &at).map(drop),
            Kind::Array => array(v, &at).map(drop),
        }
    }
}

/// Every node has the documented shape, shown or not: a file the spec does not describe is
/// refused, not half read.
fn check_node(v: &Value, at: &At) -> Result<(), ServiceError> {
    let node = object(v, at)?;
    for (name, kind) in [
        ("id", Kind::Text),
        ("parent", Kind::Text),
        ("message", Kind::Object),
    ] {
        kind.check(node, at, name)?;
    }
    Kind::Array.check(node, at, "children")?;
    if let Some(children) = field(node, "children") {
        for (i, child) in array(children, &at.key("children"))?.iter().enumerate() {
            string(child, &at.key("children").index(i))?;
        }
    }
    let Some(message) = field(node, "message") else {
        return Ok(());
    };
    let at = at.key("message");
    let m = object(message, &at)?;
    let at_author = at.key("author");
    let author = object(required(m, &at, "author")?, &at_author)?;
    string(
        required(author, &at_author, "role")?,
        &at_author.key("role"),
    )?;
    Kind::Number.check(m, &at, "create_time")?;
    let at_content = at.key("content");
    let content = object(required(m, &at, "content")?, &at_content)?;
    string(
        required(content, &at_content, "content_type")?,
        &at_content.key("content_type"),
    )?;
    Kind::Array.check(content, &at_content, "parts")?;
    Kind::Text.check(content, &at_content, "text")?;
    Kind::Text.check(content, &at_content, "language")
}

/// The node ids from the root to `current_node` (or, without one, to the newest leaf reached by
/// the last child at each step).
fn shown_branch(
    c: &Map<String, Value>,
    mapping: &Map<String, Value>,
    at: &At,
) -> Result<Vec<String>, ServiceError> {
    let at_mapping = at.key("mapping");
    let leaf = match field(c, "current_node") {
        Some(v) => {
            let leaf = string(v, &at.key("current_node"))?;
            if !mapping.contains_key(leaf) {
                return Err(at
                    .key("current_node")
                    .invalid(format!("names node \"{leaf}\", which is not in mapping")));
            }
            leaf.to_string()
        }
        None => match newest_leaf(mapping, &at_mapping)? {
            Some(leaf) => leaf,
            None => return Ok(Vec::new()),
        },
    };
    let mut branch = vec![leaf.clone()];
    let mut seen = HashSet::from([leaf.clone()]);
    let mut node = leaf;
    loop {
        let at_node = at_mapping.key(&node);
        let parent = match field(object(&mapping[&node], &at_node)?, "parent") {
            None => break,
            Some(p) => string(p, &at_node.key("parent"))?.to_string(),
        };
        if !mapping.contains_key(&parent) {
            return Err(at_node
                .key("parent")
                .invalid(format!("names node \"{parent}\", which is not in mapping")));
        }
        if !seen.insert(parent.clone()) {
            return Err(at_node.key("parent").invalid("the parent chain loops"));
        }
        branch.push(parent.clone());
        node = parent;
    }
    branch.reverse();
    Ok(branch)
}

/// Without `current_node`: from the root (the node without a parent), the last child each time.
fn newest_leaf(mapping: &Map<String, Value>, at: &At) -> Result<Option<String>, ServiceError> {
    let Some(mut node) = mapping
        .iter()
        .find(|(_, n)| n.get("parent").is_none_or(Value::is_null))
        .map(|(id, _)| id.clone())
    else {
        return Ok(None);
    };
    let mut seen = HashSet::from([node.clone()]);
    loop {
        let at_node = at.key(&node);
        let next = match field(object(&mapping[&node], &at_node)?, "children") {
            None => None,
            Some(children) => match array(children, &at_node.key("children"))?.last() {
                None => None,
                Some(child) => Some(string(child, &at_node.key("children"))?.to_string()),
            },
        };
        match next {
            Some(child) if mapping.contains_key(&child) && seen.insert(child.clone()) => {
                node = child;
            }
            _ => return Ok(Some(node)),
        }
    }
}

/// One node's message, or `None` when it has nothing to show.
fn read_message(
    v: &Value,
    at: &At,
    previous: DateTime<Utc>,
) -> Result<Option<IncomingMessage>, ServiceError> {
    let m = object(v, at)?;
    let at_author = at.key("author");
    let author = object(required(m, at, "author")?, &at_author)?;
    let role = string(
        required(author, &at_author, "role")?,
        &at_author.key("role"),
    )?;
    if !["user", "assistant", "system", "tool"].contains(&role) {
        return Err(at_author
            .key("role")
            .invalid("expected one of user, assistant, system, tool"));
    }
    let metadata = field(m, "metadata").and_then(Value::as_object);
    let hidden = metadata
        .and_then(|meta| meta.get("is_visually_hidden_from_conversation"))
        .and_then(Value::as_bool)
        == Some(true);
    if hidden {
        return Ok(None);
    }
    let at_content = at.key("content");
    let content = object(required(m, at, "content")?, &at_content)?;
    let kind = string(
        required(content, &at_content, "content_type")?,
        &at_content.key("content_type"),
    )?;
    let (text, content_type) = match kind {
        "text" | "multimodal_text" => (parts(content, &at_content)?, "text"),
        "code" => {
            let code = opt_string(content, &at_content, "text")?.unwrap_or_default();
            let language = opt_string(content, &at_content, "language")?
                .filter(|l| l != "unknown")
                .unwrap_or_default();
            let fenced = if code.trim().is_empty() {
                String::new()
            } else {
                format!("```{language}\n{}\n```", code.trim_end())
            };
            (fenced, "markdown")
        }
        "execution_output" => (
            opt_string(content, &at_content, "text")?.unwrap_or_default(),
            "text",
        ),
        // Reasoning, browsing displays, custom instructions: not part of the chat as shown.
        _ => return Ok(None),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let content_type = if role == "assistant" && content_type == "text" {
        "markdown"
    } else {
        content_type
    };
    let timestamp = field(m, "create_time")
        .map(|t| epoch_seconds(t, &at.key("create_time")))
        .transpose()?
        .unwrap_or(previous);
    Ok(Some(IncomingMessage {
        role: role.to_string(),
        content: text,
        content_type: content_type.into(),
        timestamp,
        tokens_used: None,
        model_used: metadata
            .and_then(|meta| meta.get("model_slug"))
            .and_then(Value::as_str)
            .map(str::to_string),
        user_rating: None,
        is_edited: false,
        is_regeneration: false,
        flagged: false,
        tool_call_id: None,
        tool_calls: None,
    }))
}

/// The text parts, one after another; images and other attachments are not text and are left
/// out.
fn parts(content: &Map<String, Value>, at: &At) -> Result<String, ServiceError> {
    let Some(list) = field(content, "parts") else {
        return Ok(String::new());
    };
    let texts: Vec<&str> = array(list, &at.key("parts"))?
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| !t.is_empty())
        .collect();
    Ok(texts.join("\n\n"))
}
