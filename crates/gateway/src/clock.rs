//! The request's clock: the wall clock, or, when `gateway.replay_clock` is on, the instant an
//! offline replay names in the `x-redrec-as-of` header (feature decay, session expiry and
//! freshness are then computed as of that instant).

use axum::http::HeaderMap;

use crate::{error::ApiError, state::AppState};

/// The header carrying a replay's clock, in epoch milliseconds.
pub const AS_OF_HEADER: &str = "x-redrec-as-of";

/// The wall clock in ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The clock a request runs on: the wall clock unless the request carries `x-redrec-as-of` and
/// the gateway allows replays. The header without `replay_clock`, or a value that is not a
/// non-negative integer, is a 422 naming the header.
pub fn request_now_ms(state: &AppState, headers: &HeaderMap) -> Result<i64, ApiError> {
    let Some(raw) = headers.get(AS_OF_HEADER) else {
        return Ok(now_ms());
    };
    parse_as_of(raw.as_bytes(), state.gateway().replay_clock)
}

fn parse_as_of(raw: &[u8], allowed: bool) -> Result<i64, ApiError> {
    if !allowed {
        return Err(ApiError::invalid(
            AS_OF_HEADER,
            "this gateway runs on the wall clock; the header is accepted only with \
             `gateway.replay_clock = true` (offline replays such as `cargo xtask eval`)",
        ));
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|ms| *ms >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                AS_OF_HEADER,
                format!(
                    "expected epoch milliseconds (a non-negative integer), got {:?}",
                    String::from_utf8_lossy(raw)
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: ApiError) -> Option<String> {
        match e {
            ApiError::Invalid { field, .. } => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn as_of_needs_the_replay_switch() {
        let e = parse_as_of(b"1500000000000", false).unwrap_err();
        assert_eq!(field(e).as_deref(), Some(AS_OF_HEADER));
    }

    #[test]
    fn as_of_is_epoch_milliseconds() {
        assert_eq!(
            parse_as_of(b"1500000000000", true).unwrap(),
            1_500_000_000_000
        );
        assert_eq!(parse_as_of(b" 42 ", true).unwrap(), 42);
        for bad in [&b"-1"[..], b"2017-12-01", b"", b"1e12", b"\xff"] {
            let e = parse_as_of(bad, true).unwrap_err();
            assert_eq!(field(e).as_deref(), Some(AS_OF_HEADER), "{bad:?}");
        }
    }
}
