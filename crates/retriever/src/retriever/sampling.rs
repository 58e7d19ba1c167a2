//! The `auto` hybrid policy's I/O: taking the field sample that [`crate::selectivity`] evaluates
//! filters on (`SCAN` over item keys, then one `HMGET` pipeline), keeping it fresh in the
//! background, and choosing `HYBRID_POLICY` per request.
//!
//! A request never samples: it reads whatever sample is current (none yet: the server picks the
//! policy). [`Retriever::keep_sample_fresh`] takes the sample at start, again after
//! `sample_max_age_secs`, after [`Retriever::catalog_changed`] and whenever the serving index's
//! document count or name changes (checked every `sample_check_secs` with one `FT.INFO`).
//! Refreshes are single-flight: callers that arrive while one runs wait for it and share its
//! result instead of sampling again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::Value;

use redrec_core::filter::Filter;
use redrec_core::query::HybridPolicy;
use redrec_core::reply::parse_hmget;
use redrec_core::schema::FieldKind;

use super::Retriever;
use crate::config::PolicyName;
use crate::error::{Error, Result};
use crate::selectivity::FieldSample;

/// SCAN calls one sample may take before it settles for the keys found so far.
const MAX_SCAN_CALLS: usize = 200;
/// `COUNT` hint of each SCAN call.
const SCAN_COUNT: usize = 2000;
/// After a change notice, wait this long for more changes before sampling (a bulk of item writes
/// is one change, not a thousand).
const CHANGE_DEBOUNCE: Duration = Duration::from_secs(1);

/// A field sample and what the catalog looked like when it was taken.
struct TakenSample {
    at: Instant,
    sample: Arc<FieldSample>,
    /// `FT.INFO` of the alias at sampling time: (index name, document count).
    index: Option<(String, u64)>,
}

/// The sample, its single-flight guard and the change signal.
pub(super) struct Sampler {
    current: RwLock<Option<TakenSample>>,
    /// Held while a sample is taken; a caller that had to wait checks `taken` to see whether the
    /// sample it waited for is already there.
    flight: tokio::sync::Mutex<()>,
    /// Samples taken so far (successful ones).
    taken: AtomicU64,
    changed: tokio::sync::Notify,
}

impl Sampler {
    pub(super) fn new() -> Sampler {
        Sampler {
            current: RwLock::new(None),
            flight: tokio::sync::Mutex::new(()),
            taken: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn current(&self) -> Option<Arc<FieldSample>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|t| t.sample.clone())
    }
}

/// What the background sampler knows about the current sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleStatus {
    /// Items in the sample.
    pub items: usize,
    /// Seconds since it was taken.
    pub age_secs: f64,
    /// Samples taken since start.
    pub taken: u64,
}

impl Retriever {
    /// The `HYBRID_POLICY` for a request with this filter. No I/O: with `auto` it reads the
    /// current sample only.
    pub(super) fn policy_for(&self, filter: &Filter) -> Option<HybridPolicy> {
        let batches = HybridPolicy::Batches {
            batch_size: self.config.batch_size,
        };
        match self.config.hybrid_policy? {
            PolicyName::AdhocBf => Some(HybridPolicy::AdhocBf),
            PolicyName::Batches => Some(batches),
            PolicyName::Server => None,
            PolicyName::Auto => {
                if *filter == Filter::All {
                    return None;
                }
                let share = self.sampler.current()?.estimate(filter)?;
                (share >= self.config.auto_batches_above).then_some(batches)
            }
        }
    }

    /// [`Retriever::policy_for`] for a search over a partition holding the items `within`
    /// keeps: under `auto`, the share that counts is the filter's share of the partition.
    pub(super) fn policy_within(
        &self,
        filter: &Filter,
        within: Option<&Filter>,
    ) -> Option<HybridPolicy> {
        let Some(part) = within else {
            return self.policy_for(filter);
        };
        if self.config.hybrid_policy != Some(PolicyName::Auto) {
            return self.policy_for(filter);
        }
        let sample = self.sampler.current()?;
        let share = sample.estimate(filter)?;
        let of = sample.estimate(part)?;
        let relative = if of > 0.0 { share / of } else { 1.0 };
        (relative >= self.config.auto_batches_above).then_some(HybridPolicy::Batches {
            batch_size: self.config.batch_size,
        })
    }

    /// Whether `exclusion` is checked on the candidates rather than sent with every search:
    /// when the sample says it removes less than `post_filter_below` of the items (and can
    /// judge it: no full-text part). Without a sample it stays in the search.
    pub(super) fn exclusion_after_search(&self, exclusion: &Filter) -> bool {
        if *exclusion == Filter::All || self.config.post_filter_below <= 0.0 {
            return false;
        }
        // every field it reads must come back with the hits, or it could not be checked there
        let mut names = std::collections::BTreeSet::new();
        super::rounds::filter_fields(exclusion, &mut names);
        let returned = &self.config.return_fields;
        if !returned.is_empty() && !names.iter().all(|n| returned.iter().any(|r| r == n)) {
            return false;
        }
        self.sampler
            .current()
            .and_then(|s| s.estimate(exclusion))
            .is_some_and(|kept| 1.0 - kept < self.config.post_filter_below)
    }

