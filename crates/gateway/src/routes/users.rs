//! Events and user features: `POST /v1/events` (one event or an array; the whole batch is applied
//! in one atomic step by redrec-userstate' Redis Function: all of it or none; events carrying a
//! `rec_id` are then attributed to that served list), `GET /v1/users/{id}` and `DELETE /v1/users/{id}`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use redrec_core::user::UserFeatures;
use redrec_userstate::{Event, EventKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{Access, authorize},
    error::{ApiError, ApiResult, ErrorCode},
    extract::StrictJson,
    services::{catalog::check_id, users},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/users/{id}", get(get_user).delete(delete_user))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAccepted {
    /// Events that changed user state.
    pub applied: usize,
    /// Indexes (in the request) of events skipped as duplicates of an earlier `event_id`.
    pub duplicates: Vec<usize>,
}

/// Record user events (write key required).
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = Vec<Event>,
    security(("api_key" = [])),
    responses((status = 202, body = EventsAccepted), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    StrictJson(body): StrictJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<EventsAccepted>)> {
    authorize(&state, &headers, Access::Write)?;
    let batch = body.is_array();
    let events: Vec<Event> = if batch {
        crate::extract::from_value(body)?
    } else if body.is_object() {
        vec![crate::extract::from_value(body)?]
    } else {
        return Err(ApiError::Invalid {
            code: ErrorCode::InvalidField,
            message: "expected an event object or an array of events".into(),
            field: None,
        });
    };
    if events.is_empty() {
        return Err(ApiError::Invalid {
            code: ErrorCode::InvalidField,
            message: "the batch is empty".into(),
            field: None,
        });
    }
    let report = users::apply_events(&state, &events, batch).await?;
    count_events(&state, &events, &report.duplicates);
    crate::services::online::attribute(&state, &events, &report.duplicates).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(EventsAccepted {
            applied: report.applied,
            duplicates: report.duplicates,
        }),
    ))
}

/// Counts the applied events by type (`redrec_events_accepted_total`); duplicates are skipped.
fn count_events(state: &AppState, events: &[Event], duplicates: &[usize]) {
    let mut by_kind = [0u64; EventKind::ALL.len()];
    for (i, e) in events.iter().enumerate() {
        if duplicates.contains(&i) {
            continue;
        }
        // applied events have a valid type
        if let Some(k) = EventKind::ALL
            .iter()
            .position(|k| k.as_str() == e.event_type)
        {
            by_kind[k] += 1;
        }
    }
    for (kind, n) in EventKind::ALL.iter().zip(by_kind) {
        if n > 0 {
            state.metrics.events_accepted(kind.as_str(), n);
        }
    }
}

/// Read a user's features as the request path sees them (decay applied).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "UserFeatures (redrec_core::user)", content_type = "application/json"),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<UserFeatures>> {
    authorize(&state, &headers, Access::Read)?;
    check_id(&id, "id")?;
    let now_ms = crate::clock::request_now_ms(&state, &headers)?;
    let user = users::read_user(&state, &id, now_ms).await?;
    if !user.known {
        return Err(ApiError::NotFound { what: "user", id });
    }
    Ok(Json(user))
}

/// Delete everything stored for a user (write key required).
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id")), security(("api_key" = [])),
    responses((status = 204, description = "deleted"), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    authorize(&state, &headers, Access::Write)?;
    check_id(&id, "id")?;
    let existed = users::delete_user(&state, &id).await?;
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound { what: "user", id })
    }
}
