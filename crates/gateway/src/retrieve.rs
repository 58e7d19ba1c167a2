//! The gateway's edge to redrec-retriever: a validated [`Plan`] plus the user's features and the
//! embedded query text become a `RetrievalRequest`; retriever errors become `ApiError`s.

use redrec_core::{candidate::Candidate, user::UserFeatures};
use redrec_retriever::{RetrievalRequest, Source};

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
    let mut req = RetrievalRequest::new(sources(plan, user, text_vector), candidate_count(plan.k));
    req.filter = plan.filter.clone();
    if plan.exclude_seen {
        req.exclude = user.seen.iter().cloned().collect();
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
