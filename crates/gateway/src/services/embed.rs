//! Embedding query and item text on the blocking pool (the embedder is CPU-bound and synchronous).
//! Query texts go through the embedding cache first (a hit costs no blocking task at all) and,
//! on a miss, through the micro-batcher, so concurrent queries share forward passes.

use std::sync::Arc;

use crate::{error::ApiError, state::AppState};

/// Embeds one text; 503 when no embedder is loaded.
pub async fn embed_text(state: &AppState, text: String) -> Result<Vec<f32>, ApiError> {
    let embedder: Arc<dyn redrec_embedder::Embedder> = state
        .embedder
        .clone()
        .ok_or_else(|| ApiError::unavailable("the embedder is not loaded"))?;
    tokio::task::spawn_blocking(move || embedder.embed_one(&text))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("embedding failed: {e}")))
}

/// Embeds the text of a query: from the cache when the same text was embedded before, else
/// (micro-batched with concurrent queries) by the embedder, then cached.
pub async fn embed_query(state: &AppState, text: String) -> Result<Vec<f32>, ApiError> {
    if let Some(v) = state.caches.embeddings.get(&text) {
        return Ok(v.as_ref().clone());
    }
    let embedder: Arc<dyn redrec_embedder::Embedder> = match &state.batcher {
        Some(b) => b.clone(),
        None => state
            .embedder
            .clone()
            .ok_or_else(|| ApiError::unavailable("the embedder is not loaded"))?,
    };
    let ledger = crate::cpu::ledger();
    let (text, vector) = tokio::task::spawn_blocking(move || {
        let v = crate::cpu::charge(ledger.as_deref(), crate::cpu::Stage::Embed, || {
            embedder.embed_one(&text)
        });
        (text, v)
    })
    .await
    .map_err(ApiError::internal)?;
    let vector = vector.map_err(|e| ApiError::internal(format!("embedding failed: {e}")))?;
    state
        .caches
        .embeddings
        .insert(text, Arc::new(vector.clone()));
    Ok(vector)
}
