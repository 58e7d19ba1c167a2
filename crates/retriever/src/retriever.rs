//! The retriever: turns a [`RetrievalRequest`] (candidate sources, one filter, k, ids to exclude)
//! into candidates with as few round trips as possible:
//!
//! 1. only when a source needs stored vectors (more-like-this, examples): one `HMGET` pipeline;
//! 2. one pipeline with every source's `FT.SEARCH` (and, for text, BM25 + KNN, or `FT.HYBRID`);
//! 3. a second search pipeline only when exclusions left fewer than k and more may exist;
//! 4. only for `with_vectors` (or the ids-then-fetch mode): one `HMGET` pipeline for the winners.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, Value};
use serde::{Deserialize, Serialize};

use redrec_core::candidate::{Candidate, SourceHit, SourceKind};
use redrec_core::config::{IndexConfig, RedisConfig};
use redrec_core::filter::Filter;
use redrec_core::hybrid::{Fusion, HybridQuery, HybridSyntax, RankedHit, fuse};
use redrec_core::keys::{Namespace, validate_id};
use redrec_core::query::{
    DISTANCE_ALIAS, HybridPolicy, KnnQuery, Projection, RangeQuery, SearchArgs, SortedQuery,
    TextQuery, lexical_expression,
};
use redrec_core::schema::{DistanceMetric, FieldKind, IndexSchema, ItemFields, VectorAlgorithm};
use redrec_core::user::UserFeatures;
use redrec_core::vector;

use crate::selectivity::FieldSample;

use crate::error::{Error, Result};
use crate::merge::{ListEntry, RankedList, merge};
use crate::reply::{Page, Shape, parse_hmget, parse_hybrid, parse_search};

/// How the fields of candidates are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FetchMode {
    /// `RETURN` the fields in each search (one round trip). Measured faster, the default.
    #[default]
    Return,
    /// Search for ids and distances only, then `HMGET` the winners' fields (one more round trip).
    IdsThenHmget,
}

/// How filtered KNN combines the filter with the HNSW graph (`HYBRID_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    /// Brute force over the filtered documents.
    AdhocBf,
    /// Walk the graph in batches of `batch_size`, filtering each batch.
    Batches,
    /// Per query: `batches` when a sample of the items says the filter keeps at least
    /// `auto_batches_above` of them, else the server's own choice (see `selectivity.rs`).
    Auto,
}

/// Retriever settings (a plain struct; binaries load it with figment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrieverConfig {
    /// `EF_RUNTIME` of every KNN query (HNSW beam width; recall vs latency).
    pub ef_runtime: u32,
    /// Largest k a request may ask for, and the cap on over-fetching.
    pub max_k: usize,
    /// Per-query `TIMEOUT` in ms sent to RediSearch (0 = the server's own default). What happens
    /// at the deadline is the server's `ON_TIMEOUT` policy: `fail` (an error, reported as
    /// [`Error::Unavailable`]) or `return` (partial results, flagged in [`Retrieval::partial`]
    /// from the RESP3 warning).
    pub query_timeout_ms: u64,
    /// Fusion of BM25 and KNN lists for text sources.
    pub fusion: Fusion,
    /// Use `FT.HYBRID` when the server has it (else the client-side fusion always runs).
    pub use_ft_hybrid: bool,
    /// Scorer of the BM25 side (`BM25` on RediSearch 2.x; 8.x also knows `BM25STD`).
    pub text_scorer: String,
    pub fetch: FetchMode,
    /// Hash fields returned with candidates; empty = every non-vector field of the schema.
    pub return_fields: Vec<String>,
    /// `HYBRID_POLICY` for filtered KNN: `adhoc_bf`, `batches`, `auto`, or none (the server decides).
    pub hybrid_policy: Option<PolicyName>,
    pub batch_size: Option<u32>,
    /// With `hybrid_policy = "auto"`: the estimated share of items a filter must keep for
    /// `BATCHES` to be used.
    pub auto_batches_above: f64,
    /// With `auto`: items sampled (`SCAN` over item keys) to estimate filter selectivity.
    pub sample_size: usize,
    /// With `auto`: age after which the sample is taken again, on the next filtered query.
    pub sample_max_age_secs: u64,
}

impl Default for RetrieverConfig {
    fn default() -> Self {
        RetrieverConfig {
            ef_runtime: 100,
            max_k: 1000,
            query_timeout_ms: 500,
            fusion: Fusion::default(),
            use_ft_hybrid: true,
            text_scorer: "BM25".into(),
            fetch: FetchMode::Return,
            return_fields: Vec::new(),
            hybrid_policy: None,
            batch_size: None,
            auto_batches_above: 0.05,
            sample_size: 1000,
            sample_max_age_secs: 600,
        }
    }
}

