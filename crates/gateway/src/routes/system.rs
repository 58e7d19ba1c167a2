//! Operational routes: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `GET /v1/index`,
//! the demo page at `/` and the operator dashboard at `/admin`.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{Access, authorize},
    error::{ApiResult, ErrorMetrics},
    services::index,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(get_demo))
        .route("/admin", get(get_admin))
        .route("/healthz", get(get_health))
        .route("/readyz", get(get_ready))
        .route("/metrics", get(get_metrics))
        .route("/openapi.json", get(get_openapi))
        .route("/v1/index", get(get_index))
}

const DEMO_HTML: &str = include_str!("../../assets/demo.html");

static DEMO_CSP: std::sync::LazyLock<axum::http::HeaderValue> = std::sync::LazyLock::new(|| {
    axum::http::HeaderValue::from_str(&crate::security::demo_csp(DEMO_HTML))
        .expect("the CSP is ASCII")
});

/// The interactive demo page (static HTML and JS, no build step), with a Content-Security-Policy
/// that allows only its own inline script and calls to this gateway.
async fn get_demo() -> impl axum::response::IntoResponse {
    (
        [
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                DEMO_CSP.clone(),
            ),
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                axum::http::HeaderValue::from_static("nosniff"),
            ),
        ],
        Html(DEMO_HTML),
    )
}

const ADMIN_HTML: &str = include_str!("../../assets/admin.html");

static ADMIN_CSP: std::sync::LazyLock<axum::http::HeaderValue> = std::sync::LazyLock::new(|| {
    axum::http::HeaderValue::from_str(&crate::security::demo_csp(ADMIN_HTML))
        .expect("the CSP is ASCII")
});

/// The operator dashboard (static HTML and JS): index status, traffic, stage latency, caches,
/// online evaluation and experiments, every figure read with the admin key from `/v1/index`,
/// `/metrics` and `/v1/experiments`; the key comes from the URL fragment (`/admin#key=...`),
/// which never reaches the server.
async fn get_admin() -> impl axum::response::IntoResponse {
    (
        [
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                ADMIN_CSP.clone(),
            ),
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                axum::http::HeaderValue::from_static("nosniff"),
            ),
        ],
        Html(ADMIN_HTML),
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn get_health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Each check: `ok` or what is wrong.
    pub checks: BTreeMap<String, String>,
}

/// Readiness: Redis answers, the index alias exists, the embedder is loaded (and, with
/// replicas or Sentinel, what each node answers).
/// How old the retriever's background index lookup may be for `/readyz` to use it instead of
/// its own `FT.INFO`.
/// The lookup is spaced to 200x its own cost: at 1M items, every 1-2 minutes.
const READY_STATUS_MAX_AGE_SECS: f64 = 300.0;

