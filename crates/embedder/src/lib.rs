//! redrec-embedder: turns text into L2-normalised vectors, either in-process with
//! all-MiniLM-L6-v2 ([`MiniLm`]) or through an embedding service over HTTP ([`HttpEmbedder`]).
//!
//! Embedding is blocking CPU work (or a blocking HTTP call). Callers on an async runtime wrap
//! calls in `tokio::task::spawn_blocking` so runtime worker threads never stall; the embedder is
//! `Send + Sync` and is meant to be built once at startup and shared behind an `Arc`.

mod config;
mod error;
mod http;
mod minilm;
mod serving;

pub use config::{ApiStyle, DEFAULT_MODEL_SUBDIR, EmbedderConfig, EmbedderKind, HttpConfig};
pub use error::{Error, Result};
pub use http::HttpEmbedder;
pub use minilm::{MINILM_MODEL_ID, MODEL_DIR_ENV, MiniLm, default_model_dir};
pub use serving::{BatchStats, EmbeddingCache, MicroBatcher};

/// A text embedder. Every returned vector has [`Embedder::dims`] components and unit L2 norm.
pub trait Embedder: Send + Sync {
    /// Number of components of every vector this embedder returns.
    fn dims(&self) -> usize;

    /// Identifier of the model, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    fn model_id(&self) -> &str;

    /// Embeds `texts`, returning one vector per text, in order. Blocking.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;

    /// Embeds one text. Blocking.
    fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let mut out = self.embed(&[text])?;
        out.pop().ok_or_else(|| Error::InvalidInput {
            detail: "embedder returned no vector for one text".into(),
        })
    }
}

impl std::fmt::Debug for dyn Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.model_id())
            .field("dims", &self.dims())
            .finish()
    }
}

/// Builds the embedder described by `config`. Loads model files (or checks the HTTP settings)
/// once; call it at startup, not per request.
pub fn from_config(config: &EmbedderConfig) -> Result<Box<dyn Embedder>> {
    if config.batch_size == 0 {
        return Err(Error::InvalidConfig {
            field: "embedder.batch_size",
            expected: "a batch size of at least 1".into(),
        });
    }
    Ok(match config.kind {
        EmbedderKind::Minilm => Box::new(MiniLm::from_config(config)?),
        EmbedderKind::Http => Box::new(HttpEmbedder::new(&config.http, config.batch_size)?),
    })
}
