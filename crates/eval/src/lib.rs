//! redrec-eval: measures what redrec serves, next to baselines, on one time split.
//!
//! - [`data`]: interaction files (JSONL / CSV / Parquet) into users' baskets.
//! - [`split`]: cut-off or last-basket split, eligible users, repeat / explore parts.
//! - [`baselines`]: G-Pop, P-Pop, time-decayed personal frequency, TIFU-KNN.
//! - [`catalog`]: item ids and the non-merchandise class, read from the namespace's item hashes.
//! - [`gateway`]: training events in through `POST /v1/events`, lists out of
//!   `POST /v1/recommendations`, concurrently.
//! - [`metrics`]: Recall / NDCG / PHR at k, repeat vs explore, coverage, bootstrap intervals.
//! - [`report`]: report.md, report.json and the bar chart.
//!
//! [`run`] ties them together; `cargo xtask eval` starts Redis and the gateway and calls the
//! binary. Without a gateway the run is offline: baselines only, the catalog = the items seen in
//! the interactions, all merchandise.

pub mod baselines;
pub mod catalog;
pub mod data;
pub mod gateway;
pub mod metrics;
pub mod report;
pub mod split;

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Instant};

use anyhow::{Context, Result, bail};
use redrec_bench::http::HttpClient;
use redrec_core::keys::Namespace;
use redrec_ingest::source::Format;

use crate::{
    baselines::TifuParams,
    catalog::{Catalog, NonMerchRule},
    data::{Columns, TimeUnit},
    report::{Arm, Report},
    split::SplitKind,
};

/// Where the system under test runs.
#[derive(Debug, Clone)]
pub struct GatewayTarget {
    pub url: String,
    pub api_key: Option<String>,
    /// Profiles to request; `None` = the request carries no profile (the gateway's default).
    pub profiles: Vec<Option<String>>,
    /// A gateway configured as the text-only pipeline (collaborative field and history source
    /// off), asked with its default profile; `None` when no such gateway runs.
    pub text_only_url: Option<String>,
    /// Also ask with the default profile and `exclude_seen: false` (what hiding purchased
    /// items costs).
    pub ablate_exclude_seen: bool,
    pub concurrency: usize,
    pub import_batch: usize,
    pub import_workers: usize,
}

#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub interactions: PathBuf,
    pub format: Option<Format>,
    pub columns: Columns,
    pub time_unit: TimeUnit,
    pub split: SplitKind,
    pub min_baskets: usize,
    pub max_users: Option<usize>,
    pub seed: u64,
    pub k: usize,
    pub resamples: usize,
    pub tifu: TifuParams,
    /// Implicit ALS as an offline method (the collaborative vectors' algorithm), when set.
    pub als: Option<redrec_ingest::cf::AlsParams>,
    pub half_life_days: f64,
    pub non_merch: NonMerchRule,
    /// Redis of the gateway's namespace (the catalog is read from it; user state is reset).
    pub redis_url: Option<String>,
    pub namespace: String,
    pub gateway: Option<GatewayTarget>,
    pub out: PathBuf,
}

