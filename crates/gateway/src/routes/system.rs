//! Operational routes: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `GET /v1/index`
//! and the demo page at `/`.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{
    auth::{Access, authorize},
    error::{ApiError, ApiResult},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(get_demo))
        .route("/healthz", get(get_health))
        .route("/readyz", get(get_ready))
        .route("/metrics", get(get_metrics))
        .route("/openapi.json", get(get_openapi))
        .route("/v1/index", get(get_index))
}

const DEMO_HTML: &str = include_str!("../../assets/demo.html");

/// The interactive demo page (static HTML and JS, no build step).
async fn get_demo() -> Html<&'static str> {
    Html(DEMO_HTML)
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

/// Readiness: Redis answers, the index alias exists, the embedder is loaded.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn get_ready(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    let redis_ok = match ping(&state).await {
        Ok(()) => {
            checks.insert("redis".into(), "ok".into());
            true
        }
        Err(e) => {
            let detail = match loading_percent(&state).await {
                Some(p) => format!(
                    "loading its data after a restart: {p:.0}% (the index is rebuilt during the load)"
                ),
                None => e.to_string(),
            };
            checks.insert("redis".into(), detail);
            false
        }
    };
    let alias = state.ns.alias();
    let index_ok = if redis_ok {
        match index_info(&state).await {
            Ok(info) if info.percent_indexed < 100.0 => {
                checks.insert(
                    "index".into(),
                    format!(
                        "`{}` is being indexed: {:.0}%",
                        info.index_name, info.percent_indexed
                    ),
                );
                false
            }
            Ok(info) if info.num_docs > 0 => {
                checks.insert("index".into(), "ok".into());
                true
            }
            Ok(_) => {
                checks.insert("index".into(), format!("alias `{alias}` has no documents"));
                false
            }
            Err(e) => {
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
    let ready = redis_ok && index_ok && embedder_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, checks })).into_response()
}

async fn ping(state: &AppState) -> ApiResult<()> {
    let mut con = state.conn().await?;
    let pong: String = state
        .redis("PING", redis::cmd("PING").query_async(&mut con))
        .await?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(ApiError::internal(format!("PING answered {pong}")))
    }
}

/// `loading_loaded_perc` from `INFO persistence` while Redis loads its data (`None` otherwise):
/// PING answers `-LOADING` then, but INFO is served.
async fn loading_percent(state: &AppState) -> Option<f64> {
    let mut con = state.conn().await.ok()?;
    let info: String = tokio::time::timeout(
        state.command_timeout(),
        redis::cmd("INFO").arg("persistence").query_async(&mut con),
    )
    .await
    .ok()?
    .ok()?;
    parse_loading(&info)
}

/// The loaded percentage in an `INFO persistence` reply when `loading:1`.
fn parse_loading(info: &str) -> Option<f64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("loading") != Some("1") {
        return None;
    }
    field("loading_loaded_perc")?.parse().ok()
}

/// Prometheus text exposition of the gateway's metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(state.pool_gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The OpenAPI 3.1 description of this API, generated from the handlers' types.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json")))]
pub async fn get_openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_default(),
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
    index_info(&state).await.map(Json)
}

/// `FT.INFO` on the alias, parsed from the RESP2 flat array.
pub async fn index_info(state: &AppState) -> ApiResult<IndexInfo> {
    let alias = state.ns.alias();
    let mut con = state.conn().await?;
    let reply: Result<redis::Value, ApiError> = match tokio::time::timeout(
        state.command_timeout(),
        redis::cmd("FT.INFO").arg(&alias).query_async(&mut con),
    )
    .await
    {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if !crate::state::is_transport_error(&e) => {
            let text = e.to_string().to_lowercase();
            if (text.contains("unknown") && text.contains("index"))
                || text.contains("no such index")
            {
                return Err(ApiError::NotFound {
                    what: "index alias",
                    id: alias,
                });
            }
            Err(state.redis_failure("FT.INFO", &e))
        }
        Ok(Err(e)) => Err(state.redis_failure("FT.INFO", &e)),
        Err(_) => {
            state.metrics.redis_error("timeout");
            Err(ApiError::unavailable(
                "redis did not answer FT.INFO in time",
            ))
        }
    };
    let map = pairs(&reply?);
    let text = |k: &str| map.get(k).map(value_text).unwrap_or_default();
    let mut fields = BTreeMap::new();
    if let Some(redis::Value::Array(attrs)) = map.get("attributes") {
        for attr in attrs {
            let a = pairs(attr);
            let name = a
                .get("attribute")
                .or_else(|| a.get("identifier"))
                .map(value_text)
                .unwrap_or_default();
            let ty = a.get("type").map(value_text).unwrap_or_default();
            fields.insert(name, ty);
        }
    }
    Ok(IndexInfo {
        alias,
        index_name: text("index_name"),
        num_docs: text("num_docs").parse().unwrap_or(0),
        hash_indexing_failures: text("hash_indexing_failures").parse().unwrap_or(0),
        percent_indexed: text("percent_indexed").parse::<f64>().unwrap_or(0.0) * 100.0,
        fields,
        vector_dims: state.index_config().vector.dims,
    })
}

/// A RESP2 `[k1, v1, k2, v2, ...]` array (or a RESP3 map) as a map keyed by text.
pub(crate) fn pairs(v: &redis::Value) -> BTreeMap<String, redis::Value> {
    let mut out = BTreeMap::new();
    match v {
        redis::Value::Array(items) => {
            for kv in items.chunks(2) {
                if let [k, v] = kv {
                    out.insert(value_text(k), v.clone());
                }
            }
        }
        redis::Value::Map(items) => {
            for (k, v) in items {
                out.insert(value_text(k), v.clone());
            }
        }
        _ => {}
    }
    out
}

pub(crate) fn value_text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Double(d) => d.to_string(),
        redis::Value::VerbatimString { text, .. } => text.clone(),
        redis::Value::Okay => "OK".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_loading;

    #[test]
    fn reads_loading_progress_from_info_persistence() {
        let loading = "# Persistence\r\nloading:1\r\nloading_loaded_perc:37.25\r\n";
        assert_eq!(parse_loading(loading), Some(37.25));
        assert_eq!(
            parse_loading("loading:0\r\nloading_loaded_perc:0.00\r\n"),
            None
        );
        assert_eq!(parse_loading(""), None);
    }
}
