//! The built-in embedder: sentence-transformers all-MiniLM-L6-v2 run in-process
//! (WordPiece tokenizer + 6-layer BERT + mean pooling + L2 normalisation), 384 dims.

mod bert;
mod safetensors;
mod tokenizer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Embedder;
use crate::config::{DEFAULT_MODEL_SUBDIR, EmbedderConfig};
use crate::error::{Error, Result};

use bert::{Bert, BertConfig};
use safetensors::SafeTensors;
use tokenizer::WordPiece;

/// Reads and parses one JSON file of the model directory: a file that cannot be read is
/// [`Error::ModelMissing`], one that does not parse [`Error::ModelFormat`].
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::ModelMissing {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::ModelFormat {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// Model identifier reported by [`MiniLm::model_id`].
pub const MINILM_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Env var naming the model directory when the config leaves it unset.
pub const MODEL_DIR_ENV: &str = "REDREC_EMBEDDER__MODEL_DIR";

/// Files read from the model directory.
const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// all-MiniLM-L6-v2 loaded in memory. Immutable after loading: share one instance (it is
/// `Send + Sync`); concurrent `embed` calls run in parallel on the caller's threads.
pub struct MiniLm {
    tokenizer: WordPiece,
    bert: Bert,
    max_tokens: usize,
    batch_size: usize,
    threads: usize,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("dims", &self.bert.hidden_size())
            .field("max_tokens", &self.max_tokens)
            .field("batch_size", &self.batch_size)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// The model directory used when the config names none: `$REDREC_EMBEDDER__MODEL_DIR` if set,
/// else `<workspace>/target/redrec/models/all-minilm-l6-v2` (where `cargo xtask fetch model`
/// puts it).
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os(MODEL_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(DEFAULT_MODEL_SUBDIR),
    }
}

impl MiniLm {
    /// Loads the model from `dir` with 128-token truncation and batches of 64.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, 128, 64)
    }

    /// Loads the model from `dir`. `max_tokens` (2..=max_position_embeddings) caps the
    /// tokens per text including `[CLS]`/`[SEP]`; `batch_size` (>= 1) texts go through one
    /// forward pass.
    pub fn load_with(dir: &Path, max_tokens: usize, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidConfig {
                field: "embedder.batch_size",
                expected: "a batch size of at least 1".into(),
            });
        }
        for file in MODEL_FILES {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(Error::ModelMissing {
                    path,
                    reason: "no such file".into(),
                });
            }
        }
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        if !(2..=config.max_position_embeddings).contains(&max_tokens) {
            return Err(Error::InvalidConfig {
                field: "embedder.max_tokens",
                expected: format!(
                    "between 2 and the model's {} positions, got {max_tokens}",
                    config.max_position_embeddings
                ),
            });
        }
        let tokenizer = WordPiece::from_file(&dir.join("tokenizer.json"))?;
        let weights = SafeTensors::read(&dir.join("model.safetensors"))?;
        let bert = Bert::load(config, &weights)?;
        debug_assert!(max_tokens <= bert.max_positions());
        if tokenizer.max_id() >= bert.vocab_size() {
            return Err(Error::ModelFormat {
                path: dir.join("tokenizer.json"),
                detail: format!(
                    "token id {} is outside the model's vocabulary of {}",
                    tokenizer.max_id(),
                    bert.vocab_size()
                ),
            });
        }
        Ok(Self {
            tokenizer,
            bert,
            max_tokens,
            batch_size,
            threads: 1,
        })
    }

    /// Lets one `embed` call with more than one batch run batches on up to `threads` scoped
    /// threads (0 = one per available core). A single batch, e.g. one query, always runs on the
    /// calling thread. Default: 1.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            threads
        };
        self
    }

    /// Loads the model as `config` says: `model_dir` (or [`default_model_dir`]), `max_tokens`,
    /// `batch_size` and `threads`. The `kind` and `http` fields are not looked at.
    pub fn from_config(config: &EmbedderConfig) -> Result<Self> {
        let dir = config.model_dir.clone().unwrap_or_else(default_model_dir);
        Ok(Self::load_with(&dir, config.max_tokens, config.batch_size)?
            .with_threads(config.threads))
    }

    /// Token ids (`[CLS] ... [SEP]`, truncated to `max_tokens`) the model sees for `text`.
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, self.max_tokens)
    }
}

impl Embedder for MiniLm {
    fn dims(&self) -> usize {
        self.bert.hidden_size()
    }

    fn model_id(&self) -> &str {
        MINILM_MODEL_ID
    }

    /// Tokenizes every text, sorts them by length so each batch pads little, runs batches of
    /// `batch_size`, and returns the vectors in input order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encoded: Vec<Vec<u32>> = texts.iter().map(|t| self.token_ids(t)).collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encoded[i].len());
        let chunks: Vec<&[usize]> = order.chunks(self.batch_size).collect();
        let run = |chunk: &[usize]| {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].as_slice()).collect();
            self.bert.embed_batch(&batch, self.tokenizer.pad_id())
        };
        let threads = self.threads.min(chunks.len());
        let results: Vec<(usize, ndarray::Array2<f32>)> = if threads <= 1 {
            chunks
                .iter()
                .enumerate()
                .map(|(c, chunk)| (c, run(chunk)))
                .collect()
        } else {
            // workers take the next batch from a shared counter, so long and short batches
            // balance out
            let next = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut done = Vec::new();
                            loop {
                                let c = next.fetch_add(1, Ordering::Relaxed);
                                let Some(chunk) = chunks.get(c) else {
                                    return done;
                                };
                                done.push((c, run(chunk)));
                            }
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| {
                        w.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        };
        let mut out = vec![Vec::new(); texts.len()];
        for (c, vectors) in results {
            for (&i, row) in chunks[c].iter().zip(vectors.rows()) {
                out[i] = row.to_vec();
            }
        }
        Ok(out)
    }
}
