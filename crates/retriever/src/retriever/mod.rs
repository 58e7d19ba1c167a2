//! The retriever: turns a [`RetrievalRequest`] (candidate sources, one filter, k, ids to exclude)
//! into candidates with as few round trips as possible:
//!
//! 1. only when a source needs stored vectors (more-like-this, examples) the caller did not pass
//!    in `stored_vectors`: one `HMGET` pipeline;
//! 2. one pipeline with every source's `FT.SEARCH` (and, for text, BM25 + KNN, or `FT.HYBRID`);
//!    with `with_vectors` (MMR) the KNN and popular searches also return each hit's vector blob
//!    (`RETURN ... <vector> AS __vec`);
//! 3. a second search pipeline only when exclusions left fewer than k and more may exist;
//! 4. only in the ids-then-fetch mode, or for `with_vectors` winners whose vector did not come
//!    with the search (text and history sources): one `HMGET` pipeline for them.
//!
//! This file holds the [`Retriever`] itself and its entry points; the concerns live in the
//! submodules: `connection` (pool, sending), `capabilities` (`FT.HYBRID` detection, the
//! collaborative field), `watch` (the serving index's build progress, looked up in the
//! background), `sampling` (the `auto` policy's field sample), `rounds` (planning and the round
//! trips), `fusion` (text sources) and `shaping` (pages into ranked lists).

mod capabilities;
mod connection;
mod fusion;
mod partitions;
mod rounds;
mod sampling;
mod shaping;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use deadpool_redis::Pool;
use redis::Value;

use redrec_core::candidate::{Candidate, SourceKind};
use redrec_core::config::{IndexConfig, RedisConfig};
use redrec_core::filter::Filter;
use redrec_core::hybrid::HybridSyntax;
use redrec_core::keys::{Namespace, validate_id};
use redrec_core::query::{DISTANCE_ALIAS, HybridPolicy, KnnQuery, Projection, RangeQuery};
use redrec_core::schema::{DistanceMetric, FieldKind, IndexSchema, ItemFields, VectorAlgorithm};
use redrec_core::vector;

use crate::config::{FetchMode, RetrieverConfig};
use crate::error::{Error, Result};
use crate::merge::merge;
use crate::request::{Retrieval, RetrievalRequest};
use redrec_core::reply::{Shape, parse_hmget, parse_search};

pub use capabilities::CfField;
use capabilities::CfLookup;
use connection::Conn;
pub use connection::create_pool;
use rounds::bad_query;
pub use sampling::SampleStatus;
use sampling::Sampler;
pub use watch::IndexStatus;
use watch::IndexWatch;

/// Where one retrieval's searches go: the serving alias or a partition's index, with the filter
/// and hybrid policy they carry.
pub(super) struct Target<'a> {
    pub(super) index: &'a str,
    pub(super) filter: &'a str,
    pub(super) policy: Option<HybridPolicy>,
}

/// Executes retrievals against one index alias.
pub struct Retriever {
    conn: Conn,
    alias: String,
    ns: Namespace,
    schema: IndexSchema,
    fields: ItemFields,
    metric: DistanceMetric,
    dims: usize,
    /// EF_RUNTIME applies to HNSW only: the server rejects it on a FLAT field
    hnsw: bool,
    return_fields: Vec<String>,
    config: RetrieverConfig,
    hybrid: Option<HybridSyntax>,
    /// Field sample for the `auto` policy, kept fresh in the background.
    sampler: Sampler,
    /// The collaborative vector field as last looked up (`FT.INFO`), with the time of the lookup.
    cf: RwLock<Option<CfLookup>>,
    /// The serving index's build progress as last looked up (`FT.INFO`, in the background).
    watch: IndexWatch,
}

impl Retriever {
    /// Connects a pool, reads the schema from `index` and detects `FT.HYBRID`.
    pub async fn connect(
        redis: &RedisConfig,
        index: &IndexConfig,
        config: RetrieverConfig,
    ) -> Result<Retriever> {
        let pool = create_pool(redis)?;
        let schema = index.schema(1)?;
        let mut r = Retriever::with_pool(
            pool,
            index.namespace(),
            schema,
            index.fields.clone(),
            config,
        )?;
        r.detect_hybrid().await?;
        Ok(r)
    }

