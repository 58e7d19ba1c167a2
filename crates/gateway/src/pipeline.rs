//! The request pipeline behind every read route: read user features and embed the query text
//! (concurrently), retrieve candidates, rerank. Every stage may use whatever is left of the
//! request's one deadline (`gateway.deadline_ms`): a slow stage takes time from the later ones
//! instead of failing while they have slack. Each Redis stage first takes a permit from the
//! admission limiter (`admission.rs`), waiting within the deadline; a request that cannot be
//! served in time is refused at once with 503 and `Retry-After`. Only reranking has a budget of
//! its own (`gateway.budgets.rerank_ms`): with no time left for it, the retrieval order is
//! returned with a degraded reason instead of an error. A typical rerank (about 0.1 ms) runs on
//! the request's task; a large one (many candidates, large k, MMR) runs on the blocking pool and,
//! over its budget, is abandoned for the retrieval order. Results served while the index is still being built
//! carry the `index_building` reason.

use std::{sync::Arc, time::Duration};

use redrec_core::{candidate::Candidate, user::UserFeatures};
use redrec_reranker::{RankedItem, RerankRequest, retrieval_order};
use tracing::Instrument as _;

use crate::{
    budget::{Deadline, Timings},
    cpu,
    error::{ApiError, ApiResult},
    plan::Plan,
    services::{embed::embed_query, users::read_user},
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
    /// The id of this served list (events may carry it back for attribution).
    pub rec_id: String,
    /// The experiment variant that chose the profile.
    pub assignment: Option<crate::online::Assignment>,
}

/// Runs `fut` until the deadline at most; `None` when the deadline came first.
async fn timed<T>(
    deadline: &Deadline,
    fut: impl std::future::Future<Output = ApiResult<T>>,
) -> (Duration, Option<ApiResult<T>>) {
    let remaining = deadline.remaining();
    // No time left: do not start the stage (a zero-length timer may not fire before a fast
    // future completes, which would make an expired deadline mean "unbounded").
    if remaining.is_zero() {
        return (Duration::ZERO, None);
    }
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(remaining, fut).await.ok();
    (started.elapsed(), out)
}

fn past_deadline(state: &AppState, stage: &'static str) -> ApiError {
    ApiError::Unavailable {
        reason: format!(
            "the {} ms deadline passed during stage `{stage}`",
            state.gateway().deadline_ms
        ),
        retry_after_secs: 1,
        // counted by the metrics middleware
        metric: Some(crate::error::ErrorMetric::StageTimeout(stage)),
    }
}

