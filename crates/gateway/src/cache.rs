//! The gateway's serving caches, each bounded, with explicit invalidation and hit counters in
//! `/metrics`:
//!
//! - **popular lists**: the candidates of popularity-only retrievals (cold-start visitors, empty
//!   queries) per (filter, profile exclusions, count). They change when popularity is folded into
//!   the index, when items are written, or when another process loads the catalog: cleared by the
//!   gateway's own fold and item routes, and never older than `popular_ttl_secs`.
//! - **item vectors** of the items a query names (`item_id`, `positive`, `negative`). Dropped by
//!   the gateway's item routes for that item; never older than `item_vector_ttl_secs` (vectors
//!   refreshed by `redrec-ingest` while serving are picked up within that time).
//! - **query-text embeddings** (`redrec_embedder::EmbeddingCache`): a text's vector depends only
//!   on the text and the model, so it never goes stale.
//!
//! Nothing per user is cached: user features change with every event.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redrec_core::{
    candidate::Candidate,
    lru::{CacheStats, Lru},
};
use redrec_embedder::EmbeddingCache;
use serde::{Deserialize, Serialize};

/// `[gateway.cache]`: entry bounds (0 disables a cache) and maximum ages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Popularity-only candidate lists kept (one per filter and profile).
    pub popular_entries: usize,
    /// Oldest a popular list may be (popularity is folded every `popularity_fold_secs`).
    pub popular_ttl_secs: u64,
    /// Stored item vectors kept (4 bytes x dims each).
    pub item_vector_entries: usize,
    pub item_vector_ttl_secs: u64,
    /// Query-text embeddings kept (4 bytes x dims each: 10,000 x 384 dims = 15 MB).
    pub query_embedding_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            popular_entries: 256,
            popular_ttl_secs: 60,
            item_vector_entries: 10_000,
            item_vector_ttl_secs: 300,
            query_embedding_entries: 10_000,
        }
    }
}

type Aged<V> = Mutex<Lru<String, (Instant, V)>>;

/// The caches of one gateway.
pub struct Caches {
    popular: Aged<Arc<Vec<Candidate>>>,
    popular_ttl: Duration,
    item_vectors: Aged<Arc<Vec<f32>>>,
    item_vector_ttl: Duration,
    pub embeddings: EmbeddingCache,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn fresh<V: Clone>(cache: &Aged<V>, key: &str, ttl: Duration) -> Option<V> {
    lock(cache)
        .get_if(key, |(at, _)| at.elapsed() < ttl)
        .map(|(_, v)| v)
}

impl Caches {
    pub fn new(cfg: &CacheConfig) -> Caches {
        Caches {
            popular: Mutex::new(Lru::new(cfg.popular_entries)),
            popular_ttl: Duration::from_secs(cfg.popular_ttl_secs),
            item_vectors: Mutex::new(Lru::new(cfg.item_vector_entries)),
            item_vector_ttl: Duration::from_secs(cfg.item_vector_ttl_secs),
            embeddings: EmbeddingCache::new(cfg.query_embedding_entries),
        }
    }

    /// The cached popular list under `key`, if fresh.
    pub fn popular(&self, key: &str) -> Option<Arc<Vec<Candidate>>> {
        fresh(&self.popular, key, self.popular_ttl)
    }

    pub fn store_popular(&self, key: String, list: Arc<Vec<Candidate>>) {
        lock(&self.popular).insert(key, (Instant::now(), list));
    }

    /// Popularity moved (a fold) or items changed: every popular list is stale.
    pub fn popularity_changed(&self) {
        lock(&self.popular).clear();
    }

    /// Item `id` was written or deleted through the gateway.
    pub fn item_changed(&self, id: &str) {
        lock(&self.item_vectors).remove(id);
        self.popularity_changed();
    }

    /// The cached vectors among `ids`, and the ids still to read.
    pub fn item_vectors(&self, ids: &[String]) -> (BTreeMap<String, Vec<f32>>, Vec<String>) {
        let mut found = BTreeMap::new();
        let mut missing = Vec::new();
        for id in ids {
            if found.contains_key(id) || missing.contains(id) {
                continue;
            }
            match fresh(&self.item_vectors, id, self.item_vector_ttl) {
                Some(v) => {
                    found.insert(id.clone(), v.as_ref().clone());
                }
                None => missing.push(id.clone()),
            }
        }
        (found, missing)
    }

    pub fn store_item_vector(&self, id: String, v: Vec<f32>) {
        lock(&self.item_vectors).insert(id, (Instant::now(), Arc::new(v)));
    }

    /// (cache name, stats) of every cache, for `/metrics`.
    pub fn stats(&self) -> Vec<(&'static str, CacheStats)> {
        vec![
            ("popular", lock(&self.popular).stats()),
            ("item_vectors", lock(&self.item_vectors).stats()),
            ("query_embeddings", self.embeddings.stats()),
        ]
    }
}
