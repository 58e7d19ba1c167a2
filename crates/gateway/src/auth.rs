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

/// The configured API keys, kept only as SHA-256 digests. A `gateway.api_keys` entry is either a
/// key itself or `sha256:<64 hex digits>`, the digest of one (so a config file or environment
/// need not hold the secret: `printf %s "$KEY" | sha256sum`).
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    /// Parses `gateway.api_keys`; the error names the entry and what was expected.
    pub fn parse(entries: &[String]) -> Result<ApiKeys, String> {
        let mut digests = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let d = match entry.strip_prefix("sha256:") {
                Some(hex) => parse_hex_digest(hex).ok_or_else(|| {
                    format!(
                        "gateway.api_keys[{i}]: `sha256:` must be followed by 64 hex digits \
                         (the SHA-256 of the key), got {} characters",
                        hex.len()
                    )
                })?,
                None if entry.trim().is_empty() => {
                    return Err(format!("gateway.api_keys[{i}]: an API key cannot be empty"));
                }
                None => digest(entry),
            };
            digests.push(d);
        }
        Ok(ApiKeys { digests })
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `key` is one of the configured keys. Every configured digest is compared in full,
    /// without early exit, so the time taken says nothing about which bytes matched.
    pub fn accepts(&self, key: &str) -> bool {
        let presented = digest(key);
        self.digests
            .iter()
            .fold(false, |found, d| found | constant_time_eq(d, &presented))
    }
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
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
    if state.api_keys.is_empty() {
        return Err(ApiError::Unauthorized {
            message: format!("{what} are disabled: no API key is configured (gateway.api_keys)"),
        });
    }
    if state.api_keys.accepts(key) {
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
        Err(e) => e.into_response(),
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
    // the rate window always runs on the wall clock, never a replay's
    let now_ms = crate::clock::now_ms().max(0) as u64;
    // with user state on a cluster, the counters live there (one key per identity and window)
    let mut con = state.user_state_conn().await?;
    let count = state
        .redis
        .call(
            "rate limit INCR",
            redrec_store::ratelimit::hit(&mut con, &state.ns, identity, now_ms, window_ms),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &[u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn keys_match_as_plain_text_or_as_their_sha256() {
        let keys = ApiKeys::parse(&[
            "plain-key".into(),
            format!("sha256:{}", hex(&digest("hashed-key"))),
        ])
        .unwrap();
        assert!(keys.accepts("plain-key"));
        assert!(keys.accepts("hashed-key"));
        assert!(!keys.accepts("plain-ke"));
        assert!(!keys.accepts(""));
        // the digest string itself is not a key
        assert!(!keys.accepts(&format!("sha256:{}", hex(&digest("hashed-key")))));
        // upper-case hex is accepted too
        let upper =
            ApiKeys::parse(&[format!("sha256:{}", hex(&digest("k")).to_uppercase())]).unwrap();
        assert!(upper.accepts("k"));
    }

    #[test]
    fn bad_entries_name_their_position() {
        let e = ApiKeys::parse(&["ok".into(), "sha256:abc".into()]).unwrap_err();
        assert!(e.starts_with("gateway.api_keys[1]:"), "{e}");
        assert!(e.contains("64 hex digits"), "{e}");
        let e = ApiKeys::parse(&[format!("sha256:{}", "g".repeat(64))]).unwrap_err();
        assert!(e.starts_with("gateway.api_keys[0]:"), "{e}");
        let e = ApiKeys::parse(&["  ".into()]).unwrap_err();
        assert!(e.contains("cannot be empty"), "{e}");
        assert!(ApiKeys::parse(&[]).unwrap().is_empty());
    }
}
