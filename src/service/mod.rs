//! The rules of Genesis: guest chat, tokens, usage counters and limits. The only code that
//! touches sea-orm entities and the hot cache.

pub mod admin;
pub mod auth;
pub mod conversations;
mod error;
pub mod guest;
pub mod limits;
pub mod migration;
pub mod tokens;
pub mod usage;

pub use error::{ServiceError, is_unavailable};
