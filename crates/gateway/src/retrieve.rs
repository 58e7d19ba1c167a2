//! The gateway's edge to redrec-retriever: a validated [`Plan`] plus the user's features and the
//! embedded query text become a `RetrievalRequest`; retriever errors become `ApiError`s.

use std::collections::HashSet;

use redrec_core::{candidate::Candidate, user::UserFeatures};
use redrec_reranker::features::PURCHASE_EVENT;
use redrec_retriever::{RetrievalRequest, Source, history::history_items};

use crate::{
    budget::Deadline,
    error::{ApiError, ApiResult, ErrorCode, RedisFailure},
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
    deadline: &Deadline,
) -> ApiResult<Vec<Candidate>> {
    let profile = plan.live.reranker.profiles().get(&plan.profile).ok();
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
        // the retriever decides whether it goes into the search or is checked on the candidates
        let price = &state.index_config().fields.price;
        req.exclusion = redrec_reranker::exclusion_filter(p, &state.schema, price);
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
    req.with_vectors = plan
        .live
        .reranker
        .profiles()
        .get(&plan.profile)
        .map(|p| p.mmr_lambda().is_some())
        .unwrap_or(false);
    // Vectors of the items the query names, from the cache where possible; the rest are read
    // here (not by the retriever) so they can be cached.
    let named: Vec<String> = plan
        .query
        .item_id
        .iter()
        .chain(&plan.query.positive)
        .chain(&plan.query.negative)
        .cloned()
        .collect();
    if !named.is_empty() {
        let (found, missing) = state.caches.item_vectors(&named);
        req.stored_vectors = found;
        if !missing.is_empty() {
            let read = state
                .admitted(deadline, "item_vectors", async {
                    state
                        .retriever
                        .item_vectors(&missing)
                        .await
                        .map_err(|e| retriever_error(plan, e))
                })
                .await?;
            for (id, v) in missing.into_iter().zip(read) {
                state.caches.store_item_vector(id.clone(), v.clone());
                req.stored_vectors.insert(id, v);
            }
        }
    }
    // Popularity-only lists (cold start) are the same for everyone with this filter and profile.
    let popular_key = (req.exclude.is_empty() && req.sources.iter().all(|s| *s == Source::Popular))
        .then(|| {
            format!(
                "{:?}|{:?}|{}|{}",
                req.filter, req.exclusion, req.k, req.with_vectors
            )
        });
    if let Some(hit) = popular_key.as_deref().and_then(|k| state.caches.popular(k)) {
        return Ok(hit.as_ref().clone());
    }
    let retrieval = state
        .admitted(deadline, "retrieve", async {
            state
                .retriever
                .retrieve(&req)
                .await
                .map_err(|e| retriever_error(plan, e))
        })
        .await?;
    if retrieval.partial {
        tracing::warn!("redis returned partial search results (query timeout)");
    } else if let Some(key) = popular_key {
        state
            .caches
            .store_popular(key, std::sync::Arc::new(retrieval.candidates.clone()));
    }
    Ok(retrieval.candidates)
}

fn retriever_error(plan: &Plan, e: redrec_retriever::Error) -> ApiError {
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
            ApiError::redis_unavailable(format!("retrieval: {message}"), RedisFailure::Connection)
        }
        E::IndexMissing { index } => ApiError::index_missing(&index),
        other => ApiError::redis_internal(other),
    }
}
