//! API keys and rate limiting.
//!
//! Keys come in `Authorization: Bearer <key>` or `X-Api-Key: <key>`. Writes and admin routes
//! always need one; reads only with `gateway.read_keys_required`. Rate limiting is a fixed
//! window counted in the same Redis (`{namespace}:rl:{identity}:{window}`, `INCR` + `PEXPIRE`
//! in one MULTI), so several gateway replicas share one budget.

use axum::{
    extract::{Request, State},
    http::HeaderMap,
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use redrec_store::Route;

use crate::{config::RateLimitBy, error::ApiError, state::AppState};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Admin,
}

/// The key presented with a request, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = v.strip_prefix("Bearer ")
    {
        return Some(token.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Checks the request's key for `access`.
pub fn authorize(state: &AppState, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
    let cfg = state.gateway();
    if access == Access::Read && !cfg.read_keys_required {
        return Ok(());
    }
    let what = match access {
        Access::Read => "this read route",
        Access::Write => "writes",
        Access::Admin => "admin routes",
    };
    let Some(key) = presented_key(headers) else {
        return Err(ApiError::Unauthorized {
            message: format!(
                "{what} need an API key: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`"
            ),
        });
    };
    if cfg.api_keys.is_empty() {
        return Err(ApiError::Unauthorized {
            message: format!("{what} are disabled: no API key is configured (gateway.api_keys)"),
        });
    }
    // Comparing digests keeps the comparison time independent of where the strings differ.
    let presented = digest(key);
    if cfg.api_keys.iter().any(|k| digest(k) == presented) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized {
            message: "the API key is not valid".into(),
        })
    }
}

/// Middleware counting each request against its identity's window.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let cfg = &state.gateway().rate_limit;
    if !cfg.enabled {
        return next.run(req).await;
    }
    let identity = identity(cfg.by, req.headers());
    match check_rate(&state, &identity).await {
        Ok(()) => next.run(req).await,
        Err(e) => {
            if matches!(e, ApiError::RateLimited { .. }) {
                state.metrics.rate_limited();
            }
            e.into_response()
        }
    }
}

fn identity(by: RateLimitBy, headers: &HeaderMap) -> String {
    if by == RateLimitBy::User
        && let Some(user) = headers.get("x-user-id").and_then(|v| v.to_str().ok())
        && redrec_core::keys::validate_id(user).is_ok()
    {
        return format!("user:{user}");
    }
    match presented_key(headers) {
        // Never store the key itself in Redis: a short digest identifies it.
        Some(key) => {
            let d = digest(key);
            let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("key:{hex}")
        }
        None => "anonymous".into(),
    }
}

async fn check_rate(state: &AppState, identity: &str) -> Result<(), ApiError> {
    let cfg = &state.gateway().rate_limit;
    let window_ms = cfg.window_ms.max(1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let count = state
        .call("rate limit INCR", Route::Primary, |mut con| async move {
            redrec_store::ratelimit::hit(&mut con, &state.ns, identity, now_ms, window_ms).await
        })
        .await?;
    if count > cfg.requests {
        let left_ms = window_ms - now_ms % window_ms;
        return Err(ApiError::RateLimited {
            limit: cfg.requests,
            window_ms,
            retry_after_secs: left_ms.div_ceil(1000),
        });
    }
    Ok(())
}
