//! The rules of Genesis: guest chat, migration, accounts, conversations, audit, usage counters and
//! limits. The only code that touches sea-orm entities and the hot cache.

pub mod admin;
pub mod auth;
pub mod cache_metrics;
pub mod checksum;
pub mod clock;
pub mod context;
pub mod conversations;
pub mod digest;
pub mod embeddings;
pub mod erasure;
mod error;
pub mod export;
pub mod guest;
mod hashing;
pub mod import;
pub mod inspect;
pub mod limits;
pub mod live;
pub mod migration;
pub mod page;
mod pending;
pub mod retention;
pub mod search;
pub mod tokenize;
pub mod tokens;
pub mod usage;

pub use error::{ErrorCode, ServiceError};
pub use page::Page;
