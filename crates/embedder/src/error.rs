//! The embedder's error type: user/configuration errors (bad config, missing model files, wrong
//! dimensions from a service) are kept apart from run-time failures (I/O, HTTP transport).

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading or running an embedder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid embedder config: field `{field}`: {expected}")]
    InvalidConfig {
        /// Dotted name of the offending field, e.g. `embedder.http.url`.
        field: &'static str,
        /// What was expected instead.
        expected: String,
    },

    /// The model directory or one of its files is missing.
    #[error(
        "model file {path} is missing ({reason}); run `cargo xtask fetch model` to download and extract \
         all-MiniLM-L6-v2, or set `embedder.model_dir` (env REDREC_EMBEDDER__MODEL_DIR) to its directory"
    )]
    ModelMissing {
        /// The file that was looked for.
        path: PathBuf,
        /// Why it could not be opened.
        reason: String,
    },

    /// A model file exists but its content is not what the loader expects.
    #[error("model file {path} is malformed: {detail}")]
    ModelFormat {
        /// The offending file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },

    /// The caller passed input the embedder cannot take.
    #[error("invalid embedder input: {detail}")]
    InvalidInput {
        /// What was wrong.
        detail: String,
    },

    /// The micro-batching worker thread is gone (it panicked or was shut down).
    #[error("the embedding worker has stopped")]
    WorkerStopped,

    /// The embedding service could not be reached or answered with a transport/HTTP error.
    #[error("embedding service {url}: {detail}")]
    Http {
        /// The endpoint that was called.
        url: String,
        /// Transport error or HTTP status with the start of the body.
        detail: String,
    },

    /// The embedding service answered, but not with what was asked for.
    #[error("embedding service {url} returned a bad response: {detail}")]
    BadResponse {
        /// The endpoint that was called.
        url: String,
        /// What did not match (wrong dimensions, count, JSON shape).
        detail: String,
    },
}
