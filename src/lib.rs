//! Genesis: a chat-history server for LLM chat apps, with guest chat that moves into the account.

pub mod api;
pub mod cli;
pub mod config;
pub mod embed;
pub mod failpoint;
pub mod hot;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
