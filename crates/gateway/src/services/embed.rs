//! Embedding query and item text on the blocking pool (the embedder is CPU-bound and synchronous).

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
