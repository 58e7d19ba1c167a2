//! `redrec-ingest partitions`: partitioned indexes of the serving index (issue 19).
//!
//! A partition is a second RediSearch index over the same item keys with the serving index's
//! schema and `FT.CREATE ... FILTER <expression>`, so it holds exactly the items one filter keeps
//! (one department, one price band) and keeps that membership current on every write. A query
//! whose filter lies inside a partition runs its KNN over the partition's small graph instead of
//! brute-forcing a small share of the whole catalog (see `redrec_core::partition`).
//!
//! Creating one: validate every requested partition first (name, filter, the expression), then
//! `FT.CREATE` them all, wait until the server has indexed them, and check each holds exactly as
//! many items as its filter keeps in the serving index (`FT.SEARCH ... LIMIT 0 0`). A partition
//! that disagrees is dropped again and reported; only checked partitions are written to the
//! registry ([`Namespace::partitions`]) the retriever reads, so a query is never routed to a
//! partition that is still building or holds the wrong items.
//!
//! Partitions belong to one concrete index: after a migration switches the alias, create them
//! again for the new index (the retriever ignores a registry of another index).

use std::time::Duration;

use redis::{Value, aio::MultiplexedConnection};
use redrec_core::filter::Filter;
use redrec_core::keys::Namespace;
use redrec_core::partition::{self, MAX_PARTITIONS, Partition, PartitionSet};
use redrec_core::reply::{Page, Shape, parse_search};
use redrec_core::schema::IndexSchema;
use redrec_store::index as store;

use crate::{Error, Result, index};

/// A partition to create: its name and the filter of the items it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSpec {
    pub name: String,
    pub filter: Filter,
}

/// Server-side `TIMEOUT` of the counting, sorting and grouping queries: they visit the whole
/// catalog (a sorted page at rank 500,000 of 1M items takes seconds), far beyond the server's
/// default of 500 ms for serving queries.
const ADMIN_TIMEOUT_MS: u64 = 120_000;

fn reply_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal {
        message: format!("{what} reply: {e}"),
    }
}

/// The serving index, its schema and its current registry (empty when none is stored).
async fn serving(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
) -> Result<(index::IndexInfo, IndexSchema, PartitionSet)> {
    let alias = ns.alias();
    let info = index::info(con, &alias)
        .await?
        .ok_or_else(|| Error::Index {
            index: alias.clone(),
            message: "no serving index: load or seed a catalog first".into(),
        })?;
    let schema = index::live_schema(con, ns, &info.name)
        .await?
        .ok_or_else(|| Error::Index {
            index: info.name.clone(),
            message: "disappeared while reading its schema".into(),
        })?;
    let set = read_set(con, ns, &info.name)
        .await?
        .unwrap_or(PartitionSet {
            index: info.name.clone(),
            items: info.num_docs,
            partitions: Vec::new(),
        });
    Ok((info, schema, set))
}

/// The registry of `index`, if one is stored.
pub async fn read_set(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    index: &str,
) -> Result<Option<PartitionSet>> {
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(ns.partitions(index))
        .query_async(con)
        .await?;
    raw.map(|r| {
        PartitionSet::parse(&r).map_err(|e| Error::Index {
            index: index.to_owned(),
            message: format!(
                "unreadable partition registry {}: {e}",
                ns.partitions(index)
            ),
        })
    })
    .transpose()
}

async fn write_set(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    set: &PartitionSet,
) -> Result<()> {
    let key = ns.partitions(&set.index);
    if set.partitions.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(con).await?;
    } else {
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(set.to_json())
            .query_async(con)
            .await?;
    }
    Ok(())
}

/// How many items of `index` pass `filter` (`FT.SEARCH ... LIMIT 0 0`).
async fn count(
    con: &mut MultiplexedConnection,
    index: &str,
    filter: &Filter,
    schema: &IndexSchema,
) -> Result<u64> {
    count_query(con, index, &filter.render(schema)?).await
}

/// How many items of `index` match a query expression.
async fn count_query(con: &mut MultiplexedConnection, index: &str, query: &str) -> Result<u64> {
    Ok(admin_search(con, index, query, &["LIMIT", "0", "0"])
        .await?
        .total)
}

/// `FT.SEARCH index query <options>` with the long admin timeout; the reply as a page.
async fn admin_search(
    con: &mut MultiplexedConnection,
    index: &str,
    query: &str,
    options: &[&str],
) -> Result<Page> {
    let reply: Value = redis::cmd("FT.SEARCH")
        .arg(index)
        .arg(query)
        .arg(options)
        .arg("TIMEOUT")
        .arg(ADMIN_TIMEOUT_MS)
        .arg("DIALECT")
        .arg(2)
        .query_async(con)
        .await?;
    parse_search(
        &reply,
        Shape {
            with_scores: false,
            with_content: true,
        },
    )
    .map_err(|e| reply_error("FT.SEARCH", e))
}