/// Where candidates come from. Vectors are computed by the caller (the gateway embeds query text
/// and reads user features); the retriever only reads item vectors it needs itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// KNN around a vector given in the request.
    Vector(Vec<f32>),
    /// Query text: BM25 over the text and KNN around its embedding, fused.
    Text { text: String, vector: Vec<f32> },
    /// "More like this": KNN around a stored item's vector; the item itself is excluded.
    SimilarItem(String),
    /// KNN around the user's session vector.
    Session(Vec<f32>),
    /// KNN around the user's long-term vector.
    LongTerm(Vec<f32>),
    /// KNN around `mean(positives) - negative_weight * mean(negatives)`, normalised; the
    /// example items are excluded.
    Examples {
        positive: Vec<String>,
        negative: Vec<String>,
        negative_weight: f32,
    },
    /// Filtered items by popularity (cold start, empty queries).
    Popular,
}

impl Source {
    /// The session and long-term sources a user's features provide (empty for cold start).
    pub fn from_user(user: &UserFeatures) -> Vec<Source> {
        let mut out = Vec::new();
        if let Some(v) = &user.session_vector {
            out.push(Source::Session(v.clone()));
        }
        if let Some(v) = &user.long_term_vector {
            out.push(Source::LongTerm(v.clone()));
        }
        out
    }
}

/// One retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalRequest {
    /// Empty means popularity only.
    pub sources: Vec<Source>,
    pub filter: Filter,
    pub k: usize,
    /// Item ids never to return (the user's seen set, the cart...).
    pub exclude: BTreeSet<String>,
    /// Return each candidate's embedding (for MMR).
    pub with_vectors: bool,
}

impl RetrievalRequest {
    pub fn new(sources: Vec<Source>, k: usize) -> RetrievalRequest {
        RetrievalRequest {
            sources,
            filter: Filter::All,
            k,
            exclude: BTreeSet::new(),
            with_vectors: false,
        }
    }
}

/// Which text+vector fusion ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusionPath {
    /// No text source in the request.
    None,
    /// The server's `FT.HYBRID`.
    Server(HybridSyntax),
    /// BM25 and KNN `FT.SEARCH` in one pipeline, fused here.
    Client,
}

/// The outcome of a retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieval {
    pub candidates: Vec<Candidate>,
    /// Pipelines sent to Redis for this request.
    pub round_trips: u32,
    /// Search hits dropped because their id was excluded.
    pub excluded: usize,
    /// Whether the search pipeline was re-sent with a larger k.
    pub retried: bool,
    /// The server flagged a result as partial (RESP3 warning, e.g. a timeout with ON_TIMEOUT return).
    pub partial: bool,
    pub fusion: FusionPath,
    /// The `HYBRID_POLICY` sent with filtered KNN queries (`None`: the server chose).
    pub policy: Option<HybridPolicy>,
}

enum Conn {
    Pool(Pool),
    Shared(redis::aio::MultiplexedConnection),
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
    /// Field sample for the `auto` policy, with the time it was taken.
    sample: std::sync::RwLock<Option<(std::time::Instant, Arc<FieldSample>)>>,
}

/// Builds the deadpool pool: RESP3 (to see partial-result warnings), connect and response
/// timeouts from the config, `pool_size` connections.
pub fn create_pool(redis: &RedisConfig) -> Result<Pool> {
    let bad = |message: String| Error::BadQuery(redrec_core::Error::Query { message });
    let info = redis
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| bad(format!("redis.url `{}`: {e}", redis.url)))?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    let command_timeout = Duration::from_millis(redis.command_timeout_ms.max(1));
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(redis.connect_timeout_ms.max(1))))
        .set_response_timeout(Some(command_timeout));
    let manager = Manager::new_with_config(info, config).map_err(|e| Error::Unavailable {
        message: e.to_string(),
    })?;
    Pool::builder(manager)
        .max_size(redis.pool_size.max(1))
        .wait_timeout(Some(command_timeout))
        .create_timeout(Some(Duration::from_millis(redis.connect_timeout_ms.max(1))))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| bad(format!("redis pool: {e}")))
}

struct Planned {
    kind: PlanKind,
    source: SourceKind,
    fetch: usize,
}

