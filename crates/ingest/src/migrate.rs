//! Model / dimension migrations with zero downtime, as resumable steps whose state lives in
//! `{ns}:meta:migration` (JSON).
//!
//! The new vectors get a field of their own on the same item keys (`embedding__v{N}`, a
//! dual-field write: the old vectors stay where the live index reads them) and a new index
//! `{ns}:items:v{N}` over the same key prefix, which exposes that field under the usual query name
//! (`embedding__v{N} AS embedding`). Queries keep saying `@embedding` and keep going through the
//! alias. Steps:
//!
//! 1. `plan`     create the new index (metadata is indexed from the existing keys in the background)
//! 2. `backfill` write the new vectors (resumable: the number of source rows done is saved)
//! 3. `shadow`   query old and new index for sampled items; report overlap@k
//! 4. `switch`   `FT.ALIASUPDATE` the alias to the new index (atomic for readers)
//! 5. `rollback` point the alias back at the old index (before cleanup)
//! 6. `cleanup`  drop the index no longer served and delete its vector field from the items
//!
//! Why not `FT.ALTER ... SCHEMA ADD` on the live index: queries would have to name the new
//! field at the moment it becomes complete, so the switch would be a client deploy instead of one
//! alias update, and rollback would be another deploy.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use redis::{AsyncCommands, aio::MultiplexedConnection};
use redrec_core::{
    keys::Namespace,
    schema::{FieldKind, IndexSchema, StorageType, VectorAttrs},
    vector,
};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    index::{self, IndexInfo},
    load::{LoadOptions, OnInvalid, RowFactory},
    progress::Progress,
    refresh::{vector_only_schema, write_vectors},
    source::SourceItem,
    validate::{DocValue, Mapping, Reject, Validator},
};

/// Where a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// New index created; no vectors written yet (or partly: see `rows_done`).
    Planned,
    Backfilled,
    Shadowed,
    Switched,
    RolledBack,
    CleanedUp,
}

/// Overlap of old and new results for sampled items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowReport {
    pub queries: u64,
    pub k: usize,
    pub mean_overlap: f64,
    pub min_overlap: f64,
    /// Queries whose old and new top-k share nothing.
    pub disjoint: u64,
}

/// The persisted state of a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationState {
    pub field: String,
    pub from_index: String,
    pub to_index: String,
    /// Hash field (or JSON attribute) holding the old / new vectors.
    pub from_storage: String,
    pub to_storage: String,
    pub from_dims: usize,
    pub to_dims: usize,
    #[serde(default)]
    pub storage: StorageType,
    pub step: Step,
    /// Source rows consumed by the backfill (resume point).
    pub rows_done: u64,
    pub vectors_written: u64,
    pub missing_items: u64,
    /// Items in the old index when the migration was planned.
    pub items_at_start: u64,
    pub source: String,
    pub shadow: Option<ShadowReport>,
    pub updated_at_ms: u64,
}

