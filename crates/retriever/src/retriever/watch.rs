//! The serving index as last seen by `FT.INFO`: which index the alias points at, its document
//! count and how far its background indexing is. RediSearch answers searches on an index that
//! is still being built (after a restart, an `FT.CREATE` over existing keys) from the part
//! indexed so far, without saying so; [`Retriever::index_building`] lets the caller say it.
//!
//! Requests never pay for this: [`Retriever::watch_index`] runs as a background task (the
//! gateway's server starts it) and looks the index up every `index_check_ms`, more often while
//! it is being built so the flag clears soon after the build ends. Every lookup also refreshes
//! the collaborative field (`capabilities.rs`), so the per-request recheck rarely finds it stale.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use redrec_core::calibration::EfCurve;
use redrec_core::reply::{IndexInfo, parse_info};

use super::Retriever;
use crate::error::{Error, Result};

/// What the last `FT.INFO` of the alias said about the index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexStatus {
    /// The concrete index behind the alias.
    pub index: String,
    pub num_docs: u64,
    /// Share of the existing documents indexed so far, 0..=1.
    pub percent_indexed: f64,
    /// Seconds since the lookup.
    pub age_secs: f64,
}

/// The last successful lookup; `None` before the first one and after a failed one.
pub(super) struct IndexWatch {
    last: RwLock<Option<(Instant, IndexInfo)>>,
    /// The serving index's measured EF curve (with `recall_target` only); kept across a failed
    /// lookup, replaced when the serving index changes.
    pub(super) ef_curve: RwLock<Option<EfCurve>>,
    /// The serving index's partitions that exist and are fully indexed (`partitions.rs`).
    pub(super) partitions: RwLock<Option<std::sync::Arc<super::partitions::Routable>>>,
}

impl IndexWatch {
    pub(super) fn new() -> IndexWatch {
        IndexWatch {
            last: RwLock::new(None),
            ef_curve: RwLock::new(None),
            partitions: RwLock::new(None),
        }
    }

    fn set(&self, info: Option<IndexInfo>) {
        *self.last.write().unwrap_or_else(|p| p.into_inner()) = info.map(|i| (Instant::now(), i));
    }
}

/// A lookup may take at most 1/`LOOKUP_SHARE` of the time between lookups. `FT.INFO` runs on
/// Redis's main thread and its cost grows with the index: 210-240 ms at 1M items x 128 dims
/// (measured, docs/RETRIEVAL.md), so a lookup every second would stall every search for a
/// quarter of the time; at 1/50 a single-flight sweep still showed them in its p99.
const LOOKUP_SHARE: u32 = 200;

/// The bound while the serving index is being built (at most a fifth of the server's time).
const LOOKUP_SHARE_BUILDING: u32 = 5;

/// How long the watcher sleeps before the next lookup: `check` normally, a quarter of it (at
/// least 50 ms) while the index is being built, and never less than `LOOKUP_SHARE` times what
/// the last lookup took (`LOOKUP_SHARE_BUILDING` while building).
pub(super) fn next_check(check: Duration, building: bool, took: Duration) -> Duration {
    let period = if building {
        (check / 4).max(Duration::from_millis(50)).min(check)
    } else {
        check
    };
    // While building, the lookup's wall time is mostly waiting behind the build's own work on
    // the main thread, and the flag must clear soon after the build ends: a lighter bound.
    let share = if building {
        LOOKUP_SHARE_BUILDING
    } else {
        LOOKUP_SHARE
    };
    period.max(took * share)
}

impl Retriever {
    /// `FT.INFO` of the alias (one round trip): records the index's build progress and the
    /// collaborative field. A failed lookup forgets the last status (an index that cannot be
    /// read is not reported as building; the requests themselves fail then).
    pub async fn look_up_index(&self) -> Result<IndexInfo> {
        let mut pipe = redis::pipe();
        pipe.cmd("FT.INFO").arg(&self.alias);
        let looked_up = self.run(&pipe).await.and_then(|replies| {
            let reply = replies
                .first()
                .ok_or_else(|| Error::protocol("empty FT.INFO reply"))?;
            Ok(parse_info(reply)?)
        });
        match looked_up {
            Ok(info) => {
                self.record_cf(&info);
                if self.config.recall_target.is_some() {
                    self.read_ef_curve(&info.name).await;
                }
                if self.config.partitions {
                    self.read_partitions(&info.name).await;
                }
                self.watch.set(Some(info.clone()));
                Ok(info)
            }
            Err(e) => {
                self.watch.set(None);
                Err(e)
            }
        }
    }

