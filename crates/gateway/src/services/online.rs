//! Online evaluation over `redrec_store::online`: attributing events that carry a `rec_id` to
//! the list (and experiment variant) they came from, and the per-variant report behind
//! `GET /v1/experiments/{name}` (rates from the counters every gateway shares, compared with
//! the control by a two-proportion z-test).

use std::{collections::HashSet, sync::Arc};

use redrec_store::{
    Route,
    online::{self as store, FeedbackHit, VariantCounters},
};
use redrec_userstate::Event;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult},
    online::{Assignment, Attribution, FEEDBACK_KINDS, Live, stats},
    state::AppState,
};

/// What a reload applied.
pub struct Reloaded {
    /// The profiles and experiments now served.
    pub live: Arc<Live>,
    /// Changed settings a reload does not apply (they need a restart), by section or key.
    pub restart_required: Vec<String>,
}

/// Re-reads the configuration (the reload source the binary installed, else the settings the
/// gateway started with), validates `[reranker]` and `[online]` together and swaps them in at
/// once; an invalid configuration changes nothing and is a 422 naming the key. Used by
/// `POST /v1/admin/reload` and by the binary on SIGHUP.
pub fn reload(state: &AppState) -> ApiResult<Reloaded> {
    let settings = match state.online.reload_source() {
        Some(load) => load().map_err(|message| ApiError::invalid("config", message))?,
        None => state.settings.clone(),
    };
    let live = Live::build(&settings.reranker, &settings.online)
        .map_err(|e| ApiError::invalid(e.key.clone(), e.to_string()))?;
    let restart_required = restart_required(&state.settings, &settings);
    state.online.swap(live);
    // popular lists are cached per profile, whose rules may have changed
    state.caches.popularity_changed();
    let live = state.online.live();
    tracing::info!(
        profiles = ?live.reranker.profiles().names(),
        experiments = live.experiments.len(),
        restart_required = ?restart_required,
        "configuration reloaded"
    );
    Ok(Reloaded {
        live,
        restart_required,
    })
}

/// Sections (and `[online]` keys) that differ between the running and the new settings but are
/// read only at start.
fn restart_required(running: &crate::Settings, new: &crate::Settings) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(running), serde_json::to_value(new)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (section, value) in a {
            if section == "reranker" || section == "online" {
                continue;
            }
            if b.get(section) != Some(value) {
                out.push(section.clone());
            }
        }
    }
    for (key, changed) in [
        ("online.queue", running.online.queue != new.online.queue),
        ("online.batch", running.online.batch != new.online.batch),
    ] {
        if changed {
            out.push(key.to_owned());
        }
    }
    out
}

/// Attributes the events of an applied batch that carry a `rec_id` (skipping the indexes in
/// `duplicates`: a retried event counts once). The events are already applied, so a Redis
/// failure here is logged and counted, not returned: the client must not retry the batch.
pub async fn attribute(state: &AppState, events: &[Event], duplicates: &[usize]) {
    let skip: HashSet<usize> = duplicates.iter().copied().collect();
    let mut wanted: Vec<(&Event, &'static str)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.rec_id.is_none() || skip.contains(&i) {
            continue;
        }
        match FEEDBACK_KINDS.iter().find(|k| **k == e.event_type) {
            Some(kind) => wanted.push((e, kind)),
            None => state
                .online
                .count_attribution(&e.event_type, Attribution::NotCounted),
        }
    }
    if wanted.is_empty() {
        return;
    }
    if let Err(e) = attribute_events(state, &wanted).await {
        tracing::warn!(error = %e, events = wanted.len(), "events not attributed");
        for (_, kind) in &wanted {
            state.online.count_attribution(kind, Attribution::Failed);
        }
    }
}

async fn attribute_events(state: &AppState, wanted: &[(&Event, &'static str)]) -> ApiResult<()> {
    let ids: Vec<&str> = wanted
        .iter()
        .filter_map(|(e, _)| e.rec_id.as_deref())
        .collect();
    let ns = &state.ns;
    let lists = state
        .call("read served lists", Route::Primary, |mut con| async move {
            store::read_lists(&mut con, ns, &ids).await
        })
        .await?;
    let live = state.online.live();
    let mut hits = Vec::new();
    for ((event, kind), list) in wanted.iter().zip(lists) {
        let outcome = match list {
            None => Attribution::NotFound,
            Some(l) if l.user_id.as_ref().is_some_and(|u| *u != event.user_id) => {
                Attribution::OtherUser
            }
            Some(l) => {
                // the client's position when it names the item, else where the item was served
                let at = event
                    .position
                    .and_then(|p| usize::try_from(p).ok())
                    .filter(|p| l.items.get(*p) == Some(&event.item_id))
                    .or_else(|| l.items.iter().position(|id| *id == event.item_id));
                match at {
                    None => Attribution::NotInList,
                    Some(position) => {
                        if let Some((experiment, variant)) = &l.experiment {
                            live.count_feedback(
                                &Assignment {
                                    experiment: experiment.clone(),
                                    variant: variant.clone(),
                                },
                                kind,
                            );
                        }
                        hits.push(FeedbackHit {
                            rec_id: event.rec_id.clone().unwrap_or_default(),
                            kind,
                            position,
                            experiment: l.experiment,
                        });
                        Attribution::Attributed
                    }
                }
            }
        };
        state.online.count_attribution(kind, outcome);
    }
    let ttl_ms = live.config.attribution_window_secs * 1000;
    let hits = &hits;
    state
        .call("count feedback", Route::Primary, |mut con| async move {
            store::count_feedback(&mut con, ns, hits, ttl_ms).await
        })
        .await?;
    Ok(())
}

/// One variant's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantReport {
    pub name: String,
    pub profile: String,
    pub weight: u32,
    /// Lists served.
    pub impressions: u64,
    /// Attributed events of each kind (a list may have several).
    pub clicks: u64,
    pub cart_adds: u64,
    pub purchases: u64,
    /// Lists with at least one click / cart add / purchase, over lists served; null before
    /// the first list.
    pub ctr: Option<f64>,
    pub add_to_cart_rate: Option<f64>,
    pub purchase_rate: Option<f64>,
    /// Mean 1-based position of the first click of clicked lists.
    pub mean_first_click_position: Option<f64>,
    /// Distinct items served (HyperLogLog estimate, about 1% error).
    pub distinct_items: u64,
    /// Distinct items served over the items in the serving index.
    pub coverage: Option<f64>,
    /// This variant against the control (the first variant); absent for the control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_control: Option<VersusControl>,
}

/// The rates of a variant compared with the control's.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersusControl {
    pub ctr: Option<stats::Comparison>,
    pub add_to_cart_rate: Option<stats::Comparison>,
    pub purchase_rate: Option<stats::Comparison>,
}

