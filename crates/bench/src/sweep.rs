//! `redrec-bench --sweep-ef 100,200,400`: recall@k and single-flight latency of every plan the
//! retriever can choose for a KNN query, at each rung of the selectivity ladder, on a catalog
//! that is already seeded (issue 19: how recall and filtered latency hold at a million items).
//!
//! Plans per rung: the server's own choice with each `EF_RUNTIME`, `HYBRID_POLICY BATCHES` with
//! each `EF_RUNTIME` (filtered rungs), `ADHOC_BF` (filtered rungs; exact up to float rounding,
//! EF does not apply), and last `retriever`: the same queries through the project's own
//! [`Retriever`], set up as the gateway runs it, so the figures hold for the plan the project
//! chooses rather than a hand-picked one (issue 19). It picks `HYBRID_POLICY` with its `auto`
//! policy from a field sample taken in the background (the sweep waits for the first one), and
//! `EF_RUNTIME` from the index's measured curve (`redrec-ingest calibrate`) for
//! `--sweep-recall-target`, or `--ef-runtime` without a curve; its row records both.
//!
//! Every query is sent once, one at a time, and timed; its recall is taken against the exact
//! top-k of the stored vectors (brute force here, over the rows the filter keeps). The same
//! queries serve every plan of a rung, so the plans differ only in plan.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use redrec_core::{
    config::{IndexConfig, RedisConfig},
    filter::Filter,
    keys::Namespace,
    query::HybridPolicy,
    synthetic::{Rng, Synthetic, SyntheticParams},
};
use redrec_retriever::{RetrievalRequest, Retriever, RetrieverConfig, Source};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::{
    catalog,
    raw::{RawConn, RawTarget},
    recall,
    report::load_average,
    stats::{self, LatencySummary},
    suite::Options,
    workload::{self, BenchQuery, Kind},
};

/// What the sweep varies.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// `EF_RUNTIME` values tried with the HNSW plans.
    pub efs: Vec<u32>,
    /// Queries per rung (each sent once per plan).
    pub queries: usize,
    /// `recall_target` of the retriever row's config: the `EF_RUNTIME` it sends is the smallest
    /// the index's measured curve says reaches it (without a curve, `--ef-runtime`).
    pub recall_target: f64,
    /// `post_filter_above` of the retriever row's config (`None`: the retriever's default).
    pub post_filter_above: Option<f64>,
}

/// How long the retriever may take for its first field sample and index lookup.
const READY_WAIT: Duration = Duration::from_secs(60);

/// One plan at one rung.
#[derive(Debug, Clone, Serialize)]
pub struct SweepCell {
    pub rung: String,
    /// Share of the catalog the rung's filter keeps.
    pub share: f64,
    /// `server`, `batches`, `adhoc_bf` or `retriever`.
    pub plan: String,
    /// The `EF_RUNTIME` sent (the retriever's: the one it chose for the candidates asked).
    pub ef_runtime: Option<u32>,
    /// Retriever row only: the `HYBRID_POLICY` it sent, by plan name (`server`: none; several
    /// joined by `+` should it change within the rung).
    pub policy: Option<String>,
    #[serde(flatten)]
    pub measured: Measured,
}

impl SweepCell {
    /// The plan as the table shows it, e.g. `retriever (batches)`.
    pub fn label(&self) -> String {
        match &self.policy {
            Some(p) => format!("{} ({p})", self.plan),
            None => self.plan.clone(),
        }
    }
}

/// Recall and latency of one plan over a rung's queries.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub mean_recall: f64,
    /// Recall of the worst 10% of queries (mean of that decile).
    pub worst_decile_recall: f64,
    pub errors: usize,
    pub first_error: Option<String>,
    /// One query in flight.
    pub latency: LatencySummary,
}

/// Everything one sweep measured.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub items: usize,
    pub dim: usize,
    pub k: usize,
    /// Candidates asked of each KNN (results cut to `k`): what the gateway asks for reranking.
    pub candidates: usize,
    /// `M` and `EF_CONSTRUCTION` of the index, as FT.INFO reports them.
    pub hnsw_m: Option<String>,
    pub hnsw_ef_construction: Option<String>,
    pub used_memory_bytes: u64,
    pub load_start: f64,
    pub load_end: f64,
    pub cells: Vec<SweepCell>,
}

fn log(msg: &str) {
    eprintln!("sweep: {msg}");
}

