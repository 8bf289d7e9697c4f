//! The example of every request and response in the spec (`#[oai(example)]` on each type; the
//! two `oneOf` bodies and the Markdown export, which the framework gives no example, are added
//! by [`add_to_spec`]). One made-up chat runs through them: a guest asks about Paris, signs up
//! as Ada and carries on. Examples are values of the real types, so they always fit the schema;
//! `tests/openapi_spec.rs` checks that none is missing.

mod account;
mod admin;
mod chat;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::types::Timestamp;

/// A moment of the example chat, `offset` seconds after it began.
fn at(offset: i64) -> Timestamp {
    let start = DateTime::<Utc>::from_timestamp(1_796_464_800, 0).unwrap_or_default();
    Timestamp(start + chrono::Duration::seconds(offset))
}

/// A fixed id of the example chat (version 7 shape).
fn id(n: u8) -> Uuid {
    Uuid::from_u128(0x019a_f3c1_2b00_7000_8000_0000_0000_0000 | u128::from(n))
}

const GUEST_ID: &str = "g_3f9c2a7b41d84e0f9b6c5a1d2e3f4a5b";
const GUEST_TOKEN: &str = "9a41c3e8b27d4f60a5e1c9d8b7f6e5d4.k3Jf0x2";
const CONVERSATION: u8 = 1;
const USER: u8 = 2;

/// The examples the framework cannot attach: request bodies that are one of several shapes,
/// and the Markdown export.
pub(super) fn add_to_spec(spec: &mut Value) {
    drop_absent_fields_of_requests(spec);
    let bodies = [
        (
            "/v1/admin/guests/{guest_id}/migrate",
            "post",
            "requestBody",
            json!({"user_id": id(USER)}),
        ),
        (
            "/v1/conversations/import",
            "post",
            "requestBody",
            admin::import_example(),
        ),
    ];
    for (path, method, part, example) in bodies {
        let pointer = format!("/paths/{}/{method}/{part}/content", escape(path));
        set_examples(spec, &pointer, &example);
    }
    let pointer = format!(
        "/paths/{}/get/responses/200/content",
        escape("/v1/conversations/{id}/export")
    );
    if let Some(content) = spec.pointer_mut(&pointer).and_then(Value::as_object_mut) {
        for (media, body) in content.iter_mut() {
            if media.starts_with("text/markdown") {
                body["example"] = json!(
                    "# Paris\n\n_Exported from Genesis · conversation …_\n\n## user · 2026-12-05T10:00:00Z\n\nWhat is the capital of France?\n\n## assistant · 2026-12-05T10:00:04Z\n\nParis.\n"
                );
            }
        }
    }
}

/// A request example shows only the fields it sends: the framework writes each unset optional
/// field as `null` (which the server reads as absent).
fn drop_absent_fields_of_requests(spec: &mut Value) {
    let mut schemas = Vec::new();
    for item in spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for op in item.as_object().into_iter().flat_map(|m| m.values()) {
            let content = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object);
            for media in content.into_iter().flat_map(|c| c.values()) {
                if let Some(r) = media.pointer("/schema/$ref").and_then(Value::as_str) {
                    schemas.push(r.trim_start_matches('#').to_string());
                }
            }
        }
    }
    for pointer in schemas {
        let example = spec
            .pointer_mut(&format!("{pointer}/example"))
            .and_then(Value::as_object_mut);
        if let Some(fields) = example {
            fields.retain(|_, v| !v.is_null());
        }
    }
}

fn set_examples(spec: &mut Value, pointer: &str, example: &Value) {
    if let Some(content) = spec.pointer_mut(pointer).and_then(Value::as_object_mut) {
        for body in content.values_mut() {
            if body.get("example").is_none() {
                body["example"] = example.clone();
            }
        }
    }
}

/// A path as one JSON-pointer segment.
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}
