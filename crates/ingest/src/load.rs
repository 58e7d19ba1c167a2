//! The bulk-load pipeline: read -> validate -> batch -> pipelined writes -> index -> alias.
//!
//! Strict mode (the default) reads the whole input once to validate it and writes nothing if any
//! row is invalid; then it reads it again to write. Skip mode validates and writes in one pass
//! and records rejected rows, with reasons, in a JSONL file. Writes are `HSET`s of whole items, so
//! loading the same input twice leaves the same data (idempotent).
//!
//! When the namespace has no index yet, the index is created before the first write (after
//! strict mode's validation pass, so an invalid input still leaves nothing behind) and each
//! `HSET` is indexed as it lands; the alias is pointed at it only once the catalog is complete.
//! Creating it after writing made RediSearch index the existing keys with its background scan,
//! which costs more server CPU and yields the main thread every few documents: about 1.5x the
//! time to a searchable catalog (docs/INGEST.md). The report says how long the index took to
//! reach 100% after the last write (`FT.INFO` `percent_indexed`).

use std::{
    io::Write,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use redis::aio::MultiplexedConnection;
use redrec_core::{keys::Namespace, schema::IndexSchema};
use serde::Serialize;

use crate::{
    Error, Result,
    index::{self, ServingIndex},
    progress::{Progress, ProgressMode},
    source::{Rows, SourceItem, SourceRow},
    validate::{ItemDoc, Mapping, Reject, Validator},
    write::{WriteOptions, write_stream},
};

/// What to do with invalid rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnInvalid {
    /// Validate everything first; write nothing if any row is invalid.
    Strict,
    /// Write the valid rows; append rejected ones (with reasons) to this JSONL file when given.
    Skip { rejects: Option<PathBuf> },
}

/// Everything a load needs besides the rows.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub on_invalid: OnInvalid,
    pub write: WriteOptions,
    pub progress: ProgressMode,
    /// Longest wait for the index to report 100% indexed.
    pub index_timeout: Duration,
    /// Create the index and alias when missing (otherwise a missing index is an error).
    pub create_index: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            on_invalid: OnInvalid::Strict,
            write: WriteOptions::default(),
            progress: ProgressMode::Auto,
            index_timeout: Duration::from_secs(1800),
            create_index: true,
        }
    }
}

/// The final summary of a load.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub index: String,
    pub alias: String,
    pub created_index: bool,
    pub rows_read: u64,
    pub written: u64,
    pub rejected: u64,
    /// Seconds spent validating before writing (strict mode's first pass).
    pub validate_secs: f64,
    /// Seconds spent reading, validating and writing (the write pass).
    pub write_secs: f64,
    pub items_per_sec: f64,
    /// Seconds from the end of writing (or from `FT.CREATE`) until `percent_indexed` was 1.
    pub index_secs: f64,
    /// Up to 20 rejects, for the summary.
    pub first_rejects: Vec<Reject>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rows read {}, written {}, rejected {}; write {:.1}s ({:.0} items/s){}; 100% indexed {:.2}s later; index {} behind alias {}{}",
            self.rows_read,
            self.written,
            self.rejected,
            self.write_secs,
            self.items_per_sec,
            if self.validate_secs > 0.0 {
                format!(", validation pass {:.1}s", self.validate_secs)
            } else {
                String::new()
            },
            self.index_secs,
            self.index,
            self.alias,
            if self.created_index { " (created)" } else { "" },
        )
    }
}

/// A way to (re)open the rows of one input: strict mode opens it twice.
pub trait RowFactory: Send + Sync + 'static {
    fn open(&self) -> Result<Rows>;
    /// Label used in messages (the file name).
    fn label(&self) -> String;
    /// Row count when known without reading.
    fn known_len(&self) -> Option<u64> {
        None
    }
}

impl RowFactory for crate::source::SourceSpec {
    fn open(&self) -> Result<Rows> {
        crate::source::SourceSpec::open(self)
    }
    fn label(&self) -> String {
        self.display()
    }
    fn known_len(&self) -> Option<u64> {
        crate::source::SourceSpec::known_len(self)
    }
}

