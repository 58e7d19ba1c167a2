//! Reading the search index: `FT.INFO` (what a live index or alias looks like), the distinct
//! values of fields (`FT.AGGREGATE ... GROUPBY`), `PING` and loading progress. Creating indexes and moving the
//! alias is `redrec-ingest`'s (`index.rs`), which reads through these.

use redis::Value;
use redis::aio::ConnectionLike;
use redrec_core::reply::{IndexInfo, Row, parse_aggregate, parse_info};

use crate::error::{Error, Result, is_unknown_index};

/// `FT.INFO name` (an index or an alias); `None` when no such index exists.
pub async fn info(con: &mut impl ConnectionLike, name: &str) -> Result<Option<IndexInfo>> {
    let reply: redis::RedisResult<Value> = redis::cmd("FT.INFO").arg(name).query_async(con).await;
    match reply {
        Ok(v) => Ok(Some(parse_info(&v)?)),
        Err(e) if is_unknown_index(&e) => Ok(None),
        Err(e) => Err(Error::from_redis("FT.INFO", &e)),
    }
}

/// Like [`info`], but a missing index is [`Error::IndexMissing`].
pub async fn require_info(con: &mut impl ConnectionLike, name: &str) -> Result<IndexInfo> {
    info(con, name).await?.ok_or_else(|| Error::IndexMissing {
        index: name.to_owned(),
    })
}

/// The distinct combinations of `fields` over every document of `index` (at most `limit`),
/// with a server-side `TIMEOUT` of `timeout_ms`.
pub async fn group_values(
    con: &mut impl ConnectionLike,
    index: &str,
    fields: &[&str],
    limit: usize,
    timeout_ms: u64,
) -> Result<Vec<Row>> {
    let mut cmd = redis::cmd("FT.AGGREGATE");
    cmd.arg(index).arg("*").arg("GROUPBY").arg(fields.len());
    for f in fields {
        cmd.arg(format!("@{f}"));
    }
    cmd.arg("LIMIT")
        .arg(0)
        .arg(limit)
        .arg("TIMEOUT")
        .arg(timeout_ms);
    let reply: Value = cmd.query_async(con).await.map_err(|e| {
        if is_unknown_index(&e) {
            Error::IndexMissing {
                index: index.to_owned(),
            }
        } else {
            Error::from_redis("FT.AGGREGATE", &e)
        }
    })?;
    Ok(parse_aggregate(&reply)?)
}

/// How far the server is in loading its data after a restart (`INFO persistence`; `None` when
/// it is not loading). `PING` answers `-LOADING` then, but `INFO` is served.
pub async fn loading_percent(con: &mut impl ConnectionLike) -> Result<Option<f64>> {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("INFO persistence", &e))?;
    Ok(redrec_core::reply::loading_percent(&info))
}

/// `PING`: the server answers.
pub async fn ping(con: &mut impl ConnectionLike) -> Result<()> {
    let pong: String = redis::cmd("PING")
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("PING", &e))?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(Error::Rejected {
            what: "PING".into(),
            message: format!("answered {pong}"),
        })
    }
}
