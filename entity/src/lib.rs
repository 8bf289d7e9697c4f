//! sea-orm entities for every Genesis table: the main database (`users`, `conversations`,
//! `messages`, `usage_metrics`) and the L2 cache tables (`conversation_cache`, `message_cache`,
//! `cache_embeddings`, `cache_content_mapping`, `cache_metrics`, `cache_migrations`), and the
//! sign-in sessions (`refresh_tokens`).

pub mod cache_content_mapping;
pub mod cache_embeddings;
pub mod cache_metrics;
pub mod cache_migrations;
pub mod conversation_cache;
pub mod conversations;
pub mod message_cache;
pub mod message_versions;
pub mod messages;
pub mod refresh_tokens;
pub mod usage_metrics;
pub mod users;