/// Loads rows into the serving index of `ns` (creating index and alias from `template` when
/// the namespace has none).
pub async fn load(
    con: &MultiplexedConnection,
    ns: &Namespace,
    template: &IndexSchema,
    rows: Arc<dyn RowFactory>,
    mapping: &Mapping,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let mut c = con.clone();
    let target = index::serving(&mut c, ns, template).await?;
    if !target.exists && !opts.create_index {
        return Err(Error::Index {
            index: target.index,
            message: "does not exist (and index creation is off)".into(),
        });
    }
    check_dims(&target, template)?;
    let validator = Arc::new(Validator::new(
        target.schema.clone(),
        mapping.clone(),
        rows.label(),
        target.storage_names.clone(),
    )?);

    let mut validate_secs = 0.0;
    let mut total = rows.known_len();
    if opts.on_invalid == OnInvalid::Strict {
        let started = Instant::now();
        let (count, rejected, first) = {
            let rows = Arc::clone(&rows);
            let validator = Arc::clone(&validator);
            let progress = opts.progress;
            tokio::task::spawn_blocking(move || validate_all(&*rows, &validator, progress))
                .await
                .map_err(|e| Error::Internal {
                    message: format!("validation task: {e}"),
                })??
        };
        validate_secs = started.elapsed().as_secs_f64();
        if rejected > 0 {
            return Err(Error::Invalid {
                count: rejected,
                first,
            });
        }
        total = Some(count);
    }

    let created = create_index(con, ns, &target).await?;
    let mut report = write_pass(con, &target, rows, validator, total, opts).await?;
    report.validate_secs = validate_secs;
    report.created_index = created;
    finish_index(con, &target, opts, &mut report).await?;
    Ok(report)
}

/// Refuses to write vectors of one dimension into an index built for another.
fn check_dims(target: &ServingIndex, template: &IndexSchema) -> Result<()> {
    for f in &target.schema.fields {
        if let redrec_core::schema::FieldKind::Vector(live) = &f.kind
            && let Ok(want) = template.vector_field(&f.name)
            && target.exists
            && want.dims != live.dims
        {
            return Err(Error::Index {
                index: target.index.clone(),
                message: format!(
                    "vector field `{}` has {} dims but the configured schema has {}: use `redrec-ingest migrate` to change dimensions",
                    f.name, live.dims, want.dims
                ),
            });
        }
    }
    Ok(())
}

fn validate_all(
    rows: &dyn RowFactory,
    validator: &Validator,
    mode: ProgressMode,
) -> Result<(u64, u64, Vec<Reject>)> {
    let progress = Progress::new(mode, "validate", rows.known_len());
    let (mut count, mut rejected, mut first) = (0u64, 0u64, Vec::new());
    for item in rows.open()? {
        count += 1;
        let bad = match item? {
            SourceItem::Row(row) => validator.validate(&row).err(),
            SourceItem::Bad(r) => Some(vec![r]),
        };
        if let Some(rs) = bad {
            rejected += 1;
            for r in rs {
                if first.len() < 20 {
                    first.push(r);
                }
            }
        }
        if count % 1024 == 0 {
            progress.inc(1024);
        }
    }
    progress.finish();
    Ok((count, rejected, first))
}