impl MigrationState {
    /// Whether a new migration may start (the previous one finished or was rolled back and
    /// cleaned up).
    pub fn is_finished(&self) -> bool {
        self.step == Step::CleanedUp
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn bad(message: impl Into<String>) -> Error {
    Error::Migration {
        message: message.into(),
    }
}

/// Reads the migration state, if any.
pub async fn state(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
) -> Result<Option<MigrationState>> {
    let raw: Option<String> = con.get(ns.meta("migration")).await?;
    raw.map(|r| {
        serde_json::from_str(&r).map_err(|e| Error::Internal {
            message: format!("unreadable {}: {e}", ns.meta("migration")),
        })
    })
    .transpose()
}

async fn save(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    st: &mut MigrationState,
) -> Result<()> {
    st.updated_at_ms = now_ms();
    let json = serde_json::to_string(st).expect("state serialises");
    let _: () = con.set(ns.meta("migration"), json).await?;
    Ok(())
}

/// What the new vectors look like.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Vector field (query name) to migrate, e.g. `embedding`.
    pub field: String,
    pub dims: usize,
    /// Other vector settings (algorithm, metric, HNSW parameters); `None` keeps the old ones.
    pub attrs: Option<VectorAttrs>,
}

fn version_of(index: &str) -> Option<u32> {
    index.rsplit_once(":v")?.1.parse().ok()
}

/// Step 1: creates the new index next to the serving one and records the migration.
pub async fn plan(
    con: &MultiplexedConnection,
    ns: &Namespace,
    target: &Target,
    source: &str,
) -> Result<MigrationState> {
    let mut c = con.clone();
    if let Some(st) = state(&mut c, ns).await?
        && !st.is_finished()
    {
        return Err(bad(format!(
            "a migration to {} is in progress (step {:?}): resume it, or roll it back and clean up first",
            st.to_index, st.step
        )));
    }
    let alias = ns.alias();
    let live: IndexInfo = index::info(&mut c, &alias)
        .await?
        .ok_or_else(|| bad(format!("no index behind alias {alias}: load items first")))?;
    let from_dims = live.vector_dims(&target.field).ok_or_else(|| {
        bad(format!(
            "index {} has no vector field `{}`",
            live.name, target.field
        ))
    })?;
    let from_storage = live
        .attribute(&target.field)
        .map(|a| a.identifier.trim_start_matches("$.").to_owned())
        .unwrap_or_else(|| target.field.clone());
    let schema = index::live_schema(&mut c, ns, &alias)
        .await?
        .unwrap_or_else(|| live.to_schema());
    let version = version_of(&live.name).unwrap_or(1) + 1;
    let to_index = ns.index(version);
    let to_storage = format!("{}__v{version}", target.field);

    let mut new_schema: IndexSchema = schema.clone();
    new_schema.index.name = to_index.clone();
    for f in &mut new_schema.fields {
        if f.name == target.field {
            let FieldKind::Vector(v) = &mut f.kind else {
                return Err(bad(format!("`{}` is not a vector field", target.field)));
            };
            if let Some(a) = &target.attrs {
                *v = a.clone();
            }
            v.dims = target.dims;
        }
        if new_schema.index.storage_type == StorageType::Hash {
            f.path = None;
        }
    }
    new_schema.validate()?;
    let mut storage: BTreeMap<String, String> = live.storage_names();
    storage.insert(target.field.clone(), to_storage.clone());
    index::create_if_missing(&mut c, ns, &new_schema, &to_index, &storage).await?;
    let mut st = MigrationState {
        field: target.field.clone(),
        from_index: live.name.clone(),
        to_index,
        from_storage,
        to_storage,
        from_dims,
        to_dims: target.dims,
        storage: live.storage,
        step: Step::Planned,
        rows_done: 0,
        vectors_written: 0,
        missing_items: 0,
        items_at_start: live.num_docs,
        source: source.to_owned(),
        shadow: None,
        updated_at_ms: 0,
    };
    save(&mut c, ns, &mut st).await?;
    Ok(st)
}

/// Step 2: writes the new vectors (rows with id + vector per `mapping`). Resumes after the rows
/// already done. Strict mode validates the remaining rows before writing any.
pub async fn backfill(
    con: &MultiplexedConnection,
    ns: &Namespace,
    rows: Arc<dyn RowFactory>,
    mapping: &Mapping,
    opts: &LoadOptions,
) -> Result<MigrationState> {
    let mut c = con.clone();
    let mut st = state(&mut c, ns)
        .await?
        .ok_or_else(|| bad("no migration planned"))?;
    if st.step != Step::Planned {
        return Ok(st);
    }
    let schema = index::live_schema(&mut c, ns, &st.to_index)
        .await?
        .ok_or_else(|| bad(format!("index {} is gone", st.to_index)))?;
    let vschema = vector_only_schema(&schema, &st.field, st.to_dims)?;
    let mut mapping = mapping.clone();
    mapping.require_vector = true;
    mapping.required.clear();
    let validator = Validator::new(vschema.clone(), mapping, rows.label(), Default::default())?;

    if opts.on_invalid == OnInvalid::Strict {
        let mut first: Vec<Reject> = Vec::new();
        let mut count = 0u64;
        for item in rows.open()?.skip(st.rows_done as usize) {
            let bad = match item? {
                SourceItem::Row(row) => validator.validate(&row).err(),
                SourceItem::Bad(r) => Some(vec![r]),
            };
            if let Some(rs) = bad {
                count += 1;
                first.extend(rs.into_iter().take(20usize.saturating_sub(first.len())));
            }
        }
        if count > 0 {
            return Err(Error::Invalid { count, first });
        }
    }
    let progress = Progress::new(opts.progress, "backfill", rows.known_len());
    let batch = opts.write.batch_size.max(1) * opts.write.in_flight.max(1);
    let mut it = rows.open()?.skip(st.rows_done as usize);
    loop {
        let mut items = Vec::with_capacity(batch);
        let mut consumed = 0u64;
        for item in it.by_ref() {
            consumed += 1;
            if let SourceItem::Row(row) = item?
                && let Ok(doc) = validator.validate(&row)
                && let Some((_, DocValue::Vector(v))) = doc.values.into_iter().next()
            {
                items.push((doc.key, v));
            }
            if consumed as usize >= batch {
                break;
            }
        }
        if consumed == 0 {
            break;
        }
        let (written, missing) = write_vectors(
            con,
            vschema.index.storage_type,
            &st.to_storage,
            items,
            opts.write.batch_size,
            opts.write.in_flight,
            &progress,
        )
        .await?;
        st.rows_done += consumed;
        st.vectors_written += written;
        st.missing_items += missing;
        save(&mut c, ns, &mut st).await?;
    }
    progress.finish();
    index::wait_indexed(&mut c, &st.to_index, opts.index_timeout).await?;
    st.step = Step::Backfilled;
    save(&mut c, ns, &mut st).await?;
    Ok(st)
}

fn knn_ids(reply: &redis::Value) -> Vec<String> {
    match reply {
        redis::Value::Array(items) => items
            .iter()
            .skip(1)
            .filter_map(|v| match v {
                redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn knn(
    con: &mut MultiplexedConnection,
    index: &str,
    field: &str,
    v: &[f32],
    k: usize,
) -> Result<Vec<String>> {
    let reply: redis::Value = redis::cmd("FT.SEARCH")
        .arg(index)
        .arg(format!("*=>[KNN {k} @{field} $v AS __score]"))
        .arg("PARAMS")
        .arg(2)
        .arg("v")
        .arg(vector::encode(v))
        .arg("SORTBY")
        .arg("__score")
        .arg("NOCONTENT")
        .arg("LIMIT")
        .arg(0)
        .arg(k)
        .arg("DIALECT")
        .arg(2)
        .query_async(con)
        .await?;
    Ok(knn_ids(&reply))
}

/// The vector stored in `field` of `key` (hash blob or JSON array), if any.
async fn read_vector(
    con: &mut MultiplexedConnection,
    storage: StorageType,
    key: &str,
    field: &str,
) -> Result<Option<Vec<f32>>> {
    match storage {
        StorageType::Hash => {
            let blob: Option<Vec<u8>> = con.hget(key, field).await?;
            blob.map(|b| vector::decode(&b).map_err(Error::from))
                .transpose()
        }
        StorageType::Json => {
            let raw: Option<String> = redis::cmd("JSON.GET")
                .arg(key)
                .arg(format!("$.{field}"))
                .query_async(con)
                .await?;
            let parsed: Vec<Vec<f32>> = match raw {
                Some(r) => serde_json::from_str(&r).map_err(|e| Error::Internal {
                    message: format!("{key} `$.{field}` is not a vector: {e}"),
                })?,
                None => Vec::new(),
            };
            Ok(parsed.into_iter().next())
        }
    }
}

/// Step 3: for `sample` items, queries the old index with the item's old vector and the new
/// index with its new vector, and reports the overlap of the two top-k id sets.
pub async fn shadow(
    con: &MultiplexedConnection,
    ns: &Namespace,
    sample: usize,
    k: usize,
) -> Result<MigrationState> {
    let mut c = con.clone();
    let mut st = state(&mut c, ns)
        .await?
        .ok_or_else(|| bad("no migration planned"))?;
    if !matches!(st.step, Step::Backfilled | Step::Shadowed) {
        return Err(bad(format!(
            "shadow queries need a finished backfill (step is {:?})",
            st.step
        )));
    }
    let reply: redis::Value = redis::cmd("FT.SEARCH")
        .arg(&st.from_index)
        .arg("*")
        .arg("NOCONTENT")
        .arg("LIMIT")
        .arg(0)
        .arg(sample)
        .query_async(&mut c)
        .await?;
    let keys = knn_ids(&reply);
    let (mut total, mut min, mut n, mut disjoint) = (0.0, 1.0f64, 0u64, 0u64);
    for key in keys {
        let old = read_vector(&mut c, st.storage, &key, &st.from_storage).await?;
        let new = read_vector(&mut c, st.storage, &key, &st.to_storage).await?;
        let (Some(old), Some(new)) = (old, new) else {
            continue;
        };
        let a: HashSet<String> = knn(&mut c, &st.from_index, &st.field, &old, k)
            .await?
            .into_iter()
            .collect();
        let b: HashSet<String> = knn(&mut c, &st.to_index, &st.field, &new, k)
            .await?
            .into_iter()
            .collect();
        let overlap = a.intersection(&b).count() as f64 / k.max(1) as f64;
        total += overlap;
        min = min.min(overlap);
        disjoint += u64::from(overlap == 0.0);
        n += 1;
    }
    st.shadow = Some(ShadowReport {
        queries: n,
        k,
        mean_overlap: if n > 0 { total / n as f64 } else { 0.0 },
        min_overlap: if n > 0 { min } else { 0.0 },
        disjoint,
    });
    st.step = Step::Shadowed;
    save(&mut c, ns, &mut st).await?;
    Ok(st)
}

/// Step 4: points the alias at the new index. Refuses when the backfill covered fewer items than
/// the old index had, unless `force`.
pub async fn switch(
    con: &MultiplexedConnection,
    ns: &Namespace,
    force: bool,
) -> Result<MigrationState> {
    let mut c = con.clone();
    let mut st = state(&mut c, ns)
        .await?
        .ok_or_else(|| bad("no migration planned"))?;
    if !matches!(
        st.step,
        Step::Backfilled | Step::Shadowed | Step::RolledBack | Step::Switched
    ) {
        return Err(bad(format!(
            "cannot switch before the backfill finished (step is {:?})",
            st.step
        )));
    }
    if st.vectors_written < st.items_at_start && !force {
        return Err(bad(format!(
            "only {} of {} items have new vectors; switch with force to serve the rest without vectors",
            st.vectors_written, st.items_at_start
        )));
    }
    index::point_alias(&mut c, &ns.alias(), &st.to_index).await?;
    st.step = Step::Switched;
    save(&mut c, ns, &mut st).await?;
    Ok(st)
}

/// Points the alias back at the old index (any step before cleanup).
pub async fn rollback(con: &MultiplexedConnection, ns: &Namespace) -> Result<MigrationState> {
    let mut c = con.clone();
    let mut st = state(&mut c, ns)
        .await?
        .ok_or_else(|| bad("no migration to roll back"))?;
    if st.step == Step::CleanedUp {
        return Err(bad(
            "the migration was cleaned up: the old index no longer exists",
        ));
    }
    index::point_alias(&mut c, &ns.alias(), &st.from_index).await?;
    st.step = Step::RolledBack;
    save(&mut c, ns, &mut st).await?;
    Ok(st)
}

/// Drops the index that is not served (the old one after a switch, the new one after a
/// rollback) and deletes its vector field from every item. Returns items touched.
pub async fn cleanup(con: &MultiplexedConnection, ns: &Namespace) -> Result<(MigrationState, u64)> {
    let mut c = con.clone();
    let mut st = state(&mut c, ns)
        .await?
        .ok_or_else(|| bad("no migration to clean up"))?;
    let (drop_index, drop_field) = match st.step {
        Step::Switched => (st.from_index.clone(), st.from_storage.clone()),
        Step::RolledBack => (st.to_index.clone(), st.to_storage.clone()),
        other => {
            return Err(bad(format!(
                "cleanup needs a switch or a rollback first (step is {other:?})"
            )));
        }
    };
    let serving = index::alias_target(&mut c, &ns.alias()).await?;
    if serving.as_deref() == Some(drop_index.as_str()) {
        return Err(bad(format!("{drop_index} is still served by the alias")));
    }
    let prefix = index::info(&mut c, &drop_index)
        .await?
        .and_then(|i| i.prefixes.first().cloned())
        .unwrap_or_else(|| ns.item_prefix());
    let storage = index::info(&mut c, &drop_index).await?.map(|i| i.storage);
    redrec_store::index::drop(&mut c, &drop_index, false).await?;
    redrec_store::index::forget_schema(&mut c, ns, &drop_index).await?;
    let mut touched = 0u64;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                if storage == Some(StorageType::Json) {
                    pipe.cmd("JSON.DEL").arg(k).arg(format!("$.{drop_field}"));
                } else {
                    pipe.cmd("HDEL").arg(k).arg(&drop_field);
                }
            }
            let removed: Vec<i64> = pipe.query_async(&mut c).await?;
            touched += removed.iter().filter(|r| **r > 0).count() as u64;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    st.step = Step::CleanedUp;
    save(&mut c, ns, &mut st).await?;
    Ok((st, touched))
}

/// Runs (or resumes) a migration up to and including the alias switch: plan when nothing is in
/// progress, backfill, shadow, switch. A migration already switched is returned as is.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    con: &MultiplexedConnection,
    ns: &Namespace,
    target: &Target,
    rows: Arc<dyn RowFactory>,
    mapping: &Mapping,
    opts: &LoadOptions,
    shadow_sample: usize,
    k: usize,
) -> Result<MigrationState> {
    let mut c = con.clone();
    let mut st = match state(&mut c, ns).await? {
        Some(st) if !st.is_finished() => {
            if st.to_dims != target.dims || st.field != target.field {
                return Err(bad(format!(
                    "a different migration is in progress ({} -> {} dims on `{}`, step {:?})",
                    st.from_dims, st.to_dims, st.field, st.step
                )));
            }
            st
        }
        _ => plan(con, ns, target, &rows.label()).await?,
    };
    if st.step == Step::Planned {
        st = backfill(con, ns, Arc::clone(&rows), mapping, opts).await?;
    }
    if st.step == Step::Backfilled {
        st = shadow(con, ns, shadow_sample, k).await?;
    }
    if st.step == Step::Shadowed {
        st = switch(con, ns, false).await?;
    }
    Ok(st)
}

/// Every item's `(id, text)` in the namespace (for re-embedding with a new model), sorted by id
/// so a resumed backfill sees the rows in the same order. Items without text are skipped.
pub async fn item_texts(
    con: &MultiplexedConnection,
    ns: &Namespace,
    text_field: &str,
) -> Result<Vec<(String, String)>> {
    let mut c = con.clone();
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", ns.item_prefix()))
            .arg("COUNT")
            .arg(1000)
            .arg("TYPE")
            .arg("hash")
            .query_async(&mut c)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HGET").arg(k).arg(text_field);
            }
            let texts: Vec<Option<String>> = pipe.query_async(&mut c).await?;
            for (k, t) in keys.iter().zip(texts) {
                if let (Some(id), Some(t)) = (ns.item_id(k), t) {
                    out.push((id.to_owned(), t));
                }
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Embeds the texts (each distinct text once) into id + vector rows for [`backfill`]. Blocking:
/// call it from `spawn_blocking`.
pub fn embed_rows(
    items: &[(String, String)],
    embedder: &dyn redrec_embedder::Embedder,
    batch: usize,
    mode: crate::progress::ProgressMode,
) -> Result<crate::load::MemoryRows> {
    let mut distinct: Vec<&str> = items.iter().map(|(_, t)| t.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let progress = Progress::new(mode, "embed", Some(distinct.len() as u64));
    let mut vectors = std::collections::HashMap::with_capacity(distinct.len());
    // Many batches per call, so an embedder with several threads can run them in parallel.
    for chunk in distinct.chunks(batch.max(1) * 16) {
        for (t, v) in chunk.iter().zip(embedder.embed(chunk)?) {
            vectors.insert(*t, v);
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    let rows = items
        .iter()
        .enumerate()
        .filter_map(|(i, (id, t))| {
            Some(crate::source::SourceRow {
                row: i as u64 + 1,
                columns: vec![
                    ("id".into(), crate::source::Value::Str(id.clone())),
                    (
                        "embedding".into(),
                        crate::source::Value::Vector(vectors.get(t.as_str())?.clone()),
                    ),
                ],
            })
        })
        .collect();
    Ok(crate::load::MemoryRows {
        label: format!("{} re-embedded", embedder.model_id()),
        rows: Arc::new(rows),
    })
}