/// Creates `specs` as partitions of the serving index, checks each, and records them; returns
/// the registry as stored. Nothing is created when any spec is invalid, and a partition that
/// exists already under the same name must have the same filter (it is then checked again).
pub async fn create(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    specs: &[PartitionSpec],
    timeout: Duration,
) -> Result<PartitionSet> {
    let (info, schema, mut set) = serving(con, ns).await?;
    if specs.is_empty() {
        return Err(Error::Usage {
            message: "no partition to create: give --name and --filter, --bands or --tag-values"
                .into(),
        });
    }
    // validate everything before creating anything
    let mut planned = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        partition::validate_name(&spec.name)?;
        if specs[..i].iter().any(|s| s.name == spec.name) {
            return Err(Error::Usage {
                message: format!("partition `{}` is given twice", spec.name),
            });
        }
        let expression = partition::expression(&spec.name, &spec.filter, &schema)?;
        let part_index = partition::index_name(&info.name, &spec.name);
        match set.partitions.iter().find(|p| p.name == spec.name) {
            Some(p) if p.filter != spec.filter => {
                return Err(Error::Usage {
                    message: format!(
                        "partition `{}` exists with another filter ({}): drop it first (`redrec-ingest partitions drop --name {}`)",
                        spec.name,
                        p.filter.to_json(),
                        spec.name
                    ),
                });
            }
            _ => {}
        }
        planned.push((spec, expression, part_index));
    }
    let total = set.partitions.len()
        + planned
            .iter()
            .filter(|(s, ..)| !set.partitions.iter().any(|p| p.name == s.name))
            .count();
    if total > MAX_PARTITIONS {
        return Err(Error::Usage {
            message: format!(
                "{total} partitions on `{}`, at most {MAX_PARTITIONS} are allowed",
                info.name
            ),
        });
    }
    let base_args = schema.ft_create_args_stored(&info.name, &info.storage_names());
    for (spec, expression, part_index) in &planned {
        if index::info(con, part_index).await?.is_none() {
            let args = partition::create_args(&base_args, part_index, expression)?;
            store::create(con, &args).await.map_err(|e| Error::Index {
                index: part_index.clone(),
                message: format!("FT.CREATE of partition `{}`: {e}", spec.name),
            })?;
            tracing::info!(partition = %spec.name, index = %part_index, %expression, "partition created");
        }
    }
    let mut failures = Vec::new();
    for (spec, _, part_index) in &planned {
        index::wait_indexed(con, part_index, timeout).await?;
        let held = index::info(con, part_index)
            .await?
            .map_or(0, |i| i.num_docs);
        let expected = count(con, &info.name, &spec.filter, &schema).await?;
        if held != expected {
            store::drop(con, part_index, false).await?;
            set.partitions.retain(|p| p.name != spec.name);
            failures.push(format!(
                "`{}` held {held} items where its filter keeps {expected} in `{}` (dropped again; a TAG field holding several values per item cannot be partitioned by value)",
                spec.name, info.name
            ));
            continue;
        }
        let entry = Partition {
            name: spec.name.clone(),
            filter: spec.filter.clone(),
            index: part_index.clone(),
            docs: held,
        };
        match set.partitions.iter_mut().find(|p| p.name == spec.name) {
            Some(p) => *p = entry,
            None => set.partitions.push(entry),
        }
    }
    set.items = info.num_docs;
    write_set(con, ns, &set).await?;
    if failures.is_empty() {
        Ok(set)
    } else {
        Err(Error::Index {
            index: info.name.clone(),
            message: format!("partition check failed: {}", failures.join("; ")),
        })
    }
}