/// Runs the sweep against the catalog `opts` names, which must hold exactly `opts.items` items.
pub async fn run(opts: &Options, sweep: &SweepOptions) -> Result<SweepReport> {
    if sweep.efs.is_empty() || sweep.efs.contains(&0) {
        bail!("--sweep-ef needs one or more positive EF_RUNTIME values");
    }
    if sweep.queries < 10 {
        bail!(
            "--sweep-queries must be at least 10 (got {})",
            sweep.queries
        );
    }
    if !(sweep.recall_target > 0.0 && sweep.recall_target <= 1.0) {
        bail!(
            "--sweep-recall-target must be a recall in (0, 1] (got {})",
            sweep.recall_target
        );
    }
    let load_start = load_average();
    let ns = Namespace::new(&opts.namespace);
    let mut con = catalog::connect(&opts.redis_url).await?;
    let info = match catalog::index_info(&mut con, &ns.alias()).await {
        Ok(i) => i,
        Err(e) => bail!(
            "no catalog under `{}` ({e:#}): seed it first with `redrec-bench --seed-only --items {}`",
            ns.alias(),
            opts.items
        ),
    };
    if info.num_docs as usize != opts.items || info.percent_indexed < 1.0 {
        bail!(
            "the index `{}` holds {} documents ({:.0}% indexed), expected {} fully indexed: \
             seed with `redrec-bench --seed-only --items {}` (or pass the right --items)",
            ns.alias(),
            info.num_docs,
            info.percent_indexed * 100.0,
            opts.items,
            opts.items
        );
    }
    let vector_opts = info
        .attributes
        .iter()
        .find(|a| a.kind == "VECTOR")
        .map(|a| a.options.clone())
        .unwrap_or_default();
    // its background tasks take the field sample while the catalog is read back; they end when
    // `background` is dropped
    let mut background = JoinSet::new();
    let retriever = serving_retriever(opts, sweep, &mut background).await?;
    log(&format!("reading back {} items", opts.items));
    let cat = catalog::read_back(&mut con, &ns, opts.dim).await?;
    if cat.len() != opts.items {
        bail!(
            "read back {} items with a vector, price and category; expected {}",
            cat.len(),
            opts.items
        );
    }
    let candidates = opts.raw_candidates.max(opts.k);
    wait_until_ready(&retriever).await?;
    log(&format!(
        "retriever: EF_RUNTIME {} for {candidates} candidates (recall target {})",
        retriever.ef_runtime_for(candidates),
        sweep.recall_target
    ));
    let generator = Synthetic::new(SyntheticParams {
        items: opts.items as u64,
        dims: opts.dim,
        seed: opts.seed,
    });
    let mut base = RawTarget::new(
        RawConn::mux(&opts.redis_url).await?,
        ns.clone(),
        opts.dim,
        opts.ef_runtime,
    );
    base.candidates = opts.raw_candidates;
    base.timeout = std::time::Duration::from_secs(30);
    base.server_timeout_ms = Some(20_000);

    let mut cells = Vec::new();
    for (rung, (label, _, filter)) in workload::selectivity_ladder(&cat).into_iter().enumerate() {
        let matching: Vec<bool> = (0..cat.len())
            .map(|i| workload::ladder_matches(&cat, &filter, i))
            .collect();
        let share = matching.iter().filter(|m| **m).count() as f64 / cat.len() as f64;
        let mut rng = Rng::stream(opts.seed, 0x5EE9 + rung as u64);
        let queries: Vec<BenchQuery> = (0..sweep.queries)
            .map(|_| BenchQuery {
                kind: Kind::Vector,
                vector: generator.query_vector_with(&mut rng),
                user_id: None,
                text: None,
                filter: filter.clone(),
                k: opts.k,
            })
            .collect();
        log(&format!(
            "rung {label} ({:.2}% of the items): exact top-{} of {} queries",
            share * 100.0,
            opts.k,
            queries.len()
        ));
        let truths: Vec<Vec<String>> = queries
            .iter()
            .map(|q| recall::exact_top_k(&cat, &q.vector, opts.k, |i| matching[i]))
            .collect();
        for plan in plans(&filter, &sweep.efs) {
            let (ef_runtime, policy, measured) = match plan {
                Plan::Raw { ef, policy } => {
                    let target = RawTarget {
                        ef_runtime: ef.unwrap_or(opts.ef_runtime),
                        hybrid_policy: policy,
                        ..base.clone()
                    };
                    let measured = measure(&queries, &truths, async |q| target.run(q).await).await;
                    (ef, None, measured)
                }
                Plan::Retriever => {
                    let (measured, policy) =
                        through_retriever(&retriever, &queries, &truths, candidates).await;
                    (Some(retriever.ef_runtime_for(candidates)), policy, measured)
                }
            };
            let cell = SweepCell {
                rung: label.clone(),
                share,
                plan: plan.name().to_owned(),
                ef_runtime,
                policy,
                measured,
            };
            let m = &cell.measured;
            log(&format!(
                "  {:<20} ef {:>5}: recall {:.3} (worst decile {:.3}), p50 {:.2} ms, p99 {:.2} ms{}",
                cell.label(),
                cell.ef_runtime.map_or("-".into(), |e| e.to_string()),
                m.mean_recall,
                m.worst_decile_recall,
                m.latency.p50_ms,
                m.latency.p99_ms,
                if m.errors > 0 {
                    format!(", {} errors", m.errors)
                } else {
                    String::new()
                }
            ));
            cells.push(cell);
        }
    }
    Ok(SweepReport {
        items: cat.len(),
        dim: opts.dim,
        k: opts.k,
        candidates,
        hnsw_m: vector_opts.get("M").cloned(),
        hnsw_ef_construction: vector_opts.get("ef_construction").cloned(),
        used_memory_bytes: catalog::used_memory(&mut con).await?,
        load_start,
        load_end: load_average(),
        cells,
    })
}

