//! Online evaluation: every served list gets a `rec_id`; with `online.impressions` on, what was
//! served is recorded in Redis by a bounded background writer (`writer.rs`), off the request
//! path; events carrying a `rec_id` are attributed to that list and its experiment variant
//! (`services/online.rs`); experiments split users between rank profiles by a hash of
//! (experiment, user id) (`config.rs`, `assign.rs`); `stats.rs` compares the variants.
//!
//! The rank profiles and the experiments are one [`Live`] value behind an `ArcSwap`: a request
//! takes one snapshot (validation, retrieval and reranking see the same profiles), and a
//! reload swaps the whole value at once, so no request sees half of a new config and none is
//! refused while it happens.

pub mod assign;
pub mod config;
pub mod stats;
pub mod writer;

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicU64, Ordering},
};

use arc_swap::ArcSwap;
use redrec_reranker::{Reranker, RerankerConfig};
use redrec_store::online::ServedList;

use crate::metrics::{Scrape, label};

pub use config::{
    Experiment, ExperimentConfig, Invalid, OnlineConfig, RouteKind, Variant, VariantConfig,
};

/// Feedback kinds attributed to served lists, in counter order.
pub const FEEDBACK_KINDS: [&str; 3] = ["click", "cart_add", "purchase"];

/// Outcomes of attributing one event that carried a `rec_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// Counted for its list (and variant, if any).
    Attributed,
    /// No such list: unknown `rec_id`, or past the attribution window.
    NotFound,
    /// The list did not contain the event's item.
    NotInList,
    /// The list was served to another user.
    OtherUser,
    /// Not a click, cart add or purchase (views, dwell and skips are not attributed).
    NotCounted,
    /// Redis failed while attributing (the events themselves were applied).
    Failed,
}

impl Attribution {
    pub const ALL: [Attribution; 6] = [
        Attribution::Attributed,
        Attribution::NotFound,
        Attribution::NotInList,
        Attribution::OtherUser,
        Attribution::NotCounted,
        Attribution::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Attributed => "attributed",
            Attribution::NotFound => "not_found",
            Attribution::NotInList => "not_in_list",
            Attribution::OtherUser => "other_user",
            Attribution::NotCounted => "not_counted",
            Attribution::Failed => "failed",
        }
    }
}

/// A request's place in an experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub experiment: String,
    pub variant: String,
}

/// Per-process counters of one variant (the Redis counters are the shared truth; these are
/// for `/metrics`).
#[derive(Debug, Default)]
struct VariantMetrics {
    served: AtomicU64,
    feedback: [AtomicU64; FEEDBACK_KINDS.len()],
}

/// What a reload swaps: the rank profiles and the experiments between them.
#[derive(Debug)]
pub struct Live {
    pub reranker: Reranker,
    pub config: OnlineConfig,
    pub experiments: Vec<Experiment>,
    metrics: Vec<Vec<VariantMetrics>>,
}

impl Live {
    /// Builds and validates both sections; the error names the key.
    pub fn build(reranker: &RerankerConfig, online: &OnlineConfig) -> Result<Live, Invalid> {
        let reranker = Reranker::from_config(reranker.clone()).map_err(|e| Invalid {
            key: "reranker".into(),
            message: e.to_string(),
        })?;
        Live::new(reranker, online)
    }

    /// Validates `online` against the profiles of `reranker`.
    pub fn new(reranker: Reranker, online: &OnlineConfig) -> Result<Live, Invalid> {
        let experiments = online.validate(&reranker.profiles().names())?;
        let metrics = experiments
            .iter()
            .map(|e| {
                e.variants
                    .iter()
                    .map(|_| VariantMetrics::default())
                    .collect()
            })
            .collect();
        Ok(Live {
            reranker,
            config: online.clone(),
            experiments,
            metrics,
        })
    }

