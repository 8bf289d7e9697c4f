//! `[embeddings]`: which embedder gives every stored message its vector, and how the pipeline,
//! search and the semantic cache use it.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Secret};

/// The embedders Genesis can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Built in: hashed character n-grams and words (lexical similarity, no model).
    Lexical,
    /// all-MiniLM-L6-v2 in-process (candle), weights from `model_dir`.
    MiniLm,
    /// Any OpenAI-compatible `POST {base_url}/embeddings`.
    OpenAi,
    /// Off: no vectors, search answers 409 `embeddings_disabled`.
    None,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSettings {
    pub provider: String,
    pub model_dir: PathBuf,
    pub base_url: String,
    pub model: String,
    pub api_key: Secret,
    pub dimensions: usize,
    pub send_dimensions: bool,
    pub batch_size: usize,
    pub timeout_ms: u64,
    pub max_retries: u32,
    pub queue_capacity: usize,
    pub max_input_chars: usize,
    pub cache_threshold: f32,
}

impl EmbeddingSettings {
    /// The configured provider; an unknown name is an error naming the key.
    pub fn provider(&self) -> Result<Provider, ConfigError> {
        match self.provider.as_str() {
            "lexical" => Ok(Provider::Lexical),
            "minilm" => Ok(Provider::MiniLm),
            "openai" => Ok(Provider::OpenAi),
            "none" => Ok(Provider::None),
            other => Err(ConfigError(format!(
                "embeddings.provider (GENESIS__EMBEDDINGS__PROVIDER): `{other}` is not one of \
                 lexical, minilm, openai, none"
            ))),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let provider = self.provider()?;
        let bad = |key: &str, why: &str| {
            Err(ConfigError(format!(
                "embeddings.{key} ({}): {why}",
                super::env_name(&format!("embeddings.{key}"))
            )))
        };
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity", "must be at least 1");
        }
        if self.max_input_chars == 0 {
            return bad("max_input_chars", "must be at least 1");
        }
        if !(self.cache_threshold > 0.0 && self.cache_threshold <= 1.0) {
            return bad("cache_threshold", "must be in (0, 1]");
        }
        if provider == Provider::OpenAi {
            if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
                return bad("base_url", "must be an http:// or https:// URL");
            }
            if self.model.trim().is_empty() {
                return bad("model", "must name the embedding model");
            }
            if self.dimensions == 0 {
                return bad("dimensions", "must be the size of the model's vectors");
            }
        }
        Ok(())
    }
}