/// How one row's queries are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// Raw `FT.SEARCH` with this `EF_RUNTIME` (`None` with `ADHOC_BF`, where it does not apply)
    /// and `HYBRID_POLICY` (`None`: the server's choice).
    Raw {
        ef: Option<u32>,
        policy: Option<HybridPolicy>,
    },
    /// Through the project's retriever, which chooses both itself.
    Retriever,
}

impl Plan {
    fn name(&self) -> &'static str {
        match self {
            Plan::Raw { policy, .. } => policy_name(*policy),
            Plan::Retriever => "retriever",
        }
    }
}

/// The plan name a `HYBRID_POLICY` goes by (`server`: none sent, the server chooses).
fn policy_name(policy: Option<HybridPolicy>) -> &'static str {
    match policy {
        None => "server",
        Some(HybridPolicy::Batches { .. }) => "batches",
        Some(HybridPolicy::AdhocBf) => "adhoc_bf",
    }
}

/// Every plan of a rung, the retriever's last.
fn plans(filter: &Filter, efs: &[u32]) -> Vec<Plan> {
    let mut out: Vec<Plan> = efs
        .iter()
        .map(|&ef| Plan::Raw {
            ef: Some(ef),
            policy: None,
        })
        .collect();
    if !filter.is_all() {
        out.extend(efs.iter().map(|&ef| Plan::Raw {
            ef: Some(ef),
            policy: Some(HybridPolicy::Batches { batch_size: None }),
        }));
        out.push(Plan::Raw {
            ef: None,
            policy: Some(HybridPolicy::AdhocBf),
        });
    }
    out.push(Plan::Retriever);
    out
}

/// Sends each query once through `run`, one at a time, timing it and taking the recall of the
/// ids it returns against its truth (a failed query counts as recall 0).
async fn measure(
    queries: &[BenchQuery],
    truths: &[Vec<String>],
    mut run: impl AsyncFnMut(&BenchQuery) -> Result<Vec<String>>,
) -> Measured {
    let mut hist = stats::new_histogram();
    let mut recalls = Vec::with_capacity(queries.len());
    let mut errors = 0;
    let mut first_error = None;
    for (q, truth) in queries.iter().zip(truths) {
        let start = Instant::now();
        match run(q).await {
            Ok(ids) => {
                stats::record(&mut hist, start.elapsed());
                recalls.push(recall::recall(truth, &ids));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
                recalls.push(0.0);
            }
        }
    }
    let mean_recall = recalls.iter().sum::<f64>() / recalls.len().max(1) as f64;
    recalls.sort_by(f64::total_cmp);
    let decile = &recalls[..recalls.len().div_ceil(10)];
    Measured {
        mean_recall,
        worst_decile_recall: decile.iter().sum::<f64>() / decile.len().max(1) as f64,
        errors,
        first_error,
        latency: LatencySummary::from_histogram(&hist),
    }
}

