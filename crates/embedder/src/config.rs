//! `EmbedderConfig`: the plain `Deserialize` section the binaries read from `[embedder]` in
//! `redrec.toml` (or `REDREC_EMBEDDER__*` env vars) and hand to [`crate::from_config`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Directory of the model as laid out by `cargo xtask fetch model`, relative to the workspace.
pub const DEFAULT_MODEL_SUBDIR: &str = "target/redrec/models/all-minilm-l6-v2";

/// Which embedder to run and how. `kind` selects the backend; fields of the other backend are
/// ignored, so an env var such as `REDREC_EMBEDDER__KIND=http` can switch backends without
/// editing the rest of the file. Unknown keys (typos) are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    /// Backend: `minilm` (in-process, default) or `http` (an embedding service).
    pub kind: EmbedderKind,
    /// Directory holding `model.safetensors`, `tokenizer.json`, `config.json` (kind = minilm).
    /// Unset: `$REDREC_EMBEDDER__MODEL_DIR`, then `<workspace>/target/redrec/models/all-minilm-l6-v2`.
    pub model_dir: Option<PathBuf>,
    /// Texts per forward pass / per HTTP request when embedding many texts (ingest).
    pub batch_size: usize,
    /// Threads one large `embed` call may use for its batches (kind = minilm); 0 = one per
    /// core. A single query always runs on the calling thread.
    pub threads: usize,
    /// Longest input in tokens (including `[CLS]`/`[SEP]`); longer texts are truncated (kind = minilm).
    pub max_tokens: usize,
    /// Settings for kind = http.
    pub http: HttpConfig,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            kind: EmbedderKind::Minilm,
            model_dir: None,
            batch_size: 64,
            threads: 0,
            max_tokens: 128,
            http: HttpConfig::default(),
        }
    }
}

/// The backend selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedderKind {
    /// all-MiniLM-L6-v2 run in-process (384 dims).
    Minilm,
    /// A remote service speaking the OpenAI or TEI embeddings API.
    Http,
}

/// Wire protocol of the embedding service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiStyle {
    /// `POST {url}/v1/embeddings` with `{"model", "input": [...]}` (OpenAI, vLLM, Ollama, TEI's
    /// OpenAI route, ...).
    Openai,
    /// Hugging Face text-embeddings-inference: `POST {url}/embed` with `{"inputs": [...]}`.
    Tei,
}

/// Settings of the HTTP embedder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Base URL of the service, e.g. `http://127.0.0.1:8080` (the API path is appended).
    pub url: String,
    /// Protocol: `openai` or `tei`.
    pub api_style: ApiStyle,
    /// Model name sent in OpenAI-style requests (ignored by TEI).
    pub model: String,
    /// Bearer token sent as `Authorization: Bearer ...` when set.
    pub api_key: Option<String>,
    /// Dimensions every returned vector must have; checked on every response.
    pub dims: usize,
    /// Whole-request timeout in milliseconds.
    pub timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_style: ApiStyle::Openai,
            model: "sentence-transformers/all-MiniLM-L6-v2".into(),
            api_key: None,
            dims: 384,
            timeout_ms: 5_000,
        }
    }
}
