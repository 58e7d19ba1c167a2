//! Batched, pipelined writes with a bounded number of batches in flight.
//!
//! Each batch is one Redis pipeline (`HSET` per item, or `JSON.SET` for JSON storage). Up to
//! `in_flight` pipelines are outstanding on the multiplexed connection at once: enough to keep
//! Redis busy while the next batch is built, few enough that memory stays bounded (the producer
//! blocks on a bounded channel).

use futures::{Stream, StreamExt, TryStreamExt};
use redis::aio::MultiplexedConnection;
use redrec_core::schema::{IndexSchema, StorageType};
use serde::{Deserialize, Serialize};

use crate::{
    Result,
    progress::Progress,
    validate::{ItemDoc, hash_args, json_doc},
};

/// Batch size and concurrency of writes (the `[ingest]` section of the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteOptions {
    /// Items per pipeline.
    pub batch_size: usize,
    /// Pipelines outstanding at once.
    pub in_flight: usize,
}

impl Default for WriteOptions {
    /// Measured on the embedded Redis (see docs/INGEST.md): beyond 4 x 500 the server, not the
    /// client, is the bottleneck.
    fn default() -> Self {
        WriteOptions {
            batch_size: 500,
            in_flight: 4,
        }
    }
}

/// Builds the pipeline writing one batch.
pub fn batch_pipeline(schema: &IndexSchema, batch: &[ItemDoc]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for doc in batch {
        match schema.index.storage_type {
            StorageType::Hash => {
                let args = hash_args(doc, schema);
                if args.is_empty() {
                    continue;
                }
                let cmd = pipe.cmd("HSET").arg(&doc.key);
                for (f, v) in args {
                    cmd.arg(f).arg(v);
                }
                cmd.ignore();
            }
            StorageType::Json => {
                // Merge into an existing document so a vector-only load keeps the metadata.
                let doc_json = json_doc(doc, schema);
                pipe.cmd("JSON.MERGE")
                    .arg(&doc.key)
                    .arg("$")
                    .arg(doc_json.to_string())
                    .ignore();
            }
        }
    }
    pipe
}

/// Writes every batch of `batches`, at most `opts.in_flight` at a time. Returns items written.
pub async fn write_stream<S>(
    con: &MultiplexedConnection,
    schema: &IndexSchema,
    batches: S,
    opts: WriteOptions,
    progress: &Progress,
) -> Result<u64>
where
    S: Stream<Item = Vec<ItemDoc>>,
{
    batches
        .map(|batch| {
            let mut con = con.clone();
            let pipe = batch_pipeline(schema, &batch);
            let n = batch.len() as u64;
            async move {
                let () = pipe.query_async(&mut con).await?;
                progress.inc(n);
                Ok::<u64, crate::Error>(n)
            }
        })
        .buffer_unordered(opts.in_flight.max(1))
        .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
        .await
}

/// Writes in-memory docs in batches (datasets and tests).
pub async fn write_docs(
    con: &MultiplexedConnection,
    schema: &IndexSchema,
    docs: Vec<ItemDoc>,
    opts: WriteOptions,
    progress: &Progress,
) -> Result<u64> {
    let size = opts.batch_size.max(1);
    let mut batches = Vec::new();
    let mut it = docs.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(size).collect::<Vec<_>>());
    }
    write_stream(con, schema, futures::stream::iter(batches), opts, progress).await
}
