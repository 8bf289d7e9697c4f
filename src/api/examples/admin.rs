//! Examples of operations, search, import and export.

use poem_openapi::types::Example;
use serde_json::{Value, json};

use super::{CONVERSATION, GUEST_ID, USER, at, id};
use crate::{
    api::{
        admin::{
            CheckResult, EmbeddingStats, GuestLayersView, L1Stats, L1View, L2View, LayerMessage,
            MappingView, MigrationList, MigrationRecord, Stats, VerifyResult,
        },
        admin_guests::{GuestList, GuestListItem, GuestStatus, LiveSample, LiveSamples},
        health::{Health, Readiness},
        import::{ImportResult, ImportedConversation},
        search::{CachedAnswer, LookupRequest, LookupResult, SearchResult, SearchResults},
        types::{Content, ContentType, MigrationStatus, Role},
    },
    service::export::{ExportDocument, ExportedConversation, ExportedMessage},
};

impl Example for Health {
    fn example() -> Self {
        Self {
            status: "ok".into(),
        }
    }
}

impl Example for Readiness {
    fn example() -> Self {
        Self {
            status: "ready".into(),
            sql: "up".into(),
            sql_backend: "sqlite".into(),
            l1: "up".into(),
            l1_backend: "memory".into(),
            writer: "up".into(),
            writer_panics: 0,
            embeddings: "lexical".into(),
            embedding_backlog: 0,
            embedding_failures: 0,
        }
    }
}

impl Example for Stats {
    fn example() -> Self {
        let counts = [1, 1, 2, 1, 1, 2, 2, 1, 6, 2];
        Self {
            tables: crate::service::inspect::TABLES
                .iter()
                .zip(counts)
                .map(|(t, n)| ((*t).to_string(), n))
                .collect(),
            empty: Default::default(),
            l1: L1Stats {
                backend: "memory".into(),
                state: "up".into(),
                hit_ratio: 0.92,
            },
            embeddings: EmbeddingStats {
                provider: "lexical".into(),
                model: Some("genesis-lexical-384".into()),
                backlog: 0,
                stored: 2,
                failures: 0,
            },
            uptime_secs: 3_600,
        }
    }
}

impl Example for VerifyResult {
    fn example() -> Self {
        Self {
            ok: true,
            checks: vec![CheckResult {
                name: "migrated_counts_match".into(),
                ok: true,
                detail: "1 completed migration; every conversation holds its migrated messages"
                    .into(),
            }],
        }
    }
}

fn migration_record() -> MigrationRecord {
    MigrationRecord {
        id: id(40),
        guest_id: GUEST_ID.into(),
        user_id: id(USER).to_string(),
        status: MigrationStatus::Completed,
        conversations_migrated: 1,
        messages_migrated: 2,
        checksum: Some("5f2b0c7e9a1d4e8f6b3c2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f".into()),
        conversation_ids: json!([id(CONVERSATION)]),
        error: None,
        started_at: at(30),
        completed_at: Some(at(30)),
    }
}

impl Example for MigrationList {
    fn example() -> Self {
        Self {
            migrations: vec![migration_record()],
        }
    }
}

impl Example for GuestLayersView {
    fn example() -> Self {
        Self {
            guest_id: GUEST_ID.into(),
            l1: L1View {
                present: false,
                messages: 0,
                ttl_secs: None,
            },
            l2: Some(L2View {
                conversation_id: id(CONVERSATION),
                messages: 2,
                expires_at: None,
            }),
            mapping: MappingView { rows: 2, synced: 2 },
            embeddings: 2,
            usage: None,
            migration: Some(migration_record()),
            messages: vec![
                LayerMessage {
                    conversation_id: id(CONVERSATION),
                    sequence: 1,
                    role: "user".into(),
                    content: "What is the capital of France?".into(),
                    created_at: at(4),
                },
                LayerMessage {
                    conversation_id: id(CONVERSATION),
                    sequence: 2,
                    role: "assistant".into(),
                    content: "Paris.".into(),
                    created_at: at(8),
                },
            ],
        }
    }
}

