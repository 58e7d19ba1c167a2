//! The request pipeline behind every read route: read user features and embed the query text
//! (concurrently, each within its budget), retrieve candidates, rerank. Over its budget the
//! rerank stage is dropped and the retrieval order is returned with a degraded reason; any other
//! stage over budget is a 503.

use std::{sync::Arc, time::Duration};

use redrec_core::{candidate::Candidate, user::UserFeatures};
use redrec_reranker::{RankedItem, RerankRequest, retrieval_order};

use crate::{
    budget::{Deadline, Timings},
    error::{ApiError, ApiResult},
    plan::Plan,
    services::{
        embed::embed_text,
        users::{now_ms, read_user},
    },
    state::AppState,
};

/// A finished pipeline run.
#[derive(Debug)]
pub struct Outcome {
    pub items: Vec<RankedItem>,
    pub user_id: Option<String>,
    pub profile: String,
    pub cold_start: bool,
    pub degraded_reason: Option<String>,
    pub candidates: usize,
    pub timings: Timings,
}

async fn timed<T>(
    budget: Duration,
    fut: impl std::future::Future<Output = ApiResult<T>>,
) -> (Duration, Option<ApiResult<T>>) {
    // No time left: do not start the stage (a zero-length timer may not fire before a fast
    // future completes, which would make a zero budget mean "unbounded").
    if budget.is_zero() {
        return (Duration::ZERO, None);
    }
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(budget, fut).await.ok();
    (started.elapsed(), out)
}

pub async fn run(state: &AppState, plan: Plan) -> ApiResult<Outcome> {
    let cfg = state.gateway();
    let deadline = Deadline::after(Duration::from_millis(cfg.deadline_ms));
    let mut timings = Timings::default();

    // Stage 1: user features and the query embedding are independent: run them together.
    let features_budget = deadline.stage_budget(cfg.budgets.features_ms);
    let embed_budget = deadline.stage_budget(cfg.budgets.embed_ms);
    let features_fut = async {
        match &plan.user_id {
            Some(uid) => Some(timed(features_budget, read_user(state, uid)).await),
            None => None,
        }
    };
    let embed_fut = async {
        match &plan.query.text {
            Some(t) => Some(timed(embed_budget, embed_text(state, t.clone())).await),
            None => None,
        }
    };
    let (features, embedded) = tokio::join!(features_fut, embed_fut);
    let user = match features {
        None => UserFeatures::default(),
        Some((elapsed, out)) => {
            timings.record(&state.metrics, "features", elapsed);
            out.ok_or_else(|| ApiError::stage_over_budget("features", features_budget))??
        }
    };
    let text_vector = match embedded {
        None => None,
        Some((elapsed, out)) => {
            timings.record(&state.metrics, "embed", elapsed);
            Some(out.ok_or_else(|| ApiError::stage_over_budget("embed", embed_budget))??)
        }
    };

    // Stage 2: candidates.
    let retrieve_budget = deadline.stage_budget(cfg.budgets.retrieve_ms);
    let (elapsed, out) = timed(
        retrieve_budget,
        crate::retrieve::candidates(state, &plan, &user, text_vector),
    )
    .await;
    timings.record(&state.metrics, "retrieve", elapsed);
    let candidates =
        out.ok_or_else(|| ApiError::stage_over_budget("retrieve", retrieve_budget))??;

    // Stage 3: rerank, or the retrieval order when there is no time left for it.
    let rerank_budget = deadline.stage_budget(cfg.budgets.rerank_ms);
    let (items, degraded_reason) = rerank(
        state,
        &plan,
        &user,
        candidates.clone(),
        rerank_budget,
        &mut timings,
    )
    .await?;
    if let Some(reason) = &degraded_reason {
        tracing::info!(reason = %reason, "degraded response");
    }
    Ok(Outcome {
        items,
        user_id: plan.user_id,
        profile: plan.profile,
        cold_start: !user.known,
        degraded_reason,
        candidates: candidates.len(),
        timings,
    })
}

async fn rerank(
    state: &AppState,
    plan: &Plan,
    user: &UserFeatures,
    candidates: Vec<Candidate>,
    budget: Duration,
    timings: &mut Timings,
) -> ApiResult<(Vec<RankedItem>, Option<String>)> {
    if candidates.is_empty() {
        return Ok((Vec::new(), None));
    }
    if budget.is_zero() {
        state.metrics.degraded("rerank_budget");
        let reason = format!(
            "rerank skipped: no time left in the {} ms deadline (rerank budget {} ms); retrieval order returned",
            state.gateway().deadline_ms,
            state.gateway().budgets.rerank_ms
        );
        return Ok((retrieval_order(&candidates, plan.k), Some(reason)));
    }
    let started = std::time::Instant::now();
    let candidates = Arc::new(candidates);
    let job = {
        let state = state.clone();
        let candidates = candidates.clone();
        let user = user.clone();
        let profile = plan.profile.clone();
        let (k, explain) = (plan.k, plan.explain);
        tokio::task::spawn_blocking(move || {
            let fields = &state.index_config().fields;
            let req = RerankRequest::new(&candidates, &user, fields)
                .profile(&profile)
                .k(k)
                .explain(explain)
                .now_ms(now_ms());
            state.reranker.rerank(&req)
        })
    };
    let out = tokio::time::timeout(budget, job).await;
    timings.record(&state.metrics, "rerank", started.elapsed());
    match out {
        Ok(Ok(Ok(items))) => Ok((items, None)),
        Ok(Ok(Err(e))) => Err(match &e {
            redrec_reranker::Error::UnknownProfile { .. } => {
                ApiError::invalid("profile", e.to_string())
            }
            redrec_reranker::Error::Request { field, .. } => {
                ApiError::invalid(field.clone(), e.to_string())
            }
            redrec_reranker::Error::Config { .. } => ApiError::internal(e),
        }),
        Ok(Err(join)) => Err(ApiError::internal(format!("rerank task failed: {join}"))),
        Err(_) => {
            state.metrics.degraded("rerank_timeout");
            Ok((
                retrieval_order(&candidates, plan.k),
                Some(format!(
                    "rerank exceeded its {} ms budget; retrieval order returned",
                    budget.as_millis()
                )),
            ))
        }
    }
}