/// `GET /v1/experiments/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentReport {
    pub name: String,
    /// Request kinds it covers (empty: all).
    pub routes: Vec<String>,
    pub control: String,
    pub variants: Vec<VariantReport>,
    /// The variant whose CTR is significantly above the control's (the highest such), the
    /// control when every other variant is significantly below it; null while undecided.
    pub winner: Option<String>,
    /// Significance level of the comparisons (two-sided).
    pub alpha: f64,
    /// Items in the serving index (the denominator of coverage); null when it cannot be read.
    pub catalog_items: Option<u64>,
}

fn rate(x: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| x.min(n) as f64 / n as f64)
}

/// The report of experiment `name` (422 naming `name` when no such experiment is configured).
pub async fn experiment_report(state: &AppState, name: &str) -> ApiResult<ExperimentReport> {
    let live = state.online.live();
    let experiment = live.experiment(name).ok_or_else(|| {
        let names: Vec<&str> = live.experiments.iter().map(|e| e.name.as_str()).collect();
        ApiError::invalid(
            "name",
            format!(
                "unknown experiment `{name}`, expected one of: {}",
                if names.is_empty() {
                    "(none configured)".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        )
    })?;
    let variants: Vec<&str> = experiment
        .variants
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    let ns = &state.ns;
    let counters = state
        .call(
            "read experiment counters",
            Route::Replica,
            |mut con| async move {
                store::read_counters(&mut con, ns, &experiment.name, &variants).await
            },
        )
        .await?;
    let catalog_items = crate::services::index::serving_index(state)
        .await
        .ok()
        .map(|i| i.num_docs);
    let lists = |c: &VariantCounters, kind: &str| c.get(&store::lists_field(kind));
    let control = &counters[0];
    let mut reports = Vec::with_capacity(counters.len());
    for (i, (v, c)) in experiment.variants.iter().zip(&counters).enumerate() {
        let n = c.get(store::IMPRESSIONS);
        let clicked = lists(c, "click");
        let compare = |kind: &str| {
            stats::two_proportions(
                lists(control, kind),
                control.get(store::IMPRESSIONS),
                lists(c, kind),
                n,
            )
        };
        reports.push(VariantReport {
            name: v.name.clone(),
            profile: v.profile.clone(),
            weight: v.weight,
            impressions: n,
            clicks: c.get("click"),
            cart_adds: c.get("cart_add"),
            purchases: c.get("purchase"),
            ctr: rate(clicked, n),
            add_to_cart_rate: rate(lists(c, "cart_add"), n),
            purchase_rate: rate(lists(c, "purchase"), n),
            mean_first_click_position: (clicked > 0)
                .then(|| c.get(store::FIRST_CLICK_POSITION_SUM) as f64 / clicked as f64),
            distinct_items: c.distinct_items,
            coverage: catalog_items
                .filter(|n| *n > 0)
                .map(|n| (c.distinct_items as f64 / n as f64).min(1.0)),
            vs_control: (i > 0).then(|| VersusControl {
                ctr: compare("click"),
                add_to_cart_rate: compare("cart_add"),
                purchase_rate: compare("purchase"),
            }),
        });
    }
    let winner = winner(&reports);
    Ok(ExperimentReport {
        name: experiment.name.clone(),
        routes: experiment
            .routes
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        control: experiment.variants[0].name.clone(),
        variants: reports,
        winner,
        alpha: stats::ALPHA,
        catalog_items,
    })
}

/// The CTR winner: the best variant significantly above the control, or the control when every
/// other variant is significantly below it.
fn winner(reports: &[VariantReport]) -> Option<String> {
    fn ctr(r: &VariantReport) -> Option<&stats::Comparison> {
        r.vs_control.as_ref().and_then(|v| v.ctr.as_ref())
    }
    let better = reports
        .iter()
        .filter(|r| ctr(r).is_some_and(|c| c.significant && c.difference > 0.0))
        .max_by(|a, b| a.ctr.unwrap_or(0.0).total_cmp(&b.ctr.unwrap_or(0.0)));
    if let Some(r) = better {
        return Some(r.name.clone());
    }
    let others = &reports[1..];
    (!others.is_empty()
        && others
            .iter()
            .all(|r| ctr(r).is_some_and(|c| c.significant && c.difference < 0.0)))
    .then(|| reports[0].name.clone())
}
