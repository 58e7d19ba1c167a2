//! User state through `redrec-userstate`: reading a user's features (the pipeline's first stage),
//! applying event batches, deleting a user; each within the per-call timeout.

use redrec_core::user::UserFeatures;
use redrec_store::Route;
use redrec_userstate::{ApplyReport, Event};

use crate::{
    clock::now_ms,
    error::{ApiError, ApiResult, ErrorCode, RedisFailure},
    state::AppState,
};

/// Maps a feature-store error; `batch` says whether the request body was an array (so the
/// field path starts with the event's index).
pub fn features_error(e: redrec_userstate::Error, batch: bool) -> ApiError {
    use redrec_userstate::Error as E;
    let at = |index: usize, field: &str| {
        if batch {
            format!("[{index}].{field}")
        } else {
            field.to_owned()
        }
    };
    match e {
        E::Invalid { index, field, .. } => ApiError::invalid(at(index, field), e.to_string()),
        E::UnknownItem { index, .. } => ApiError::Invalid {
            code: ErrorCode::UnknownItem,
            message: e.to_string(),
            field: Some(at(index, "item_id")),
        },
        E::BatchTooLarge { .. } => ApiError::Invalid {
            code: ErrorCode::BatchTooLarge,
            message: e.to_string(),
            field: None,
        },
        E::InvalidUserId { .. } => ApiError::invalid("user_id", e.to_string()),
        E::Redis(ref r) => redrec_store::Error::from_redis("feature store", r).into(),
        E::NotDurable { .. } => ApiError::unavailable(e.to_string()),
        other => ApiError::internal(other),
    }
}

/// Applies a batch of events atomically (the primary: the next request must see them; with a
/// user-state cluster, atomically per user, the items read from the catalog's primary first).
pub async fn apply_events(
    state: &AppState,
    events: &[Event],
    batch: bool,
) -> ApiResult<ApplyReport> {
    if state.user_state.is_clustered() {
        return apply_on_cluster(state, events, batch).await;
    }
    let con = state.conn(Route::Primary).await?;
    let wait = state.user_state.ack_wait();
    // A durability wait (`WAITAOF` / `WAIT`) outlasts the per-command response timeout, so the
    // batch goes through a handle on the same connection with a longer one (the wait covers
    // this connection's writes).
    let mut handle: redis::aio::MultiplexedConnection = (*con).clone();
    if !wait.is_zero() {
        handle.set_response_timeout(state.command_timeout() + wait);
    }
    within_apply_deadline(
        state.command_timeout() + wait,
        batch,
        state
            .user_state
            .apply_acknowledged(&mut handle, events, now_ms()),
    )
    .await
}

/// Runs an event application within `deadline`: past it, a 503 (`unavailable`, timeout); a
/// refusal or failure of the user-state store mapped by [`features_error`].
async fn within_apply_deadline<T>(
    deadline: std::time::Duration,
    batch: bool,
    apply: impl std::future::Future<Output = Result<T, redrec_userstate::Error>>,
) -> ApiResult<T> {
    tokio::time::timeout(deadline, apply)
        .await
        .map_err(|_| {
            ApiError::redis_unavailable(
                "redis did not apply the events in time",
                RedisFailure::Timeout,
            )
        })?
        .map_err(|e| features_error(e, batch))
}

/// [`apply_events`] with user state on a cluster: the catalog reads and the popularity counts
/// on the catalog's primary, one atomic step per user on the cluster. No durability wait
/// (`ack = memory` is the only mode accepted with a cluster).
async fn apply_on_cluster(
    state: &AppState,
    events: &[Event],
    batch: bool,
) -> ApiResult<ApplyReport> {
    let mut catalog = state.conn(Route::Primary).await?;
    let mut users = state.user_state_conn().await?;
    // a catalog round trip, one step per user, the popularity counts
    let users_in_batch = {
        let mut ids: Vec<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len() as u32
    };
    within_apply_deadline(
        state.command_timeout() * (users_in_batch + 2),
        batch,
        state
            .user_state
            .apply_clustered(&mut catalog, &mut users, events, now_ms()),
    )
    .await
}

/// A user's features with decay applied to `now_ms` (read-your-writes: served by the primary,
/// or by the user-state cluster's primary owning the user's slot).
pub async fn read_user(state: &AppState, id: &str, now_ms: i64) -> ApiResult<UserFeatures> {
    let mut con = state.user_state_conn().await?;
    tokio::time::timeout(
        state.command_timeout(),
        state.user_state.read(&mut con, id, now_ms),
    )
    .await
    .map_err(|_| {
        ApiError::redis_unavailable(
            "redis did not return the user features in time",
            RedisFailure::Timeout,
        )
    })?
    .map_err(|e| features_error(e, false))
}

/// Deletes everything stored for a user; returns whether anything existed.
pub async fn delete_user(state: &AppState, id: &str) -> ApiResult<bool> {
    let mut con = state.user_state_conn().await?;
    tokio::time::timeout(
        state.command_timeout(),
        state.user_state.delete(&mut con, id),
    )
    .await
    .map_err(|_| {
        ApiError::redis_unavailable(
            "redis did not delete the user in time",
            RedisFailure::Timeout,
        )
    })?
    .map_err(|e| features_error(e, false))
}
