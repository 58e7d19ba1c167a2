//! The bench's synthetic catalog: a pipelined loader (timed until the index reports 100%
//! indexed) and reading the catalog back from Redis for brute-force recall.
//!
//! The items come from the one generator, `redrec_core::synthetic` (the same catalog
//! `cargo xtask seed synthetic` loads), written as hashes under `{ns}:item:{id}` into the default
//! item schema (`redrec_core::schema::items_schema`) behind the alias `{ns}:items`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use redis::{Value, aio::MultiplexedConnection};
use redrec_core::{
    keys::Namespace,
    reply::{IndexInfo, info_field},
    schema::{ItemFields, VectorSettings, items_schema},
    synthetic::{Synthetic, SyntheticParams},
    vector,
};
use redrec_store::index;
use tokio::{sync::Semaphore, task::JoinSet};

/// The index settings used by the bench (the default item schema at dimension `dim`).
pub fn vector_settings(dim: usize) -> VectorSettings {
    VectorSettings {
        dims: dim,
        ..VectorSettings::default()
    }
}

/// HNSW build parameters of the bench's index (`--hnsw-m`, `--ef-construction`); the default is
/// the project's default schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswBuild {
    pub m: u32,
    pub ef_construction: u32,
}

impl Default for HnswBuild {
    fn default() -> Self {
        let d = VectorSettings::default();
        HnswBuild {
            m: d.m,
            ef_construction: d.ef_construction,
        }
    }
}

/// What the loader measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IngestResult {
    pub items: usize,
    pub dim: usize,
    pub seed: u64,
    pub batch: usize,
    pub in_flight: usize,
    /// Seconds from the first HSET to the last reply.
    pub write_secs: f64,
    /// Seconds from the first HSET until FT.INFO reports 100% indexed and all docs present.
    pub indexed_secs: f64,
    pub items_per_sec: f64,
    pub used_memory_before: u64,
    pub used_memory_after: u64,
    pub memory_per_item_bytes: f64,
}

/// A multiplexed connection without redis-rs's default 500 ms response timeout (bulk loads and
/// index drops take longer); request-path deadlines are applied by the callers.
pub async fn connect(url: &str) -> Result<MultiplexedConnection> {
    let shown = redrec_core::config::redact_url(url);
    let client = redis::Client::open(url).with_context(|| format!("redis url {shown}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(60)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to redis at {shown}"))
}

/// Drops every index, alias and key of the namespace (the bench's own, on its own Redis).
pub async fn drop_namespace(con: &mut MultiplexedConnection, ns: &Namespace) -> Result<()> {
    index::remove_alias(con, &ns.alias()).await?;
    let prefix = format!("{}:", ns.name());
    for idx in index::list(con)
        .await?
        .iter()
        .filter(|i| i.starts_with(&prefix))
    {
        index::drop(con, idx, true)
            .await
            .with_context(|| format!("dropping index {idx}"))?;
    }
    let keys = scan_keys(con, &format!("{prefix}*")).await?;
    for chunk in keys.chunks(1000) {
        let _: Value = redis::cmd("UNLINK").arg(chunk).query_async(con).await?;
    }
    Ok(())
}

async fn scan_keys(con: &mut MultiplexedConnection, pattern: &str) -> Result<Vec<String>> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(5000)
            .query_async(con)
            .await?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// `used_memory` once it stops moving (index memory is freed in the background after a drop).
pub async fn settled_used_memory(con: &mut MultiplexedConnection) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = used_memory(con).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = used_memory(con).await?;
        if now.abs_diff(last) * 200 < last.max(1) || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// `used_memory` from INFO memory.
pub async fn used_memory(con: &mut MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(con).await?;
    info_field(&info, "used_memory")
        .and_then(|v| v.parse().ok())
        .context("INFO memory has no used_memory")
}

/// `process_id` from INFO server (to sample the server's CPU).
pub async fn server_pid(con: &mut MultiplexedConnection) -> Result<u32> {
    let info: String = redis::cmd("INFO").arg("server").query_async(con).await?;
    info_field(&info, "process_id")
        .and_then(|v| v.parse().ok())
        .context("INFO server has no process_id")
}

/// What `FT.INFO` says about an index or alias (documents, indexing progress).
pub async fn index_info(con: &mut MultiplexedConnection, index: &str) -> Result<IndexInfo> {
    Ok(index::require_info(con, index).await?)
}