    pub fn experiment(&self, name: &str) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.name == name)
    }

    /// The first experiment covering `route` decides the profile of a request that named none
    /// and has a user; returns the assignment and its profile.
    pub fn assign(&self, route: RouteKind, user_id: &str) -> Option<(Assignment, String)> {
        let e = self.experiments.iter().find(|e| e.applies_to(route))?;
        let v = e.assign(user_id);
        Some((
            Assignment {
                experiment: e.name.clone(),
                variant: v.name.clone(),
            },
            v.profile.clone(),
        ))
    }

    fn variant_metrics(&self, a: &Assignment) -> Option<&VariantMetrics> {
        let (i, e) = self
            .experiments
            .iter()
            .enumerate()
            .find(|(_, e)| e.name == a.experiment)?;
        let j = e.variants.iter().position(|v| v.name == a.variant)?;
        self.metrics.get(i)?.get(j)
    }

    /// Counts an attributed feedback event in this process's metrics.
    pub fn count_feedback(&self, a: &Assignment, kind: &str) {
        if let (Some(m), Some(k)) = (
            self.variant_metrics(a),
            FEEDBACK_KINDS.iter().position(|f| *f == kind),
        ) {
            m.feedback[k].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where a reload reads the configuration from: the binary installs its figment loader (the
/// same files and environment as at start); without one, a reload re-applies the settings the
/// gateway started with.
pub type ReloadSource = Arc<dyn Fn() -> Result<crate::Settings, String> + Send + Sync>;

/// Process-wide counters of the impression writer and of attribution.
#[derive(Debug, Default)]
pub struct OnlineCounters {
    pub recorded: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub attributed: [[AtomicU64; Attribution::ALL.len()]; FEEDBACK_KINDS.len() + 1],
}

/// The gateway's online-evaluation state.
pub struct Online {
    live: ArcSwap<Live>,
    writer: writer::Writer,
    rec_ids: RecIds,
    pub counters: Arc<OnlineCounters>,
    reload_source: RwLock<Option<ReloadSource>>,
}

impl Online {
    pub fn new(live: Live, redis: redrec_store::Redis, ns: redrec_core::keys::Namespace) -> Online {
        let counters = Arc::new(OnlineCounters::default());
        let writer = writer::Writer::new(
            redis,
            ns,
            live.config.queue,
            live.config.batch,
            live.config.attribution_window_secs * 1000,
            counters.clone(),
        );
        Online {
            live: ArcSwap::from_pointee(live),
            writer,
            rec_ids: RecIds::new(),
            counters,
            reload_source: RwLock::new(None),
        }
    }

    /// The current profiles and experiments (one snapshot per request).
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Replaces profiles and experiments at once (already validated by [`Live::build`]).
    pub fn swap(&self, live: Live) {
        self.writer
            .set_window_ms(live.config.attribution_window_secs * 1000);
        self.live.store(Arc::new(live));
    }

    pub fn set_reload_source(&self, source: ReloadSource) {
        *self
            .reload_source
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    pub fn reload_source(&self) -> Option<ReloadSource> {
        self.reload_source
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A new `rec_id` (unique across processes with overwhelming probability).
    pub fn next_rec_id(&self) -> String {
        self.rec_ids.next()
    }

    /// Queues a served list for recording (no waiting: a full queue drops it, counted).
    pub fn record(&self, live: &Live, list: ServedList) {
        if let Some((e, v)) = &list.experiment
            && let Some(m) = live.variant_metrics(&Assignment {
                experiment: e.clone(),
                variant: v.clone(),
            })
        {
            m.served.fetch_add(1, Ordering::Relaxed);
        }
        if live.config.impressions {
            self.writer.send(list);
        }
    }

    /// Waits until every list queued so far is written (tests, shutdown).
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    pub fn count_attribution(&self, kind: &str, outcome: Attribution) {
        let k = FEEDBACK_KINDS
            .iter()
            .position(|f| *f == kind)
            .unwrap_or(FEEDBACK_KINDS.len());
        let o = Attribution::ALL
            .iter()
            .position(|a| *a == outcome)
            .unwrap_or(0);
        self.counters.attributed[k][o].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the online families to a `/metrics` scrape. Labels are bounded: experiments and
    /// variants by the config's limits, kinds and outcomes by fixed lists. Experiment series
    /// are those of the live config: a reload drops the series of removed experiments.
    pub fn collect_metrics(&self, scrape: &mut Scrape) {
        let c = &self.counters;
        scrape.counter(
            "redrec_impressions_recorded",
            "Served lists written to Redis",
            vec![(vec![], c.recorded.load(Ordering::Relaxed))],
        );
        scrape.counter(
            "redrec_impressions_dropped",
            "Served lists not recorded because the writer's queue was full",
            vec![(vec![], c.dropped.load(Ordering::Relaxed))],
        );
        scrape.counter(
            "redrec_impressions_failed",
            "Served lists not recorded because Redis refused or timed out",
            vec![(vec![], c.failed.load(Ordering::Relaxed))],
        );
        let mut attributed = Vec::new();
        for (k, row) in c.attributed.iter().enumerate() {
            let kind = FEEDBACK_KINDS.get(k).copied().unwrap_or("other");
            for (o, n) in row.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    attributed.push((
                        vec![
                            label("kind", kind),
                            label("outcome", Attribution::ALL[o].as_str()),
                        ],
                        n,
                    ));
                }
            }
        }
        scrape.counter(
            "redrec_attribution_events",
            "Events carrying a rec_id, by kind and outcome",
            attributed,
        );
        let live = self.live();
        let (mut lists, mut feedback) = (Vec::new(), Vec::new());
        for (e, row) in live.experiments.iter().zip(&live.metrics) {
            for (v, m) in e.variants.iter().zip(row) {
                let labels = vec![
                    label("experiment", e.name.clone()),
                    label("variant", v.name.clone()),
                ];
                lists.push((labels.clone(), m.served.load(Ordering::Relaxed)));
                for (kind, n) in FEEDBACK_KINDS.iter().zip(&m.feedback) {
                    let mut labels = labels.clone();
                    labels.push(label("kind", *kind));
                    feedback.push((labels, n.load(Ordering::Relaxed)));
                }
            }
        }
        scrape.counter(
            "redrec_experiment_lists",
            "Lists this gateway served per experiment variant (since start or reload)",
            lists,
        );
        scrape.counter(
            "redrec_experiment_feedback",
            "Attributed feedback events per experiment variant and kind (since start or reload)",
            feedback,
        );
    }
}

/// `rec_id`s: a per-process random prefix and a counter.
struct RecIds {
    prefix: u64,
    next: AtomicU64,
}

impl RecIds {
    fn new() -> RecIds {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let seed = now ^ (u64::from(std::process::id()) << 32);
        // mixed so that gateways started in the same nanosecond range still differ
        let prefix = assign::bucket("rec_id", &seed.to_string(), u64::MAX);
        RecIds {
            prefix: prefix & 0xffff_ffff_ffff,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:012x}-{n:x}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rec_ids_are_valid_ids_and_unique() {
        let ids = RecIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        redrec_core::keys::validate_id(&a).unwrap();
        assert_eq!(a.len(), 14, "{a}");
    }
}
