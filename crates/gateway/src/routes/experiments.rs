//! Experiments and live reload (admin key): `GET /v1/experiments` (what is configured),
//! `GET /v1/experiments/{name}` (per-variant online metrics and the comparison with the
//! control), `POST /v1/admin/reload` (re-reads `[reranker]` and `[online]` and swaps profiles
//! and experiments at once; an invalid config is rejected whole, naming the key).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
    routing::{get, post},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{Access, authorize},
    error::ApiResult,
    online::Live,
    services::online::{ExperimentReport, experiment_report},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/experiments", get(get_experiments))
        .route("/v1/experiments/{name}", get(get_experiment))
        .route("/v1/admin/reload", post(post_reload))
}

/// One configured variant.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantInfo {
    pub name: String,
    pub profile: String,
    pub weight: u32,
}

/// One configured experiment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentInfo {
    pub name: String,
    /// Request kinds it covers (empty: all).
    pub routes: Vec<String>,
    pub variants: Vec<VariantInfo>,
}

/// `GET /v1/experiments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentList {
    /// Whether served lists are recorded (`online.impressions`).
    pub impressions: bool,
    pub attribution_window_secs: u64,
    pub experiments: Vec<ExperimentInfo>,
}

fn experiment_list(live: &Live) -> ExperimentList {
    ExperimentList {
        impressions: live.config.impressions,
        attribution_window_secs: live.config.attribution_window_secs,
        experiments: live
            .experiments
            .iter()
            .map(|e| ExperimentInfo {
                name: e.name.clone(),
                routes: e.routes.iter().map(|r| r.as_str().to_owned()).collect(),
                variants: e
                    .variants
                    .iter()
                    .map(|v| VariantInfo {
                        name: v.name.clone(),
                        profile: v.profile.clone(),
                        weight: v.weight,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The configured experiments (admin).
#[utoipa::path(get, path = "/v1/experiments", tag = "experiments", security(("api_key" = [])),
    responses((status = 200, body = ExperimentList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn get_experiments(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<ExperimentList>> {
    authorize(&state, &headers, Access::Admin)?;
    Ok(Json(experiment_list(&state.online.live())))
}

/// Per-variant online metrics of an experiment, each variant compared with the control
/// (admin).
#[utoipa::path(get, path = "/v1/experiments/{name}", tag = "experiments",
    params(("name" = String, Path, description = "experiment name")), security(("api_key" = [])),
    responses((status = 200, body = ExperimentReport), (status = 401, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn get_experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<ExperimentReport>> {
    authorize(&state, &headers, Access::Admin)?;
    experiment_report(&state, &name).await.map(Json)
}

/// What a reload applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadReport {
    /// Rank profiles now served.
    pub profiles: Vec<String>,
    /// Experiments now running.
    pub experiments: ExperimentList,
    /// Changed settings a reload does not apply (they need a restart), by section or key.
    pub restart_required: Vec<String>,
}

/// Re-reads the configuration (the same files and environment as at start) and swaps the rank
/// profiles and experiments at once (admin). Requests in flight finish with the profiles they
/// started with. An invalid `[reranker]` or `[online]` is rejected whole (422 naming the key)
/// and nothing changes.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "admin", security(("api_key" = [])),
    responses((status = 200, body = ReloadReport), (status = 401, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn post_reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<ReloadReport>> {
    authorize(&state, &headers, Access::Admin)?;
    let reloaded = crate::services::online::reload(&state)?;
    Ok(Json(ReloadReport {
        profiles: reloaded.live.reranker.profiles().names(),
        experiments: experiment_list(&reloaded.live),
        restart_required: reloaded.restart_required,
    }))
}
