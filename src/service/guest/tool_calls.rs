//! Tool calls on messages, as OpenAI-style chat apps send them: an assistant message may carry
//! `tool_calls` (a JSON array, kept as sent) and then needs no text; a `tool` message may name
//! the call it answers (`tool_call_id`). The same rules for guest and account messages.

use super::{NewMessage, rules::validate_content};
use crate::service::{ErrorCode, ServiceError};

/// The longest `tool_call_id` stored.
pub const MAX_TOOL_CALL_ID: usize = 256;

/// A message's text and tool parts: the text may be empty only beside `tool_calls`; text and
/// calls together count against the size limit.
pub fn validate(msg: &NewMessage, max_message_bytes: usize) -> Result<(), ServiceError> {
    match &msg.tool_calls {
        Some(calls) => {
            if msg.role != "assistant" {
                return Err(invalid(
                    "tool_calls belong on a message with role assistant",
                ));
            }
            let size = msg.content.len() + calls.len();
            if size > max_message_bytes {
                return Err(ServiceError::TooLarge {
                    size,
                    max: max_message_bytes,
                });
            }
            if !calls.starts_with('[') {
                return Err(invalid("tool_calls must be a JSON array"));
            }
            if !msg.content.is_empty() {
                validate_content(&msg.content, max_message_bytes)?;
            }
        }
        None => validate_content(&msg.content, max_message_bytes)?,
    }
    if let Some(id) = &msg.tool_call_id {
        if msg.role != "tool" {
            return Err(invalid("tool_call_id belongs on a message with role tool"));
        }
        if id.is_empty() || id.len() > MAX_TOOL_CALL_ID || id.contains('\0') {
            return Err(invalid(format!(
                "tool_call_id must be 1-{MAX_TOOL_CALL_ID} bytes without U+0000"
            )));
        }
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(ErrorCode::InvalidToolCall, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str, id: Option<&str>, calls: Option<&str>) -> NewMessage {
        NewMessage {
            role: role.into(),
            content: content.into(),
            timestamp: None,
            tokens: None,
            content_type: None,
            idempotency_key: None,
            tool_call_id: id.map(Into::into),
            tool_calls: calls.map(Into::into),
        }
    }

    fn code(m: &NewMessage, max: usize) -> Option<&'static str> {
        validate(m, max).err().map(|e| e.code().as_str())
    }

    #[test]
    fn tool_calls_go_on_assistant_messages_and_may_stand_without_text() {
        let calls = r#"[{"id":"call_1","type":"function"}]"#;
        assert_eq!(code(&msg("assistant", "", None, Some(calls)), 1000), None);
        assert_eq!(
            code(&msg("assistant", "Let me look.", None, Some(calls)), 1000),
            None
        );
        assert_eq!(
            code(&msg("user", "", None, Some(calls)), 1000),
            Some("invalid_tool_call")
        );
        assert_eq!(
            code(&msg("assistant", "", None, Some("{}")), 1000),
            Some("invalid_tool_call")
        );
        assert_eq!(
            code(&msg("assistant", "", None, None), 1000),
            Some("content_empty")
        );
        assert_eq!(
            code(&msg("assistant", "  ", None, Some(calls)), 1000),
            Some("content_empty")
        );
        // Text and calls share the size limit.
        assert_eq!(
            code(
                &msg("assistant", "hello", None, Some(calls)),
                calls.len() + 4
            ),
            Some("message_too_large")
        );
    }

    #[test]
    fn a_tool_call_id_goes_on_tool_messages() {
        assert_eq!(code(&msg("tool", "22°C", Some("call_1"), None), 100), None);
        assert_eq!(
            code(&msg("user", "22°C", Some("call_1"), None), 100),
            Some("invalid_tool_call")
        );
        assert_eq!(
            code(&msg("tool", "22°C", Some(""), None), 100),
            Some("invalid_tool_call")
        );
        let long = "x".repeat(MAX_TOOL_CALL_ID + 1);
        assert_eq!(
            code(&msg("tool", "22°C", Some(&long), None), 100),
            Some("invalid_tool_call")
        );
        assert_eq!(code(&msg("tool", "22°C", None, None), 100), None);
    }
}
