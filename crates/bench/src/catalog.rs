//! The synthetic catalog: deterministic generation, a pipelined loader (timed until the index
//! reports 100% indexed), and reading the catalog back from Redis for brute-force recall.
//!
//! Shape (same as `cargo xtask seed synthetic`): clustered unit vectors, Zipf-skewed categories,
//! brands and text words, log-normal prices, written as hashes under `{ns}:item:{id}` into the
//! default item schema (`redrec_core::schema::items_schema`) behind the alias `{ns}:items`.

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
    vector,
};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::rng::{Rng, Zipf};

pub const CATEGORIES: usize = 60;
pub const DEPARTMENTS: usize = 12;
pub const BRANDS: usize = 300;
pub const CLUSTERS: usize = 100;
/// Words the `text` field is made of (Zipf-distributed), so text queries hit skewed posting lists.
pub const WORDS: &[&str] = &[
    "organic",
    "fresh",
    "crunchy",
    "classic",
    "family",
    "value",
    "premium",
    "light",
    "spicy",
    "sweet",
    "salted",
    "smoked",
    "frozen",
    "bakery",
    "dairy",
    "snack",
    "pasta",
    "sauce",
    "coffee",
    "tea",
    "juice",
    "soda",
    "water",
    "cereal",
    "bread",
    "cheese",
    "yogurt",
    "butter",
    "chicken",
    "beef",
    "pork",
    "fish",
    "rice",
    "beans",
    "soup",
    "cookies",
    "crackers",
    "chips",
    "candy",
    "chocolate",
    "vanilla",
    "strawberry",
    "lemon",
    "garlic",
    "tomato",
    "pepper",
    "onion",
    "apple",
    "banana",
    "orange",
    "shampoo",
    "soap",
    "detergent",
    "paper",
    "towels",
    "vitamins",
    "diapers",
    "wipes",
    "pet",
    "cleaner",
];

/// Parameters that fully determine a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogSpec {
    pub items: usize,
    pub dim: usize,
    pub seed: u64,
}

/// One generated item.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticItem {
    pub id: String,
    pub vector: Vec<f32>,
    pub category: String,
    pub department: String,
    pub brand: String,
    pub price: f64,
    pub popularity: f64,
    pub in_stock: bool,
    pub text: String,
}

pub fn category_name(i: usize) -> String {
    format!("cat{i:02}")
}

/// Deterministic generator: item `i` depends only on (spec, i).
pub struct Generator {
    spec: CatalogSpec,
    centroids: Vec<Vec<f32>>,
    categories: Zipf,
    brands: Zipf,
    words: Zipf,
}

impl Generator {
    pub fn new(spec: CatalogSpec) -> Generator {
        let mut rng = Rng::stream(spec.seed, u64::MAX);
        let centroids = (0..CLUSTERS)
            .map(|_| unit_vector(&mut rng, spec.dim, None, 0.0))
            .collect();
        Generator {
            spec,
            centroids,
            categories: Zipf::new(CATEGORIES, 1.0),
            brands: Zipf::new(BRANDS, 1.1),
            words: Zipf::new(WORDS.len(), 0.9),
        }
    }

    pub fn item(&self, i: usize) -> SyntheticItem {
        let mut rng = Rng::stream(self.spec.seed, i as u64);
        let category = self.categories.sample(&mut rng);
        // Items of a category lean towards a few clusters, as products of one aisle look alike.
        let cluster = (category * 7 + rng.below(5)) % CLUSTERS;
        let vector = unit_vector(
            &mut rng,
            self.spec.dim,
            Some(&self.centroids[cluster]),
            0.35,
        );
        let brand = self.brands.sample(&mut rng);
        let text = (0..3)
            .map(|_| WORDS[self.words.sample(&mut rng)])
            .collect::<Vec<_>>()
            .join(" ");
        SyntheticItem {
            id: i.to_string(),
            vector,
            category: category_name(category),
            department: format!("dept{:02}", category % DEPARTMENTS),
            brand: format!("brand{brand:03}"),
            price: (rng.log_normal(1.2, 0.8) * 100.0).round() / 100.0,
            popularity: (1.0 / rng.unit().max(1e-6)).ln().floor(),
            in_stock: rng.unit() < 0.9,
            text,
        }
    }