/// `YYYY-MM-DD` of a Unix time (UTC).
pub fn civil_date(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Maps item ids to dense indexes: the dataset's items first, then ids only the gateway listed.
struct ItemIndex {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl ItemIndex {
    fn index(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.ids.get(id) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(id.to_owned(), i);
        self.names.push(id.to_owned());
        i
    }
}

/// One method's lists before scoring: (name, kind, lists, failed requests, gateway details).
type RawArm = (
    String,
    String,
    Vec<Vec<u32>>,
    usize,
    Option<gateway::Served>,
);

/// Runs the whole evaluation and writes the report into `config.out`.
pub async fn run(config: &EvalConfig) -> Result<Report> {
    if config.k == 0 {
        bail!("k must be at least 1");
    }
    let total = Instant::now();
    let mut timings = Vec::new();
    let mut notes = Vec::new();

    let t = Instant::now();
    let (data, read) = data::read_interactions(
        &config.interactions,
        config.format,
        &config.columns,
        config.time_unit,
    )?;
    timings.push(("read interactions".to_owned(), t.elapsed().as_secs_f64()));
    eprintln!(
        "eval: {} rows, {} users, {} items, {} baskets",
        read.rows, read.users, read.items, read.baskets
    );

    let ns = Namespace::new(&config.namespace);
    let mut con =
        match &config.redis_url {
            Some(url) => Some(redrec_ingest::connect(url).await.with_context(|| {
                format!("connecting to {}", redrec_core::config::redact_url(url))
            })?),
            None => None,
        };
    let catalog = match con.as_mut() {
        Some(c) => {
            let cat = Catalog::read(c, &ns, &config.non_merch).await?;
            if cat.items.is_empty() {
                bail!(
                    "namespace `{}` holds no items: load the catalog first (cargo xtask seed --namespace {})",
                    config.namespace,
                    config.namespace
                );
            }
            cat
        }
        None => {
            notes.push(
                "offline run: catalog = the items of the interactions, all merchandise".into(),
            );
            Catalog {
                items: data.items.iter().map(|i| (i.clone(), false)).collect(),
            }
        }
    };
    let keep: Vec<bool> = data
        .items
        .iter()
        .map(|i| catalog.items.get(i) == Some(&false))
        .collect();
    let missing = data
        .items
        .iter()
        .filter(|i| !catalog.items.contains_key(*i))
        .count();
    if missing > 0 {
        notes.push(format!(
            "{missing} item ids of the interactions are not in the catalog: their lines are removed"
        ));
    }

    let t = Instant::now();
    let split = split::split(
        &data,
        &keep,
        config.split,
        config.min_baskets,
        config.max_users,
        config.seed,
    );
    timings.push(("split".to_owned(), t.elapsed().as_secs_f64()));
    if split.cases.is_empty() {
        bail!(
            "no user qualifies for evaluation (>= {} baskets with at least one before the split and one target)",
            config.min_baskets
        );
    }
    eprintln!(
        "eval: {} users evaluated ({} eligible), {:.1}% of target items are repeats",
        split.cases.len(),
        split.stats.eligible_users,
        split.stats.repeat_share * 100.0
    );

    let mut index = ItemIndex {
        ids: data
            .items
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect(),
        names: data.items.clone(),
    };
    let catalog_size = catalog.items.values().filter(|&&n| !n).count();
    let mut raw_arms: Vec<RawArm> = Vec::new();

    let t = Instant::now();
    let counts = split::basket_counts(&split.train, data.items.len());
    let ctx = baselines::Context::new(&split, &counts, config.k);
    let mut baseline = |name: &str, lists: Vec<Vec<u32>>| {
        raw_arms.push((name.to_owned(), "baseline".into(), lists, 0, None));
    };
    baseline("G-Pop", ctx.gpop_lists());
    baseline("P-Pop", ctx.ppop_lists());
    baseline(
        &format!("decayed P-Pop (half-life {} d)", config.half_life_days),
        ctx.decayed_lists(config.half_life_days),
    );
    baseline("TIFU-KNN", ctx.tifu_lists(&config.tifu));
    timings.push(("baselines".to_owned(), t.elapsed().as_secs_f64()));
    if let Some(als) = &config.als {
        let t = Instant::now();
        raw_arms.push((
            format!("ALS {}-d (user x item)", als.factors),
            "baseline".into(),
            ctx.als_lists(als, data.items.len()),
            0,
            None,
        ));
        timings.push(("ALS train + score".to_owned(), t.elapsed().as_secs_f64()));
    }

    let mut import = None;
    if let Some(gw) = &config.gateway {
        let Some(con) = con.as_mut() else {
            bail!("a gateway run needs --redis-url (the catalog and the user state live there)");
        };
        let mut client = HttpClient::new(&gw.url)?;
        client.api_key = gw.api_key.clone();
        client.timeout = std::time::Duration::from_secs(60);
        let client = Arc::new(client);

        let t = Instant::now();
        let deleted = gateway::reset_users(con, &ns).await?;
        eprintln!("eval: reset user state ({deleted} keys)");
        let users: Vec<gateway::UserEvents> = split
            .cases
            .iter()
            .map(|c| {
                let u = c.user as usize;
                let user = data.users[u].clone();
                let events = split.train[u]
                    .iter()
                    .enumerate()
                    .flat_map(|(b, basket)| {
                        let user = &user;
                        let names = &data.items;
                        basket.items.iter().map(move |&i| {
                            let item = &names[i as usize];
                            (format!("eval-{user}-{b}-{item}"), item.clone())
                        })
                    })
                    .collect();
                gateway::UserEvents { user, events }
            })
            .collect();
        let n_events: usize = users.iter().map(|u| u.events.len()).sum();
        eprintln!(
            "eval: importing {n_events} purchase events of {} users through POST /v1/events",
            users.len()
        );
        let stats = gateway::import(client.clone(), users, gw.import_batch, gw.import_workers)
            .await
            .context("importing the training events")?;
        eprintln!(
            "eval: imported {} events in {:.1} s ({:.0} events/s)",
            stats.events, stats.secs, stats.events_per_sec
        );
        timings.push((
            "import (POST /v1/events)".to_owned(),
            t.elapsed().as_secs_f64(),
        ));
        import = Some(stats);
        notes.push(
            "events go through POST /v1/events, which stamps them with the server clock: decays \
             inside the gateway see the whole training history as happening now"
                .into(),
        );

        let user_names: Vec<String> = split
            .cases
            .iter()
            .map(|c| data.users[c.user as usize].clone())
            .collect();
        type Target = (String, Arc<HttpClient>, Option<String>, Option<bool>);
        let mut targets: Vec<Target> = gw
            .profiles
            .iter()
            .map(|p| {
                (
                    format!("gateway {}", p.as_deref().unwrap_or("default")),
                    client.clone(),
                    p.clone(),
                    None,
                )
            })
            .collect();
        if gw.ablate_exclude_seen {
            targets.push((
                "gateway default, exclude_seen=false".into(),
                client.clone(),
                None,
                Some(false),
            ));
        }
        if let Some(url) = &gw.text_only_url {
            let mut c = HttpClient::new(url)?;
            c.api_key = gw.api_key.clone();
            c.timeout = std::time::Duration::from_secs(60);
            targets.push(("gateway text-only".into(), Arc::new(c), None, None));
        }
        for (name, c, profile, exclude_seen) in targets {
            let t = Instant::now();
            let served = gateway::recommend_all(
                c,
                &user_names,
                config.k,
                profile.as_deref(),
                exclude_seen,
                gw.concurrency,
            )
            .await;
            eprintln!(
                "eval: {name}: {} lists in {:.1} s, {} failed",
                served.lists.len(),
                served.secs,
                served.failed
            );
            let lists = served
                .lists
                .iter()
                .map(|l| {
                    l.as_ref()
                        .map(|ids| ids.iter().map(|id| index.index(id)).collect())
                        .unwrap_or_default()
                })
                .collect();
            timings.push((format!("serve: {name}"), t.elapsed().as_secs_f64()));
            raw_arms.push((name, "gateway".into(), lists, served.failed, Some(served)));
        }
    }

    let t = Instant::now();
    let non_merch = |i: u32| {
        catalog
            .items
            .get(&index.names[i as usize])
            .copied()
            .unwrap_or(false)
    };
    let scoring = metrics::Scoring {
        k: config.k,
        catalog_items: catalog_size,
        resamples: config.resamples,
        seed: config.seed,
    };
    let arms: Vec<Arm> = raw_arms
        .into_iter()
        .map(|(name, kind, lists, failed, served)| Arm {
            summary: metrics::summarise(&lists, &split.cases, &scoring, &non_merch, failed),
            latency_ms: served.as_ref().map(|s| s.latency_ms),
            secs: served.as_ref().map_or(0.0, |s| s.secs),
            errors: served.map(|s| s.errors).unwrap_or_default(),
            name,
            kind,
        })
        .collect();
    timings.push(("metrics + bootstrap".to_owned(), t.elapsed().as_secs_f64()));
    timings.push(("total".to_owned(), total.elapsed().as_secs_f64()));

    let report = Report {
        interactions: config.interactions.display().to_string(),
        split: config.split,
        k: config.k,
        min_baskets: config.min_baskets,
        max_users: config.max_users,
        resamples: config.resamples,
        seed: config.seed,
        tifu: config.tifu,
        decay_half_life_days: config.half_life_days,
        read,
        split_stats: split.stats.clone(),
        catalog: catalog.stats(&config.non_merch),
        import,
        arms,
        timings,
        notes,
    };
    report::write(&report, &config.out)?;
    Ok(report)
}
