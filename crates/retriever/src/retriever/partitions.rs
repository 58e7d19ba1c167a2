//! Routing to partitioned indexes (`redrec-ingest partitions`, `redrec_core::partition`).
//!
//! The registry of the serving index's partitions is read with the background index lookups
//! (`watch.rs`: one `GET` and one `FT.INFO` per partition, pipelined, never on a request), and
//! only partitions that exist and are fully indexed are kept. A request whose filter lies inside
//! one of them searches the smallest such partition's index: no I/O is added to the request.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use redis::Value;
use redrec_core::filter::Filter;
use redrec_core::partition::{Partition, PartitionSet};
use redrec_core::reply::parse_info;

use super::Retriever;

/// The partitions requests may be routed to: recorded, existing and fully indexed, with the
/// attribute names each one's index has.
#[derive(Debug)]
pub(super) struct Routable {
    set: PartitionSet,
    fields: HashMap<String, BTreeSet<String>>,
}

/// Where one request's searches go instead of the serving alias.
#[derive(Debug, Clone)]
pub(super) struct Routed {
    pub(super) name: String,
    pub(super) index: String,
    /// The partition's filter (for the `auto` policy's share within it).
    pub(super) filter: Filter,
    /// The request's filter keeps exactly the partition's items: search it unfiltered.
    pub(super) exact: bool,
}

impl Retriever {
    /// Reads the partition registry of `index` and keeps the partitions that are ready. A
    /// failed read keeps what was known; a missing registry (or one of another index) clears it.
    pub(super) async fn read_partitions(&self, index: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(self.ns.partitions(index));
        let Ok(replies) = self.run(&pipe).await else {
            return;
        };
        let set = match replies.first() {
            Some(Value::BulkString(b)) => match PartitionSet::parse(b) {
                Ok(set) if set.index == index => Some(set),
                Ok(set) => {
                    tracing::warn!(index, recorded_for = %set.index,
                        "partition registry of another index: ignored");
                    None
                }
                Err(e) => {
                    tracing::warn!(index, error = %e, "unreadable partition registry: ignored");
                    None
                }
            },
            _ => None,
        };
        let usable = match set {
            Some(mut set) if !set.partitions.is_empty() => {
                // one FT.INFO each: a partition dropped meanwhile answers with an error, which
                // only makes that partition unusable
                let mut ready = Vec::with_capacity(set.partitions.len());
                let mut fields = HashMap::new();
                for p in &set.partitions {
                    let mut pipe = redis::pipe();
                    pipe.cmd("FT.INFO").arg(&p.index);
                    let info = match self.run(&pipe).await {
                        Ok(replies) => replies.first().and_then(|v| parse_info(v).ok()),
                        Err(_) => None,
                    };
                    let ok = info.as_ref().is_some_and(|i| i.percent_indexed >= 1.0);
                    if let Some(i) = info.filter(|_| ok) {
                        // a field added to the serving index later (FT.ALTER: the collaborative
                        // vectors) is not in a partition created before it
                        let names = i.attributes.into_iter().map(|a| a.attribute).collect();
                        fields.insert(p.name.clone(), names);
                    }
                    ready.push(ok);
                }
                let mut ready = ready.into_iter();
                set.partitions.retain(|_| ready.next().unwrap_or(false));
                Some(Arc::new(Routable { set, fields }))
            }
            _ => None,
        };
        let mut slot = self
            .watch
            .partitions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let names = |s: &Option<Arc<Routable>>| -> Vec<String> {
            s.as_ref()
                .map(|s| s.set.partitions.iter().map(|p| p.name.clone()).collect())
                .unwrap_or_default()
        };
        if names(&slot) != names(&usable) {
            tracing::info!(index, partitions = ?names(&usable), "routable partitions");
        }
        *slot = usable;
    }

    /// The partition a request with `filter` is routed to, if any: the smallest ready one that
    /// holds every item the filter keeps and has the collaborative field `cf` when the request
    /// searches it. No I/O.
    pub(super) fn route(&self, filter: &Filter, cf: Option<&str>) -> Option<Routed> {
        if !self.config.partitions || filter.is_all() {
            return None;
        }
        let routable = self
            .watch
            .partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let has_fields = |p: &Partition| {
            cf.is_none_or(|f| {
                routable
                    .fields
                    .get(&p.name)
                    .is_some_and(|names| names.contains(f))
            })
        };
        let r = routable.set.route(filter, &self.schema, has_fields)?;
        Some(Routed {
            name: r.partition.name.clone(),
            index: r.partition.index.clone(),
            filter: r.partition.filter.clone(),
            exact: r.exact,
        })
    }

    /// The names of the partitions requests can be routed to now. No I/O.
    pub fn routable_partitions(&self) -> Vec<String> {
        self.watch
            .partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|s| s.set.partitions.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default()
    }
}
