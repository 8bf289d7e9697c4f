//! Embedders: the text → vector step behind search and the semantic cache. One enum, chosen by
//! `[embeddings] provider`; every vector it returns is L2-normalised, so cosine similarity is a
//! dot product. Storage, queueing and retries are the service's (`service::embeddings`).

pub mod lexical;
#[cfg(feature = "minilm")]
pub mod minilm;
pub mod openai;

use std::sync::Arc;

use crate::{
    config::{EmbeddingSettings, Provider},
    failpoint::Failpoint,
};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedder could not start: {0}")]
    Load(String),
    #[error("model failed: {0}")]
    Model(String),
    #[error("embedding API: {0}")]
    Remote(String),
    #[error("embedding has {got} dimensions, expected {expected}")]
    WrongSize { expected: usize, got: usize },
    #[error("injected embedding failure (test failpoint embed_fail)")]
    Injected,
}

#[derive(Clone)]
pub struct Embedder {
    kind: Kind,
    /// Test-only: the next N calls fail (`GENESIS_TEST_FAILPOINTS=embed_fail:N`).
    fail: Arc<Failpoint>,
}

#[derive(Clone)]
enum Kind {
    Lexical,
    #[cfg(feature = "minilm")]
    MiniLm(Arc<minilm::MiniLm>),
    OpenAi(Arc<openai::OpenAi>),
}

impl Embedder {
    /// The configured embedder, or `None` when embeddings are off.
    pub fn from_settings(settings: &EmbeddingSettings) -> Result<Option<Self>, EmbedError> {
        let provider = settings
            .provider()
            .map_err(|e| EmbedError::Load(e.to_string()))?;
        let kind = match provider {
            Provider::None => return Ok(None),
            Provider::Lexical => Kind::Lexical,
            Provider::OpenAi => Kind::OpenAi(Arc::new(openai::OpenAi::new(settings)?)),
            #[cfg(feature = "minilm")]
            Provider::MiniLm => Kind::MiniLm(Arc::new(minilm::MiniLm::load(&settings.model_dir)?)),
            #[cfg(not(feature = "minilm"))]
            Provider::MiniLm => {
                return Err(EmbedError::Load(
                    "this binary was built without the `minilm` feature".into(),
                ));
            }
        };
        Ok(Some(Self {
            kind,
            fail: Arc::new(Failpoint::from_env("embed_fail")),
        }))
    }

    /// The built-in lexical embedder.
    pub fn lexical() -> Self {
        Self {
            kind: Kind::Lexical,
            fail: Arc::new(Failpoint::from_env("embed_fail")),
        }
    }

    /// What `cache_embeddings.model` says for this embedder's vectors.
    pub fn model_id(&self) -> &str {
        match &self.kind {
            Kind::Lexical => lexical::MODEL_ID,
            #[cfg(feature = "minilm")]
            Kind::MiniLm(_) => minilm::MODEL_ID,
            Kind::OpenAi(api) => api.model_id(),
        }
    }

    pub fn dims(&self) -> usize {
        match &self.kind {
            Kind::Lexical => lexical::DIMS,
            #[cfg(feature = "minilm")]
            Kind::MiniLm(_) => minilm::DIMS,
            Kind::OpenAi(api) => api.dims(),
        }
    }

    /// One unit vector per text, in order. CPU-bound embedders run on the blocking pool.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.fail.fire() {
            return Err(EmbedError::Injected);
        }
        let mut vectors = match &self.kind {
            Kind::Lexical if texts.len() <= 4 => texts.iter().map(|t| lexical::embed(t)).collect(),
            Kind::Lexical => {
                blocking(move || Ok(texts.iter().map(|t| lexical::embed(t)).collect())).await?
            }
            #[cfg(feature = "minilm")]
            Kind::MiniLm(model) => {
                let model = model.clone();
                blocking(move || model.embed(&texts)).await?
            }
            Kind::OpenAi(api) => api.embed(&texts).await?,
        };
        for v in &mut vectors {
            if v.len() != self.dims() {
                return Err(EmbedError::WrongSize {
                    expected: self.dims(),
                    got: v.len(),
                });
            }
            lexical::normalise(v);
        }
        Ok(vectors)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EmbedError> + Send + 'static,
) -> Result<T, EmbedError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EmbedError::Model(format!("embedding task failed: {e}")))?
}

/// Cosine similarity of two unit vectors (their dot product); 0 when the sizes differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The stored form: f32 little-endian bytes.
pub fn to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads the stored form back; `None` when the length is not a whole number of f32s.
pub fn from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The first `max_chars` characters of `text`.
pub fn clip(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_clip_respects_characters() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(from_bytes(&to_bytes(&v)), Some(v));
        assert_eq!(from_bytes(&[0, 1, 2]), None);
        assert_eq!(clip("héllo", 2), "hé");
        assert_eq!(clip("hi", 5), "hi");
    }
}
