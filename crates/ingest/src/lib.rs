//! redrec-ingest: validated bulk loading of items and embeddings into Redis, and the lifecycle of
//! the indexes that serve them.
//!
//! - [`source`]: streaming readers for JSONL, CSV, Parquet and vector files (NPY / raw f32 + ids).
//! - [`validate`]: column -> field mapping and per-row validation with file, row and field.
//! - [`write`]: batched, pipelined writes with bounded in-flight batches (hash or JSON storage).
//! - [`load`]: the whole pipeline (strict or skip-invalid), with progress and a final report.
//! - [`index`]: create-if-missing, the serving alias, `FT.INFO`, schemas as RedisVL YAML.
//! - [`keyscan`]: `SCAN` over a namespace's keys, batch by batch.
//! - [`refresh`]: in-place vector refresh while serving.
//! - [`migrate`]: model / dimension migrations behind the alias, resumable, with rollback.
//! - [`calibrate`]: recall@k per `EF_RUNTIME` of the serving index, stored for the retriever's
//!   `recall_target`.
//! - [`cf`]: collaborative item vectors from interactions (implicit ALS).
//! - [`cf_field`]: publishes them as the `cf_vector` field of the live index (`FT.ALTER`).
//! - [`dataset`]: the Complete Journey catalog and the synthetic benchmark catalog.
//! - [`events`]: interaction files (views, purchases, ...) applied through the feature store's
//!   atomic event function, at the time each event happened.

pub mod calibrate;
pub mod cf;
pub mod cf_field;
pub mod dataset;
pub mod error;
pub mod events;
pub mod index;
pub mod keyscan;
pub mod load;
pub mod migrate;
pub mod partitions;
pub mod progress;
pub mod refresh;
pub mod source;
pub mod validate;
pub mod write;

pub use error::{Error, Result};

/// How long ingest waits for one reply. Bulk pipelines into an HNSW index can take seconds
/// (insertion runs on Redis's main thread), far beyond redis-rs's 500 ms default.
pub const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Opens the multiplexed connection ingest uses (with [`RESPONSE_TIMEOUT`]).
pub async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}