/// Drops the named partitions of the serving index (every one when `names` is empty) and
/// removes them from the registry first, so the retriever stops routing before the index goes.
pub async fn drop(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    names: &[String],
) -> Result<Vec<Partition>> {
    let (_, _, mut set) = serving(con, ns).await?;
    for n in names {
        if !set.partitions.iter().any(|p| &p.name == n) {
            return Err(Error::Usage {
                message: format!(
                    "no partition `{n}` on `{}` (known: {})",
                    set.index,
                    set.partitions
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let (gone, kept): (Vec<Partition>, Vec<Partition>) = set
        .partitions
        .into_iter()
        .partition(|p| names.is_empty() || names.contains(&p.name));
    set.partitions = kept;
    write_set(con, ns, &set).await?;
    for p in &gone {
        store::drop(con, &p.index, false).await?;
    }
    Ok(gone)
}

/// The serving index's partitions with each one's current item count and build progress.
pub async fn list(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
) -> Result<(String, Vec<(Partition, Option<index::IndexInfo>)>)> {
    let (info, _, set) = serving(con, ns).await?;
    let mut out = Vec::new();
    for p in set.partitions {
        let live = index::info(con, &p.index).await?;
        out.push((p, live));
    }
    Ok((info.name, out))
}

/// The value of `field` of the item at rank `rank` when the serving index is sorted by it
/// ascending (the field must be SORTABLE NUMERIC).
async fn value_at_rank(
    con: &mut MultiplexedConnection,
    index: &str,
    field: &str,
    rank: u64,
) -> Result<f64> {
    let rank = rank.to_string();
    let options = [
        "SORTBY", field, "ASC", "LIMIT", &rank, "1", "RETURN", "1", field,
    ];
    let page = admin_search(con, index, &format!("@{field}:[-inf +inf]"), &options).await?;
    page.hits
        .first()
        .and_then(|h| h.fields.get(field))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| Error::Index {
            index: index.to_owned(),
            message: format!("no numeric `{field}` at rank {rank}"),
        })
}

/// Price-band partitions of a NUMERIC field: `bands` bands holding equal shares of the items
/// (by the serving index's quantiles), plus, with `overlap`, `bands - 1` bands of the same width
/// centred on the boundaries, so that any range no wider than half a band lies inside one band.
/// Names are `{prefix}{i}` (`prefix` defaults to the field name and `-`).
pub async fn numeric_bands(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    field: &str,
    bands: usize,
    overlap: bool,
) -> Result<Vec<PartitionSpec>> {
    if !(2..=32).contains(&bands) {
        return Err(Error::Usage {
            message: format!("--bands: expected 2..=32 bands (got {bands})"),
        });
    }
    let (info, schema, _) = serving(con, ns).await?;
    schema.field(field)?;
    let n = count_query(con, &info.name, &format!("@{field}:[-inf +inf]")).await?;
    if n < (bands as u64) * 2 {
        return Err(Error::Usage {
            message: format!("`{field}`: {n} items hold a number, too few for {bands} bands"),
        });
    }
    // quantile edges at every half band
    let steps = bands * 2;
    let mut edges = Vec::with_capacity(steps + 1);
    for s in 0..=steps {
        let rank = ((n - 1) * s as u64) / steps as u64;
        edges.push(value_at_rank(con, &info.name, field, rank).await?);
    }
    let band = |lo: usize, hi: usize| {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let lower = if lo == 0 {
            Unbounded
        } else {
            Included(edges[lo])
        };
        let upper = if hi == steps {
            Unbounded
        } else {
            Excluded(edges[hi])
        };
        Filter::range(field, lower, upper)
    };
    let mut specs: Vec<PartitionSpec> = (0..bands)
        .map(|b| PartitionSpec {
            name: format!("{}-{b}", field.to_lowercase()),
            filter: band(2 * b, 2 * b + 2),
        })
        .collect();
    if overlap {
        specs.extend((0..bands - 1).map(|b| PartitionSpec {
            name: format!("{}-{b}h", field.to_lowercase()),
            filter: band(2 * b + 1, 2 * b + 3),
        }));
    }
    // equal edges (many items at one value) make empty or duplicate bands: skip them
    specs.dedup_by(|a, b| a.filter == b.filter);
    Ok(specs)
}

/// One partition per value of a TAG field that at least `min_items` items carry while keeping
/// less than `max_share` of the catalog (larger values are served well by `BATCHES` on the
/// whole index), largest first, at most `max` of them.
pub async fn tag_values(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    field: &str,
    min_items: u64,
    max_share: f64,
    max: usize,
) -> Result<Vec<PartitionSpec>> {
    let (info, schema, _) = serving(con, ns).await?;
    let reply: Value = redis::cmd("FT.AGGREGATE")
        .arg(&info.name)
        .arg("*")
        .arg("GROUPBY")
        .arg(1)
        .arg(format!("@{field}"))
        .arg("REDUCE")
        .arg("COUNT")
        .arg(0)
        .arg("AS")
        .arg("n")
        .arg("LIMIT")
        .arg(0)
        .arg(10_000)
        .arg("TIMEOUT")
        .arg(ADMIN_TIMEOUT_MS)
        .arg("DIALECT")
        .arg(2)
        .query_async(con)
        .await?;
    let rows =
        redrec_core::reply::parse_aggregate(&reply).map_err(|e| reply_error("FT.AGGREGATE", e))?;
    let mut values: Vec<(String, u64)> = rows
        .iter()
        .filter_map(|r| {
            let v = r.get(field)?;
            let n = r.get("n")?.parse::<u64>().ok()?;
            Some((v.clone(), n))
        })
        .filter(|(_, n)| *n >= min_items && (*n as f64) < max_share * info.num_docs as f64)
        .collect();
    values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut specs = Vec::new();
    for (value, _) in values.into_iter().take(max) {
        let slug: String = value
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let spec = PartitionSpec {
            name: format!("{}-{slug}", field.to_lowercase()),
            filter: Filter::tag_any(field, [value]),
        };
        // values the expression cannot carry are left out rather than failing the rest
        if partition::check_filter(&spec.name, &spec.filter, &schema).is_ok()
            && partition::validate_name(&spec.name).is_ok()
            && !specs.iter().any(|s: &PartitionSpec| s.name == spec.name)
        {
            specs.push(spec);
        }
    }
    Ok(specs)
}
