//! What the server and the serving index can do, detected rather than assumed: whether
//! `FT.HYBRID` exists and which syntax its Search module version speaks (once at startup), and
//! whether the index behind the alias has the collaborative vector field (`FT.INFO`, cached and
//! looked up again after `cf_recheck_secs`, so a field that `redrec-ingest cf` adds with
//! `FT.ALTER` while serving is picked up, and an index without it keeps working). The `FT.INFO`
//! itself is `watch.rs`'s, which also keeps the index's build progress.

use std::time::{Duration, Instant};

use redis::Value;

use redrec_core::hybrid::HybridSyntax;
use redrec_core::reply::{IndexInfo, module_version};
use redrec_core::schema::DistanceMetric;

use super::Retriever;
use crate::error::Result;

/// The serving index's collaborative vector field.
#[derive(Debug, Clone, PartialEq)]
pub struct CfField {
    /// Attribute name (`[index.fields] cf_vector`).
    pub name: String,
    pub dims: usize,
    pub metric: DistanceMetric,
    /// `EF_RUNTIME` applies (HNSW), or not (FLAT).
    pub hnsw: bool,
}

/// The last lookup of the collaborative field and when it was made.
pub(super) struct CfLookup {
    at: Instant,
    field: Option<CfField>,
}

impl Retriever {
    /// Asks the server whether `FT.HYBRID` exists (`COMMAND INFO`) and, if so, which syntax its
    /// Search module version speaks (`MODULE LIST`). One round trip.
    pub async fn detect_hybrid(&mut self) -> Result<Option<HybridSyntax>> {
        let mut pipe = redis::pipe();
        pipe.cmd("COMMAND").arg("INFO").arg("FT.HYBRID");
        pipe.cmd("MODULE").arg("LIST");
        let replies = self.run(&pipe).await?;
        let exists = match replies.first() {
            Some(Value::Array(a)) => a.first().is_some_and(|v| !matches!(v, Value::Nil)),
            _ => false,
        };
        self.hybrid = if exists {
            let version = replies.get(1).and_then(|v| module_version(v, "search"));
            // FT.HYBRID exists but the version is unreadable: assume the current syntax
            Some(version.map_or(Some(HybridSyntax::V8_4_3), HybridSyntax::for_module_version))
                .flatten()
        } else {
            None
        };
        tracing::info!(ft_hybrid = ?self.hybrid, "retriever capabilities detected");
        Ok(self.hybrid)
    }

    /// Looks up the collaborative vector field on the index behind the alias now (`FT.INFO`,
    /// one round trip, which also refreshes [`Retriever::index_building`]) and caches the
    /// answer. `None`: the index has no vector attribute of that name, so the collaborative
    /// sources are skipped.
    pub async fn detect_cf(&self) -> Result<Option<CfField>> {
        self.look_up_index().await?;
        Ok(self
            .cf
            .read()
            .expect("cf lock")
            .as_ref()
            .and_then(|l| l.field.clone()))
    }

    /// Reads the collaborative field off an `FT.INFO` reply and caches it.
    pub(super) fn record_cf(&self, info: &IndexInfo) {
        let field = info
            .attribute(&self.fields.cf_vector)
            .filter(|a| a.kind.eq_ignore_ascii_case("VECTOR"))
            .and_then(|a| {
                let dims = a.options.get("dim")?.parse().ok().filter(|d| *d > 0)?;
                let metric = match a.options.get("distance_metric").map(String::as_str) {
                    Some("L2") => DistanceMetric::L2,
                    Some("IP") => DistanceMetric::Ip,
                    _ => DistanceMetric::Cosine,
                };
                let flat = a.options.get("algorithm").map(String::as_str) == Some("FLAT");
                Some(CfField {
                    name: a.attribute.clone(),
                    dims,
                    metric,
                    hnsw: !flat,
                })
            });
        tracing::debug!(cf_field = ?field, "collaborative field looked up");
        *self.cf.write().expect("cf lock") = Some(CfLookup {
            at: Instant::now(),
            field,
        });
    }

    /// The collaborative field as last looked up, looked up again when older than
    /// `cf_recheck_secs`. A failed lookup counts as "no field" for this request and is retried
    /// on the next one.
    pub async fn cf_field(&self) -> Option<CfField> {
        let max_age = Duration::from_secs(self.config.cf_recheck_secs);
        if let Some(l) = self.cf.read().expect("cf lock").as_ref()
            && l.at.elapsed() < max_age
        {
            return l.field.clone();
        }
        match self.detect_cf().await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up the collaborative field; cf sources skipped");
                None
            }
        }
    }
}
