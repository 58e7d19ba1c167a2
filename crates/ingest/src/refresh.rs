//! In-place vector refresh while serving: overwrite the vectors of existing items with `HSET`
//! (or `JSON.SET`) on the field the serving index reads. RediSearch re-indexes each document
//! synchronously on write, so the next query sees the new vector; queries never stop.
//!
//! Only existing items are touched: the write is a tiny Lua script that checks the key exists
//! first, so a stray id cannot create a vector-only document.

use std::{sync::Arc, time::Instant};

use futures::{StreamExt, TryStreamExt};
use redis::aio::MultiplexedConnection;
use redrec_core::{
    keys::Namespace,
    schema::{FieldKind, IndexSchema, StorageType},
    vector,
};
use serde::Serialize;

use crate::{
    Error, Result,
    index::{self, ServingIndex},
    load::{LoadOptions, OnInvalid, RowFactory},
    progress::Progress,
    source::SourceItem,
    validate::{DocValue, Mapping, Reject, Validator},
};

const SET_IF_EXISTS_HASH: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end return 0";
const SET_IF_EXISTS_JSON: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('JSON.SET', KEYS[1], ARGV[1], ARGV[2]) return 1 end return 0";

/// Summary of a refresh.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefreshReport {
    pub index: String,
    pub field: String,
    pub rows_read: u64,
    pub refreshed: u64,
    /// Ids with no item: skipped, nothing created.
    pub missing: u64,
    pub rejected: u64,
    pub secs: f64,
    pub first_rejects: Vec<Reject>,
}

impl std::fmt::Display for RefreshReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rows read {}, vectors refreshed {}, unknown ids skipped {}, rejected {}, {:.2}s ({:.0}/s) on field `{}` of {}",
            self.rows_read,
            self.refreshed,
            self.missing,
            self.rejected,
            self.secs,
            self.refreshed as f64 / self.secs.max(1e-9),
            self.field,
            self.index
        )
    }
}

/// A schema with only the vector field `field` (with `dims`), for validating vector rows.
pub(crate) fn vector_only_schema(
    schema: &IndexSchema,
    field: &str,
    dims: usize,
) -> Result<IndexSchema> {
    let mut f = schema.field(field)?.clone();
    match &mut f.kind {
        FieldKind::Vector(v) => v.dims = dims,
        other => {
            return Err(Error::Core(redrec_core::Error::FieldType {
                field: field.to_owned(),
                expected: "vector",
                actual: other.type_name(),
            }));
        }
    }
    let mut s = schema.clone();
    s.fields = vec![f];
    Ok(s)
}

/// Writes `(key, vector)` pairs to `storage_field` of existing keys; returns (written, missing).
pub async fn write_vectors(
    con: &MultiplexedConnection,
    storage: StorageType,
    storage_field: &str,
    items: Vec<(String, Vec<f32>)>,
    batch_size: usize,
    in_flight: usize,
    progress: &Progress,
) -> Result<(u64, u64)> {
    let batches: Vec<Vec<(String, Vec<f32>)>> =
        items.chunks(batch_size.max(1)).map(<[_]>::to_vec).collect();
    futures::stream::iter(batches)
        .map(|batch| {
            let mut con = con.clone();
            let mut pipe = redis::pipe();
            for (key, v) in &batch {
                match storage {
                    StorageType::Hash => pipe
                        .cmd("EVAL")
                        .arg(SET_IF_EXISTS_HASH)
                        .arg(1)
                        .arg(key)
                        .arg(storage_field)
                        .arg(vector::encode(v)),
                    StorageType::Json => pipe
                        .cmd("EVAL")
                        .arg(SET_IF_EXISTS_JSON)
                        .arg(1)
                        .arg(key)
                        .arg(format!("$.{storage_field}"))
                        .arg(serde_json::json!(v).to_string()),
                };
            }
            async move {
                let done: Vec<i64> = pipe.query_async(&mut con).await?;
                let written = done.iter().filter(|d| **d == 1).count() as u64;
                progress.inc(done.len() as u64);
                Ok::<_, Error>((written, done.len() as u64 - written))
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_fold(
            (0, 0),
            |(w, m), (w2, m2)| async move { Ok((w + w2, m + m2)) },
        )
        .await
}

/// Refreshes the vectors of the serving index's vector field `field` from `rows` (id + vector
/// columns, per `mapping`). Strict mode validates every row before writing any.
pub async fn refresh(
    con: &MultiplexedConnection,
    ns: &Namespace,
    field: &str,
    rows: Arc<dyn RowFactory>,
    mapping: &Mapping,
    opts: &LoadOptions,
) -> Result<RefreshReport> {
    let mut c = con.clone();
    let started = Instant::now();
    let alias = ns.alias();
    let live = index::info(&mut c, &alias)
        .await?
        .ok_or_else(|| Error::Index {
            index: alias.clone(),
            message: "no serving index: load items before refreshing vectors".into(),
        })?;
    let target: ServingIndex = index::serving(&mut c, ns, &live.to_schema()).await?;
    let dims = live.vector_dims(field).ok_or_else(|| Error::Index {
        index: live.name.clone(),
        message: format!("has no vector field `{field}`"),
    })?;
    let storage_field = target
        .storage_names
        .get(field)
        .cloned()
        .unwrap_or_else(|| field.to_owned());
    let schema = vector_only_schema(&target.schema, field, dims)?;
    let mut mapping = mapping.clone();
    mapping.require_vector = true;
    mapping.required.clear();
    let validator = Validator::new(schema.clone(), mapping, rows.label(), Default::default())?;

    let mut report = RefreshReport {
        index: live.name.clone(),
        field: field.to_owned(),
        ..Default::default()
    };
    // Vector rows are small next to the Redis round trips; they are validated and collected in
    // one pass, so strict mode writes nothing when any is invalid.
    let mut items = Vec::new();
    for item in rows.open()? {
        report.rows_read += 1;
        let bad = match item? {
            SourceItem::Row(row) => match validator.validate(&row) {
                Ok(doc) => {
                    if let Some((_, DocValue::Vector(v))) = doc.values.into_iter().next() {
                        items.push((doc.key, v));
                    }
                    None
                }
                Err(rs) => Some(rs),
            },
            SourceItem::Bad(r) => Some(vec![r]),
        };
        if let Some(rs) = bad {
            report.rejected += 1;
            for r in rs {
                if report.first_rejects.len() < 20 {
                    report.first_rejects.push(r);
                }
            }
        }
    }
    if report.rejected > 0 && opts.on_invalid == OnInvalid::Strict {
        return Err(Error::Invalid {
            count: report.rejected,
            first: report.first_rejects,
        });
    }
    let progress = Progress::new(opts.progress, "refresh", Some(items.len() as u64));
    let (written, missing) = write_vectors(
        con,
        schema.index.storage_type,
        &storage_field,
        items,
        opts.write.batch_size,
        opts.write.in_flight,
        &progress,
    )
    .await?;
    progress.finish();
    report.refreshed = written;
    report.missing = missing;
    report.secs = started.elapsed().as_secs_f64();
    Ok(report)
}
