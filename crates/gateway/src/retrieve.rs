//! The gateway's edge to redrec-retriever: a validated [`Plan`] plus the user's features and the
//! embedded query text become a `RetrievalRequest`; retriever errors become `ApiError`s.

use std::collections::HashSet;

use redrec_core::{candidate::Candidate, user::UserFeatures};
use redrec_reranker::features::PURCHASE_EVENT;
use redrec_retriever::{RetrievalRequest, Source, history::history_items};

use crate::{
    error::{ApiError, ApiResult, ErrorCode},
    plan::{Plan, candidate_count},
    state::AppState,
};

/// Weight of negative examples in `mean(positive) - w * mean(negative)`.
const NEGATIVE_WEIGHT: f32 = 0.5;

/// The candidate sources of a plan. No source at all means popularity (cold start).
pub fn sources(plan: &Plan, user: &UserFeatures, text_vector: Option<Vec<f32>>) -> Vec<Source> {
    let q = &plan.query;
    let mut sources = Vec::new();
    if let Some(v) = &q.vector {
        sources.push(Source::Vector(v.clone()));
    }
    if let (Some(text), Some(vector)) = (&q.text, text_vector) {
        sources.push(Source::Text {
            text: text.clone(),
            vector,
        });
    }
    if let Some(id) = &q.item_id {
        sources.push(Source::SimilarItem(id.clone()));
    }
    if !q.positive.is_empty() {
        sources.push(Source::Examples {
            positive: q.positive.clone(),
            negative: q.negative.clone(),
            negative_weight: NEGATIVE_WEIGHT,
        });
    }
    if plan.personalise {
        sources.extend(Source::from_user(user));
    }
    sources
}

pub async fn candidates(
    state: &AppState,
    plan: &Plan,
    user: &UserFeatures,
    text_vector: Option<Vec<f32>>,
) -> ApiResult<Vec<Candidate>> {
    let profile = state.reranker.profiles().get(&plan.profile).ok();
    let keep_purchases = !profile.is_some_and(|p| p.exclude_purchased());
    let mut sources = sources(plan, user, text_vector);
    // Around the user's collaborative vectors ("people who buy these also buy"); the retriever
    // skips them when the serving index has no collaborative field.
    if plan.personalise && profile.is_none_or(|p| p.collaborative_sources()) {
        sources.extend(Source::cf_from_user(user));
    }
    // The user's own purchases within the filter, plus popularity to fill behind them (text
    // KNN around the user's vectors finds "more of this category", rarely the next purchase).
    let history = if plan.personalise && profile.is_none_or(|p| p.history_source()) {
        history_items(user)
    } else {
        Vec::new()
    };
    if !history.is_empty() {
        if !sources.contains(&Source::Popular) {
            sources.push(Source::Popular);
        }
        sources.push(Source::History(history));
    }
    let mut req = RetrievalRequest::new(sources, candidate_count(plan.k));
    req.filter = plan.filter.clone();
    if let Some(p) = profile {
        let price = &state.index_config().fields.price;
        req.filter =
            req.filter
                .and_also(redrec_reranker::exclusion_filter(p, &state.schema, price));
    }
    if plan.exclude_seen {
        // "seen" means exposed without buying: under profiles that keep purchases, an item the
        // user bought stays eligible however often it was viewed (see docs/RANKING.md)
        let bought: HashSet<&str> = if keep_purchases {
            user.purchases
                .iter()
                .map(|p| p.item_id.as_str())
                .chain(
                    user.recent
                        .iter()
                        .filter(|i| i.event == PURCHASE_EVENT)
                        .map(|i| i.item_id.as_str()),
                )
                .collect()
        } else {
            HashSet::new()
        };
        req.exclude = user
            .seen
            .iter()
            .filter(|id| !bought.contains(id.as_str()))
            .cloned()
            .collect();
    }
    // MMR needs the candidates' vectors; fetch them only for profiles that diversify.
    req.with_vectors = state
        .reranker
        .profiles()
        .get(&plan.profile)
        .map(|p| p.mmr_lambda().is_some())
        .unwrap_or(false);
    let retrieval = state
        .retriever
        .retrieve(&req)
        .await
        .map_err(|e| retriever_error(state, plan, e))?;
    if retrieval.partial {
        tracing::warn!("redis returned partial search results (query timeout)");
    }
    Ok(retrieval.candidates)
}

fn retriever_error(state: &AppState, plan: &Plan, e: redrec_retriever::Error) -> ApiError {
    use redrec_retriever::Error as E;
    match e {
        E::BadQuery(core) => core.into(),
        E::ItemNotFound { ref id, .. } => {
            let field = if plan.query.item_id.as_deref() == Some(id.as_str()) {
                "id"
            } else {
                "query"
            };
            ApiError::Invalid {
                code: ErrorCode::UnknownItem,
                message: e.to_string(),
                field: Some(field.to_owned()),
            }
        }
        E::Unavailable { message } => {
            state.metrics.redis_error("connection");
            ApiError::unavailable(format!("retrieval: {message}"))
        }
        E::IndexMissing { index } => ApiError::Unavailable {
            reason: format!("the search index `{index}` does not exist yet (seed the catalog)"),
            retry_after_secs: 5,
        },
        other => {
            state.metrics.redis_error("command");
            ApiError::internal(other)
        }
    }
}
