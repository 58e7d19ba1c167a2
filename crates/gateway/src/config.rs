//! The gateway's settings. Plain `Deserialize` structs: only the binary (`src/main.rs`) layers
//! them with `redrec_core::config::figment`; tests build them directly.

use serde::{Deserialize, Serialize};

/// HTTP-facing settings (`[gateway]` in redrec.toml, `REDREC_GATEWAY__*` in the environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Socket address to bind, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// API keys accepted on writes (`POST /v1/events`, `DELETE /v1/users/{id}`) and admin routes
    /// (`/v1/items/{id}`, `/v1/index`). Empty means those routes answer 401 for everyone. An
    /// entry is a key or `sha256:<64 hex digits>` (the key's SHA-256), so the config need not
    /// hold the secret.
    pub api_keys: Vec<String>,
    /// Whether read routes (recommendations, search, similar, user features) need a key too.
    pub read_keys_required: bool,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// End-to-end deadline of one request, in milliseconds. Every stage may use what is left of
    /// it; only reranking has a budget of its own.
    pub deadline_ms: u64,
    /// The rerank budget inside that deadline.
    pub budgets: StageBudgets,
    /// How many Redis queries this gateway keeps in flight, and how requests wait for a slot.
    pub admission: crate::admission::AdmissionConfig,
    /// Serving caches: sizes and maximum ages.
    pub cache: crate::cache::CacheConfig,
    /// Concurrent query texts embedded as one batch: at most this many (1 = no batching).
    pub embed_batch_max: usize,
    /// How long the batch worker waits for more texts after the first, in microseconds.
    pub embed_batch_wait_us: u64,
    /// Largest `k` a request may ask for.
    pub max_k: usize,
    /// Optional fixed-window rate limiting in the same Redis.
    pub rate_limit: RateLimitConfig,
    /// Seconds to wait for in-flight requests on shutdown before giving up.
    pub shutdown_grace_secs: u64,
    /// Seconds between folds of event popularity (`{ns}:pop`) into the indexed `popularity`
    /// field; 0 disables the background fold.
    pub popularity_fold_secs: u64,
    /// Log format of the binary: `pretty` or `json`.
    pub log_format: String,
    /// Browser origins allowed to call the API cross-origin (`https://shop.example.com`);
    /// empty (the default) sends no CORS headers, so browsers allow same-origin calls only.
    pub cors_allow_origins: Vec<String>,
    /// Accept the `x-redrec-as-of` request header (epoch milliseconds) as the request's clock for
    /// feature decay, session expiry and freshness. For offline replays only (`cargo xtask
    /// eval`): a request then sees the user's state as it was at that instant. Off by default;
    /// while off, a request carrying the header is rejected with 422.
    pub replay_clock: bool,
    /// OpenTelemetry trace export over OTLP/HTTP (off by default; `telemetry.rs`).
    pub otlp: crate::telemetry::OtlpConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:8080".into(),
            api_keys: Vec::new(),
            read_keys_required: false,
            body_limit: 256 * 1024,
            deadline_ms: 200,
            budgets: StageBudgets::default(),
            admission: crate::admission::AdmissionConfig::default(),
            cache: crate::cache::CacheConfig::default(),
            embed_batch_max: 16,
            embed_batch_wait_us: 0,
            max_k: 200,
            rate_limit: RateLimitConfig::default(),
            shutdown_grace_secs: 10,
            popularity_fold_secs: 60,
            log_format: "pretty".into(),
            cors_allow_origins: Vec::new(),
            replay_clock: false,
            otlp: crate::telemetry::OtlpConfig::default(),
        }
    }
}

/// Stage budgets, in milliseconds. The stages that read Redis or embed text have none: they may
/// use whatever is left of the request's deadline, so a stage that waited for Redis takes time from
/// the later ones instead of failing while they have slack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageBudgets {
    /// Reranking; over budget (or with no time left in the deadline), the retrieval order is
    /// returned with `degraded: true`.
    pub rerank_ms: u64,
}

impl Default for StageBudgets {
    fn default() -> Self {
        StageBudgets { rerank_ms: 40 }
    }
}

/// Who a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBy {
    /// The API key (requests without a key share the `anonymous` bucket).
    ApiKey,
    /// The `X-User-Id` header, falling back to the API key.
    User,
}

/// Fixed-window rate limiting: at most `requests` per `window_ms` per identity, counted with
/// `INCR` + `PEXPIRE` on `{namespace}:rl:{identity}:{window}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub requests: u64,
    pub window_ms: u64,
    pub by: RateLimitBy,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: false,
            requests: 100,
            window_ms: 1000,
            by: RateLimitBy::ApiKey,
        }
    }
}