/// Creates the index and alias, writes the catalog with `in_flight` pipelines of `batch` HSETs
/// and waits until the index reports every item indexed.
pub async fn load(
    con: &MultiplexedConnection,
    ns: &Namespace,
    spec: SyntheticParams,
    hnsw: HnswBuild,
    batch: usize,
    in_flight: usize,
) -> Result<IngestResult> {
    let mut c = con.clone();
    let schema = items_schema(
        &ns.index(1),
        &ns.item_prefix(),
        &ItemFields::default(),
        &VectorSettings {
            m: hnsw.m,
            ef_construction: hnsw.ef_construction,
            ..vector_settings(spec.dims)
        },
    );
    let before = settled_used_memory(&mut c).await?;
    index::create(&mut c, &schema.ft_create_args())
        .await
        .context("FT.CREATE of the bench index")?;
    index::point_alias(&mut c, &ns.alias(), &ns.index(1))
        .await
        .context("pointing the bench alias")?;
    let generator = Arc::new(Synthetic::new(spec));
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let mut next_report = Instant::now() + Duration::from_secs(5);
    for first in (0..spec.items).step_by(batch) {
        let permit = permits.clone().acquire_owned().await?;
        let generator = generator.clone();
        let mut c = con.clone();
        let ns = ns.clone();
        let last = (first + batch as u64).min(spec.items);
        tasks.spawn(async move {
            let mut pipe = redis::pipe();
            for i in first..last {
                let item = generator.item(i);
                pipe.cmd("HSET")
                    .arg(ns.item(&item.id))
                    .arg("text")
                    .arg(&item.text)
                    .arg("category")
                    .arg(&item.category)
                    .arg("department")
                    .arg(&item.department)
                    .arg("brand")
                    .arg(&item.brand)
                    .arg("price")
                    .arg(item.price)
                    .arg("popularity")
                    .arg(item.popularity)
                    .arg("in_stock")
                    .arg(if item.in_stock { "true" } else { "false" })
                    .arg("embedding")
                    .arg(vector::encode(&item.vector))
                    .ignore();
            }
            let r: redis::RedisResult<()> = pipe.query_async(&mut c).await;
            drop(permit);
            r
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
        if Instant::now() > next_report {
            next_report += Duration::from_secs(5);
            eprintln!(
                "bench: loaded {last}/{} items ({:.0} items/s)",
                spec.items,
                last as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let write_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let asked = Instant::now();
        let info = index_info(&mut c, &ns.alias()).await?;
        if info.num_docs >= spec.items && info.percent_indexed >= 1.0 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "index still not complete an hour after the writes: {} docs, {} indexed",
                info.num_docs,
                info.percent_indexed
            );
        }
        // FT.INFO shares Redis's main thread with the build (210-240 ms at 1M items): poll
        // at most 5% of the time
        tokio::time::sleep((asked.elapsed() * 20).max(Duration::from_millis(50))).await;
    }
    let indexed_secs = start.elapsed().as_secs_f64();
    let after = settled_used_memory(&mut c).await?;
    Ok(IngestResult {
        items: spec.items as usize,
        dim: spec.dims,
        seed: spec.seed,
        batch,
        in_flight,
        write_secs,
        indexed_secs,
        items_per_sec: spec.items as f64 / indexed_secs,
        used_memory_before: before,
        used_memory_after: after,
        memory_per_item_bytes: after.saturating_sub(before) as f64 / spec.items as f64,
    })
}

/// The catalog as stored in Redis: what brute-force recall and the query generator need.
#[derive(Debug, Clone, Default)]
pub struct StoredCatalog {
    pub dim: usize,
    pub ids: Vec<String>,
    /// Row-major, `ids.len() * dim`, unit length (cosine == dot).
    pub vectors: Vec<f32>,
    pub prices: Vec<f64>,
    pub categories: Vec<String>,
}

impl StoredCatalog {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// (embedding, price, category) as HMGET returns them.
type ItemRow = (Option<Vec<u8>>, Option<f64>, Option<String>);

/// Reads every item's id, vector, price and category back (SCAN + pipelined HMGET).
pub async fn read_back(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    dim: usize,
) -> Result<StoredCatalog> {
    let keys = scan_keys(con, &format!("{}*", ns.item_prefix())).await?;
    let mut cat = StoredCatalog {
        dim,
        ..StoredCatalog::default()
    };
    for chunk in keys.chunks(2000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("HMGET")
                .arg(k)
                .arg("embedding")
                .arg("price")
                .arg("category");
        }
        let rows: Vec<ItemRow> = pipe.query_async(con).await?;
        for (key, (blob, price, category)) in chunk.iter().zip(rows) {
            let (Some(blob), Some(price), Some(category)) = (blob, price, category) else {
                continue;
            };
            let v = vector::decode(&blob)?;
            if v.len() != dim {
                bail!(
                    "item {key} has a {}-dim vector, the bench expects {dim}",
                    v.len()
                );
            }
            let id = ns.item_id(key).unwrap_or(key).to_owned();
            cat.ids.push(id);
            cat.vectors.extend_from_slice(&v);
            cat.prices.push(price);
            cat.categories.push(category);
        }
    }
    Ok(cat)
}