    /// A retriever over an existing pool (no I/O). Call [`Retriever::detect_hybrid`] to enable
    /// `FT.HYBRID` on servers that have it.
    pub fn with_pool(
        pool: Pool,
        ns: Namespace,
        schema: IndexSchema,
        fields: ItemFields,
        config: RetrieverConfig,
    ) -> Result<Retriever> {
        Retriever::build(Conn::Pool(pool), ns, schema, fields, config)
    }

    /// A retriever over the deployment's connection setup (no I/O): every search takes a
    /// connection for `Route::Replica`, so `redrec_store` decides which node serves it (a read
    /// replica when configured, else the primary).
    pub fn with_store(
        redis: redrec_store::Redis,
        ns: Namespace,
        schema: IndexSchema,
        fields: ItemFields,
        config: RetrieverConfig,
    ) -> Result<Retriever> {
        Retriever::build(Conn::Store(redis), ns, schema, fields, config)
    }

    /// A retriever sharing one multiplexed connection (no pool). For comparison and for callers
    /// that already hold a connection.
    pub fn with_connection(
        conn: redis::aio::MultiplexedConnection,
        ns: Namespace,
        schema: IndexSchema,
        fields: ItemFields,
        config: RetrieverConfig,
    ) -> Result<Retriever> {
        Retriever::build(Conn::Shared(conn), ns, schema, fields, config)
    }

    fn build(
        conn: Conn,
        ns: Namespace,
        schema: IndexSchema,
        fields: ItemFields,
        config: RetrieverConfig,
    ) -> Result<Retriever> {
        let v = schema.vector_field(&fields.vector)?;
        let (metric, dims) = (v.distance_metric, v.dims);
        let hnsw = v.algorithm == VectorAlgorithm::Hnsw;
        config.fusion.validate()?;
        config.validate()?;
        let return_fields = return_fields(&schema, &config)?;
        let popularity = schema.field(&fields.popularity)?;
        if !matches!(popularity.kind, FieldKind::Numeric(_)) {
            return Err(Error::BadQuery(redrec_core::Error::FieldType {
                field: fields.popularity.clone(),
                expected: "numeric",
                actual: popularity.kind.type_name(),
            }));
        }
        Ok(Retriever {
            conn,
            alias: ns.alias(),
            ns,
            schema,
            fields,
            metric,
            dims,
            hnsw,
            return_fields,
            config,
            hybrid: None,
            sampler: Sampler::new(),
            cf: RwLock::new(None),
            watch: IndexWatch::new(),
        })
    }

    /// The alias every query goes through.
    pub fn index(&self) -> &str {
        &self.alias
    }

    pub fn config(&self) -> &RetrieverConfig {
        &self.config
    }

    /// The `FT.HYBRID` syntax in use, if the server has it.
    pub fn hybrid_syntax(&self) -> Option<HybridSyntax> {
        self.hybrid
    }

    /// Forces a syntax (tests, or servers whose version string misleads the detection).
    pub fn set_hybrid_syntax(&mut self, syntax: Option<HybridSyntax>) {
        self.hybrid = syntax;
    }