#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn get_ready(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    // The failures behind the checks count in the error metrics like any other response's.
    let mut errors = ErrorMetrics::default();
    let redis_ok = match index::ping(&state).await {
        Ok(()) => {
            checks.insert("redis".into(), "ok".into());
            true
        }
        Err(e) => {
            errors.0.extend(e.metric());
            let detail = match index::loading_percent(&state).await {
                Some(p) => format!(
                    "loading its data after a restart: {p:.0}% (the index is rebuilt during the load)"
                ),
                None => e.to_string(),
            };
            checks.insert("redis".into(), detail);
            false
        }
    };
    // With replicas or Sentinel, each node is reported too (`redis primary <addr>`, `redis
    // replica <addr>`); a replica that is down does not make the gateway unready: reads fall
    // back to the other replicas, then the primary. A user-state cluster that does not answer
    // does (`redis user-state cluster <seeds>`): no event or user read could be served.
    let mut user_state_ok = true;
    for node in index::nodes(&state).await {
        if node.role == "user-state cluster" && node.result.is_err() {
            user_state_ok = false;
        }
        checks.insert(
            format!("redis {} {}", node.role, node.addr),
            match node.result {
                Ok(()) => "ok".into(),
                Err(e) => e,
            },
        );
    }
    let alias = state.ns.alias();
    let index_ok = if redis_ok {
        // The retriever's background lookup when it is recent: FT.INFO runs on Redis's main
        // thread and costs 210-240 ms at 1M items, too much for every probe.
        let looked_up = match state
            .retriever
            .index_status()
            .filter(|s| s.age_secs <= READY_STATUS_MAX_AGE_SECS)
        {
            Some(s) => Ok((s.index, s.num_docs, s.percent_indexed)),
            None => index::serving_index(&state)
                .await
                .map(|i| (i.name, i.num_docs, i.percent_indexed)),
        };
        match looked_up {
            Ok((name, _, percent_indexed)) if percent_indexed < 1.0 => {
                checks.insert(
                    "index".into(),
                    format!(
                        "indexing: {:.0}% (`{name}` is being built; results come from the part indexed so far)",
                        (percent_indexed * 100.0).floor(),
                    ),
                );
                false
            }
            Ok((_, num_docs, _)) if num_docs > 0 => {
                checks.insert("index".into(), "ok".into());
                true
            }
            Ok(_) => {
                checks.insert("index".into(), format!("alias `{alias}` has no documents"));
                false
            }
            Err(e) => {
                errors.0.extend(e.metric());
                checks.insert("index".into(), e.to_string());
                false
            }
        }
    } else {
        checks.insert("index".into(), "not checked: redis is down".into());
        false
    };
    let embedder_ok = match &state.embedder {
        Some(e) => {
            checks.insert("embedder".into(), format!("ok ({})", e.model_id()));
            true
        }
        None => {
            checks.insert("embedder".into(), "not loaded".into());
            false
        }
    };
    let ready = redis_ok && user_state_ok && index_ok && embedder_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, Json(Readiness { ready, checks })).into_response();
    response.extensions_mut().insert(errors);
    response
}

/// The gateway's metrics in the OpenMetrics text format (which Prometheus scrapes): the
/// request-path families, then what the pool, the admission limiter, the caches and online
/// evaluation report at this instant.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text format 1.0.0",
        content_type = "application/openmetrics-text")))]
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let mut scrape = crate::metrics::Scrape::new();
    scrape.pool(state.pool_gauges());
    scrape.admission(&state.admission.stats());
    scrape.caches(&state.caches.stats());
    state.online.collect_metrics(&mut scrape);
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(&scrape),
    )
        .into_response()
}

/// The OpenAPI 3.1 description of this API: generated from the handlers' types, with the rules
/// of this gateway's configuration and index schema (`crate::openapi::document`).
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json")))]
pub async fn get_openapi(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&crate::openapi::document(&state)).unwrap_or_default(),
    )
        .into_response()
}

/// What `GET /v1/index` reports about the serving index.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexInfo {
    /// The alias every query goes through (`{namespace}:items`).
    pub alias: String,
    /// The concrete index behind it.
    pub index_name: String,
    pub num_docs: u64,
    pub hash_indexing_failures: u64,
    pub percent_indexed: f64,
    /// Field name -> type (`TAG`, `TEXT`, `NUMERIC`, `VECTOR`, ...).
    pub fields: BTreeMap<String, String>,
    /// Vector dimensions the gateway validates against.
    pub vector_dims: usize,
}

/// Index info (admin).
#[utoipa::path(get, path = "/v1/index", tag = "admin", security(("api_key" = [])),
    responses((status = 200, body = IndexInfo), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn get_index(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<IndexInfo>> {
    authorize(&state, &headers, Access::Admin)?;
    let info = index::serving_index(&state).await?;
    Ok(Json(IndexInfo {
        alias: state.ns.alias(),
        fields: index::field_types(&info),
        index_name: info.name,
        num_docs: info.num_docs,
        hash_indexing_failures: info.hash_indexing_failures,
        percent_indexed: info.percent_indexed * 100.0,
        vector_dims: state.index_config().vector.dims,
    }))
}
