//! `AppState`: what every handler shares (settings, the Redis pool, metrics, the embedder and
//! the pipeline's components), and the one way handlers talk to Redis: through a pooled
//! connection with a per-call timeout, where every failure becomes a fast 503.

use std::{future::Future, sync::Arc, time::Duration};

use deadpool_redis::{Connection, Pool, Runtime};
use redrec_core::{
    config::{IndexConfig, RedisConfig},
    keys::Namespace,
    schema::IndexSchema,
};
use serde::{Deserialize, Serialize};

use crate::{
    config::GatewayConfig,
    error::ApiError,
    metrics::{Metrics, PoolGauges},
    routes,
};

/// Everything the gateway binary reads from its configuration. Sections it does not know
/// (`[ingest]`, `[mapping]`, other binaries' env vars) are ignored so one redrec.toml serves every
/// binary; inside each known section unknown keys are errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub redis: RedisConfig,
    pub index: IndexConfig,
    pub gateway: GatewayConfig,
    pub embedder: redrec_embedder::EmbedderConfig,
    pub features: redrec_features::FeaturesConfig,
    pub reranker: redrec_reranker::RerankerConfig,
    pub retriever: redrec_retriever::RetrieverConfig,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid setting `{field}`: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("cannot create the redis pool for {url}: {message}")]
    Pool { url: String, message: String },
}

/// Request-body limit, handed to the JSON extractor as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub ns: Namespace,
    pub schema: IndexSchema,
    pub pool: Pool,
    pub metrics: Metrics,
    /// `None` until an embedder is loaded: text queries then answer 503 and `/readyz` is false.
    pub embedder: Option<Arc<dyn redrec_embedder::Embedder>>,
    pub features: redrec_features::FeatureStore,
    pub reranker: redrec_reranker::Reranker,
    pub retriever: redrec_retriever::Retriever,
    /// Department -> categories, cached by `GET /v1/facets`.
    pub facets: tokio::sync::Mutex<Option<(std::time::Instant, crate::routes::query::Facets)>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    /// Builds the state. The pool connects lazily, so this succeeds while Redis is down
    /// (`/readyz` then reports it).
    pub fn new(
        settings: Settings,
        embedder: Option<Arc<dyn redrec_embedder::Embedder>>,
    ) -> Result<AppState, StartError> {
        let schema = settings.index.schema(1).map_err(|e| StartError::Config {
            field: "index",
            message: e.to_string(),
        })?;
        if settings.gateway.max_k == 0 {
            return Err(StartError::Config {
                field: "gateway.max_k",
                message: "must be at least 1".into(),
            });
        }
        if let Some(e) = &embedder
            && e.dims() != settings.index.vector.dims
        {
            return Err(StartError::Config {
                field: "index.vector.dims",
                message: format!(
                    "is {} but the embedder `{}` produces {} dimensions",
                    settings.index.vector.dims,
                    e.model_id(),
                    e.dims()
                ),
            });
        }
        let pool = build_pool(&settings.redis)?;
        let ns = settings.index.namespace();
        let features = redrec_features::FeatureStore::new(
            ns.clone(),
            settings.index.fields.clone(),
            settings.features.clone(),
        )
        .map_err(|e| StartError::Config {
            field: "features",
            message: e.to_string(),
        })?;
        let reranker =
            redrec_reranker::Reranker::from_config(settings.reranker.clone()).map_err(|e| {
                StartError::Config {
                    field: "reranker",
                    message: e.to_string(),
                }
            })?;
        let retriever = build_retriever(&settings, &schema, None)?;
        Ok(AppState {
            inner: Arc::new(Inner {
                retriever,
                facets: tokio::sync::Mutex::new(None),
                ns,
                schema,
                pool,
                metrics: Metrics::new(),
                embedder,
                features,
                reranker,
                settings,
            }),
        })
    }

    /// Like [`AppState::new`], and then looks at the live server:
    /// - fields the serving index has beyond the configured schema (e.g. the Complete Journey
    ///   seed's `product_type`, `manufacturer` tags) are added, so they can be filtered on and are
    ///   returned with results;
    /// - `FT.HYBRID` is detected so text queries fuse on the server where available (Redis 8.4+).
    ///
    /// A Redis that is down is not an error here: the configured schema and client-side fusion
    /// are used and `/readyz` reports the outage.
    pub async fn connect(
        settings: Settings,
        embedder: Option<Arc<dyn redrec_embedder::Embedder>>,
    ) -> Result<AppState, StartError> {
        let state = AppState::new(settings, embedder)?;
        let mut schema = state.schema.clone();
        let extra = match routes::system::index_info(&state).await {
            Ok(info) => {
                let added = extend_schema(&mut schema, &info.fields);
                if !added.is_empty() {
                    tracing::info!(fields = ?added, "serving index has extra fields; added to the schema");
                }
                !added.is_empty()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the serving index; using the configured schema");
                false
            }
        };
        let mut probe = build_retriever(&state.settings, &schema, None)?;
        let hybrid = match probe.detect_hybrid().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot probe FT.HYBRID; using client-side fusion");
                None
            }
        };
        if !extra && hybrid.is_none() {
            return Ok(state);
        }
        if let Some(syntax) = hybrid {
            tracing::info!(syntax = ?syntax, "FT.HYBRID available: server-side fusion");
        }
        let mut inner = Arc::try_unwrap(state.inner)
            .unwrap_or_else(|_| unreachable!("state is not shared before connect returns"));
        inner.retriever = build_retriever(&inner.settings, &schema, hybrid)?;
        inner.schema = schema;
        Ok(AppState {
            inner: Arc::new(inner),
        })
    }

    pub fn gateway(&self) -> &GatewayConfig {
        &self.settings.gateway
    }

    pub fn index_config(&self) -> &IndexConfig {
        &self.settings.index
    }

    /// Timeout of one Redis call.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.redis.command_timeout_ms.max(1))
    }

    /// A pooled connection, or a 503 within the command timeout.
    pub async fn conn(&self) -> Result<Connection, ApiError> {
        match tokio::time::timeout(self.command_timeout(), self.pool.get()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => {
                self.metrics.redis_error("connection");
                Err(ApiError::unavailable(format!("redis is unreachable: {e}")))
            }
            Err(_) => {
                self.metrics.redis_error("timeout");
                Err(ApiError::unavailable(
                    "timed out waiting for a redis connection",
                ))
            }
        }
    }

    /// Runs one Redis call with the per-call timeout; transport failures and timeouts are 503.
    pub async fn redis<T>(
        &self,
        what: &str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.command_timeout(), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.redis_failure(what, &e)),
            Err(_) => {
                self.metrics.redis_error("timeout");
                Err(ApiError::unavailable(format!(
                    "redis did not answer {what} within {} ms",
                    self.command_timeout().as_millis()
                )))
            }
        }
    }

    /// Classifies a Redis error: transport problems are 503, anything else 500.
    pub fn redis_failure(&self, what: &str, e: &redis::RedisError) -> ApiError {
        if is_transport_error(e) {
            self.metrics.redis_error("connection");
            ApiError::unavailable(format!("redis failed during {what}: {e}"))
        } else {
            self.metrics.redis_error("command");
            ApiError::internal(format!("redis {what}: {e}"))
        }
    }

    pub fn pool_gauges(&self) -> PoolGauges {
        let s = self.pool.status();
        PoolGauges {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }
}

