//! Item hashes (`{ns}:item:{id}`): whole-item replace, read and delete. Bulk loads pipeline
//! their writes in `redrec-ingest`; these are the single-item calls the admin API makes.

use std::collections::BTreeMap;

use redis::aio::ConnectionLike;
use redrec_core::keys::{Namespace, validate_id};

use crate::error::{Error, Result};

/// Replaces the whole hash of item `id` with `fields` in one `MULTI` (`DEL` + `HSET`, so stale
/// fields vanish and readers never see a half-written item). Returns whether the item is new.
pub async fn replace_item(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    id: &str,
    fields: &[(String, Vec<u8>)],
) -> Result<bool> {
    validate_id(id)?;
    let key = ns.item(id);
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("DEL").arg(&key).cmd("HSET").arg(&key);
    for (k, v) in fields {
        pipe.arg(k).arg(v.as_slice());
    }
    pipe.ignore();
    let (deleted,): (u64,) = pipe
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("item upsert", &e))?;
    Ok(deleted == 0)
}

/// Every field of item `id` as stored (the vector as its raw blob); `None` when it does not exist.
pub async fn read_item(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    id: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    validate_id(id)?;
    let raw: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(ns.item(id))
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("HGETALL", &e))?;
    Ok((!raw.is_empty()).then_some(raw))
}

/// Deletes item `id`; returns whether it existed.
pub async fn delete_item(con: &mut impl ConnectionLike, ns: &Namespace, id: &str) -> Result<bool> {
    validate_id(id)?;
    let n: u64 = redis::cmd("DEL")
        .arg(ns.item(id))
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("DEL", &e))?;
    Ok(n > 0)
}
