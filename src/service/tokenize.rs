//! Token counts: what a message costs in a model's context, counted once when it is written (a
//! client's own `tokens` win) with the model's BPE — `o200k_base` (GPT-4o, o-series, GPT-4.1,
//! GPT-5 and by default) or `cl100k_base` (GPT-4, GPT-3.5, the ada/3 embeddings).

use std::sync::LazyLock;

use tiktoken_rs::CoreBPE;

static O200K: LazyLock<Option<CoreBPE>> = LazyLock::new(|| tiktoken_rs::o200k_base().ok());
static CL100K: LazyLock<Option<CoreBPE>> = LazyLock::new(|| tiktoken_rs::cl100k_base().ok());

/// A tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    O200k,
    Cl100k,
}

impl Encoding {
    /// The encoding of `model` (a conversation's or message's `model_used`); `o200k_base` for
    /// unknown or no model.
    pub fn for_model(model: Option<&str>) -> Self {
        let Some(model) = model.map(str::to_ascii_lowercase) else {
            return Encoding::O200k;
        };
        let older = [
            "gpt-4-",
            "gpt-3.5",
            "gpt-35",
            "text-embedding-ada",
            "text-embedding-3",
        ];
        if model == "gpt-4" || older.iter().any(|p| model.starts_with(p)) {
            Encoding::Cl100k
        } else {
            Encoding::O200k
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200k => "o200k_base",
            Encoding::Cl100k => "cl100k_base",
        }
    }

    /// Tokens of `text` (special-token text counted as plain text, as a chat API sees it in a
    /// message). Falls back to one token per 4 bytes if the BPE data could not be loaded.
    pub fn count(self, text: &str) -> i32 {
        let bpe = match self {
            Encoding::O200k => &*O200K,
            Encoding::Cl100k => &*CL100K,
        };
        let n = match bpe {
            Some(bpe) => bpe.encode_ordinary(text).len(),
            None => text.len().div_ceil(4),
        };
        i32::try_from(n).unwrap_or(i32::MAX)
    }

    /// Tokens of a message: its text and the JSON text of its tool calls, if any.
    pub fn count_message(self, content: &str, tool_calls: Option<&str>) -> i32 {
        self.count(content)
            .saturating_add(tool_calls.map_or(0, |calls| self.count(calls)))
    }
}

/// Loads both encodings (about half a second of CPU), so the first write does not wait for it.
pub fn warm_up() {
    LazyLock::force(&O200K);
    LazyLock::force(&CL100K);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_reference_tokenizers() {
        // Counts from OpenAI's tiktoken for the same strings.
        assert_eq!(Encoding::O200k.count("hello world"), 2);
        assert_eq!(Encoding::Cl100k.count("hello world"), 2);
        assert_eq!(Encoding::O200k.count(""), 0);
        assert!(Encoding::O200k.count("<|endoftext|> is plain text here") > 1);
    }

    #[test]
    fn models_choose_their_encoding() {
        assert_eq!(Encoding::for_model(None), Encoding::O200k);
        assert_eq!(Encoding::for_model(Some("gpt-4o-mini")), Encoding::O200k);
        assert_eq!(Encoding::for_model(Some("o3")), Encoding::O200k);
        assert_eq!(Encoding::for_model(Some("gpt-4")), Encoding::Cl100k);
        assert_eq!(Encoding::for_model(Some("gpt-4-turbo")), Encoding::Cl100k);
        assert_eq!(Encoding::for_model(Some("GPT-3.5-turbo")), Encoding::Cl100k);
        assert_eq!(Encoding::for_model(Some("claude-3")), Encoding::O200k);
    }
}
