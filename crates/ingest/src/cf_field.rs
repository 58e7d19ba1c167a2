//! The collaborative vector field (`cf_vector`) of the LIVE items index: the seed's first
//! `FT.ALTER ... SCHEMA ADD` playbook, next to the new-index + alias-switch playbook of
//! [`crate::migrate`].
//!
//! First publication (the serving index has no such field):
//! 1. dual-field write: each item's collaborative vector goes into its own hash field next to
//!    `embedding` (existing items only). The serving index does not know the field yet, so
//!    queries are unaffected;
//! 2. `FT.ALTER {index} SCHEMA ADD cf_vector VECTOR HNSW ...`: RediSearch indexes the field from
//!    the documents in the background; the recorded RedisVL schema gets the field too;
//! 3. wait until `FT.INFO` reports 100% indexed.
//!
//! Re-train (the field exists with the same dimension): the vectors go through the in-place
//! refresh path ([`crate::refresh::write_vectors`]: `HSET` on existing keys, re-indexed
//! synchronously), so serving never stops; then every other item loses its old vector (a
//! re-train replaces the field: an item the new training data leaves out must not keep a vector
//! from other data). Another dimension is a migration, not a re-train, and is refused. Items
//! without a vector (too few interactions) are left out of the field: a KNN on `@cf_vector`
//! never returns them, and the retriever's text-space sources still do.
//!
//! Why `FT.ALTER` here and not a new index behind the alias: the field is added, not replaced,
//! so no query changes meaning at the switch; queries name `@cf_vector` only once it exists.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use redis::aio::MultiplexedConnection;
use redrec_core::{
    keys::Namespace,
    schema::{DistanceMetric, FieldDef, FieldKind, StorageType, VectorAlgorithm, VectorAttrs},
};
use serde::Serialize;

use crate::{
    Error, Result, index,
    keyscan::KeyScan,
    progress::{Progress, ProgressMode},
    refresh::write_vectors,
};

/// The field's name, in storage and in queries.
pub const CF_FIELD: &str = "cf_vector";

/// What a publication did.
#[derive(Debug, Clone, Serialize)]
pub struct CfReport {
    pub index: String,
    /// True when this run added the field with `FT.ALTER` (first publication).
    pub added_field: bool,
    pub written: u64,
    /// Ids with no item: nothing written, nothing created.
    pub missing: u64,
    /// Items whose vector from an earlier training was removed (re-train only).
    pub cleared: u64,
    pub write_secs: f64,
    /// Time from `FT.ALTER` until 100% indexed (first publication only).
    pub index_secs: f64,
}

/// The field definition: FLOAT32, COSINE, HNSW.
pub fn field_def(dims: usize) -> FieldDef {
    FieldDef::vector(
        CF_FIELD,
        VectorAttrs::new(dims, VectorAlgorithm::Hnsw, DistanceMetric::Cosine),
    )
}

/// Publishes `(item id, vector)` pairs as the serving index's `cf_vector` field.
pub async fn publish(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    vectors: Vec<(String, Vec<f32>)>,
    batch_size: usize,
    in_flight: usize,
) -> Result<CfReport> {
    let dims = vectors.first().map_or(0, |(_, v)| v.len());
    if dims == 0 {
        return Err(Error::Internal {
            message: "no collaborative vectors to publish".into(),
        });
    }
    if let Some((id, v)) = vectors.iter().find(|(_, v)| v.len() != dims) {
        return Err(Error::Internal {
            message: format!(
                "item `{id}`: collaborative vector has {} dimensions, the others {dims}",
                v.len()
            ),
        });
    }
    let alias = ns.alias();
    let live = index::info(con, &alias)
        .await?
        .ok_or_else(|| Error::Index {
            index: alias.clone(),
            message: "no serving index: load the catalog first".into(),
        })?;
    let mut schema = index::live_schema(con, ns, &alias)
        .await?
        .ok_or_else(|| Error::Index {
            index: alias.clone(),
            message: "disappeared".into(),
        })?;
    let existing = schema.fields.iter().find(|f| f.name == CF_FIELD).cloned();
    if let Some(f) = &existing {
        match &f.kind {
            FieldKind::Vector(a) if a.dims == dims => {}
            FieldKind::Vector(a) => {
                return Err(Error::Index {
                    index: live.name.clone(),
                    message: format!(
                        "`{CF_FIELD}` has {} dimensions, the new vectors {dims}: a dimension change is a migration (redrec-ingest migrate), not a re-train",
                        a.dims
                    ),
                });
            }
            _ => {
                return Err(Error::Index {
                    index: live.name.clone(),
                    message: format!("field `{CF_FIELD}` exists and is not a vector field"),
                });
            }
        }
    }
    let keyed: Vec<(String, Vec<f32>)> = vectors
        .into_iter()
        .map(|(id, v)| (ns.item(&id), v))
        .collect();
    let keep: HashSet<String> = keyed.iter().map(|(k, _)| k.clone()).collect();
    let progress = Progress::new(ProgressMode::Quiet, CF_FIELD, Some(keyed.len() as u64));
    let started = Instant::now();
    let (written, missing) = write_vectors(
        con,
        schema.index.storage_type,
        CF_FIELD,
        keyed,
        batch_size,
        in_flight,
        &progress,
    )
    .await?;
    let write_secs = started.elapsed().as_secs_f64();
    let mut index_secs = 0.0;
    let mut cleared = 0;
    if existing.is_some() {
        cleared = clear_others(con, ns, schema.index.storage_type, &keep, batch_size).await?;
    } else {
        let def = field_def(dims);
        redrec_store::index::add_field(con, &live.name, &schema.field_args(&def))
            .await
            .map_err(|e| Error::Index {
                index: live.name.clone(),
                message: format!("FT.ALTER SCHEMA ADD {CF_FIELD} failed: {e}"),
            })?;
        schema.fields.push(def);
        schema.index.name = live.name.clone();
        redrec_store::index::record_schema(con, ns, &live.name, &schema).await?;
        index_secs = index::wait_indexed(con, &live.name, Duration::from_secs(3600))
            .await?
            .as_secs_f64();
    }
    Ok(CfReport {
        index: live.name,
        added_field: existing.is_none(),
        written,
        missing,
        cleared,
        write_secs,
        index_secs,
    })
}

/// Removes the field from every item of the namespace not in `keep` (keys); returns how many
/// lost a vector. Deleting a field an item does not have changes nothing (and re-indexes
/// nothing).
async fn clear_others(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    storage: StorageType,
    keep: &HashSet<String>,
    batch_size: usize,
) -> Result<u64> {
    let mut scan = KeyScan::new(format!("{}*", ns.item_prefix()), batch_size.max(100));
    let mut cleared = 0;
    while let Some(keys) = scan.next_batch(con).await? {
        let stale: Vec<&String> = keys.iter().filter(|k| !keep.contains(*k)).collect();
        if stale.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for key in &stale {
            match storage {
                StorageType::Hash => pipe.cmd("HDEL").arg(key).arg(CF_FIELD),
                StorageType::Json => pipe.cmd("JSON.DEL").arg(key).arg(format!("$.{CF_FIELD}")),
            };
        }
        let done: Vec<i64> = pipe.query_async(con).await?;
        cleared += done.iter().filter(|d| **d > 0).count() as u64;
    }
    Ok(cleared)
}
