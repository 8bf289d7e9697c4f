//! all-MiniLM-L6-v2 in-process, as sentence-transformers runs it: the model's WordPiece
//! tokenizer (truncated at `max_seq_length`), BERT (candle, CPU, f32), mean pooling over the
//! attention mask, L2 normalisation. Weights, tokenizer and config come from one folder.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::EmbedError;

pub const MODEL_ID: &str = "all-MiniLM-L6-v2";
pub const DIMS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model, when the folder does not say.
const DEFAULT_MAX_TOKENS: usize = 256;

pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
}

fn load_error(path: &Path, err: impl std::fmt::Display) -> EmbedError {
    EmbedError::Load(format!("{}: {err}", path.display()))
}

impl MiniLm {
    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let config_path = dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| load_error(&config_path, e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| load_error(&config_path, e))?;
        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| load_error(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| load_error(&weights_path, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_error(&weights_path, e))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| load_error(&tokenizer_path, e))?;
        let max_length = max_seq_length(dir).unwrap_or(DEFAULT_MAX_TOKENS);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| load_error(&tokenizer_path, e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        Ok(Self { model, tokenizer })
    }

    /// One unit vector per text (CPU-bound: call it off the async threads).
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let failed = |e: &dyn std::fmt::Display| EmbedError::Model(e.to_string());
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| failed(&e))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings
                .iter()
                .flat_map(|e| f(e).iter().copied())
                .collect()
        };
        let device = &self.model.device;
        let tensor = |values: Vec<u32>| Tensor::from_vec(values, (rows, width), device);
        let ids = tensor(flat(|e| e.get_ids())).map_err(|e| failed(&e))?;
        let types = tensor(flat(|e| e.get_type_ids())).map_err(|e| failed(&e))?;
        let mask = tensor(flat(|e| e.get_attention_mask())).map_err(|e| failed(&e))?;
        let pooled = (|| {
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f32::MAX)?;
            summed.broadcast_div(&counts)?.to_vec2::<f32>()
        })()
        .map_err(|e| failed(&e))?;
        Ok(pooled
            .into_iter()
            .map(|mut v| {
                super::lexical::normalise(&mut v);
                v
            })
            .collect())
    }
}

/// `max_seq_length` from the folder's `sentence_bert_config.json`, when present.
fn max_seq_length(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("sentence_bert_config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("max_seq_length")?.as_u64().map(|n| n as usize)
}
