//! Item hashes for the admin routes, through `redrec_store::catalog`.

use std::collections::BTreeMap;

use redrec_store::{Route, catalog};

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// An id the request names in `field`, checked before any I/O.
pub fn check_id(id: &str, field: &str) -> ApiResult<()> {
    redrec_core::keys::validate_id(id).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// Replaces item `id` with `fields` (already encoded); returns whether it is new.
pub async fn replace_item(
    state: &AppState,
    id: &str,
    fields: &[(String, Vec<u8>)],
) -> ApiResult<bool> {
    let created = state
        .call("item upsert", Route::Primary, |mut con| async move {
            catalog::replace_item(&mut con, &state.ns, id, fields).await
        })
        .await?;
    state.retriever.catalog_changed();
    state.caches.item_changed(id);
    Ok(created)
}

/// Item `id` as stored; `None` when it does not exist.
pub async fn read_item(state: &AppState, id: &str) -> ApiResult<Option<BTreeMap<String, Vec<u8>>>> {
    state
        .call("HGETALL", Route::Replica, |mut con| async move {
            catalog::read_item(&mut con, &state.ns, id).await
        })
        .await
}

/// Deletes item `id`; returns whether it existed.
pub async fn delete_item(state: &AppState, id: &str) -> ApiResult<bool> {
    let existed = state
        .call("DEL", Route::Primary, |mut con| async move {
            catalog::delete_item(&mut con, &state.ns, id).await
        })
        .await?;
    state.retriever.catalog_changed();
    state.caches.item_changed(id);
    Ok(existed)
}
