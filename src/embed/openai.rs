//! Any OpenAI-compatible embeddings API (OpenAI, Ollama, vLLM, TEI, LM Studio):
//! `POST {base_url}/embeddings` with `{"model","input":[…],"encoding_format":"float"}`, answered
//! `{"data":[{"index","embedding":[…]}]}`. Calls answered 429 or 5xx, timeouts and refused
//! connections are retried with backoff (`Retry-After` honoured, up to 30 s); a vector of another
//! size than configured is an error.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::EmbedError;
use crate::config::EmbeddingSettings;

const MAX_WAIT: Duration = Duration::from_secs(30);

pub struct OpenAi {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: String,
    dims: usize,
    send_dimensions: bool,
    batch_size: usize,
    max_retries: u32,
    model_id: String,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl OpenAi {
    pub fn new(settings: &EmbeddingSettings) -> Result<Self, EmbedError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(|e| EmbedError::Load(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: format!("{}/embeddings", settings.base_url.trim_end_matches('/')),
            model: settings.model.clone(),
            api_key: settings.api_key.expose().to_string(),
            dims: settings.dimensions,
            send_dimensions: settings.send_dimensions,
            batch_size: settings.batch_size,
            max_retries: settings.max_retries,
            model_id: format!("openai:{}:{}", settings.model, settings.dimensions),
        })
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// One vector per text, in order, in calls of at most `batch_size` texts. The API refuses
    /// empty input (a message that only calls tools has no text): a blank text is not sent and
    /// gets the zero vector, which is near nothing.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let asked: Vec<String> = texts
            .iter()
            .filter(|t| !t.trim().is_empty())
            .cloned()
            .collect();
        let mut answers = Vec::with_capacity(asked.len());
        for chunk in asked.chunks(self.batch_size) {
            answers.extend(self.call_with_retries(chunk).await?);
        }
        let mut answers = answers.into_iter();
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            out.push(match text.trim().is_empty() {
                true => vec![0.0; self.dims],
                // `call` checked one vector per text.
                false => answers.next().unwrap_or_else(|| vec![0.0; self.dims]),
            });
        }
        Ok(out)
    }

    async fn call_with_retries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut attempt = 0;
        loop {
            match self.call(texts).await {
                Err(Failure::Retry(err, wait)) if attempt < self.max_retries => {
                    attempt += 1;
                    let wait = wait
                        .unwrap_or(Duration::from_millis(250 << attempt.min(7)))
                        .min(MAX_WAIT);
                    warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "embedding call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(Failure::Retry(err, _) | Failure::Fatal(err)) => return Err(err),
                Ok(vectors) => return Ok(vectors),
            }
        }
    }

    async fn call(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
        let body = Request {
            model: &self.model,
            input: texts,
            encoding_format: "float",
            dimensions: self.send_dimensions.then_some(self.dims),
        };
        let mut request = self.client.post(&self.url).json(&body);
        if !self.api_key.is_empty() {
            request = request.bearer_auth(&self.api_key);
        }
        let response = request.send().await.map_err(|e| {
            // Timeouts and refused connections are worth another try.
            Failure::Retry(
                EmbedError::Remote(format!("{}: {}", self.url, e.without_url())),
                None,
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(300).collect();
            let err = EmbedError::Remote(format!("{} answered {status}: {snippet}", self.url));
            return Err(if status.as_u16() == 429 || status.is_server_error() {
                Failure::Retry(err, wait)
            } else {
                Failure::Fatal(err)
            });
        }
        let parsed: Response = response.json().await.map_err(|e| {
            Failure::Fatal(EmbedError::Remote(format!(
                "{}: unreadable answer: {}",
                self.url,
                e.without_url()
            )))
        })?;
        self.order(parsed, texts.len()).map_err(Failure::Fatal)
    }

    /// The vectors in input order, each checked for size.
    fn order(&self, response: Response, expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        if response.data.len() != expected {
            return Err(EmbedError::Remote(format!(
                "{}: {} vectors for {expected} inputs",
                self.url,
                response.data.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
        for (position, item) in response.data.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            if item.embedding.len() != self.dims {
                return Err(EmbedError::WrongSize {
                    expected: self.dims,
                    got: item.embedding.len(),
                });
            }
            match slots.get_mut(index) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => {
                    return Err(EmbedError::Remote(format!(
                        "{}: index {index} out of range or repeated",
                        self.url
                    )));
                }
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }
}

enum Failure {
    Retry(EmbedError, Option<Duration>),
    Fatal(EmbedError),
}
