//! `HttpEmbedder`: calls an embedding service, either OpenAI-compatible
//! (`POST {url}/v1/embeddings`) or Hugging Face text-embeddings-inference (`POST {url}/embed`),
//! with a blocking `ureq` client. Every response is checked: one vector per input, each with the
//! configured dimensions and finite components; vectors are L2-normalised before returning.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::Embedder;
use crate::config::{ApiStyle, HttpConfig};
use crate::error::{Error, Result};

/// Largest response body accepted (a batch of 64 vectors of 3072 dims is about 5 MB of JSON).
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// A client for a remote embedding service. Cheap to share; calls block the calling thread.
#[derive(Debug)]
pub struct HttpEmbedder {
    agent: ureq::Agent,
    endpoint: String,
    style: ApiStyle,
    model: String,
    api_key: Option<String>,
    dims: usize,
    batch_size: usize,
}

#[derive(Deserialize)]
struct OpenAiResponse {
    data: Vec<OpenAiEmbedding>,
}

#[derive(Deserialize)]
struct OpenAiEmbedding {
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl HttpEmbedder {
    /// Validates `config` and builds the client; no request is made until [`Embedder::embed`].
    pub fn new(config: &HttpConfig, batch_size: usize) -> Result<Self> {
        let url = config.url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::InvalidConfig {
                field: "embedder.http.url",
                expected: format!("an http:// or https:// base URL, got `{}`", config.url),
            });
        }
        if url.starts_with("https://") && !cfg!(feature = "https") {
            return Err(Error::InvalidConfig {
                field: "embedder.http.url",
                expected: "an http:// URL: this build has no TLS; build redrec-embedder with \
                           the `https` feature to call https:// services"
                    .into(),
            });
        }
        if config.dims == 0 {
            return Err(Error::InvalidConfig {
                field: "embedder.http.dims",
                expected: "the dimensions of the service's vectors, at least 1".into(),
            });
        }
        if config.timeout_ms == 0 {
            return Err(Error::InvalidConfig {
                field: "embedder.http.timeout_ms",
                expected: "a timeout of at least 1 ms".into(),
            });
        }
        if config.api_style == ApiStyle::Openai && config.model.trim().is_empty() {
            return Err(Error::InvalidConfig {
                field: "embedder.http.model",
                expected: "a model name (OpenAI-style requests must name one)".into(),
            });
        }
        if batch_size == 0 {
            return Err(Error::InvalidConfig {
                field: "embedder.batch_size",
                expected: "a batch size of at least 1".into(),
            });
        }
        let path = match config.api_style {
            ApiStyle::Openai => "/v1/embeddings",
            ApiStyle::Tei => "/embed",
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            agent,
            endpoint: format!("{url}{path}"),
            style: config.api_style,
            model: config.model.clone(),
            api_key: config.api_key.clone().filter(|k| !k.is_empty()),
            dims: config.dims,
            batch_size,
        })
    }

    /// The full URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn request_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let body = match self.style {
            ApiStyle::Openai => json!({ "model": self.model, "input": texts }),
            ApiStyle::Tei => json!({ "inputs": texts, "truncate": true }),
        };
        let mut request = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request
            .send(body.to_string().as_bytes())
            .map_err(|e| Error::Http {
                url: self.endpoint.clone(),
                detail: e.to_string(),
            })?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_string()
            .map_err(|e| Error::Http {
                url: self.endpoint.clone(),
                detail: format!("reading the response body: {e}"),
            })?;
        if !status.is_success() {
            let snippet: String = text.chars().take(300).collect();
            return Err(Error::Http {
                url: self.endpoint.clone(),
                detail: format!("HTTP {status}: {snippet}"),
            });
        }
        let vectors = self.parse(&text)?;
        self.check(vectors, texts.len())
    }

    fn parse(&self, text: &str) -> Result<Vec<Vec<f32>>> {
        let bad = |detail: String| Error::BadResponse {
            url: self.endpoint.clone(),
            detail,
        };
        match self.style {
            ApiStyle::Openai => {
                let parsed: OpenAiResponse = serde_json::from_str(text).map_err(|e| {
                    bad(format!(
                        "expected {{\"data\": [{{\"index\", \"embedding\": [numbers]}}]}}: {e}"
                    ))
                })?;
                let mut data = parsed.data;
                if data.iter().all(|d| d.index.is_some()) {
                    data.sort_by_key(|d| d.index);
                    if data.iter().enumerate().any(|(i, d)| d.index != Some(i)) {
                        return Err(bad("`data[].index` values are not 0..n".into()));
                    }
                }
                Ok(data.into_iter().map(|d| d.embedding).collect())
            }
            ApiStyle::Tei => serde_json::from_str(text)
                .map_err(|e| bad(format!("expected a JSON array of number arrays: {e}"))),
        }
    }

    fn check(&self, mut vectors: Vec<Vec<f32>>, expected: usize) -> Result<Vec<Vec<f32>>> {
        let bad = |detail: String| Error::BadResponse {
            url: self.endpoint.clone(),
            detail,
        };
        if vectors.len() != expected {
            return Err(bad(format!(
                "sent {expected} texts, got {} vectors",
                vectors.len()
            )));
        }
        for (i, v) in vectors.iter_mut().enumerate() {
            if v.len() != self.dims {
                return Err(bad(format!(
                    "vector {i} has {} dimensions, expected {} (embedder.http.dims); the \
                     service runs a different model than the index was built for",
                    v.len(),
                    self.dims
                )));
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if !norm.is_finite() || norm == 0.0 {
                return Err(bad(format!("vector {i} has a zero or non-finite norm")));
            }
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(vectors)
    }
}

impl Embedder for HttpEmbedder {
    fn dims(&self) -> usize {
        self.dims
    }

    fn model_id(&self) -> &str {
        &self.model
    }

    /// Sends the texts in requests of at most `batch_size`, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size) {
            out.extend(self.request_batch(chunk)?);
        }
        Ok(out)
    }
}