    /// A query vector near the data: a random centroid plus noise (not an indexed item).
    pub fn query_vector(&self, rng: &mut Rng) -> Vec<f32> {
        let c = &self.centroids[rng.below(CLUSTERS)];
        unit_vector(rng, self.spec.dim, Some(c), 0.45)
    }
}

/// A unit vector: `center` plus gaussian noise of scale `noise` per component (or pure noise).
pub fn unit_vector(rng: &mut Rng, dim: usize, center: Option<&[f32]>, noise: f64) -> Vec<f32> {
    let scale = if center.is_some() {
        noise / (dim as f64).sqrt() * 3.0
    } else {
        1.0
    };
    let mut v: Vec<f32> = (0..dim)
        .map(|d| (center.map_or(0.0, |c| f64::from(c[d])) + scale * rng.normal()) as f32)
        .collect();
    if vector::normalize(&mut v).is_err() {
        v[0] = 1.0;
    }
    v
}

/// The index settings used by the bench (the default item schema at dimension `dim`).
pub fn vector_settings(dim: usize) -> VectorSettings {
    VectorSettings {
        dims: dim,
        ..VectorSettings::default()
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
    let client = redis::Client::open(url).with_context(|| format!("redis url {url}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(60)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to redis at {url}"))
}

/// Drops every index, alias and key of the namespace (the bench's own, on its own Redis).
pub async fn drop_namespace(con: &mut MultiplexedConnection, ns: &Namespace) -> Result<()> {
    let _: redis::RedisResult<Value> = redis::cmd("FT.ALIASDEL")
        .arg(ns.alias())
        .query_async(con)
        .await;
    let indexes: Vec<String> = redis::cmd("FT._LIST").query_async(con).await?;
    let prefix = format!("{}:", ns.name());
    for idx in indexes.iter().filter(|i| i.starts_with(&prefix)) {
        let _: Value = redis::cmd("FT.DROPINDEX")
            .arg(idx)
            .arg("DD")
            .query_async(con)
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
    Ok(redrec_store::index::require_info(con, index).await?)
}

/// Creates the index and alias, writes the catalog with `in_flight` pipelines of `batch` HSETs
/// and waits until the index reports every item indexed.
pub async fn load(
    con: &MultiplexedConnection,
    ns: &Namespace,
    spec: CatalogSpec,
    batch: usize,
    in_flight: usize,
) -> Result<IngestResult> {
    let mut c = con.clone();
    let schema = items_schema(
        &ns.index(1),
        &ns.item_prefix(),
        &ItemFields::default(),
        &vector_settings(spec.dim),
    );
    let before = settled_used_memory(&mut c).await?;
    let _: Value = schema
        .ft_create_cmd()
        .query_async(&mut c)
        .await
        .context("FT.CREATE of the bench index")?;
    let _: Value = redis::cmd("FT.ALIASADD")
        .arg(ns.alias())
        .arg(ns.index(1))
        .query_async(&mut c)
        .await
        .context("FT.ALIASADD")?;
    let generator = Arc::new(Generator::new(spec));
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let mut next_report = Instant::now() + Duration::from_secs(5);
    for first in (0..spec.items).step_by(batch) {
        let permit = permits.clone().acquire_owned().await?;
        let generator = generator.clone();
        let mut c = con.clone();
        let ns = ns.clone();
        let last = (first + batch).min(spec.items);
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
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let info = index_info(&mut c, &ns.alias()).await?;
        if info.num_docs as usize >= spec.items && info.percent_indexed >= 1.0 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "index still not complete after 10 minutes: {} docs, {} indexed",
                info.num_docs,
                info.percent_indexed
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let indexed_secs = start.elapsed().as_secs_f64();
    let after = settled_used_memory(&mut c).await?;
    Ok(IngestResult {
        items: spec.items,
        dim: spec.dim,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_well_formed() {
        let spec = CatalogSpec {
            items: 100,
            dim: 16,
            seed: 9,
        };
        let a = Generator::new(spec);
        let b = Generator::new(spec);
        for i in [0, 17, 99] {
            let (x, y) = (a.item(i), b.item(i));
            assert_eq!(x, y);
            let norm: f32 = x.vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
            assert!(x.price > 0.0 && x.text.split(' ').count() == 3);
        }
        assert_ne!(a.item(1).vector, a.item(2).vector);
    }
}
