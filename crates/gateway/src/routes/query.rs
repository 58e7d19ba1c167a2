//! Read routes that run the request pipeline: `POST /v1/recommendations`, `POST /v1/search`,
//! `GET /v1/items/{id}/similar`, and `GET /v1/facets` (department/category values for the demo).
//!
//! Every request is validated completely before any I/O; then the stages run within their
//! budgets: `features` (user features), `embed` (query text), `retrieve`, `rerank`.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use redrec_core::filter::Filter;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{Access, authorize},
    budget::{ServerTiming, StageTiming},
    error::{ApiError, ApiResult},
    extract::{QueryParams, StrictJson},
    online::{Assignment, Live, RouteKind},
    pipeline,
    plan::{Plan, QueryInput},
    services::{
        catalog::check_id,
        index::{self, Facets},
    },
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/recommendations", post(post_recommendations))
        .route("/v1/search", post(post_search))
        .route("/v1/items/{id}/similar", get(get_similar))
        .route("/v1/facets", get(get_facets))
}

/// Default number of results.
pub const DEFAULT_K: usize = 10;
/// Longest query text, in characters.
pub const MAX_QUERY_TEXT_CHARS: usize = 2048;
/// Most ids in `query.positive` and in `query.negative`.
pub const MAX_EXAMPLE_IDS: usize = 50;

/// What to recommend around. All parts are optional and combine; none -> personalised from the
/// user's features, or popular items for a cold user.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    /// Free text: embedded (semantic KNN) and matched lexically (BM25), fused.
    #[serde(default)]
    pub text: Option<String>,
    /// A query vector of the index's dimensions.
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    /// "More like this" item id.
    #[serde(default)]
    pub item_id: Option<String>,
    /// Items the result should resemble.
    #[serde(default)]
    pub positive: Vec<String>,
    /// Items the result should move away from.
    #[serde(default)]
    pub negative: Vec<String>,
}

/// Body of `POST /v1/recommendations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub query: Option<QuerySpec>,
    /// Filter in the JSON form of redrec-core's filter AST, e.g.
    /// `{"and":[{"tag":{"field":"category","any":["BREAD"]}},{"range":{"field":"price","lte":5}}]}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Option<serde_json::Value>,
    /// Number of results (1..=gateway.max_k, default 10).
    #[serde(default)]
    pub k: Option<usize>,
    /// Rank profile name (`default`, `discovery`, `repurchase`, or configured ones).
    #[serde(default)]
    pub profile: Option<String>,
    /// Leave out items the user has seen (default true when `user_id` is given).
    #[serde(default)]
    pub exclude_seen: Option<bool>,
    /// Attach per-item explanations.
    #[serde(default)]
    pub explain: bool,
}

/// Body of `POST /v1/search`: text and/or vector, fused, with filters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Option<serde_json::Value>,
    #[serde(default)]
    pub k: Option<usize>,
    /// Optional user for personal reranking (search does not exclude seen items unless asked).
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub exclude_seen: Option<bool>,
    #[serde(default)]
    pub explain: bool,
}

/// One candidate source's opinion of a result.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceDoc {
    /// `query_vector`, `query_text`, `lexical`, `similar_item`, `session`, `long_term`,
    /// `examples` or `popular`.
    pub source: String,
    /// 0-based rank in that source's list.
    pub rank: u32,
    pub similarity: f32,
}

/// One result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultItem {
    pub id: String,
    pub score: f64,
    pub fields: BTreeMap<String, String>,
    pub sources: Vec<SourceDoc>,
    /// Why this item is here (feature contributions, adjustments), when `explain` was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<serde_json::Value>,
}

/// Response of the recommendation, search and similar routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultList {
    pub items: Vec<ResultItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The rank profile used.
    pub profile: String,
    /// True when the user had no stored features (popular / query-only results).
    pub cold_start: bool,
    /// True when a stage was skipped to meet the deadline (e.g. reranking: retrieval order), or
    /// the index is still being built (`degraded_reason` starts with `index_building`).
    pub degraded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded_reason: Option<String>,
    /// Candidates retrieved before reranking.
    pub candidates: usize,
    /// Per-stage timings (also in the `Server-Timing` header).
    pub timings: Vec<StageTiming>,
    /// The id of this list (also in the `X-Rec-Id` header): send it back with events about
    /// its items (`rec_id` in `POST /v1/events`) to attribute them to it.
    pub rec_id: String,
    /// The experiment and variant that chose `profile`, when the request was in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentAssignment>,
}

/// An experiment assignment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentAssignment {
    pub name: String,
    pub variant: String,
}

/// Header carrying a served list's `rec_id`.
pub const REC_ID_HEADER: &str = "x-rec-id";

