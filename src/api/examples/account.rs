//! Examples of accounts and their conversations: sign-up with the guest, sessions, the sidebar,
//! and the error envelope every operation shares.

use poem_openapi::types::{Example, MaybeUndefined};
use serde_json::json;

use super::{CONVERSATION, GUEST_ID, GUEST_TOKEN, USER, at, id};
use crate::{
    api::{
        auth::{
            AuthSession, Credentials, EraseMe, Me, PasswordChange, RefreshRequest, Usage, User,
        },
        conversation::{ConversationChanges, SettableStatus},
        conversations::{Conversation, ConversationInput, ConversationList},
        error::{ErrorBody, ErrorDetail},
        migration::MigrationResult,
        types::{ConversationStatus, Email, GuestId, Password, StrictString},
    },
    service::ErrorCode,
};

fn user() -> User {
    User {
        id: id(USER),
        email: Some("ada@example.com".into()),
        display_name: None,
        tier: "free".into(),
        created_at: at(30),
    }
}

impl Example for Credentials {
    fn example() -> Self {
        Self {
            email: Email("ada@example.com".into()),
            password: Password("a long passphrase of mine".into()),
            guest_id: Some(GuestId(GUEST_ID.into())),
            guest_token: Some(StrictString(GUEST_TOKEN.into())),
        }
    }
}

impl Example for MigrationResult {
    fn example() -> Self {
        Self {
            migration_id: id(40),
            user_id: id(USER),
            conversation_ids: vec![id(CONVERSATION)],
            messages_migrated: 2,
            already_migrated: false,
            checksum: "5f2b0c7e9a1d4e8f6b3c2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f".into(),
        }
    }
}

impl Example for AuthSession {
    fn example() -> Self {
        Self {
            user: user(),
            access_token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIwMTlhZjNjMSJ9.c2lnbmF0dXJl".into(),
            token_type: "bearer".into(),
            expires_at: at(30 + 900),
            refresh_token: "rt_6b1f0d2c9e8a4f7b3c5d1e0a9f8b7c6d".into(),
            refresh_expires_at: at(30 + 30 * 86_400),
            migration: Some(MigrationResult::example()),
            migration_error: None,
        }
    }
}

impl Example for RefreshRequest {
    fn example() -> Self {
        Self {
            refresh_token: StrictString("rt_6b1f0d2c9e8a4f7b3c5d1e0a9f8b7c6d".into()),
        }
    }
}

impl Example for PasswordChange {
    fn example() -> Self {
        Self {
            current_password: StrictString("a long passphrase of mine".into()),
            new_password: Password("an even longer passphrase".into()),
        }
    }
}

impl Example for EraseMe {
    fn example() -> Self {
        Self {
            password: Some(StrictString("a long passphrase of mine".into())),
        }
    }
}

impl Example for Me {
    fn example() -> Self {
        Self {
            user: user(),
            usage: Usage {
                tier: "free".into(),
                total_requests: 14,
                cache_hits: 11,
                cache_misses: 3,
                messages_stored: 4,
                tokens_total: 27,
                last_request_at: Some(at(120)),
            },
        }
    }
}

impl Example for ConversationInput {
    fn example() -> Self {
        Self {
            title: Some(StrictString("Paris".into())),
            system_prompt: Some(StrictString("You are a concise geography tutor.".into())),
            model_used: Some(StrictString("gpt-4o".into())),
            temperature: Some(0.7),
            tags: Some(vec![StrictString("geography".into())]),
            ..Self::default()
        }
    }
}

impl Example for Conversation {
    fn example() -> Self {
        Self {
            id: id(CONVERSATION),
            title: "Paris".into(),
            description: None,
            agent_type: "text-generation".into(),
            model_used: Some("gpt-4o".into()),
            system_prompt: Some("You are a concise geography tutor.".into()),
            temperature: Some(0.7),
            max_tokens: None,
            status: ConversationStatus::Active,
            message_count: 2,
            token_count: 9,
            tags: json!(["geography"]),
            last_message_at: Some(at(8)),
            created_at: at(0),
            updated_at: at(30),
            origin_guest_id: Some(GUEST_ID.into()),
        }
    }
}

impl Example for ConversationList {
    fn example() -> Self {
        Self {
            conversations: vec![Conversation::example()],
            next_cursor: None,
        }
    }
}

impl Example for ConversationChanges {
    fn example() -> Self {
        Self {
            title: Some(StrictString("Capitals of Europe".into())),
            description: MaybeUndefined::Undefined,
            tags: Some(vec![
                StrictString("geography".into()),
                StrictString("europe".into()),
            ]),
            status: Some(SettableStatus::Archived),
            ..Self::default()
        }
    }
}

impl Example for ErrorBody {
    fn example() -> Self {
        Self {
            error: ErrorDetail {
                code: ErrorCode::GuestTokenInvalid,
                message: "the guest token does not match this guest".into(),
            },
        }
    }
}
