//! redrec-eval: measures what redrec serves, next to baselines, on one time split.
//!
//! - [`data`]: interaction files (JSONL / CSV / Parquet) into users' baskets.
//! - [`split`]: cut-off or last-basket split, eligible users, repeat / explore parts.
//! - [`baselines`]: G-Pop, P-Pop, time-decayed personal frequency, TIFU-KNN.
//! - [`frontier`]: `--frontier` diagnostic arms: what explore places cost in overall recall.
//! - [`catalog`]: item ids and the non-merchandise class, read from the namespace's item hashes.
//! - [`import`]: the evaluated users' training baskets into the gateway's user state through
//!   the interaction import (each event at its basket's time).
//! - [`gateway`]: lists out of `POST /v1/recommendations`, concurrently (and, with
//!   `--import http`, training events in through `POST /v1/events`).
//! - [`metrics`]: Recall / NDCG / PHR at k, repeat vs explore, coverage, bootstrap intervals.
//! - [`report`]: report.md, report.json and the bar chart.
//!
//! [`run`] ties them together; `cargo xtask eval` starts Redis and the gateway and calls the
//! binary. Without a gateway the run is offline: baselines only, the catalog = the items seen in
//! the interactions, all merchandise.

pub mod baselines;
pub mod catalog;
pub mod cf;
pub mod data;
pub mod frontier;
pub mod gateway;
pub mod import;
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
    /// How the training events reach the user state.
    pub import: import::ImportVia,
    /// Send each request with `x-redrec-as-of` = the household's target-basket time (the gateway
    /// runs with `gateway.replay_clock`); only with the interaction import, which stamps events
    /// with their own times.
    pub replay_clock: bool,
    /// Settings of the events import (item field names, the gateway's user-state config).
    pub events: import::EventsTarget,
    /// Events per batch (`FCALL` or `POST /v1/events`).
    pub import_batch: usize,
    /// Batches in flight.
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
    /// Add the explore-frontier diagnostic arms ([`frontier`]): decayed P-Pop with places given
    /// to never-bought G-Pop (and, with `als`, ALS) items.
    pub frontier: bool,
    /// Whether a gateway run trains and publishes `cf_vector` from the training baskets.
    pub cf: cf::CfMode,
    /// The ALS parameters of `cf_vector`.
    pub cf_params: redrec_ingest::cf::AlsParams,
    pub half_life_days: f64,
    pub non_merch: NonMerchRule,
    /// Redis of the gateway's namespace (the catalog is read from it; user state is reset).
    pub redis_url: Option<String>,
    pub namespace: String,
    pub gateway: Option<GatewayTarget>,
    pub out: PathBuf,
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

/// What every run starts from: the interactions, the catalog and the split.
struct Loaded {
    data: data::Dataset,
    read: data::ReadStats,
    ns: Namespace,
    con: Option<redis::aio::MultiplexedConnection>,
    catalog: Catalog,
    split: split::Split,
}

async fn load(
    config: &EvalConfig,
    timings: &mut Vec<(String, f64)>,
    notes: &mut Vec<String>,
) -> Result<Loaded> {
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

    Ok(Loaded {
        data,
        read,
        ns,
        con,
        catalog,
        split,
    })
}

async fn publish_cf(
    con: &mut redis::aio::MultiplexedConnection,
    ns: &Namespace,
    data: &data::Dataset,
    split: &split::Split,
    config: &EvalConfig,
) -> Result<(cf::CfStats, Option<redrec_ingest::cf::AlsModel>)> {
    let interactions = config.interactions.display().to_string();
    cf::publish(
        con,
        ns,
        data,
        split,
        &interactions,
        &config.cf_params,
        config.cf,
    )
    .await
}

/// Trains and publishes the collaborative vectors for this split (as a gateway run would, see
/// [`cf`]) and records what it did in `cf.json` of the report directory; `cargo xtask eval`
/// runs this before it starts the gateways, so they see the field from their first request.
pub async fn prepare_cf(config: &EvalConfig) -> Result<cf::CfStats> {
    let (mut timings, mut notes) = (Vec::new(), Vec::new());
    let Loaded {
        data,
        ns,
        con,
        split,
        ..
    } = load(config, &mut timings, &mut notes).await?;
    let Some(mut con) = con else {
        bail!("publishing cf_vector needs --redis-url");
    };
    if config.cf == cf::CfMode::Off {
        bail!("--cf-only with --cf off has nothing to do");
    }
    let (stats, _) = publish_cf(&mut con, &ns, &data, &split, config).await?;
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("creating {}", config.out.display()))?;
    let path = config.out.join("cf.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&stats)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(stats)
}

