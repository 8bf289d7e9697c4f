//! The rules of Genesis: guest chat, tokens, usage counters and limits. The only code that
//! touches sea-orm entities and the hot cache.

mod error;
pub mod guest;
pub mod limits;
pub mod tokens;
pub mod usage;

pub use error::{ServiceError, is_unavailable};