pub async fn run(state: &AppState, plan: Plan) -> ApiResult<Outcome> {
    let cfg = state.gateway();
    let deadline = Deadline::after(Duration::from_millis(cfg.deadline_ms));
    let mut timings = Timings::default();
    // known from the start, so the request span and every stage span carry it (`telemetry.rs`)
    let rec_id = state.online.next_rec_id();
    tracing::Span::current().record("rec_id", rec_id.as_str());
    cpu::enter(cpu::Stage::Features);

    // Stage 1: user features and the query embedding are independent: run them together.
    let features_fut = async {
        match &plan.user_id {
            Some(uid) => Some(
                timed(
                    &deadline,
                    state.admitted(&deadline, "features", read_user(state, uid, plan.now_ms)),
                )
                .instrument(tracing::debug_span!("features", rec_id = %rec_id))
                .await,
            ),
            None => None,
        }
    };
    let embed_fut = async {
        match &plan.query.text {
            Some(t) => Some(
                timed(&deadline, embed_query(state, t.clone()))
                    .instrument(tracing::debug_span!("embed", rec_id = %rec_id))
                    .await,
            ),
            None => None,
        }
    };
    let (features, embedded) = tokio::join!(features_fut, embed_fut);
    // shared with the blocking rerank task without copying the seen set and vectors
    let user = Arc::new(match features {
        None => UserFeatures::default(),
        Some((elapsed, out)) => {
            timings.record(&state.metrics, "features", elapsed);
            out.ok_or_else(|| past_deadline(state, "features"))??
        }
    });
    let text_vector = match embedded {
        None => None,
        Some((elapsed, out)) => {
            timings.record(&state.metrics, "embed", elapsed);
            Some(out.ok_or_else(|| past_deadline(state, "embed"))??)
        }
    };

    // Stage 2: candidates.
    cpu::enter(cpu::Stage::Retrieve);
    let (elapsed, out) = timed(
        &deadline,
        crate::retrieve::candidates(state, &plan, &user, text_vector, &deadline),
    )
    .instrument(tracing::debug_span!("retrieve", rec_id = %rec_id))
    .await;
    timings.record(&state.metrics, "retrieve", elapsed);
    let candidates = out.ok_or_else(|| past_deadline(state, "retrieve"))??;

    // Stage 3: rerank, or the retrieval order when there is no time left for it.
    cpu::enter(cpu::Stage::Rerank);
    let rerank_budget = deadline.stage_budget(cfg.budgets.rerank_ms);
    let candidate_count = candidates.len();
    let (items, degraded_reason) =
        rerank(state, &plan, &user, candidates, rerank_budget, &mut timings)
            .instrument(tracing::debug_span!("rerank", rec_id = %rec_id))
            .await?;
    if let Some(reason) = &degraded_reason {
        tracing::info!(reason = %reason, "degraded response");
    }
    let degraded_reason = flag_index_building(state, degraded_reason);
    record(state, &plan, &rec_id, &items);
    Ok(Outcome {
        items,
        user_id: plan.user_id,
        profile: plan.profile,
        cold_start: !user.known,
        degraded_reason,
        candidates: candidate_count,
        timings,
        rec_id,
        assignment: plan.assignment,
    })
}

/// Hands the served list to the impression writer (a queue push: no I/O here).
fn record(state: &AppState, plan: &Plan, rec_id: &str, items: &[RankedItem]) {
    if !plan.live.config.impressions {
        return;
    }
    let list = redrec_store::online::ServedList {
        rec_id: rec_id.to_owned(),
        at_ms: plan.now_ms,
        route: plan.route.as_str().to_owned(),
        user_id: plan.user_id.clone(),
        profile: plan.profile.clone(),
        experiment: plan
            .assignment
            .as_ref()
            .map(|a| (a.experiment.clone(), a.variant.clone())),
        items: items.iter().map(|r| r.id.clone()).collect(),
        sources: items
            .iter()
            .map(|r| {
                let names: Vec<&str> = r.sources.iter().map(|s| s.source.as_str()).collect();
                names.join(",")
            })
            .collect(),
    };
    state.online.record(&plan.live, list);
}

/// Reason code of results served from an index still being built (a restart, an `FT.CREATE`
/// over existing keys): RediSearch answers from the part indexed so far.
pub const INDEX_BUILDING: &str = "index_building";

/// Adds [`INDEX_BUILDING`] (first) to the degraded reason while the retriever's background
/// lookup last saw the serving index under 100%: no Redis call here.
fn flag_index_building(state: &AppState, reason: Option<String>) -> Option<String> {
    if state.retriever.index_building().is_none() {
        return reason;
    }
    state.metrics.degraded(INDEX_BUILDING);
    Some(match reason {
        None => INDEX_BUILDING.to_owned(),
        Some(r) => format!("{INDEX_BUILDING}; {r}"),
    })
}

