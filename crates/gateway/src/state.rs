//! `AppState`: what every handler shares (settings, the deployment's one Redis connection setup,
//! metrics, the embedder and the pipeline's components), and the one way the gateway talks to
//! Redis: a connection from `redrec_store::Redis` for a [`Route`], calls bounded by the per-call
//! timeout, and every store failure turned into an `ApiError` (`From<redrec_store::Error>`).

use std::{future::Future, sync::Arc, time::Duration};

use deadpool_redis::Connection;
use redrec_core::{
    config::{IndexConfig, RedisConfig},
    keys::Namespace,
    schema::IndexSchema,
};
use redrec_store::{Redis, Route};
use serde::{Deserialize, Serialize};

use crate::{
    admission::{Limiter, Refused},
    budget::Deadline,
    config::GatewayConfig,
    error::ApiError,
    metrics::{Metrics, PoolGauges},
    services,
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
    /// `[user_state]` (formerly `[features]`, still accepted).
    #[serde(alias = "features")]
    pub user_state: redrec_userstate::UserStateConfig,
    pub reranker: redrec_reranker::RerankerConfig,
    pub retriever: redrec_retriever::RetrieverConfig,
    /// Impression recording, attribution and experiments (`[online]`).
    pub online: crate::online::OnlineConfig,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid setting `{field}`: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    /// A setting named by its full key (`online.experiments[0].variants[1].profile`).
    #[error("invalid setting `{key}`: {message}")]
    Setting { key: String, message: String },
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
    /// The deployment's connection setup, shared with the retriever.
    pub redis: Redis,
    pub metrics: Metrics,
    /// `gateway.api_keys`, as digests.
    pub api_keys: crate::auth::ApiKeys,
    /// `None` until an embedder is loaded: text queries then answer 503 and `/readyz` is false.
    pub embedder: Option<Arc<dyn redrec_embedder::Embedder>>,
    pub user_state: redrec_userstate::UserStateStore,
    /// The rank profiles and experiments (swapped whole by a reload: `state.online.live()`),
    /// the impression writer and the attribution counters.
    pub online: crate::online::Online,
    pub retriever: redrec_retriever::Retriever,
    /// Admission control of the Redis queries of read requests.
    pub admission: Limiter,
    /// Popular lists, item vectors, query-text embeddings.
    pub caches: crate::cache::Caches,
    /// Micro-batching in front of the embedder (`None` without an embedder or with
    /// `gateway.embed_batch_max = 1`).
    pub batcher: Option<Arc<redrec_embedder::MicroBatcher>>,
    /// Department -> categories, cached by `GET /v1/facets`.
    pub facets: tokio::sync::Mutex<Option<(std::time::Instant, services::index::Facets)>>,
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
        let api_keys =
            crate::auth::ApiKeys::parse(&settings.gateway.api_keys).map_err(|message| {
                StartError::Config {
                    field: "gateway.api_keys",
                    message,
                }
            })?;
        crate::security::cors_layer(&settings.gateway.cors_allow_origins).map_err(|message| {
            StartError::Config {
                field: "gateway.cors_allow_origins",
                message,
            }
        })?;
        settings
            .gateway
            .admission
            .validate()
            .map_err(|(field, message)| StartError::Config { field, message })?;
        let redis = connect_redis(&settings.redis)?;
        let ns = settings.index.namespace();
        let user_state = redrec_userstate::UserStateStore::new(
            ns.clone(),
            settings.index.fields.clone(),
            settings.user_state.clone(),
        )
        .map_err(|e| StartError::Config {
            field: "user_state",
            message: e.to_string(),
        })?;
        // user state on a cluster of its own: keys under the user's hash tag, items passed in
        let user_state = if settings.redis.user_state.is_some() {
            user_state.for_cluster().map_err(|e| match e {
                redrec_userstate::Error::Config { field, message } => {
                    StartError::Config { field, message }
                }
                other => StartError::Config {
                    field: "redis.user_state",
                    message: other.to_string(),
                },
            })?
        } else {
            user_state
        };
        let reranker =
            redrec_reranker::Reranker::from_config(settings.reranker.clone()).map_err(|e| {
                StartError::Config {
                    field: "reranker",
                    message: e.to_string(),
                }
            })?;
        let live = crate::online::Live::new(reranker, &settings.online).map_err(|e| {
            StartError::Setting {
                key: e.key,
                message: e.message,
            }
        })?;
        let online = crate::online::Online::new(live, redis.clone(), ns.clone());
        let retriever = build_retriever(&settings, &redis, &schema, None)?;
        let batcher = match (&embedder, settings.gateway.embed_batch_max) {
            (_, 0) => {
                return Err(StartError::Config {
                    field: "gateway.embed_batch_max",
                    message: "must be at least 1 (1 = no batching)".into(),
                });
            }
            (Some(e), n) if n > 1 => Some(Arc::new(
                redrec_embedder::MicroBatcher::new(
                    e.clone(),
                    n,
                    Duration::from_micros(settings.gateway.embed_batch_wait_us),
                )
                .map_err(|e| StartError::Config {
                    field: "gateway.embed_batch_max",
                    message: e.to_string(),
                })?,
            )),
            _ => None,
        };
        Ok(AppState {
            inner: Arc::new(Inner {
                retriever,
                admission: Limiter::new(&settings.gateway.admission),
                caches: crate::cache::Caches::new(&settings.gateway.cache),
                batcher,
                facets: tokio::sync::Mutex::new(None),
                ns,
                schema,
                redis,
                metrics: Metrics::new(),
                api_keys,
                embedder,
                user_state,
                online,
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
        let extra = match services::index::serving_index(&state).await {
            Ok(info) => {
                let added = extend_schema(&mut schema, &services::index::field_types(&info));
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
        let mut probe = build_retriever(&state.settings, &state.redis, &schema, None)?;
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
        inner.retriever = build_retriever(&inner.settings, &inner.redis, &schema, hybrid)?;
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
        self.redis.command_timeout()
    }

    /// A pooled connection to the node serving `route`, or a 503 within the command timeout.
    pub async fn conn(&self, route: Route) -> Result<Connection, ApiError> {
        self.redis.conn(route).await.map_err(ApiError::from)
    }

    /// The connection serving user state (features, event markers, rate limits): the primary's,
    /// or the user-state cluster's when `[redis.user_state]` names one; a 503 when unavailable.
    pub async fn user_state_conn(&self) -> Result<redrec_store::UserStateConn, ApiError> {
        self.redis.user_state_conn().await.map_err(ApiError::from)
    }

    /// Runs one store call (`what` names it in errors) on a connection for `route`, within the
    /// per-call timeout.
    pub async fn call<T, F, Fut>(&self, what: &str, route: Route, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redrec_store::Result<T>>,
    {
        let con = self.conn(route).await?;
        self.redis.call(what, f(con)).await.map_err(ApiError::from)
    }

    /// Runs one Redis stage (`stage` names it in errors and metrics) under an admission permit
    /// taken within `deadline`. A request that cannot get one in time is refused with 503 and
    /// `Retry-After` (at once when the expected wait already exceeds the deadline).
    pub async fn admitted<T>(
        &self,
        deadline: &Deadline,
        stage: &'static str,
        fut: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let _permit = self
            .admission
            .acquire(deadline.end())
            .await
            .map_err(|refused| {
                self.metrics.admission_refused(stage, refused);
                let deadline_ms = self.settings.gateway.deadline_ms;
                ApiError::Unavailable {
                    reason: match refused {
                        Refused::Overloaded => format!(
                            "overloaded: stage `{stage}` cannot start within the {deadline_ms} ms deadline"
                        ),
                        Refused::Deadline => format!(
                            "overloaded: stage `{stage}` waited for Redis until the {deadline_ms} ms deadline"
                        ),
                    },
                    retry_after_secs: 1,
                    metric: None,
                }
            })?;
        fut.await
    }

    pub fn pool_gauges(&self) -> PoolGauges {
        let s = self.redis.status(Route::Primary);
        PoolGauges {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }
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
    redis: &Redis,
    schema: &IndexSchema,
    hybrid: Option<redrec_core::hybrid::HybridSyntax>,
) -> Result<redrec_retriever::Retriever, StartError> {
    let cfg_err = |e: redrec_retriever::Error| StartError::Config {
        field: "retriever",
        message: e.to_string(),
    };
    // Searches tolerate replication lag: the store decides which node serves each of them.
    let mut retriever = redrec_retriever::Retriever::with_store(
        redis.clone(),
        settings.index.namespace(),
        schema.clone(),
        settings.index.fields.clone(),
        settings.retriever.clone(),
    )
    .map_err(cfg_err)?;
    retriever.set_hybrid_syntax(hybrid);
    Ok(retriever)
}

fn connect_redis(cfg: &RedisConfig) -> Result<Redis, StartError> {
    if cfg.pool_size == 0 {
        return Err(StartError::Config {
            field: "redis.pool_size",
            message: "must be at least 1".into(),
        });
    }
    Redis::new(cfg).map_err(|e| match e {
        redrec_store::Error::Config { key, message } => StartError::Config {
            field: key,
            message,
        },
        other => StartError::Config {
            field: "redis",
            message: other.to_string(),
        },
    })
}