    /// The share of the items `filter` keeps when it is broad enough to be checked on the hits
    /// of an unfiltered KNN (at least `post_filter_above`, judged by the sample, every field it
    /// reads returned with the hits); `None` otherwise.
    pub(super) fn broad_share(&self, filter: &Filter) -> Option<f64> {
        self.broad_share_of(filter, self.config.post_filter_above)
    }

    /// The share `filter` keeps when it is at least `above` and can be checked on the hits.
    fn broad_share_of(&self, filter: &Filter, above: f64) -> Option<f64> {
        if filter.is_all()
            || self.config.post_filter_above <= 0.0
            || self.config.fetch != crate::config::FetchMode::Return
        {
            return None;
        }
        let mut names = std::collections::BTreeSet::new();
        super::rounds::filter_fields(filter, &mut names);
        let returned = &self.config.return_fields;
        if !returned.is_empty() && !names.iter().all(|n| returned.iter().any(|r| r == n)) {
            return None;
        }
        let kept = self.sampler.current()?.estimate(filter)?;
        (kept >= above).then_some(kept)
    }

    /// [`Retriever::broad_share`] inside a partition holding the items `within` keeps: the
    /// share of the partition's items `filter` keeps.
    pub(super) fn broad_share_within(&self, filter: &Filter, within: &Filter) -> Option<f64> {
        let kept = self.broad_share_of(filter, 0.0)?;
        let of = self.sampler.current()?.estimate(within)?;
        let relative = if of > 0.0 { (kept / of).min(1.0) } else { 1.0 };
        (relative >= self.config.post_filter_above).then_some(relative)
    }

    /// Whether this retriever chooses the policy from a sample (`hybrid_policy = "auto"`).
    pub fn samples_selectivity(&self) -> bool {
        self.config.hybrid_policy == Some(PolicyName::Auto)
    }

    /// The current sample, if one was taken.
    pub fn sample_status(&self) -> Option<SampleStatus> {
        let guard = self
            .sampler
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(|t| SampleStatus {
            items: t.sample.len(),
            age_secs: t.at.elapsed().as_secs_f64(),
            taken: self.sampler.taken.load(Ordering::Acquire),
        })
    }

    /// Tells the background sampler that items were written or deleted (the gateway's item
    /// routes call it); it samples again shortly after, off the request path.
    pub fn catalog_changed(&self) {
        self.sampler.changed.notify_one();
    }

    /// Takes a new sample of the items' TAG and NUMERIC fields (`SCAN` over this namespace's item
    /// keys) for the `auto` policy; returns how many items it holds. Single-flight: a caller
    /// arriving while a sample is being taken waits for that one and returns its size.
    pub async fn refresh_sample(&self) -> Result<usize> {
        let seen = self.sampler.taken.load(Ordering::Acquire);
        let _flight = self.sampler.flight.lock().await;
        if self.sampler.taken.load(Ordering::Acquire) != seen {
            // another caller took it while this one waited
            return Ok(self.sampler.current().map_or(0, |s| s.len()));
        }
        let index = self.index_identity().await.ok();
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
                    .filter_map(|(f, v)| {
                        Some((f.clone(), std::str::from_utf8(v?).ok()?.to_owned()))
                    })
                    .collect();
                rows.push(row);
            }
        }
        let n = rows.len();
        let sample = Arc::new(FieldSample::new(&self.schema, rows));
        *self
            .sampler
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(TakenSample {
            at: Instant::now(),
            sample,
            index,
        });
        self.sampler.taken.fetch_add(1, Ordering::AcqRel);
        Ok(n)
    }

    /// Keeps the `auto` policy's sample fresh until the future is dropped (the gateway runs it as
    /// a background task). Returns at once for other policies. Failures are logged and retried
    /// at the next check; meanwhile the last sample (or the server's choice) serves.
    pub async fn keep_sample_fresh(&self) {
        if !self.samples_selectivity() {
            return;
        }
        let check = Duration::from_secs(self.config.sample_check_secs.max(1));
        let max_age = Duration::from_secs(self.config.sample_max_age_secs.max(1));
        let mut changed = true;
        loop {
            let due = changed || self.sample_due(max_age).await;
            if due {
                match self.refresh_sample().await {
                    Ok(n) => tracing::info!(items = n, "selectivity sample taken"),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "selectivity sample failed; the last one (or the server) picks HYBRID_POLICY"
                    ),
                }
            }
            changed = tokio::select! {
                () = tokio::time::sleep(check) => false,
                () = self.sampler.changed.notified() => {
                    tokio::time::sleep(CHANGE_DEBOUNCE).await;
                    true
                }
            };
        }
    }

    /// Whether the sample is missing, older than `max_age`, or was taken over another index or
    /// document count than the alias serves now.
    async fn sample_due(&self, max_age: Duration) -> bool {
        let (at, index) = {
            let guard = self
                .sampler
                .current
                .read()
                .unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                None => return true,
                Some(t) => (t.at, t.index.clone()),
            }
        };
        if at.elapsed() >= max_age {
            return true;
        }
        match self.index_identity().await {
            Ok(now) => index.as_ref() != Some(&now),
            // the index is unreachable: sampling would fail too
            Err(_) => false,
        }
    }

    /// The index the alias serves and its document count (`FT.INFO`).
    async fn index_identity(&self) -> Result<(String, u64)> {
        let info = self.look_up_index().await?;
        Ok((info.name, info.num_docs))
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