impl Example for GuestList {
    fn example() -> Self {
        Self {
            guests: vec![GuestListItem {
                guest_id: GUEST_ID.into(),
                conversation_id: id(CONVERSATION),
                conversations: 1,
                messages: 2,
                created_at: at(0),
                last_activity_at: at(30),
                expires_at: None,
                migrated_to: Some(id(USER).to_string()),
                status: GuestStatus::Migrated,
            }],
            next_cursor: None,
        }
    }
}

impl Example for LiveSamples {
    fn example() -> Self {
        Self {
            interval_secs: 2,
            samples: vec![LiveSample {
                at: at(30),
                requests_per_sec: 412.5,
                errors_per_sec: 0.0,
                p50_ms: Some(0.7),
                p95_ms: Some(2.1),
                p99_ms: Some(4.6),
                writer_queue: 3,
                writer_batch: Some(12.4),
                embedding_backlog: 0,
                l1_hit_ratio: 0.92,
            }],
        }
    }
}

impl Example for SearchResults {
    fn example() -> Self {
        Self {
            results: vec![SearchResult {
                message_id: id(11),
                conversation_id: id(CONVERSATION),
                role: Role::User,
                content: "What is the capital of France?".into(),
                timestamp: at(4),
                score: 0.83,
            }],
        }
    }
}

impl Example for LookupRequest {
    fn example() -> Self {
        Self {
            prompt: Content("what's the capital of France".into()),
            threshold: Some(0.9),
            conversation_id: None,
            guest_id: None,
        }
    }
}

impl Example for LookupResult {
    fn example() -> Self {
        Self {
            hit: true,
            similarity: Some(0.97),
            prompt_message_id: Some(id(11)),
            response: Some(CachedAnswer {
                message_id: id(12),
                conversation_id: id(CONVERSATION),
                role: Role::Assistant,
                content: "Paris.".into(),
                content_type: ContentType::Text,
                timestamp: at(8),
            }),
            best_similarity: None,
        }
    }
}

impl Example for ImportResult {
    fn example() -> Self {
        Self {
            imported: vec![ImportedConversation {
                conversation_id: id(CONVERSATION),
                title: "Paris".into(),
                messages: 2,
            }],
            skipped: 0,
        }
    }
}

fn exported_message(n: u8, role: &str, content: &str) -> ExportedMessage {
    let time = at(i64::from(n) * 4)
        .0
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    ExportedMessage {
        id: id(10 + n),
        role: role.into(),
        content: content.into(),
        content_type: "text".into(),
        message_index: i64::from(n),
        timestamp: time.clone(),
        created_at: time,
        tokens_used: None,
        model_used: None,
        user_rating: None,
        is_edited: false,
        is_regeneration: false,
        flagged: false,
        tool_call_id: None,
        tool_calls: None,
    }
}

impl Example for ExportDocument {
    fn example() -> Self {
        let time = |s| at(s).0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        Self {
            format: "genesis.export".into(),
            version: 1,
            conversations: vec![ExportedConversation {
                id: id(CONVERSATION),
                title: "Paris".into(),
                description: None,
                agent_type: "text-generation".into(),
                model_used: Some("gpt-4o".into()),
                system_prompt: None,
                temperature: None,
                max_tokens: None,
                status: "active".into(),
                tags: json!(["geography"]),
                created_at: time(0),
                updated_at: time(30),
                origin_guest_id: Some(GUEST_ID.into()),
                messages: vec![
                    exported_message(1, "user", "What is the capital of France?"),
                    exported_message(2, "assistant", "Paris."),
                ],
            }],
        }
    }
}

/// An import body: a `genesis.export` file (a ChatGPT `conversations.json` is the other shape).
pub(super) fn import_example() -> Value {
    let mut doc = ExportDocument::example();
    // A file brought from elsewhere: its ids and times are kept only as its origin.
    if let Some(c) = doc.conversations.first_mut() {
        c.origin_guest_id = None;
    }
    serde_json::to_value(doc).unwrap_or_default()
}