enum PlanKind {
    Knn(Vec<f32>),
    Popular,
    /// BM25 + KNN (client fusion) or FT.HYBRID.
    Text(String, Vec<f32>),
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
        let return_fields = if config.return_fields.is_empty() {
            schema
                .fields
                .iter()
                .filter(|f| !matches!(f.kind, FieldKind::Vector(_)))
                .map(|f| f.name.clone())
                .collect()
        } else {
            for f in &config.return_fields {
                schema.field(f)?;
            }
            config.return_fields.clone()
        };
        if !matches!(
            schema.field(&fields.popularity)?.kind,
            FieldKind::Numeric(_)
        ) {
            return Err(Error::BadQuery(redrec_core::Error::FieldType {
                field: fields.popularity.clone(),
                expected: "numeric",
                actual: schema.field(&fields.popularity)?.kind.type_name(),
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
            sample: std::sync::RwLock::new(None),
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

    /// Asks the server whether `FT.HYBRID` exists (`COMMAND INFO`) and, if so, which syntax its
    /// Search module version speaks (`MODULE LIST`). One round trip.
    pub async fn detect_hybrid(&mut self) -> Result<Option<HybridSyntax>> {
        let mut pipe = redis::pipe();
        pipe.cmd("COMMAND").arg("INFO").arg("FT.HYBRID");
        pipe.cmd("MODULE").arg("LIST");
        let replies = self.run(&pipe).await?;
        let exists = match replies.first() {
            Some(Value::Array(a)) => a.first().is_some_and(|v| !matches!(v, Value::Nil)),
            _ => false,
        };
        self.hybrid = if exists {
            let version = replies.get(1).and_then(search_module_version);
            // FT.HYBRID exists but the version is unreadable: assume the current syntax
            Some(version.map_or(Some(HybridSyntax::V8_4_3), HybridSyntax::for_module_version))
                .flatten()
        } else {
            None
        };
        tracing::info!(ft_hybrid = ?self.hybrid, "retriever capabilities detected");
        Ok(self.hybrid)
    }

    async fn run(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>> {
        let result = match &self.conn {
            Conn::Pool(pool) => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| Error::from_pool(e, &self.alias))?;
                pipe.query_async::<Vec<Value>>(&mut conn).await
            }
            Conn::Shared(conn) => {
                let mut conn = conn.clone();
                pipe.query_async::<Vec<Value>>(&mut conn).await
            }
        };
        result.map_err(|e| Error::from_redis(e, &self.alias))
    }

    fn validate_vector(&self, v: &[f32]) -> Result<()> {
        vector::validate(v, self.dims)?;
        Ok(())
    }

    fn timeout(&self) -> Option<u64> {
        (self.config.query_timeout_ms > 0).then_some(self.config.query_timeout_ms)
    }

    fn projection(&self) -> Projection {
        match self.config.fetch {
            FetchMode::Return => Projection::Fields(self.return_fields.clone()),
            FetchMode::IdsThenHmget => Projection::IdsOnly,
        }
    }

    /// The `HYBRID_POLICY` for a request with this filter.
    async fn policy_for(&self, filter: &Filter) -> Option<HybridPolicy> {
        let batches = HybridPolicy::Batches {
            batch_size: self.config.batch_size,
        };
        match self.config.hybrid_policy? {
            PolicyName::AdhocBf => Some(HybridPolicy::AdhocBf),
            PolicyName::Batches => Some(batches),
            PolicyName::Auto => {
                if *filter == Filter::All {
                    return None;
                }
                let sample = self.current_sample().await?;
                let share = sample.estimate(filter)?;
                (share >= self.config.auto_batches_above).then_some(batches)
            }
        }
    }

    /// The field sample, taken again when missing or too old. A failed sample only means the
    /// server chooses the policy for now.
    async fn current_sample(&self) -> Option<Arc<FieldSample>> {
        let max_age = std::time::Duration::from_secs(self.config.sample_max_age_secs);
        if let Some((at, s)) = self.sample.read().expect("sample lock").as_ref()
            && at.elapsed() < max_age
        {
            return Some(s.clone());
        }
        match self.refresh_sample().await {
            Ok(_) => self
                .sample
                .read()
                .expect("sample lock")
                .as_ref()
                .map(|(_, s)| s.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "selectivity sample failed; the server picks HYBRID_POLICY");
                None
            }
        }
    }

    /// Takes a new sample of the items' TAG and NUMERIC fields (`SCAN` over this namespace's item
    /// keys) for the `auto` policy; returns how many items it holds.
    pub async fn refresh_sample(&self) -> Result<usize> {
        let fields: Vec<String> = self
            .schema
            .fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Tag(_) | FieldKind::Numeric(_)))
            .map(|f| f.name.clone())
            .collect();
        // SCAN visits keys in hash-bucket order, which is unrelated to their content, so the
        // first `sample_size` item keys are a fair sample even in a Redis shared with other data.
        let want = self.config.sample_size.max(1);
        let pattern = format!("{}*", self.ns.item_prefix());
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        for _ in 0..200 {
            let mut pipe = redis::pipe();
            pipe.cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(2000);
            let reply = self.run(&pipe).await?;
            let Some(Value::Array(parts)) = reply.into_iter().next() else {
                return Err(Error::protocol("SCAN reply is not an array"));
            };
            let mut parts = parts.into_iter();
            cursor = match parts.next() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(&b).parse().unwrap_or(0),
                _ => 0,
            };
            if let Some(Value::Array(found)) = parts.next() {
                keys.extend(found.into_iter().filter_map(|v| match v {
                    Value::BulkString(b) => String::from_utf8(b).ok(),
                    _ => None,
                }));
            }
            if cursor == 0 || keys.len() >= want {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        keys.truncate(self.config.sample_size.max(1));
        let mut rows = Vec::new();
        if !keys.is_empty() && !fields.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HMGET").arg(k).arg(&fields);
            }
            for reply in self.run(&pipe).await? {
                let values = parse_hmget(&reply)?;
                let row: BTreeMap<String, String> = fields
                    .iter()
                    .zip(values)
                    .filter_map(|(f, v)| Some((f.clone(), String::from_utf8(v?).ok()?)))
                    .collect();
                rows.push(row);
            }
        }
        let n = rows.len();
        let sample = Arc::new(FieldSample::new(&self.schema, rows));
        *self.sample.write().expect("sample lock") = Some((std::time::Instant::now(), sample));
        Ok(n)
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
                let v = vector::decode(&blob.ok_or_else(missing)?).map_err(|_| missing())?;
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
            return Err(Error::BadQuery(redrec_core::Error::Query {
                message: format!("k is {}, expected 1..={}", req.k, self.config.max_k),
            }));
        }
        let filter = req.filter.render(&self.schema)?;
        let mut exclude = req.exclude.clone();
        let mut round_trips = 0;

        // Validate every source before any I/O.
        let mut needed: Vec<String> = Vec::new();
        for s in &req.sources {
            match s {
                Source::Vector(v) | Source::Session(v) | Source::LongTerm(v) => {
                    self.validate_vector(v)?
                }
                Source::Text { text, vector } => {
                    self.validate_vector(vector)?;
                    lexical_expression(Some(&self.fields.text), text)?;
                }
                Source::SimilarItem(id) => {
                    validate_id(id)?;
                    needed.push(id.clone());
                }
                Source::Examples {
                    positive,
                    negative,
                    negative_weight,
                } => {
                    if positive.is_empty() {
                        return Err(Error::BadQuery(redrec_core::Error::Query {
                            message: "examples need at least one positive item".into(),
                        }));
                    }
                    if !negative_weight.is_finite() || *negative_weight < 0.0 {
                        return Err(Error::BadQuery(redrec_core::Error::Query {
                            message: format!(
                                "negative_weight is {negative_weight}, expected a number >= 0"
                            ),
                        }));
                    }
                    for id in positive.iter().chain(negative) {
                        validate_id(id)?;
                        needed.push(id.clone());
                    }
                }
                Source::Popular => {}
            }
        }

        // Round trip 1 (only when needed): stored vectors of referenced items.
        let mut stored: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        if !needed.is_empty() {
            needed.sort();
            needed.dedup();
            let vectors = self.item_vectors(&needed).await?;
            round_trips += 1;
            stored = needed.iter().cloned().zip(vectors).collect();
        }

        // Plan one query per source.
        let mut plans: Vec<(PlanKind, SourceKind)> = Vec::new();
        for s in &req.sources {
            plans.push(match s {
                Source::Vector(v) => (PlanKind::Knn(v.clone()), SourceKind::QueryVector),
                Source::Session(v) => (PlanKind::Knn(v.clone()), SourceKind::Session),
                Source::LongTerm(v) => (PlanKind::Knn(v.clone()), SourceKind::LongTerm),
                Source::Text { text, vector } => (
                    PlanKind::Text(text.clone(), vector.clone()),
                    SourceKind::QueryText,
                ),
                Source::SimilarItem(id) => {
                    exclude.insert(id.clone());
                    (PlanKind::Knn(stored[id].clone()), SourceKind::SimilarItem)
                }
                Source::Examples {
                    positive,
                    negative,
                    negative_weight,
                } => {
                    let mut v = mean(positive.iter().map(|id| &stored[id]), self.dims);
                    if !negative.is_empty() {
                        let n = mean(negative.iter().map(|id| &stored[id]), self.dims);
                        for (x, y) in v.iter_mut().zip(&n) {
                            *x -= negative_weight * y;
                        }
                    }
                    vector::normalize(&mut v).map_err(|_| {
                        Error::BadQuery(redrec_core::Error::Query {
                            message: "positive and negative examples cancel out (zero vector)"
                                .into(),
                        })
                    })?;
                    exclude.extend(positive.iter().chain(negative).cloned());
                    (PlanKind::Knn(v), SourceKind::Examples)
                }
                Source::Popular => (PlanKind::Popular, SourceKind::Popular),
            });
        }
        if plans.is_empty() {
            plans.push((PlanKind::Popular, SourceKind::Popular));
        }

        // Only KNN sources care about the hybrid policy (and only with a filter).
        let policy = if plans
            .iter()
            .any(|(kind, _)| !matches!(kind, PlanKind::Popular))
        {
            self.policy_for(&req.filter).await
        } else {
            None
        };

        // Over-fetch so that exclusions still leave k: all of a small exclusion set, or 2k.
        let k = req.k;
        let max_fetch = self.config.max_k.max(k);
        let first_fetch = (k + exclude.len().min(2 * k)).min(max_fetch);
        let mut fetch = first_fetch;
        let mut retried = false;
        let mut partial = false;
        let mut fusion_path;
        let merged = loop {
            let planned: Vec<Planned> = plans
                .iter()
                .map(|(kind, source)| Planned {
                    kind: match kind {
                        PlanKind::Knn(v) => PlanKind::Knn(v.clone()),
                        PlanKind::Popular => PlanKind::Popular,
                        PlanKind::Text(t, v) => PlanKind::Text(t.clone(), v.clone()),
                    },
                    source: *source,
                    fetch,
                })
                .collect();
            let (lists, was_partial, path, full) =
                self.search_round(&planned, &filter, policy).await?;
            round_trips += 1;
            partial |= was_partial;
            fusion_path = path;
            let merged = merge(&lists, &exclude, k);
            // Retry once, larger, when exclusions cost us results and a list was cut short.
            let want_more = merged.candidates.len() < k && merged.excluded > 0 && full;
            let next = (k + exclude.len()).max(fetch * 4).min(max_fetch);
            if want_more && !retried && next > fetch {
                tracing::debug!(
                    fetch,
                    next,
                    excluded = merged.excluded,
                    "retrying with larger k"
                );
                fetch = next;
                retried = true;
                continue;
            }
            break merged;
        };
        let mut candidates = merged.candidates;

        // Last round trip (only when needed): fields and/or vectors of the winners.
        let need_fields = self.config.fetch == FetchMode::IdsThenHmget;
        if (need_fields || req.with_vectors) && !candidates.is_empty() {
            let mut wanted: Vec<String> = Vec::new();
            if need_fields {
                wanted.extend(self.return_fields.iter().cloned());
            }
            if req.with_vectors {
                wanted.push(self.fields.vector.clone());
            }
            let mut pipe = redis::pipe();
            for c in &candidates {
                pipe.cmd("HMGET").arg(self.ns.item(&c.id)).arg(&wanted);
            }
            let replies = self.run(&pipe).await?;
            round_trips += 1;
            for (c, r) in candidates.iter_mut().zip(&replies) {
                let values = parse_hmget(r)?;
                for (name, value) in wanted.iter().zip(values) {
                    let Some(value) = value else { continue };
                    if req.with_vectors && *name == self.fields.vector {
                        c.vector = vector::decode(&value).ok();
                    } else {
                        c.fields
                            .insert(name.clone(), String::from_utf8_lossy(&value).into_owned());
                    }
                }
            }
        }
        Ok(Retrieval {
            candidates,
            round_trips,
            excluded: merged.excluded,
            retried,
            partial,
            fusion: fusion_path,
            policy,
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
            return Err(Error::BadQuery(redrec_core::Error::Query {
                message: format!("limit is {limit}, expected 1..={}", self.config.max_k),
            }));
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
        let list = self.vector_list(SourceKind::QueryVector, page);
        Ok(merge(&[list], &BTreeSet::new(), limit).candidates)
    }

    /// Sends every planned query in one pipeline and turns the replies into ranked lists.
    /// Returns the lists, whether a reply was partial, the fusion path, and whether any list
    /// came back full (so more results may exist).
    async fn search_round(
        &self,
        planned: &[Planned],
        filter: &str,
        policy: Option<HybridPolicy>,
    ) -> Result<(Vec<RankedList>, bool, FusionPath, bool)> {
        let mut pipe = redis::pipe();
        // (command index, what it is) for reading the replies back
        enum Slot {
            Knn(SourceKind, usize),
            Popular(usize),
            ClientText {
                text: usize,
                knn: usize,
                fetch: usize,
            },
            ServerText(usize),
        }
        let mut slots = Vec::new();
        let mut n = 0;
        let mut fusion = FusionPath::None;
        let mut add = |pipe: &mut redis::Pipeline, a: SearchArgs| {
            pipe.add_command(a.cmd());
            n += 1;
            n - 1
        };
        for p in planned {
            match &p.kind {
                PlanKind::Knn(v) => {
                    let q = self.knn(filter, v.clone(), p.fetch, policy);
                    slots.push(Slot::Knn(p.source, add(&mut pipe, q.args()?)));
                }
                PlanKind::Popular => {
                    let q = SortedQuery {
                        index: self.alias.clone(),
                        filter: filter.to_owned(),
                        sort_field: self.fields.popularity.clone(),
                        descending: true,
                        offset: 0,
                        limit: p.fetch,
                        projection: self.projection(),
                        timeout_ms: self.timeout(),
                    };
                    slots.push(Slot::Popular(add(&mut pipe, q.args())));
                }
                PlanKind::Text(text, v) => {
                    let expr = lexical_expression(Some(&self.fields.text), text)?;
                    let window = self.config.fusion.window().max(p.fetch);
                    match (self.hybrid, self.config.use_ft_hybrid) {
                        (Some(syntax), true) => {
                            let q = HybridQuery {
                                index: self.alias.clone(),
                                text: expr,
                                filter: filter.to_owned(),
                                vector_field: self.fields.vector.clone(),
                                vector: v.clone(),
                                ef_runtime: self.hnsw.then_some(self.config.ef_runtime),
                                fusion: with_window(self.config.fusion, window),
                                limit: p.fetch,
                                load: self.return_fields.clone(),
                                policy,
                                timeout_ms: self.timeout(),
                            };
                            fusion = FusionPath::Server(syntax);
                            slots.push(Slot::ServerText(add(&mut pipe, q.args(syntax)?)));
                        }
                        _ => {
                            let t = TextQuery {
                                index: self.alias.clone(),
                                text: expr,
                                filter: filter.to_owned(),
                                limit: window,
                                scorer: self.config.text_scorer.clone(),
                                projection: self.projection(),
                                timeout_ms: self.timeout(),
                            };
                            let text_slot = add(&mut pipe, t.args());
                            let knn_slot = add(
                                &mut pipe,
                                self.knn(filter, v.clone(), window, policy).args()?,
                            );
                            fusion = FusionPath::Client;
                            slots.push(Slot::ClientText {
                                text: text_slot,
                                knn: knn_slot,
                                fetch: p.fetch,
                            });
                        }
                    }
                }
            }
        }
        let replies = self.run(&pipe).await?;
        if replies.len() != n {
            return Err(Error::protocol(format!(
                "pipeline of {n} commands returned {} replies",
                replies.len()
            )));
        }
        let content = self.config.fetch == FetchMode::Return;
        let vector_shape = Shape {
            with_scores: false,
            with_content: true, // RETURN always carries at least the distance
        };
        let mut partial = false;
        let mut hybrid_partial = false;
        let mut full = false;
        let mut lists = Vec::new();
        let mut page_of = |i: usize, shape: Shape| -> Result<Page> {
            let page = parse_search(&replies[i], shape)?;
            if !page.warnings.is_empty() {
                tracing::warn!(warnings = ?page.warnings, "partial search results");
                partial = true;
            }
            Ok(page)
        };
        for (slot, p) in slots.iter().zip(planned) {
            match *slot {
                Slot::Knn(source, i) => {
                    let page = page_of(i, vector_shape)?;
                    full |= page.hits.len() >= p.fetch;
                    lists.push(self.vector_list(source, page));
                }
                Slot::Popular(i) => {
                    let page = page_of(
                        i,
                        Shape {
                            with_scores: false,
                            with_content: true,
                        },
                    )?;
                    full |= page.hits.len() >= p.fetch;
                    lists.push(self.popular_list(page));
                }
                Slot::ClientText { text, knn, fetch } => {
                    let tpage = page_of(
                        text,
                        Shape {
                            with_scores: true,
                            with_content: content,
                        },
                    )?;
                    let vpage = page_of(knn, vector_shape)?;
                    full |= tpage.hits.len() >= fetch || vpage.hits.len() >= fetch;
                    lists.push(self.client_fused(tpage, vpage, fetch));
                }
                Slot::ServerText(i) => {
                    let page = parse_hybrid(&replies[i])?;
                    if !page.warnings.is_empty() {
                        tracing::warn!(warnings = ?page.warnings, "partial hybrid results");
                        hybrid_partial = true;
                    }
                    full |= page.hits.len() >= p.fetch;
                    lists.push(self.server_fused(page));
                }
            }
        }
        Ok((lists, partial || hybrid_partial, fusion, full))
    }

    fn knn(
        &self,
        filter: &str,
        vector: Vec<f32>,
        k: usize,
        policy: Option<HybridPolicy>,
    ) -> KnnQuery {
        KnnQuery {
            index: self.alias.clone(),
            filter: filter.to_owned(),
            vector_field: self.fields.vector.clone(),
            vector,
            k,
            ef_runtime: self.hnsw.then(|| self.config.ef_runtime.max(k as u32)),
            distance_alias: DISTANCE_ALIAS.into(),
            projection: self.projection(),
            hybrid_policy: policy,
            timeout_ms: self.timeout(),
        }
    }

    fn id_of(&self, key: &str) -> String {
        self.ns.item_id(key).unwrap_or(key).to_owned()
    }

    fn vector_list(&self, source: SourceKind, page: Page) -> RankedList {
        RankedList {
            entries: page
                .hits
                .into_iter()
                .enumerate()
                .map(|(rank, mut h)| {
                    let distance = h
                        .fields
                        .remove(DISTANCE_ALIAS)
                        .and_then(|d| d.parse::<f32>().ok())
                        .unwrap_or(f32::MAX);
                    ListEntry {
                        id: self.id_of(&h.key),
                        hits: vec![SourceHit {
                            source,
                            rank: rank as u32,
                            similarity: self.metric.similarity(distance),
                        }],
                        fields: h.fields,
                    }
                })
                .collect(),
        }
    }

    fn popular_list(&self, page: Page) -> RankedList {
        let pop = |h: &crate::reply::Hit| {
            h.fields
                .get(&self.fields.popularity)
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| p.is_finite())
                .unwrap_or(0.0)
        };
        let max = page.hits.iter().map(pop).fold(0.0, f64::max);
        RankedList {
            entries: page
                .hits
                .iter()
                .enumerate()
                .map(|(rank, h)| ListEntry {
                    id: self.id_of(&h.key),
                    hits: vec![SourceHit {
                        source: SourceKind::Popular,
                        rank: rank as u32,
                        similarity: if max > 0.0 {
                            (pop(h) / max) as f32
                        } else {
                            0.0
                        },
                    }],
                    fields: h.fields.clone(),
                })
                .collect(),
        }
    }

    /// Fuses a BM25 page and a KNN page with the configured fusion into one list whose entries
    /// carry a `Lexical` and/or a `QueryText` hit.
    fn client_fused(&self, text: Page, vector: Page, fetch: usize) -> RankedList {
        let mut fields: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let text_hits: Vec<RankedHit> = text
            .hits
            .into_iter()
            .map(|h| {
                let id = self.id_of(&h.key);
                fields.entry(id.clone()).or_insert(h.fields);
                RankedHit {
                    id,
                    score: h.score.unwrap_or(0.0),
                }
            })
            .collect();
        let vector_hits: Vec<RankedHit> = vector
            .hits
            .into_iter()
            .map(|mut h| {
                let id = self.id_of(&h.key);
                let d = h
                    .fields
                    .remove(DISTANCE_ALIAS)
                    .and_then(|d| d.parse::<f32>().ok())
                    .unwrap_or(f32::MAX);
                fields.entry(id.clone()).or_insert(h.fields);
                RankedHit {
                    id,
                    score: f64::from(self.metric.similarity(d)),
                }
            })
            .collect();
        let fused = fuse(&self.config.fusion, &text_hits, &vector_hits);
        RankedList {
            entries: fused
                .into_iter()
                .take(fetch)
                .map(|f| {
                    let mut hits = Vec::new();
                    if let Some((rank, score)) = f.text {
                        hits.push(SourceHit {
                            source: SourceKind::Lexical,
                            rank,
                            similarity: score as f32,
                        });
                    }
                    if let Some((rank, sim)) = f.vector {
                        hits.push(SourceHit {
                            source: SourceKind::QueryText,
                            rank,
                            similarity: sim as f32,
                        });
                    }
                    ListEntry {
                        fields: fields.remove(&f.id).unwrap_or_default(),
                        id: f.id,
                        hits,
                    }
                })
                .collect(),
        }
    }

    fn server_fused(&self, page: Page) -> RankedList {
        RankedList {
            entries: page
                .hits
                .into_iter()
                .enumerate()
                .map(|(rank, h)| ListEntry {
                    id: self.id_of(&h.key),
                    hits: vec![SourceHit {
                        source: SourceKind::QueryText,
                        rank: rank as u32,
                        similarity: h.score.unwrap_or(0.0) as f32,
                    }],
                    fields: h.fields,
                })
                .collect(),
        }
    }
}