/// True for errors that mean "Redis is not there right now" rather than "the command was wrong".
pub fn is_transport_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
        )
}

/// Adds the TAG / TEXT / NUMERIC fields of a live index (`FT.INFO` attribute name -> type) that
/// `schema` lacks; returns their names.
pub fn extend_schema(
    schema: &mut IndexSchema,
    live: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    use redrec_core::schema::FieldDef;
    let mut added = Vec::new();
    for (name, ty) in live {
        if name.is_empty() || schema.fields.iter().any(|f| f.name == *name) {
            continue;
        }
        let field = match ty.to_ascii_uppercase().as_str() {
            "TAG" => FieldDef::tag(name),
            "TEXT" => FieldDef::text(name),
            "NUMERIC" => FieldDef::numeric(name, false),
            _ => continue,
        };
        schema.fields.push(field);
        added.push(name.clone());
    }
    added
}

fn build_retriever(
    settings: &Settings,
    schema: &IndexSchema,
    hybrid: Option<redrec_core::hybrid::HybridSyntax>,
) -> Result<redrec_retriever::Retriever, StartError> {
    let cfg_err = |e: redrec_retriever::Error| StartError::Config {
        field: "retriever",
        message: e.to_string(),
    };
    // The retriever keeps its own RESP3 pool (it reads partial-result warnings from RESP3).
    let pool = redrec_retriever::create_pool(&settings.redis).map_err(cfg_err)?;
    let mut retriever = redrec_retriever::Retriever::with_pool(
        pool,
        settings.index.namespace(),
        schema.clone(),
        settings.index.fields.clone(),
        settings.retriever.clone(),
    )
    .map_err(cfg_err)?;
    retriever.set_hybrid_syntax(hybrid);
    Ok(retriever)
}

fn build_pool(cfg: &RedisConfig) -> Result<Pool, StartError> {
    let pool_err = |message: String| StartError::Pool {
        url: cfg.url.clone(),
        message,
    };
    if cfg.pool_size == 0 {
        return Err(StartError::Config {
            field: "redis.pool_size",
            message: "must be at least 1".into(),
        });
    }
    let connect = Duration::from_millis(cfg.connect_timeout_ms.max(1));
    deadpool_redis::Config::from_url(cfg.url.clone())
        .builder()
        .map_err(|e| pool_err(e.to_string()))?
        .max_size(cfg.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(connect))
        .create_timeout(Some(connect))
        .recycle_timeout(Some(connect))
        .build()
        .map_err(|e| pool_err(e.to_string()))
}