async fn rerank(
    state: &AppState,
    plan: &Plan,
    user: &Arc<UserFeatures>,
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
    // Small jobs (the common case: tens of candidates, k around 10) are reranked right here on
    // the request's task: they cost about 0.1 ms of CPU, less than the two thread hand-offs of
    // the blocking pool, and they keep the pool from spawning and retiring threads all day
    // (each new thread gets fresh allocator caches: the soak's RSS steps). Large jobs (MMR over
    // many candidates and a large k) go to the blocking pool so a runtime worker never stalls.
    if rerank_work(&candidates, plan.k) <= INLINE_RERANK_WORK {
        let fields = &state.index_config().fields;
        let req = RerankRequest::new(&candidates, user, fields)
            .profile(&plan.profile)
            .k(plan.k)
            .explain(plan.explain)
            .now_ms(plan.now_ms);
        // charged to the rerank stage by the request's own CPU meter (the stage is entered)
        let out = plan.live.reranker.rerank(&req);
        timings.record(&state.metrics, "rerank", started.elapsed());
        return out.map(|items| (items, None)).map_err(rerank_error);
    }
    let candidates = Arc::new(candidates);
    let job = {
        let state = state.clone();
        let live = plan.live.clone();
        let candidates = candidates.clone();
        let user = user.clone();
        let profile = plan.profile.clone();
        let (k, explain, now_ms) = (plan.k, plan.explain, plan.now_ms);
        let ledger = cpu::ledger();
        tokio::task::spawn_blocking(move || {
            cpu::charge(ledger.as_deref(), cpu::Stage::Rerank, || {
                let fields = &state.index_config().fields;
                let req = RerankRequest::new(&candidates, &user, fields)
                    .profile(&profile)
                    .k(k)
                    .explain(explain)
                    .now_ms(now_ms);
                live.reranker.rerank(&req)
            })
        })
    };
    let out = tokio::time::timeout(budget, job).await;
    timings.record(&state.metrics, "rerank", started.elapsed());
    match out {
        Ok(Ok(Ok(items))) => Ok((items, None)),
        Ok(Ok(Err(e))) => Err(rerank_error(e)),
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

/// Largest rerank job run inline on the request's task, in candidate x k x dimension units (MMR's
/// cost: each of the k picks compares the remaining candidates with the last pick). 2M is about
/// 0.5 ms of CPU at worst; the default request (50 candidates, k 10, 128 dimensions) is 64k.
const INLINE_RERANK_WORK: usize = 2_000_000;

/// The size of a rerank job, in the units of [`INLINE_RERANK_WORK`].
fn rerank_work(candidates: &[Candidate], k: usize) -> usize {
    let dims = candidates
        .iter()
        .find_map(|c| c.vector.as_ref().map(|v| v.len()))
        .unwrap_or(1)
        .max(1);
    candidates
        .len()
        .saturating_mul(k.max(1))
        .saturating_mul(dims)
}

fn rerank_error(e: redrec_reranker::Error) -> ApiError {
    match &e {
        redrec_reranker::Error::UnknownProfile { .. } => {
            ApiError::invalid("profile", e.to_string())
        }
        redrec_reranker::Error::Request { field, .. } => {
            ApiError::invalid(field.clone(), e.to_string())
        }
        redrec_reranker::Error::Config { .. } => ApiError::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn candidates(n: usize, dims: Option<usize>) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                id: format!("i{i}"),
                fields: BTreeMap::new(),
                vector: dims.map(|d| vec![0.5; d]),
                sources: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn typical_reranks_run_inline_and_large_mmr_jobs_on_the_pool() {
        // the bench's request: 50 candidates, k 10, 128 dimensions, MMR on
        assert!(rerank_work(&candidates(50, Some(128)), 10) <= INLINE_RERANK_WORK);
        // the demo's text space: 100 candidates, k 20, 384 dimensions
        assert!(rerank_work(&candidates(100, Some(384)), 20) <= INLINE_RERANK_WORK);
        // max_k results over 1,000 candidates with MMR: the pool
        assert!(rerank_work(&candidates(1000, Some(128)), 200) > INLINE_RERANK_WORK);
        // without vectors (no MMR) the cost is per candidate and k only
        assert_eq!(rerank_work(&candidates(1000, None), 200), 200_000);
        assert_eq!(rerank_work(&[], 10), 0);
    }
}
