//! The `auto` hybrid policy's I/O: taking the field sample that [`crate::selectivity`] evaluates
//! filters on (`SCAN` over item keys, then one `HMGET` pipeline), keeping it fresh, and choosing
//! `HYBRID_POLICY` per request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use redrec_core::filter::Filter;
use redrec_core::query::HybridPolicy;
use redrec_core::schema::FieldKind;

use super::Retriever;
use crate::config::PolicyName;
use crate::error::{Error, Result};
use crate::selectivity::FieldSample;
use redrec_core::reply::parse_hmget;

/// SCAN calls one sample may take before it settles for the keys found so far.
const MAX_SCAN_CALLS: usize = 200;
/// `COUNT` hint of each SCAN call.
const SCAN_COUNT: usize = 2000;

/// A field sample and when it was taken.
pub(super) struct TakenSample {
    at: Instant,
    sample: Arc<FieldSample>,
}

impl Retriever {
    /// The `HYBRID_POLICY` for a request with this filter.
    pub(super) async fn policy_for(&self, filter: &Filter) -> Option<HybridPolicy> {
        let batches = HybridPolicy::Batches {
            batch_size: self.config.batch_size,
        };
        match self.config.hybrid_policy? {
            PolicyName::AdhocBf => Some(HybridPolicy::AdhocBf),
            PolicyName::Batches => Some(batches),
            PolicyName::Auto => {
                if *filter == Filter::All {
                    return None;
                }
                let sample = self.current_sample().await?;
                let share = sample.estimate(filter)?;
                (share >= self.config.auto_batches_above).then_some(batches)
            }
        }
    }

    fn fresh_sample(&self) -> Option<Arc<FieldSample>> {
        let max_age = Duration::from_secs(self.config.sample_max_age_secs);
        self.sample
            .read()
            .expect("sample lock")
            .as_ref()
            .filter(|t| t.at.elapsed() < max_age)
            .map(|t| t.sample.clone())
    }

    /// The field sample, taken again when missing or too old. A failed sample only means the
    /// server chooses the policy for now.
    async fn current_sample(&self) -> Option<Arc<FieldSample>> {
        if let Some(s) = self.fresh_sample() {
            return Some(s);
        }
        match self.refresh_sample().await {
            Ok(_) => self
                .sample
                .read()
                .expect("sample lock")
                .as_ref()
                .map(|t| t.sample.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "selectivity sample failed; the server picks HYBRID_POLICY");
                None
            }
        }
    }

    /// Takes a new sample of the items' TAG and NUMERIC fields (`SCAN` over this namespace's item
    /// keys) for the `auto` policy; returns how many items it holds.
    pub async fn refresh_sample(&self) -> Result<usize> {
        let fields: Vec<String> = self
            .schema
            .fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Tag(_) | FieldKind::Numeric(_)))
            .map(|f| f.name.clone())
            .collect();
        let mut keys = self.scan_item_keys().await?;
        keys.sort();
        keys.dedup();
        keys.truncate(self.config.sample_size.max(1));
        let mut rows = Vec::new();
        if !keys.is_empty() && !fields.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HMGET").arg(k).arg(&fields);
            }
            for reply in self.run(&pipe).await? {
                let values = parse_hmget(&reply)?;
                let row: BTreeMap<String, String> = fields
                    .iter()
                    .zip(values)
                    .filter_map(|(f, v)| Some((f.clone(), String::from_utf8(v?).ok()?)))
                    .collect();
                rows.push(row);
            }
        }
        let n = rows.len();
        let sample = Arc::new(FieldSample::new(&self.schema, rows));
        *self.sample.write().expect("sample lock") = Some(TakenSample {
            at: Instant::now(),
            sample,
        });
        Ok(n)
    }

    /// Item keys of this namespace, at least `sample_size` of them when that many exist.
    async fn scan_item_keys(&self) -> Result<Vec<String>> {
        // SCAN visits keys in hash-bucket order, which is unrelated to their content, so the
        // first `sample_size` item keys are a fair sample even in a Redis shared with other data.
        let want = self.config.sample_size.max(1);
        let pattern = format!("{}*", self.ns.item_prefix());
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        for _ in 0..MAX_SCAN_CALLS {
            let mut pipe = redis::pipe();
            pipe.cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let reply = self.run(&pipe).await?;
            let Some(Value::Array(parts)) = reply.into_iter().next() else {
                return Err(Error::protocol("SCAN reply is not an array"));
            };
            let mut parts = parts.into_iter();
            cursor = match parts.next() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(&b).parse().unwrap_or(0),
                _ => 0,
            };
            if let Some(Value::Array(found)) = parts.next() {
                keys.extend(found.into_iter().filter_map(|v| match v {
                    Value::BulkString(b) => String::from_utf8(b).ok(),
                    _ => None,
                }));
            }
            if cursor == 0 || keys.len() >= want {
                break;
            }
        }
        Ok(keys)
    }
}
