//! Shared helpers: a deterministic RNG, catalog builders and index/alias setup.

use std::collections::BTreeMap;
use std::time::Duration;

use redrec_core::config::RedisConfig;
use redrec_core::keys::Namespace;
use redrec_core::schema::{IndexSchema, ItemFields, VectorSettings, items_schema};
use redrec_core::vector;
use redrec_retriever::{Retriever, RetrieverConfig, create_pool};
use redrec_testkit::TestSpace;

/// The workspace's SplitMix64 ([`redrec_core::synthetic::Rng`]); `below` keeps the modulo draw
/// these fixtures were generated with.
pub struct Rng(redrec_core::synthetic::Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(redrec_core::synthetic::Rng::new(seed))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.unit()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        self.0.normal()
    }
}

/// A unit vector near `center` (spread `noise`).
pub fn near(rng: &mut Rng, center: &[f32], noise: f64) -> Vec<f32> {
    let mut v: Vec<f32> = center
        .iter()
        .map(|c| (f64::from(*c) + noise * rng.normal()) as f32)
        .collect();
    vector::normalize(&mut v).unwrap();
    v
}

pub fn random_unit(rng: &mut Rng, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims).map(|_| rng.normal() as f32).collect();
    vector::normalize(&mut v).unwrap();
    v
}

pub fn settings(dims: usize) -> VectorSettings {
    VectorSettings {
        dims,
        ..VectorSettings::default()
    }
}

/// The default item schema for a test namespace, version 1.
pub fn schema(ns: &Namespace, dims: usize) -> IndexSchema {
    items_schema(
        &ns.index(1),
        &ns.item_prefix(),
        &ItemFields::default(),
        &settings(dims),
    )
}

/// Creates the index for `schema` and points the namespace's alias at it.
pub async fn create_index(space: &TestSpace, schema: &IndexSchema) {
    let mut con = space.conn().await;
    let _: () = schema.ft_create_cmd().query_async(&mut con).await.unwrap();
    let _: () = redis::cmd("FT.ALIASADD")
        .arg(space.ns.alias())
        .arg(&schema.index.name)
        .query_async(&mut con)
        .await
        .unwrap();
}

/// One catalog item.
pub struct Item {
    pub id: String,
    pub vector: Vec<f32>,
    pub fields: BTreeMap<&'static str, String>,
}

/// Writes items with pipelined HSET, `batch` per round trip.
pub async fn load(space: &TestSpace, items: &[Item], batch: usize) {
    // HNSW inserts run on the server's main thread, shared with every other test: allow a
    // pipeline far more than the client's default 500 ms
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    let mut con = space
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    for chunk in items.chunks(batch) {
        let mut pipe = redis::pipe();
        for it in chunk {
            let cmd = pipe
                .cmd("HSET")
                .arg(space.ns.item(&it.id))
                .arg("embedding")
                .arg(vector::encode(&it.vector));
            for (k, v) in &it.fields {
                cmd.arg(*k).arg(v);
            }
            cmd.ignore();
        }
        let _: () = pipe.query_async(&mut con).await.unwrap();
    }
}

pub fn redis_config() -> RedisConfig {
    RedisConfig {
        url: redrec_testkit::redis_url(),
        pool_size: 4,
        command_timeout_ms: 5_000,
        connect_timeout_ms: 2_000,
        tls_ca_file: None,
        ..RedisConfig::default()
    }
}

pub fn retriever(space: &TestSpace, schema: &IndexSchema, config: RetrieverConfig) -> Retriever {
    Retriever::with_pool(
        create_pool(&redis_config()).unwrap(),
        space.ns.clone(),
        schema.clone(),
        ItemFields::default(),
        config,
    )
    .unwrap()
}

pub fn fields(pairs: &[(&'static str, String)]) -> BTreeMap<&'static str, String> {
    pairs.iter().cloned().collect()
}

/// Adds the collaborative vector field `cf_vector` (HNSW, cosine, `dims`) to a live index, as
/// `redrec-ingest cf` does.
pub async fn add_cf_field(space: &TestSpace, index: &str, dims: usize) {
    let mut con = space.conn().await;
    let _: () = redis::cmd("FT.ALTER")
        .arg(index)
        .arg("SCHEMA")
        .arg("ADD")
        .arg("cf_vector")
        .arg("VECTOR")
        .arg("HNSW")
        .arg(6)
        .arg("TYPE")
        .arg("FLOAT32")
        .arg("DIM")
        .arg(dims)
        .arg("DISTANCE_METRIC")
        .arg("COSINE")
        .query_async(&mut con)
        .await
        .unwrap();
}
