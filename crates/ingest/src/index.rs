//! Index management: create-if-missing from a schema, the serving alias, `FT.INFO` and the
//! schema stored next to each index so it can be exported again as RedisVL YAML. The commands
//! are `redrec_store::index`'s typed calls; this module decides what to create and when.
//!
//! Serving always goes through the alias `{ns}:items`; the concrete indexes behind it are
//! versioned `{ns}:items:v{N}`. A schema field may be stored under another hash field than its
//! query name (`embedding__v2 AS embedding`): that is how a migration gives a new model's vectors
//! a field of their own while queries keep naming `@embedding`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use redis::aio::MultiplexedConnection;
use redrec_core::{
    keys::Namespace,
    schema::{IndexSchema, StorageType},
};
use redrec_store::index as store;

/// What `FT.INFO` says about an index; parsed by `redrec_core::reply::info`.
pub use redrec_core::reply::{IndexInfo, InfoAttribute};

use crate::{Error, Result};

/// `FT.INFO name` (an index or an alias); `None` when no such index exists.
pub async fn info(con: &mut MultiplexedConnection, name: &str) -> Result<Option<IndexInfo>> {
    Ok(store::info(con, name).await?)
}

/// Key under which redrec keeps the YAML schema an index was created from.
pub use redrec_store::index::schema_key;

/// An index-admin failure of `index`: Redis being away stays an infrastructure error, a refused
/// command names the index.
fn admin_error(index: &str, e: redrec_store::Error) -> Error {
    if e.is_unavailable() {
        Error::Store(e)
    } else {
        Error::Index {
            index: index.to_owned(),
            message: e.to_string(),
        }
    }
}

/// Creates `index_name` from `schema` unless it exists; records the schema as YAML next to it.
/// Returns whether it was created.
pub async fn create_if_missing(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    schema: &IndexSchema,
    index_name: &str,
    storage_names: &BTreeMap<String, String>,
) -> Result<bool> {
    if info(con, index_name).await?.is_some() {
        return Ok(false);
    }
    let args = schema.ft_create_args_stored(index_name, storage_names);
    let mut stored = schema.clone();
    stored.index.name = index_name.to_owned();
    for f in &mut stored.fields {
        if let Some(s) = storage_names.get(&f.name) {
            f.path = Some(match schema.index.storage_type {
                StorageType::Hash => s.clone(),
                StorageType::Json => format!("$.{s}"),
            });
        }
    }
    store::create(con, &args)
        .await
        .map_err(|e| admin_error(index_name, e))?;
    store::record_schema(con, ns, index_name, &stored).await?;
    tracing::info!(index = index_name, "created index");
    Ok(true)
}

/// Points the alias at `index_name` (creating the alias if needed). Atomic for readers.
pub async fn point_alias(
    con: &mut MultiplexedConnection,
    alias: &str,
    index_name: &str,
) -> Result<()> {
    store::point_alias(con, alias, index_name)
        .await
        .map_err(|e| admin_error(index_name, e))
}

/// The concrete index the alias points to, if any.
pub async fn alias_target(con: &mut MultiplexedConnection, alias: &str) -> Result<Option<String>> {
    Ok(info(con, alias).await?.map(|i| i.name))
}

/// The schema an index was created from: the YAML recorded at creation when redrec created it,
/// otherwise rebuilt from `FT.INFO` (lossy: see [`IndexInfo::to_schema`]).
pub async fn live_schema(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    index_or_alias: &str,
) -> Result<Option<IndexSchema>> {
    let Some(info) = info(con, index_or_alias).await? else {
        return Ok(None);
    };
    match store::recorded_schema(con, ns, &info.name).await? {
        Some(schema) => Ok(Some(schema)),
        None => Ok(Some(info.to_schema())),
    }
}

/// The pause between two `FT.INFO` polls of an index being built: 25 ms, or 20x what the last
/// one took when that is longer. `FT.INFO` runs on Redis's main thread, the same one that builds
/// the index, and costs 210-240 ms at 1M items: polled every 25 ms it would take most of the
/// server's time away from the build it waits for.
pub fn poll_interval(last_took: Duration) -> Duration {
    (last_took * 20).max(Duration::from_millis(25))
}

/// Waits until `FT.INFO` reports the index 100% indexed; returns how long that took.
pub async fn wait_indexed(
    con: &mut MultiplexedConnection,
    index_name: &str,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let asked = Instant::now();
        let i = info(con, index_name).await?.ok_or_else(|| Error::Index {
            index: index_name.to_owned(),
            message: "disappeared while waiting for indexing".into(),
        })?;
        if i.percent_indexed >= 1.0 && !i.indexing {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(Error::Index {
                index: index_name.to_owned(),
                message: format!(
                    "still {:.1}% indexed after {:?}",
                    i.percent_indexed * 100.0,
                    timeout
                ),
            });
        }
        tokio::time::sleep(poll_interval(asked.elapsed())).await;
    }
}

/// The index behind the serving alias, as ingest needs it.
#[derive(Debug, Clone)]
pub struct ServingIndex {
    pub alias: String,
    /// Concrete index name (`{ns}:items:v{N}`).
    pub index: String,
    pub schema: IndexSchema,
    /// schema field -> storage name, for fields stored under another name.
    pub storage_names: BTreeMap<String, String>,
    /// Whether the index exists yet (a first load creates it after writing).
    pub exists: bool,
}

/// Resolves the serving index for `ns`: the index behind the alias when there is one (its
/// recorded schema, its storage names), otherwise `template` as version 1, not yet created.
pub async fn serving(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    template: &IndexSchema,
) -> Result<ServingIndex> {
    let alias = ns.alias();
    match info(con, &alias).await? {
        Some(live) => {
            let mut schema = match store::recorded_schema(con, ns, &live.name).await? {
                Some(schema) => schema,
                None => live.to_schema(),
            };
            for f in &mut schema.fields {
                if schema.index.storage_type == StorageType::Hash {
                    f.path = None;
                }
            }
            Ok(ServingIndex {
                alias,
                index: live.name.clone(),
                storage_names: live.storage_names(),
                schema,
                exists: true,
            })
        }
        None => {
            let index = ns.index(1);
            let mut schema = template.clone();
            schema.index.name = index.clone();
            let exists = info(con, &index).await?.is_some();
            Ok(ServingIndex {
                alias,
                index,
                schema,
                storage_names: BTreeMap::new(),
                exists,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_of_an_expensive_index_are_spaced_out() {
        assert_eq!(
            poll_interval(Duration::from_micros(300)),
            Duration::from_millis(25)
        );
        // FT.INFO of a 1M-item index: 240 ms, so polls take at most 5% of the server's time
        assert_eq!(
            poll_interval(Duration::from_millis(240)),
            Duration::from_millis(4800)
        );
    }
}