impl IntoResponse for pipeline::Outcome {
    fn into_response(self) -> Response {
        crate::cpu::enter(crate::cpu::Stage::Respond);
        let header = ServerTiming(self.timings.server_timing());
        let body = ResultList {
            items: self
                .items
                .into_iter()
                .map(|r| ResultItem {
                    id: r.id,
                    score: r.score,
                    fields: r.fields,
                    sources: r
                        .sources
                        .into_iter()
                        .map(|s| SourceDoc {
                            source: s.source.as_str().to_owned(),
                            rank: s.rank,
                            similarity: s.similarity,
                        })
                        .collect(),
                    explanation: r.explanation.and_then(|e| serde_json::to_value(e).ok()),
                })
                .collect(),
            user_id: self.user_id,
            profile: self.profile,
            cold_start: self.cold_start,
            degraded: self.degraded_reason.is_some(),
            degraded_reason: self.degraded_reason,
            candidates: self.candidates,
            timings: self.timings.stages,
            experiment: self.assignment.map(|a| ExperimentAssignment {
                name: a.experiment,
                variant: a.variant,
            }),
            rec_id: self.rec_id,
        };
        let rec_id = axum::http::HeaderValue::from_str(&body.rec_id).ok();
        let mut response = Json(body).into_response();
        if let Some(v) = rec_id {
            response.headers_mut().insert(REC_ID_HEADER, v);
        }
        response.extensions_mut().insert(header);
        response
    }
}

/// Validated options every read route shares.
struct Common {
    k: usize,
    profile: String,
    filter: Filter,
    user_id: Option<String>,
    live: std::sync::Arc<Live>,
    assignment: Option<Assignment>,
}

/// Validates the common options. A request that names no profile and has a user is assigned
/// by the first experiment covering `route` (an explicit `profile` always wins).
fn common(
    state: &AppState,
    route: RouteKind,
    k: Option<usize>,
    profile: Option<String>,
    filter: Option<serde_json::Value>,
    user_id: Option<String>,
) -> ApiResult<Common> {
    let max_k = state.gateway().max_k;
    let k = k.unwrap_or(DEFAULT_K);
    if k == 0 || k > max_k {
        return Err(ApiError::invalid(
            "k",
            format!("k is {k}, expected 1..={max_k}"),
        ));
    }
    if let Some(u) = &user_id {
        check_id(u, "user_id")?;
    }
    let live = state.online.live();
    let (profile, assignment) = match (profile, &user_id) {
        (Some(p), _) => (p, None),
        (None, Some(u)) => match live.assign(route, u) {
            Some((a, p)) => (p, Some(a)),
            None => (redrec_reranker::DEFAULT_PROFILE.to_owned(), None),
        },
        (None, None) => (redrec_reranker::DEFAULT_PROFILE.to_owned(), None),
    };
    live.reranker
        .profiles()
        .get(&profile)
        .map_err(|e| ApiError::invalid("profile", e.to_string()))?;
    let filter = match filter {
        None | Some(serde_json::Value::Null) => Filter::All,
        Some(v) => Filter::from_json(&v)?,
    };
    filter.check(&state.schema)?;
    Ok(Common {
        k,
        profile,
        filter,
        user_id,
        live,
        assignment,
    })
}

