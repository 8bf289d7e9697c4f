//! Examples of the chat itself: a guest's messages, an account's messages, the context window.

use poem_openapi::types::{Example, MaybeUndefined};

use super::{CONVERSATION, GUEST_ID, GUEST_TOKEN, at, id};
use crate::api::{
    context::{ConversationContext, GuestContext},
    conversations::{AccountMessageInput, Message, MessageList},
    guest::{
        GuestConversation, GuestMessage, GuestSession, MessageAck, NewGuestMessage, ReadSource,
        ToolParts,
    },
    guest_threads::{GuestConversationSummary, GuestConversations},
    message::{MessageChanges, MessageVersion, MessageVersions},
    types::{Content, ContentType, Role, StrictString},
};

const QUESTION: &str = "What is the capital of France?";
const ANSWER: &str = "Paris.";

fn guest_message(n: u8, role: Role, content: &str, tokens: i32) -> GuestMessage {
    GuestMessage {
        id: id(10 + n),
        role,
        content: content.into(),
        timestamp: at(i64::from(n) * 4),
        sequence: i64::from(n),
        content_type: ContentType::Text,
        tokens: Some(tokens),
        created_at: at(i64::from(n) * 4),
        tool_call_id: None,
        tool_calls: None,
    }
}

fn guest_messages() -> Vec<GuestMessage> {
    vec![
        guest_message(1, Role::User, QUESTION, 7),
        guest_message(2, Role::Assistant, ANSWER, 2),
    ]
}

fn account_message(n: u8, role: Role, content: &str, tokens: i32) -> Message {
    Message {
        id: id(10 + n),
        conversation_id: id(CONVERSATION),
        role,
        content: content.into(),
        content_type: ContentType::Text,
        message_index: i64::from(n),
        timestamp: at(i64::from(n) * 4),
        tokens_used: Some(tokens),
        model_used: (role == Role::Assistant).then(|| "gpt-4o".into()),
        parent_message_id: None,
        is_regeneration: false,
        is_edited: false,
        user_rating: None,
        flagged: false,
        created_at: at(i64::from(n) * 4),
        tool_call_id: None,
        tool_calls: None,
        duplicate: None,
    }
}

impl Example for NewGuestMessage {
    fn example() -> Self {
        Self {
            role: Role::User,
            content: Some(Content(QUESTION.into())),
            timestamp: Some(at(4).0.into()),
            tokens: None,
            content_type: None,
            tools: ToolParts::default(),
            conversation_id: None,
        }
    }
}

impl Example for MessageAck {
    fn example() -> Self {
        Self {
            message_id: id(11),
            conversation_id: id(CONVERSATION),
            sequence: 1,
            duplicate: false,
            guest_token: None,
        }
    }
}

impl Example for GuestSession {
    fn example() -> Self {
        Self {
            guest_id: GUEST_ID.into(),
            guest_token: GUEST_TOKEN.into(),
            expires_at: at(86_400),
        }
    }
}

impl Example for GuestConversation {
    fn example() -> Self {
        Self {
            guest_id: GUEST_ID.into(),
            conversation_id: id(CONVERSATION),
            messages: guest_messages(),
            source: ReadSource::L1,
            next_cursor: None,
        }
    }
}

impl Example for GuestContext {
    fn example() -> Self {
        Self {
            guest_id: GUEST_ID.into(),
            conversation_id: id(CONVERSATION),
            system_prompt: None,
            messages: guest_messages(),
            tokens: 9,
            truncated: false,
        }
    }
}

impl Example for AccountMessageInput {
    fn example() -> Self {
        Self {
            role: Role::Assistant,
            content: Some(Content(ANSWER.into())),
            timestamp: Some(at(8).0.into()),
            tokens: None,
            content_type: Some(ContentType::Text),
            model_used: Some(StrictString("gpt-4o".into())),
            parent_message_id: None,
            is_regeneration: None,
            tools: ToolParts::default(),
        }
    }
}

impl Example for Message {
    fn example() -> Self {
        account_message(2, Role::Assistant, ANSWER, 2)
    }
}

impl Example for MessageList {
    fn example() -> Self {
        Self {
            messages: vec![
                account_message(1, Role::User, QUESTION, 7),
                account_message(2, Role::Assistant, ANSWER, 2),
            ],
            next_cursor: None,
        }
    }
}

impl Example for MessageChanges {
    fn example() -> Self {
        Self {
            content: Some(Content("Paris, on the Seine.".into())),
            user_rating: MaybeUndefined::Value(5),
            flagged: None,
        }
    }
}

impl Example for MessageVersions {
    fn example() -> Self {
        let mut message = account_message(2, Role::Assistant, "Paris, on the Seine.", 5);
        message.is_edited = true;
        message.user_rating = Some(5);
        Self {
            message,
            versions: vec![MessageVersion {
                content: ANSWER.into(),
                tokens_used: Some(2),
                edited_at: at(60),
            }],
        }
    }
}

impl Example for ConversationContext {
    fn example() -> Self {
        Self {
            system_prompt: Some("You are a concise geography tutor.".into()),
            messages: vec![
                account_message(1, Role::User, QUESTION, 7),
                account_message(2, Role::Assistant, ANSWER, 2),
            ],
            tokens: 16,
            truncated: false,
        }
    }
}

impl Example for GuestConversationSummary {
    fn example() -> Self {
        Self {
            conversation_id: id(3),
            title: None,
            message_count: 0,
            created_at: at(3_600),
            last_activity_at: at(3_600),
            latest: true,
        }
    }
}

impl Example for GuestConversations {
    fn example() -> Self {
        Self {
            guest_id: GUEST_ID.into(),
            conversations: vec![GuestConversationSummary::example()],
        }
    }
}