/// Runs the whole evaluation and writes the report into `config.out`.
pub async fn run(config: &EvalConfig) -> Result<Report> {
    if config.k == 0 {
        bail!("k must be at least 1");
    }
    let total = Instant::now();
    let mut timings = Vec::new();
    let mut notes = Vec::new();

    let Loaded {
        data,
        read,
        ns,
        mut con,
        catalog,
        split,
    } = load(config, &mut timings, &mut notes).await?;

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
    let frontier_base = config
        .frontier
        .then(|| ctx.decayed_lists(config.half_life_days));
    if let Some(personal) = &frontier_base {
        for explore in [ctx.gpop_explore(), ctx.neighbours_explore(&config.tifu)] {
            for (name, lists) in ctx.frontier_arms(personal, &explore) {
                raw_arms.push((name, "diagnostic".into(), lists, 0, None));
            }
        }
    }
    timings.push(("baselines".to_owned(), t.elapsed().as_secs_f64()));
    // The collaborative vectors the served arms use, from the training baskets only.
    let mut cf_stats = None;
    let mut cf_model = None;
    if config.gateway.is_some()
        && config.cf != cf::CfMode::Off
        && let Some(con) = con.as_mut()
    {
        let t = Instant::now();
        let (stats, model) = publish_cf(con, &ns, &data, &split, config).await?;
        // Trained by the preparation step of this run (`--cf-only`, before the gateways
        // started): report what it did.
        let prepared: Option<cf::CfStats> = std::fs::read(config.out.join("cf.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let stats = match prepared {
            Some(p) if !stats.trained && p.trained_on == stats.trained_on => cf::CfStats {
                prepared: true,
                ..p
            },
            _ => stats,
        };
        if stats.trained {
            eprintln!(
                "eval: cf_vector trained in {:.1} s ({} items), published in {:.1} s",
                stats.train_secs, stats.items_with_vector, stats.publish_secs
            );
        } else {
            eprintln!("eval: cf_vector already trained on this split: kept");
        }
        timings.push((
            "cf_vector: ALS train + publish".to_owned(),
            t.elapsed().as_secs_f64(),
        ));
        cf_stats = Some(stats);
        cf_model = model.map(|m| (config.cf_params, m));
    }
    if let Some(als) = &config.als {
        let t = Instant::now();
        let model = match cf_model {
            Some((p, m)) if p == *als => m,
            _ => {
                let (rows, n, p) = (cf::training_rows(&split), data.items.len(), *als);
                tokio::task::spawn_blocking(move || redrec_ingest::cf::train(&rows, n, &p))
                    .await
                    .context("ALS worker")?
            }
        };
        raw_arms.push((
            format!("ALS {}-d (user x item)", als.factors),
            "baseline".into(),
            ctx.als_lists(&model),
            0,
            None,
        ));
        if let Some(personal) = &frontier_base {
            for (name, lists) in ctx.frontier_arms(personal, &ctx.als_explore(&model)) {
                raw_arms.push((name, "diagnostic".into(), lists, 0, None));
            }
        }
        timings.push((
            "ALS arm (train unless shared) + score".to_owned(),
            t.elapsed().as_secs_f64(),
        ));
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
        // the served popular source must not see the test period either
        let by_id: HashMap<&str, u32> = data
            .items
            .iter()
            .zip(&counts)
            .map(|(id, &n)| (id.as_str(), n))
            .collect();
        let written = catalog
            .set_popularity(con, &ns, &gw.events.fields.popularity, &by_id)
            .await?;
        eprintln!("eval: catalog popularity set to training-basket counts ({written} items)");
        timings.push((
            "reset users + training popularity".to_owned(),
            t.elapsed().as_secs_f64(),
        ));
        let t = Instant::now();
        let stats = match gw.import {
            import::ImportVia::Events => {
                let t = Instant::now();
                let file = config.out.join("train-events.jsonl");
                std::fs::create_dir_all(&config.out)
                    .with_context(|| format!("creating {}", config.out.display()))?;
                let lines = import::write_training_events(&file, &data, &split)?;
                let written = t.elapsed().as_secs_f64();
                eprintln!(
                    "eval: importing {lines} purchase events of {} users through the interaction import ({})",
                    split.cases.len(),
                    file.display()
                );
                let mut stats = import::import_events(
                    con,
                    &ns,
                    &gw.events,
                    &file,
                    gw.import_batch,
                    gw.import_workers,
                )
                .await?;
                stats.prepare_secs += written;
                stats
            }
            import::ImportVia::Http => {
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
                                    (import::event_id(user, b, item), item.clone())
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
                notes.push(
                    "events went through POST /v1/events, which stamps them with the server clock: \
                     decays inside the gateway see the whole training history as happening now"
                        .into(),
                );
                gateway::import(client.clone(), users, gw.import_batch, gw.import_workers)
                    .await
                    .context("importing the training events")?
            }
        };
        eprintln!(
            "eval: imported {} events in {:.1} s ({:.0} events/s)",
            stats.events, stats.secs, stats.events_per_sec
        );
        timings.push((
            format!(
                "import ({})",
                match gw.import {
                    import::ImportVia::Events => "interaction import",
                    import::ImportVia::Http => "POST /v1/events",
                }
            ),
            t.elapsed().as_secs_f64(),
        ));
        import = Some(stats);

        let replay = gw.replay_clock && gw.import == import::ImportVia::Events;
        if !replay {
            notes.push(
                "requests ran on the gateway's wall clock, not at each household's next-basket \
                 time: decays see the training history as long past and sessions as expired"
                    .into(),
            );
        }
        let requests: Vec<gateway::UserRequest> = split
            .cases
            .iter()
            .map(|c| gateway::UserRequest {
                user: data.users[c.user as usize].clone(),
                as_of_ms: replay.then_some(c.time * 1000),
            })
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
            targets.push(("text-only pipeline".into(), Arc::new(c), None, None));
        }
        for (name, c, profile, exclude_seen) in targets {
            let t = Instant::now();
            let served = gateway::recommend_all(
                c,
                &requests,
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
        cf: cf_stats,
        arms,
        timings,
        notes,
    };
    report::write(&report, &config.out)?;
    Ok(report)
}