async fn write_pass(
    con: &MultiplexedConnection,
    target: &ServingIndex,
    rows: Arc<dyn RowFactory>,
    validator: Arc<Validator>,
    total: Option<u64>,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let started = Instant::now();
    let batch_size = opts.write.batch_size.max(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<ItemDoc>>(opts.write.in_flight.max(1));
    let rejects_path = match &opts.on_invalid {
        OnInvalid::Skip { rejects } => rejects.clone(),
        OnInvalid::Strict => None,
    };
    // The reader/validator runs on a blocking thread and hands full batches over a bounded
    // channel: when Redis is slower than the files, the reader waits.
    let producer = tokio::task::spawn_blocking(move || -> Result<(u64, u64, Vec<Reject>)> {
        let mut rejects_out = match &rejects_path {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| Error::io(p, e))?,
            )),
            None => None,
        };
        let (mut read, mut rejected, mut first) = (0u64, 0u64, Vec::new());
        let mut batch = Vec::with_capacity(batch_size);
        for item in rows.open()? {
            read += 1;
            let bad = match item? {
                SourceItem::Row(row) => match validator.validate(&row) {
                    Ok(doc) => {
                        batch.push(doc);
                        None
                    }
                    Err(rs) => Some(rs),
                },
                SourceItem::Bad(r) => Some(vec![r]),
            };
            if let Some(rs) = bad {
                rejected += 1;
                for r in rs {
                    if let (Some(out), Some(p)) = (rejects_out.as_mut(), rejects_path.as_ref()) {
                        let line = serde_json::to_string(&r).expect("reject serialises");
                        writeln!(out, "{line}").map_err(|e| Error::io(p, e))?;
                    }
                    if first.len() < 20 {
                        first.push(r);
                    }
                }
            }
            if batch.len() >= batch_size {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                if tx.blocking_send(full).is_err() {
                    break; // the writer failed; its error is reported
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        if let (Some(out), Some(p)) = (rejects_out.as_mut(), rejects_path.as_ref()) {
            out.flush().map_err(|e| Error::io(p, e))?;
        }
        Ok((read, rejected, first))
    });
    let progress = Progress::new(opts.progress, "write", total);
    let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let written = write_stream(con, &target.schema, batches, opts.write, &progress).await;
    progress.finish();
    let produced = producer.await.map_err(|e| Error::Internal {
        message: format!("reader task: {e}"),
    })?;
    let written = written?;
    let (read, rejected, first) = produced?;
    let secs = started.elapsed().as_secs_f64();
    Ok(LoadReport {
        index: target.index.clone(),
        alias: target.alias.clone(),
        created_index: false,
        rows_read: read,
        written,
        rejected,
        validate_secs: 0.0,
        write_secs: secs,
        items_per_sec: written as f64 / secs.max(1e-9),
        index_secs: 0.0,
        first_rejects: first,
    })
}

/// Before writing: creates the index when the namespace has none (true when it did), so every
/// write is indexed as it lands.
async fn create_index(
    con: &MultiplexedConnection,
    ns: &Namespace,
    target: &ServingIndex,
) -> Result<bool> {
    if target.exists {
        return Ok(false);
    }
    let mut c = con.clone();
    index::create_if_missing(
        &mut c,
        ns,
        &target.schema,
        &target.index,
        &target.storage_names,
    )
    .await
}

/// After writing: point the alias at the index and wait for 100%.
async fn finish_index(
    con: &MultiplexedConnection,
    target: &ServingIndex,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<()> {
    let mut c = con.clone();
    let started = Instant::now();
    if index::alias_target(&mut c, &target.alias).await?.as_deref() != Some(target.index.as_str()) {
        index::point_alias(&mut c, &target.alias, &target.index).await?;
    }
    index::wait_indexed(&mut c, &target.index, opts.index_timeout).await?;
    report.index_secs = started.elapsed().as_secs_f64();
    Ok(())
}

/// Loads in-memory items (datasets): same validation, batching, index and alias handling.
pub async fn load_docs(
    con: &MultiplexedConnection,
    ns: &Namespace,
    template: &IndexSchema,
    docs: Vec<ItemDoc>,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let mut c = con.clone();
    let target = index::serving(&mut c, ns, template).await?;
    check_dims(&target, template)?;
    let started = Instant::now();
    let n = docs.len() as u64;
    let created = create_index(con, ns, &target).await?;
    let progress = Progress::new(opts.progress, "write", Some(n));
    let docs = rename_storage(docs, &target);
    let written =
        crate::write::write_docs(con, &target.schema, docs, opts.write, &progress).await?;
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let mut report = LoadReport {
        index: target.index.clone(),
        alias: target.alias.clone(),
        created_index: created,
        rows_read: n,
        written,
        rejected: 0,
        validate_secs: 0.0,
        write_secs: secs,
        items_per_sec: written as f64 / secs.max(1e-9),
        index_secs: 0.0,
        first_rejects: Vec::new(),
    };
    finish_index(con, &target, opts, &mut report).await?;
    Ok(report)
}

/// Renames fields stored under another name in the live index (after a migration).
fn rename_storage(mut docs: Vec<ItemDoc>, target: &ServingIndex) -> Vec<ItemDoc> {
    if target.storage_names.is_empty() {
        return docs;
    }
    for d in &mut docs {
        for (name, _) in &mut d.values {
            if let Some(s) = target.storage_names.get(name.as_str()) {
                *name = s.clone();
            }
        }
    }
    docs
}

/// In-memory rows as a re-openable source.
pub struct MemoryRows {
    pub label: String,
    pub rows: Arc<Vec<SourceRow>>,
}

impl RowFactory for MemoryRows {
    fn open(&self) -> Result<Rows> {
        let rows = Arc::clone(&self.rows);
        Ok(Box::new(
            (0..rows.len()).map(move |i| Ok(SourceItem::Row(rows[i].clone()))),
        ))
    }
    fn label(&self) -> String {
        self.label.clone()
    }
    fn known_len(&self) -> Option<u64> {
        Some(self.rows.len() as u64)
    }
}