fn check_vector(state: &AppState, v: &[f32], field: &str) -> ApiResult<()> {
    let vector = &state.index_config().vector;
    redrec_core::vector::validate_query(v, vector.dims, vector.distance_metric)
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn check_text(text: &Option<String>, field: &str) -> ApiResult<Option<String>> {
    match text {
        None => Ok(None),
        Some(t) if t.chars().count() > MAX_QUERY_TEXT_CHARS => Err(ApiError::invalid(
            field,
            format!(
                "text is {} characters, at most {MAX_QUERY_TEXT_CHARS} are accepted",
                t.chars().count()
            ),
        )),
        Some(t) if t.trim().is_empty() => Ok(None),
        // the lexical side searches the words; text of punctuation alone has none (checked
        // here, before any I/O, rather than when the query is built)
        Some(t) if redrec_core::filter::text_terms(t).is_empty() => Err(ApiError::invalid(
            field,
            "text has no words (letters or digits) to search for",
        )),
        Some(t) => Ok(Some(t.trim().to_owned())),
    }
}

/// Personalised recommendations.
#[utoipa::path(post, path = "/v1/recommendations", tag = "recommend", request_body = RecommendRequest,
    responses((status = 200, body = ResultList), (status = 400, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn post_recommendations(
    State(state): State<AppState>,
    headers: HeaderMap,
    StrictJson(req): StrictJson<RecommendRequest>,
) -> ApiResult<pipeline::Outcome> {
    authorize(&state, &headers, Access::Read)?;
    let c = common(
        &state,
        RouteKind::Recommendations,
        req.k,
        req.profile,
        req.filter,
        req.user_id,
    )?;
    let q = req.query.unwrap_or_default();
    let text = check_text(&q.text, "query.text")?;
    if let Some(v) = &q.vector {
        check_vector(&state, v, "query.vector")?;
    }
    if let Some(id) = &q.item_id {
        check_id(id, "query.item_id")?;
    }
    for (name, ids) in [
        ("query.positive", &q.positive),
        ("query.negative", &q.negative),
    ] {
        if ids.len() > MAX_EXAMPLE_IDS {
            return Err(ApiError::invalid(
                name,
                format!(
                    "{} item ids, at most {MAX_EXAMPLE_IDS} are accepted",
                    ids.len()
                ),
            ));
        }
        for (i, id) in ids.iter().enumerate() {
            check_id(id, &format!("{name}[{i}]"))?;
        }
    }
    if !q.negative.is_empty() && q.positive.is_empty() {
        return Err(ApiError::invalid(
            "query.negative",
            "negative examples need at least one positive example",
        ));
    }
    let exclude_seen = req.exclude_seen.unwrap_or(c.user_id.is_some());
    let now_ms = crate::clock::request_now_ms(&state, &headers)?;
    let plan = Plan {
        now_ms,
        k: c.k,
        profile: c.profile,
        filter: c.filter,
        user_id: c.user_id,
        exclude_seen,
        explain: req.explain,
        live: c.live,
        route: RouteKind::Recommendations,
        assignment: c.assignment,
        query: QueryInput {
            text,
            vector: q.vector,
            item_id: q.item_id,
            positive: q.positive,
            negative: q.negative,
        },
        personalise: true,
    };
    pipeline::run(&state, plan).await
}

/// Search: query text (semantic + lexical) and/or a vector, fused, with filters.
#[utoipa::path(post, path = "/v1/search", tag = "recommend", request_body = SearchRequest,
    responses((status = 200, body = ResultList), (status = 400, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn post_search(
    State(state): State<AppState>,
    headers: HeaderMap,
    StrictJson(req): StrictJson<SearchRequest>,
) -> ApiResult<pipeline::Outcome> {
    authorize(&state, &headers, Access::Read)?;
    let c = common(
        &state,
        RouteKind::Search,
        req.k,
        req.profile,
        req.filter,
        req.user_id,
    )?;
    let text = check_text(&req.text, "text")?;
    if let Some(v) = &req.vector {
        check_vector(&state, v, "vector")?;
    }
    if text.is_none() && req.vector.is_none() {
        return Err(ApiError::invalid(
            "text",
            "search needs `text` or `vector` (use /v1/recommendations for query-less results)",
        ));
    }
    let now_ms = crate::clock::request_now_ms(&state, &headers)?;
    let plan = Plan {
        now_ms,
        k: c.k,
        profile: c.profile,
        filter: c.filter,
        exclude_seen: req.exclude_seen.unwrap_or(false),
        user_id: c.user_id,
        explain: req.explain,
        live: c.live,
        route: RouteKind::Search,
        assignment: c.assignment,
        query: QueryInput {
            text,
            vector: req.vector,
            ..QueryInput::default()
        },
        personalise: false,
    };
    pipeline::run(&state, plan).await
}

/// Items similar to one item. Query parameters: `k`, `profile`, `explain`, `user_id`,
/// `filter` (the JSON filter, URL-encoded).
#[utoipa::path(get, path = "/v1/items/{id}/similar", tag = "recommend",
    params(("id" = String, Path, description = "item id"),
        ("k" = Option<usize>, Query, description = "number of results"),
        ("profile" = Option<String>, Query, description = "rank profile"),
        ("explain" = Option<bool>, Query, description = "attach explanations"),
        ("user_id" = Option<String>, Query, description = "personalise the ranking"),
        ("filter" = Option<String>, Query, description = "JSON filter, URL-encoded")),
    responses((status = 200, body = ResultList), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn get_similar(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    mut params: QueryParams,
) -> ApiResult<pipeline::Outcome> {
    authorize(&state, &headers, Access::Read)?;
    check_id(&id, "id")?;
    let k = params.take::<usize>("k", "a positive integer")?;
    let explain = params
        .take::<bool>("explain", "true or false")?
        .unwrap_or(false);
    let profile = params.take_string("profile");
    let user_id = params.take_string("user_id");
    let filter = match params.take_string("filter") {
        None => None,
        Some(raw) => Some(
            serde_json::from_str::<serde_json::Value>(&raw).map_err(|e| {
                ApiError::invalid(
                    "filter",
                    format!("query parameter `filter` is not JSON: {e}"),
                )
            })?,
        ),
    };
    params.finish(&["k", "profile", "explain", "user_id", "filter"])?;
    let c = common(&state, RouteKind::Similar, k, profile, filter, user_id)?;
    let now_ms = crate::clock::request_now_ms(&state, &headers)?;
    let plan = Plan {
        now_ms,
        k: c.k,
        profile: c.profile,
        filter: c.filter,
        exclude_seen: false,
        user_id: c.user_id,
        explain,
        live: c.live,
        route: RouteKind::Similar,
        assignment: c.assignment,
        query: QueryInput {
            item_id: Some(id),
            ..QueryInput::default()
        },
        personalise: false,
    };
    pipeline::run(&state, plan).await
}

/// Department and category values of the catalog, for filter pickers (cached).
#[utoipa::path(get, path = "/v1/facets", tag = "recommend",
    responses((status = 200, body = Facets), (status = 503, body = crate::error::ErrorBody)))]
pub async fn get_facets(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Facets>> {
    authorize(&state, &headers, Access::Read)?;
    index::facets(&state).await.map(Json)
}
