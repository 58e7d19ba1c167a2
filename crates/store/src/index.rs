//! The search index: reading it (`FT.INFO` of an index or alias, the distinct values of fields
//! by `FT.AGGREGATE ... GROUPBY`, `PING` and loading progress) and administering it (`FT.CREATE`,
//! `FT.ALTER ... SCHEMA ADD`, the alias, `FT.DROPINDEX`, `FT._LIST`, and the RedisVL schema
//! recorded next to each index under `{ns}:meta:schema:{index}`). Which indexes to create and
//! when to move the alias is `redrec-ingest`'s (`index.rs`, `migrate.rs`, `cf_field.rs`) and the
//! bench's; the commands are sent only here.

use redis::Value;
use redis::aio::ConnectionLike;
use redrec_core::keys::Namespace;
use redrec_core::reply::{IndexInfo, ReplyError, Row, parse_aggregate, parse_info};
use redrec_core::schema::IndexSchema;

use crate::error::{Error, Failure, Result, classify};

/// `FT.INFO name` (an index or an alias); `None` when no such index exists.
pub async fn info(con: &mut impl ConnectionLike, name: &str) -> Result<Option<IndexInfo>> {
    let reply: redis::RedisResult<Value> = redis::cmd("FT.INFO").arg(name).query_async(con).await;
    match reply {
        Ok(v) => Ok(Some(parse_info(&v)?)),
        Err(e) if classify(&e) == Failure::IndexMissing => Ok(None),
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
    let reply: Value = cmd
        .query_async(con)
        .await
        .map_err(|e| Error::from_search("FT.AGGREGATE", index, &e))?;
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

/// Whether this node is a replica whose link to its primary is up (`INFO replication`:
/// `master_link_status:up`); false for a primary or a replica that lost its primary.
pub async fn replica_link(con: &mut impl ConnectionLike) -> Result<bool> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("INFO replication", &e))?;
    Ok(info.lines().any(|l| l.trim() == "master_link_status:up"))
}

/// `FT.CREATE` with `args` as rendered by `redrec_core::schema` (the index name first).
pub async fn create(con: &mut impl ConnectionLike, args: &[String]) -> Result<()> {
    let index = args.first().map(String::as_str).unwrap_or_default();
    let _: Value = redis::cmd("FT.CREATE")
        .arg(args)
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis(&format!("FT.CREATE {index}"), &e))?;
    Ok(())
}

/// `FT.ALTER index SCHEMA ADD field_args` (one field, as rendered by
/// `IndexSchema::field_args`): RediSearch indexes the existing documents in the background.
pub async fn add_field(
    con: &mut impl ConnectionLike,
    index: &str,
    field_args: &[String],
) -> Result<()> {
    let _: Value = redis::cmd("FT.ALTER")
        .arg(index)
        .arg("SCHEMA")
        .arg("ADD")
        .arg(field_args)
        .query_async(con)
        .await
        .map_err(|e| Error::from_search(&format!("FT.ALTER {index}"), index, &e))?;
    Ok(())
}

/// Points `alias` at `index`, creating the alias if needed (`FT.ALIASUPDATE`: atomic for
/// readers).
pub async fn point_alias(con: &mut impl ConnectionLike, alias: &str, index: &str) -> Result<()> {
    let _: Value = redis::cmd("FT.ALIASUPDATE")
        .arg(alias)
        .arg(index)
        .query_async(con)
        .await
        .map_err(|e| Error::from_search(&format!("FT.ALIASUPDATE {alias}"), index, &e))?;
    Ok(())
}

/// Removes `alias`; returns whether it existed.
pub async fn remove_alias(con: &mut impl ConnectionLike, alias: &str) -> Result<bool> {
    let reply: redis::RedisResult<Value> =
        redis::cmd("FT.ALIASDEL").arg(alias).query_async(con).await;
    match reply {
        Ok(_) => Ok(true),
        Err(e) if classify(&e) == Failure::IndexMissing => Ok(false),
        Err(e) => Err(Error::from_redis("FT.ALIASDEL", &e)),
    }
}

/// Drops `index` (with its documents when `delete_docs`: `DD`); returns whether it existed.
pub async fn drop(con: &mut impl ConnectionLike, index: &str, delete_docs: bool) -> Result<bool> {
    let mut cmd = redis::cmd("FT.DROPINDEX");
    cmd.arg(index);
    if delete_docs {
        cmd.arg("DD");
    }
    let reply: redis::RedisResult<Value> = cmd.query_async(con).await;
    match reply {
        Ok(_) => Ok(true),
        Err(e) if classify(&e) == Failure::IndexMissing => Ok(false),
        Err(e) => Err(Error::from_redis(&format!("FT.DROPINDEX {index}"), &e)),
    }
}

/// Every index of the server (`FT._LIST`).
pub async fn list(con: &mut impl ConnectionLike) -> Result<Vec<String>> {
    redis::cmd("FT._LIST")
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("FT._LIST", &e))
}

/// Key under which redrec keeps the RedisVL schema an index was created from.
pub fn schema_key(ns: &Namespace, index: &str) -> String {
    ns.meta(&format!("schema:{index}"))
}

/// Records `schema` (as RedisVL YAML) as the schema of `index`.
pub async fn record_schema(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    index: &str,
    schema: &IndexSchema,
) -> Result<()> {
    let _: Value = redis::cmd("SET")
        .arg(schema_key(ns, index))
        .arg(schema.to_yaml())
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("SET schema", &e))?;
    Ok(())
}

/// The schema recorded for `index`, if redrec created it.
pub async fn recorded_schema(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    index: &str,
) -> Result<Option<IndexSchema>> {
    let key = schema_key(ns, index);
    let yaml: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("GET schema", &e))?;
    yaml.map(|y| {
        IndexSchema::from_yaml(&y).map_err(|e| ReplyError::new(format!("`{key}`: {e}")).into())
    })
    .transpose()
}

/// Forgets the schema recorded for `index`.
pub async fn forget_schema(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    index: &str,
) -> Result<()> {
    let _: Value = redis::cmd("DEL")
        .arg(schema_key(ns, index))
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("DEL schema", &e))?;
    Ok(())
}