    /// Reads the measured EF curve of `index` (one `GET`). A missing curve, or one measured on
    /// another index, leaves `ef_runtime` in force; an unreadable one is logged and ignored.
    async fn read_ef_curve(&self, index: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(self.ns.ef_curve(index));
        let curve = match self.run(&pipe).await {
            Ok(replies) => match replies.first() {
                Some(redis::Value::BulkString(b)) => match EfCurve::parse(b) {
                    Ok(c) if c.index == index => Some(c),
                    Ok(c) => {
                        tracing::warn!(index, measured_on = %c.index,
                            "EF curve was measured on another index: ignored");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(index, error = %e, "unreadable EF curve: ignored");
                        None
                    }
                },
                _ => None,
            },
            // keep what we had: the lookup itself decides whether the index is reachable
            Err(_) => return,
        };
        let mut slot = self
            .watch
            .ef_curve
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if *slot != curve {
            match (&curve, self.config.recall_target) {
                (Some(c), Some(target)) => tracing::info!(
                    index,
                    target,
                    ef_runtime = c.ef_for(target).unwrap_or(self.config.ef_runtime),
                    "EF_RUNTIME from the measured curve"
                ),
                _ => tracing::info!(
                    index,
                    ef_runtime = self.config.ef_runtime,
                    "no EF curve for the serving index: the configured EF_RUNTIME is used"
                ),
            }
            *slot = curve;
        }
    }

    /// The `EF_RUNTIME` a KNN query asking for `k` results gets: the curve's EF for
    /// `recall_target` when a curve of the serving index is known, else `ef_runtime`; never less
    /// than `k`. No I/O.
    pub fn ef_runtime_for(&self, k: usize) -> u32 {
        let base = self
            .config
            .recall_target
            .and_then(|target| {
                self.watch
                    .ef_curve
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .and_then(|c| c.ef_for(target))
            })
            .unwrap_or(self.config.ef_runtime);
        base.max(u32::try_from(k).unwrap_or(u32::MAX))
    }

    /// The serving index as last looked up, if the last lookup succeeded. No I/O.
    pub fn index_status(&self) -> Option<IndexStatus> {
        let guard = self.watch.last.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(|(at, info)| IndexStatus {
            index: info.name.clone(),
            num_docs: info.num_docs,
            percent_indexed: info.percent_indexed,
            age_secs: at.elapsed().as_secs_f64(),
        })
    }

    /// `Some(share indexed, 0..1)` while the last lookup saw the serving index still being
    /// built, so results come from part of the catalog only. No I/O.
    pub fn index_building(&self) -> Option<f64> {
        self.index_status()
            .map(|s| s.percent_indexed)
            .filter(|p| *p < 1.0)
    }

    /// Looks the serving index up every `index_check_ms` (a quarter of that while it is being
    /// built) until the future is dropped. Failures are logged at debug level: an unreachable
    /// Redis is reported by `/readyz` and by the requests themselves.
    pub async fn watch_index(&self) {
        let check = Duration::from_millis(self.config.index_check_ms.max(1));
        let mut was_building = false;
        loop {
            let started = Instant::now();
            let building = match self.look_up_index().await {
                Ok(info) => {
                    let building = info.percent_indexed < 1.0;
                    if building && !was_building {
                        tracing::info!(
                            index = %info.name,
                            percent_indexed = info.percent_indexed * 100.0,
                            "serving index is being built: responses are flagged degraded"
                        );
                    } else if was_building && !building {
                        tracing::info!(index = %info.name, "serving index is fully indexed");
                    }
                    building
                }
                Err(e) => {
                    tracing::debug!(error = %e, "serving index not looked up");
                    false
                }
            };
            was_building = building;
            tokio::time::sleep(next_check(check, building, started.elapsed())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_more_often_while_building() {
        let s = Duration::from_secs(1);
        let quick = Duration::from_micros(50);
        assert_eq!(next_check(s, false, quick), s);
        assert_eq!(next_check(s, true, quick), Duration::from_millis(250));
        // never busier than every 50 ms, never slower than the configured period
        assert_eq!(
            next_check(Duration::from_millis(100), true, quick),
            Duration::from_millis(50)
        );
        assert_eq!(
            next_check(Duration::from_millis(20), true, quick),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn an_expensive_lookup_spaces_the_next_one() {
        // FT.INFO of a 1M-item index took 240 ms: 48 s to the next lookup (0.5% of Redis's time)
        let s = Duration::from_secs(1);
        let slow = Duration::from_millis(240);
        assert_eq!(next_check(s, false, slow), Duration::from_secs(48));
        // while building: a fifth of the server's time, so the end of the build is seen soon
        assert_eq!(next_check(s, true, slow), Duration::from_millis(1200));
        assert_eq!(
            next_check(Duration::from_secs(60), false, slow),
            Duration::from_secs(60)
        );
    }
}
