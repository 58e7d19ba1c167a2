//! Fixed-window rate-limit counters under `{ns}:rl:{identity}:{window}`.

use redis::aio::ConnectionLike;
use redrec_core::keys::Namespace;

use crate::error::{Error, Result};

/// Counts one request of `identity` in the window of length `window_ms` that holds `now_ms`
/// (`INCR` and `PEXPIRE` in one `MULTI`; the key outlives its window by one window). Returns the
/// window's count including this request.
pub async fn hit(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    identity: &str,
    now_ms: u64,
    window_ms: u64,
) -> Result<u64> {
    let window_ms = window_ms.max(1);
    let key = ns.rate_limit(&format!("{identity}:{}", now_ms / window_ms));
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("INCR")
        .arg(&key)
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(window_ms * 2)
        .ignore();
    let (count,): (u64,) = pipe
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("rate limit INCR", &e))?;
    Ok(count)
}