/// The project's retriever over the bench's catalog, set up as the gateway serves it: default
/// settings but `ef_runtime` (`--ef-runtime`), `recall_target` and a query timeout long enough
/// for brute force over a million vectors. Its background tasks, the `auto` policy's field
/// sample and the index watch (which reads the measured EF curve), run on `background`.
async fn serving_retriever(
    opts: &Options,
    sweep: &SweepOptions,
    background: &mut JoinSet<()>,
) -> Result<Arc<Retriever>> {
    let redis = RedisConfig {
        url: opts.redis_url.clone(),
        // the client-side deadline of the raw rows
        command_timeout_ms: 30_000,
        ..RedisConfig::default()
    };
    let index = IndexConfig {
        namespace: opts.namespace.clone(),
        vector: catalog::vector_settings(opts.dim),
        ..IndexConfig::default()
    };
    let defaults = RetrieverConfig::default();
    let config = RetrieverConfig {
        ef_runtime: opts.ef_runtime,
        recall_target: Some(sweep.recall_target),
        query_timeout_ms: 20_000,
        post_filter_above: sweep
            .post_filter_above
            .unwrap_or(defaults.post_filter_above),
        ..defaults
    };
    let retriever = Arc::new(
        Retriever::connect(&redis, &index, config)
            .await
            .context("connecting the retriever")?,
    );
    let r = retriever.clone();
    background.spawn(async move { r.keep_sample_fresh().await });
    let r = retriever.clone();
    background.spawn(async move { r.watch_index().await });
    Ok(retriever)
}