    async fn run(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>> {
        self.conn.run(pipe, &self.alias).await
    }

    fn validate_vector(&self, v: &[f32]) -> Result<()> {
        vector::validate(v, self.dims)?;
        Ok(())
    }

    fn timeout(&self) -> Option<u64> {
        (self.config.query_timeout_ms > 0).then_some(self.config.query_timeout_ms)
    }

    /// What each hit returns: the configured fields, and with `vectors` also the item's vector
    /// (for MMR), so the winners' vectors need no `HMGET` round trip afterwards.
    fn projection(&self, vectors: bool) -> Projection {
        match self.config.fetch {
            FetchMode::Return if vectors => Projection::FieldsAndVector {
                fields: self.return_fields.clone(),
                vector: self.fields.vector.clone(),
            },
            FetchMode::Return => Projection::Fields(self.return_fields.clone()),
            FetchMode::IdsThenHmget => Projection::IdsOnly,
        }
    }

    fn knn(&self, target: &Target<'_>, vector: Vec<f32>, k: usize) -> KnnQuery {
        self.knn_on(target, &self.fields.vector, self.hnsw, vector, k)
    }

    /// A KNN query on any vector field of the index (the text-space field or `cf_vector`).
    fn knn_on(
        &self,
        target: &Target<'_>,
        field: &str,
        hnsw: bool,
        vector: Vec<f32>,
        k: usize,
    ) -> KnnQuery {
        KnnQuery {
            index: target.index.to_owned(),
            filter: target.filter.to_owned(),
            vector_field: field.to_owned(),
            vector,
            k,
            ef_runtime: hnsw.then(|| self.ef_runtime_for(k)),
            distance_alias: DISTANCE_ALIAS.into(),
            projection: self.projection(false),
            hybrid_policy: target.policy,
            timeout_ms: self.timeout(),
        }
    }

    /// Reads stored vectors of items in one pipeline; an item without one is an error.
    pub async fn item_vectors(&self, ids: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut pipe = redis::pipe();
        for id in ids {
            validate_id(id)?;
            pipe.cmd("HMGET")
                .arg(self.ns.item(id))
                .arg(&self.fields.vector);
        }
        let replies = self.run(&pipe).await?;
        ids.iter()
            .zip(&replies)
            .map(|(id, r)| {
                let blob = parse_hmget(r)?.into_iter().next().flatten();
                let missing = || Error::ItemNotFound {
                    id: id.clone(),
                    field: self.fields.vector.clone(),
                };
                let v = vector::decode(blob.ok_or_else(missing)?).map_err(|_| missing())?;
                if v.len() != self.dims {
                    return Err(missing());
                }
                Ok(v)
            })
            .collect()
    }

    /// Runs one retrieval. See the module docs for the round trips it takes.
    pub async fn retrieve(&self, req: &RetrievalRequest) -> Result<Retrieval> {
        if req.k == 0 || req.k > self.config.max_k {
            return Err(bad_query(format!(
                "k is {}, expected 1..={}",
                req.k, self.config.max_k
            )));
        }
        // the profile's exclusion: in the search, or checked on the candidates when it removes
        // few items (a negated filter makes every KNN a filtered one)
        let after_search = self.exclusion_after_search(&req.exclusion);
        let searched_filter = if after_search {
            req.filter.clone()
        } else {
            req.filter.clone().and_also(req.exclusion.clone())
        };
        let post = after_search.then_some(&req.exclusion);
        let filter = searched_filter.render(&self.schema)?;
        let cf = if req.sources.iter().any(|s| s.is_collaborative()) {
            self.cf_field().await
        } else {
            None
        };
        let mut needed = self.validate_sources(&req.sources)?;
        let mut round_trips = 0;
        let mut stored = BTreeMap::new();
        for (id, v) in &req.stored_vectors {
            if needed.contains(id) {
                self.validate_vector(v)?;
                stored.insert(id.clone(), v.clone());
            }
        }
        needed.retain(|id| !stored.contains_key(id));
        if !needed.is_empty() {
            let vectors = self.item_vectors(&needed).await?;
            round_trips += 1;
            stored.extend(needed.into_iter().zip(vectors));
        }
        let mut exclude = req.exclude.clone();
        let plans = self.plan(&req.sources, &stored, cf.as_ref(), &mut exclude)?;
        // A filter inside a partition searches the partition's index (the whole filter still
        // applies there, or none when it keeps exactly the partition's items).
        let routed = self.route(&searched_filter, cf.as_ref().map(|f| f.name.as_str()));
        let knn = plans.iter().any(|p| p.searches_vectors());
        // Only KNN sources care about the hybrid policy (and only with a filter).
        let policy = match &routed {
            _ if !knn => None,
            Some(r) if r.exact => None,
            Some(r) => self.policy_within(&searched_filter, Some(&r.filter)),
            None => self.policy_within(&searched_filter, None),
        };
        let target = Target {
            index: routed
                .as_ref()
                .map_or(self.alias.as_str(), |r| r.index.as_str()),
            filter: if routed.as_ref().is_some_and(|r| r.exact) {
                "*"
            } else {
                &filter
            },
            policy,
        };
        // A broad filter on a KNN-only request: searched without it, checked on the hits.
        // (within the partition when routed to one; never when it keeps exactly its items, as
        // that search is unfiltered already). What is checked on the hits is the whole searched
        // filter, exclusion included.
        let broad = match (&routed, post) {
            (Some(r), None) if knn && !r.exact && plans.iter().all(|p| p.is_knn()) => {
                self.broad_share_within(&searched_filter, &r.filter)
            }
            (None, None) if plans.iter().all(|p| p.is_knn()) => self.broad_share(&searched_filter),
            _ => None,
        };
        let mut searched = None;
        if let Some(kept) = broad {
            let unfiltered = Target {
                index: target.index,
                filter: "*",
                policy: None,
            };
            let tried = self
                .search(
                    &plans,
                    &unfiltered,
                    &exclude,
                    Some(&searched_filter),
                    (req.k, req.with_vectors, kept),
                )
                .await?;
            // fewer than k passed (the filter's items lie away from the query): ask again with
            // the filter in the search
            if tried.merged.candidates.len() >= req.k {
                searched = Some(tried);
            } else {
                round_trips += tried.round_trips;
            }
        }
        let post_filtered = searched.is_some();
        let searched = match searched {
            Some(s) => s,
            None => {
                self.search(
                    &plans,
                    &target,
                    &exclude,
                    post,
                    (req.k, req.with_vectors, 1.0),
                )
                .await?
            }
        };
        round_trips += searched.round_trips;
        let mut candidates = searched.merged.candidates;
        if self.hydrate(&mut candidates, req.with_vectors).await? {
            round_trips += 1;
        }
        Ok(Retrieval {
            candidates,
            round_trips,
            excluded: searched.merged.excluded,
            exclusion_after_search: after_search,
            retried: searched.retried,
            partial: searched.partial,
            fusion: searched.fusion,
            policy: if post_filtered { None } else { policy },
            partition: routed.map(|r| r.name),
            post_filtered,
        })
    }

    /// Every item within `radius` (a distance in the index metric, e.g. `1 - cos` for COSINE) of
    /// `vector` that passes `filter`, nearest first, at most `limit` (`VECTOR_RANGE`).
    pub async fn within_radius(
        &self,
        vector: &[f32],
        radius: f32,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        self.validate_vector(vector)?;
        if limit == 0 || limit > self.config.max_k {
            return Err(bad_query(format!(
                "limit is {limit}, expected 1..={}",
                self.config.max_k
            )));
        }
        let q = RangeQuery {
            index: self.alias.clone(),
            filter: filter.render(&self.schema)?,
            vector_field: self.fields.vector.clone(),
            vector: vector.to_vec(),
            radius,
            epsilon: None,
            limit,
            distance_alias: DISTANCE_ALIAS.into(),
            projection: Projection::Fields(self.return_fields.clone()),
            timeout_ms: self.timeout(),
        };
        let mut pipe = redis::pipe();
        pipe.add_command(q.args()?.cmd());
        let replies = self.run(&pipe).await?;
        let reply = replies
            .first()
            .ok_or_else(|| Error::protocol("empty pipeline reply"))?;
        let page = parse_search(
            reply,
            Shape {
                with_scores: false,
                with_content: true,
            },
        )?;
        let list = self.vector_list(SourceKind::QueryVector, page, self.metric);
        Ok(merge(vec![list], &BTreeSet::new(), limit).candidates)
    }
}

/// The fields returned with candidates: the configured ones (each must be in the schema), or
/// every non-vector field.
fn return_fields(schema: &IndexSchema, config: &RetrieverConfig) -> Result<Vec<String>> {
    if config.return_fields.is_empty() {
        return Ok(schema
            .fields
            .iter()
            .filter(|f| !matches!(f.kind, FieldKind::Vector(_)))
            .map(|f| f.name.clone())
            .collect());
    }
    for f in &config.return_fields {
        schema.field(f)?;
    }
    Ok(config.return_fields.clone())
}