fn with_window(f: Fusion, window: usize) -> Fusion {
    match f {
        Fusion::Rrf { constant, .. } => Fusion::Rrf { constant, window },
        Fusion::Linear { alpha, beta, .. } => Fusion::Linear {
            alpha,
            beta,
            window,
        },
    }
}

fn mean<'a>(vs: impl Iterator<Item = &'a Vec<f32>>, dims: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dims];
    let mut n = 0;
    for v in vs {
        n += 1;
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x;
        }
    }
    if n > 0 {
        for s in &mut sum {
            *s /= n as f32;
        }
    }
    sum
}

/// The `search` module version from a `MODULE LIST` reply (RESP2 arrays or RESP3 maps).
fn search_module_version(v: &Value) -> Option<u32> {
    let Value::Array(modules) = v else {
        return None;
    };
    for m in modules {
        let pairs: Vec<(String, &Value)> = match m {
            Value::Map(p) => p
                .iter()
                .filter_map(|(k, v)| Some((crate::reply::text(k)?, v)))
                .collect(),
            Value::Array(a) => a
                .chunks_exact(2)
                .filter_map(|c| Some((crate::reply::text(&c[0])?, &c[1])))
                .collect(),
            _ => continue,
        };
        let name = pairs
            .iter()
            .find(|(k, _)| k == "name")
            .and_then(|(_, v)| crate::reply::text(v));
        if name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case("search"))
        {
            return pairs
                .iter()
                .find(|(k, _)| k == "ver")
                .and_then(|(_, v)| crate::reply::text(v))
                .and_then(|v| v.parse().ok());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_search_module_version() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let v = Value::Array(vec![
            Value::Map(vec![
                (b("name"), b("ReJSON")),
                (b("ver"), Value::Int(20803)),
            ]),
            Value::Map(vec![
                (b("name"), b("search")),
                (b("ver"), Value::Int(80403)),
            ]),
        ]);
        assert_eq!(search_module_version(&v), Some(80403));
        let v = Value::Array(vec![Value::Array(vec![
            b("name"),
            b("search"),
            b("ver"),
            Value::Int(21005),
        ])]);
        assert_eq!(search_module_version(&v), Some(21005));
    }

    #[test]
    fn averages_vectors() {
        let a = vec![1.0, 0.0];
        let b = vec![0.0, 1.0];
        assert_eq!(mean([&a, &b].into_iter(), 2), vec![0.5, 0.5]);
    }

    #[test]
    fn config_fills_defaults_and_rejects_unknown_keys() {
        let c: RetrieverConfig = serde_json::from_str(
            r#"{"ef_runtime": 64, "fusion": {"method": "rrf", "constant": 10, "window": 5}}"#,
        )
        .unwrap();
        assert_eq!(c.ef_runtime, 64);
        assert_eq!(c.fetch, FetchMode::Return);
        assert_eq!(
            c.fusion,
            Fusion::Rrf {
                constant: 10.0,
                window: 5
            }
        );
        let e = serde_json::from_str::<RetrieverConfig>(r#"{"ef": 1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `ef`"), "{e}");
        let c: RetrieverConfig =
            serde_json::from_str(r#"{"hybrid_policy": "batches", "batch_size": 32}"#).unwrap();
        assert_eq!(c.hybrid_policy, Some(PolicyName::Batches));
        let e =
            serde_json::from_str::<RetrieverConfig>(r#"{"hybrid_policy": "fast"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `fast`"), "{e}");
    }
}