/// Waits until the retriever holds a field sample and has looked the index up (so has read the
/// EF curve, if there is one), as a gateway that has served a while does: before that, `auto`
/// leaves every policy to the server and the EF is `--ef-runtime`.
async fn wait_until_ready(retriever: &Retriever) -> Result<()> {
    let start = Instant::now();
    let mut next_log = Duration::from_secs(5);
    loop {
        let sample = retriever.sample_status();
        let looked_up = retriever.index_status().is_some();
        if let Some(sample) = &sample
            && looked_up
        {
            log(&format!(
                "retriever: field sample of {} items after {:.1} s",
                sample.items,
                start.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        let missing = if sample.is_none() {
            "field sample"
        } else {
            "index lookup"
        };
        let waited = start.elapsed();
        if waited >= READY_WAIT {
            bail!(
                "the retriever has no {missing} after {} s: its `retriever` rows would not show \
                 the plan it chooses when serving",
                READY_WAIT.as_secs()
            );
        }
        if waited >= next_log {
            log(&format!(
                "waiting for the retriever's {missing} ({} s)",
                waited.as_secs()
            ));
            next_log += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The retriever row: each query as the gateway sends a plain vector query (one query-vector
/// source, the rung's filter, no exclusions, no user) asking for `candidates`, cut to k. Also
/// returns the `HYBRID_POLICY` the retriever sent (`None` when every query failed).
async fn through_retriever(
    retriever: &Retriever,
    queries: &[BenchQuery],
    truths: &[Vec<String>],
    candidates: usize,
) -> (Measured, Option<String>) {
    let mut sent = BTreeSet::new();
    let measured = measure(queries, truths, async |q| {
        let mut req = RetrievalRequest::new(vec![Source::Vector(q.vector.clone())], candidates);
        req.filter = q.filter.clone();
        let got = retriever.retrieve(&req).await?;
        // the plan as sent: the policy, and the partition searched when one was
        let plan = if got.post_filtered {
            "post_filter"
        } else {
            policy_name(got.policy)
        };
        sent.insert(match &got.partition {
            Some(p) => format!("{plan} on {p}"),
            None => plan.to_owned(),
        });
        Ok(got.candidates.into_iter().take(q.k).map(|c| c.id).collect())
    })
    .await;
    let policy = (!sent.is_empty()).then(|| sent.into_iter().collect::<Vec<_>>().join("+"));
    (measured, policy)
}

/// `sweep.json` and `sweep.md` under `out`.
pub fn write_report(report: &SweepReport, out: &std::path::Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let json = out.join("sweep.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)?;
    let md = out.join("sweep.md");
    std::fs::write(&md, render(report))?;
    Ok(vec![md, json])
}

/// The Markdown table of a sweep.
pub fn render(r: &SweepReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# KNN plan sweep: {} items x {} dims, recall@{} ({} candidates asked)\n",
        r.items, r.dim, r.k, r.candidates
    );
    let _ = writeln!(
        s,
        "Index: HNSW M {}, EF_CONSTRUCTION {}; Redis used_memory {:.0} bytes/item; load average \
         {:.1} -> {:.1}. One query in flight; each query sent once per plan. `retriever (p)`: \
         through the project's retriever, which sent `HYBRID_POLICY` p and the EF_RUNTIME shown (`on x`: \
         to partition x's index; `post_filter`: searched unfiltered, the filter checked on the hits).\n",
        r.hnsw_m.as_deref().unwrap_or("?"),
        r.hnsw_ef_construction.as_deref().unwrap_or("?"),
        r.used_memory_bytes as f64 / r.items.max(1) as f64,
        r.load_start,
        r.load_end
    );
    s.push_str(
        "| rung | share | plan | EF_RUNTIME | recall | worst 10% | p50 ms | p99 ms | errors |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for c in &r.cells {
        let m = &c.measured;
        let _ = writeln!(
            s,
            "| {} | {:.2}% | {} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {} |",
            c.rung,
            c.share * 100.0,
            c.label(),
            c.ef_runtime.map_or("-".into(), |e| e.to_string()),
            m.mean_recall,
            m.worst_decile_recall,
            m.latency.p50_ms,
            m.latency.p99_ms,
            m.errors
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(plans: &[Plan]) -> Vec<(&'static str, Option<u32>)> {
        plans
            .iter()
            .map(|p| match p {
                Plan::Raw { ef, .. } => (p.name(), *ef),
                Plan::Retriever => (p.name(), None),
            })
            .collect()
    }

    #[test]
    fn filtered_rungs_get_every_plan_unfiltered_only_the_graph_and_the_retriever_comes_last() {
        let efs = [100, 400];
        assert_eq!(
            shape(&plans(&Filter::All, &efs)),
            [
                ("server", Some(100)),
                ("server", Some(400)),
                ("retriever", None)
            ]
        );
        let f = Filter::range(
            "price",
            std::ops::Bound::Included(1.0),
            std::ops::Bound::Included(2.0),
        );
        assert_eq!(
            shape(&plans(&f, &efs)),
            [
                ("server", Some(100)),
                ("server", Some(400)),
                ("batches", Some(100)),
                ("batches", Some(400)),
                ("adhoc_bf", None),
                ("retriever", None)
            ]
        );
    }

    #[tokio::test]
    async fn measure_scores_each_answer_against_its_truth_and_a_failure_as_zero() {
        let queries: Vec<BenchQuery> = (0..10)
            .map(|i| BenchQuery {
                kind: Kind::Vector,
                vector: vec![i as f32],
                user_id: None,
                text: None,
                filter: Filter::All,
                k: 2,
            })
            .collect();
        let truths: Vec<Vec<String>> = (0..10).map(|i| vec![format!("a{i}"), "b".into()]).collect();
        let mut sent = 0;
        // query 0 fails, query 1 finds half its truth, the rest all of it
        let m = measure(&queries, &truths, async |q| {
            sent += 1;
            match q.vector[0] as usize {
                0 => bail!("refused"),
                1 => Ok(vec!["x".into(), "b".into()]),
                i => Ok(vec![format!("a{i}"), "b".into()]),
            }
        })
        .await;
        assert_eq!(sent, 10, "each query sent once");
        assert!(
            (m.mean_recall - 8.5 / 10.0).abs() < 1e-9,
            "{}",
            m.mean_recall
        );
        assert_eq!(m.worst_decile_recall, 0.0);
        assert_eq!((m.errors, m.first_error.as_deref()), (1, Some("refused")));
        assert_eq!(m.latency.count, 9, "failures are not timed");
    }

    #[test]
    fn the_table_names_the_policy_the_retriever_sent() {
        let cell = |plan: &str, ef, policy: Option<&str>| SweepCell {
            rung: "category=1".into(),
            share: 0.1,
            plan: plan.into(),
            ef_runtime: ef,
            policy: policy.map(Into::into),
            measured: Measured {
                mean_recall: 0.95,
                worst_decile_recall: 0.8,
                errors: 0,
                first_error: None,
                latency: LatencySummary {
                    p50_ms: 1.5,
                    p99_ms: 3.25,
                    ..LatencySummary::default()
                },
            },
        };
        let report = SweepReport {
            items: 1000,
            dim: 8,
            k: 10,
            candidates: 50,
            hnsw_m: Some("16".into()),
            hnsw_ef_construction: Some("200".into()),
            used_memory_bytes: 0,
            load_start: 0.0,
            load_end: 0.0,
            cells: vec![
                cell("adhoc_bf", None, None),
                cell("retriever", Some(50), Some("batches")),
            ],
        };
        let md = render(&report);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| category")).collect();
        assert_eq!(
            rows,
            [
                "| category=1 | 10.00% | adhoc_bf | - | 0.950 | 0.800 | 1.50 | 3.25 | 0 |",
                "| category=1 | 10.00% | retriever (batches) | 50 | 0.950 | 0.800 | 1.50 | 3.25 | 0 |"
            ]
        );
        let json = serde_json::to_value(&report.cells[1]).unwrap();
        assert_eq!(
            (&json["policy"], &json["mean_recall"]),
            (&"batches".into(), &0.95.into()),
            "the measurement stays flat in sweep.json"
        );
    }
}
