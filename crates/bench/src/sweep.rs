//! `redrec-bench --sweep-ef 100,200,400`: recall@k and single-flight latency of every plan the
//! retriever can choose for a KNN query, at each rung of the selectivity ladder, on a catalog
//! that is already seeded (issue 19: how recall and filtered latency hold at a million items).
//!
//! Plans per rung: the server's own choice with each `EF_RUNTIME`, `HYBRID_POLICY BATCHES` with
//! each `EF_RUNTIME` (filtered rungs), and `ADHOC_BF` (filtered rungs; exact up to float
//! rounding, EF does not apply). Every query is sent once, one at a time, and timed; its recall is
//! taken against the exact top-k of the stored vectors (brute force here, over the rows the
//! filter keeps). The same queries serve every plan of a rung, so the plans differ only in plan.

use std::{path::PathBuf, time::Instant};

use anyhow::{Result, bail};
use redrec_core::{
    filter::Filter,
    keys::Namespace,
    query::HybridPolicy,
    synthetic::{Rng, Synthetic, SyntheticParams},
};
use serde::Serialize;

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
}

/// One plan at one rung.
#[derive(Debug, Clone, Serialize)]
pub struct SweepCell {
    pub rung: String,
    /// Share of the catalog the rung's filter keeps.
    pub share: f64,
    /// `server`, `batches` or `adhoc_bf`.
    pub plan: String,
    pub ef_runtime: Option<u32>,
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
    log(&format!("reading back {} items", opts.items));
    let cat = catalog::read_back(&mut con, &ns, opts.dim).await?;
    if cat.len() != opts.items {
        bail!(
            "read back {} items with a vector, price and category; expected {}",
            cat.len(),
            opts.items
        );
    }
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
            let target = RawTarget {
                ef_runtime: plan.ef.unwrap_or(opts.ef_runtime),
                hybrid_policy: plan.policy,
                ..base.clone()
            };
            let cell = measure(&target, &queries, &truths, &label, share, &plan).await;
            log(&format!(
                "  {:<9} ef {:>5}: recall {:.3} (worst decile {:.3}), p50 {:.2} ms, p99 {:.2} ms{}",
                cell.plan,
                cell.ef_runtime.map_or("-".into(), |e| e.to_string()),
                cell.mean_recall,
                cell.worst_decile_recall,
                cell.latency.p50_ms,
                cell.latency.p99_ms,
                if cell.errors > 0 {
                    format!(", {} errors", cell.errors)
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
        candidates: opts.raw_candidates.max(opts.k),
        hnsw_m: vector_opts.get("M").cloned(),
        hnsw_ef_construction: vector_opts.get("ef_construction").cloned(),
        used_memory_bytes: catalog::used_memory(&mut con).await?,
        load_start,
        load_end: load_average(),
        cells,
    })
}

struct Plan {
    name: &'static str,
    ef: Option<u32>,
    policy: Option<HybridPolicy>,
}

fn plans(filter: &Filter, efs: &[u32]) -> Vec<Plan> {
    let mut out: Vec<Plan> = efs
        .iter()
        .map(|&ef| Plan {
            name: "server",
            ef: Some(ef),
            policy: None,
        })
        .collect();
    if !filter.is_all() {
        out.extend(efs.iter().map(|&ef| Plan {
            name: "batches",
            ef: Some(ef),
            policy: Some(HybridPolicy::Batches { batch_size: None }),
        }));
        out.push(Plan {
            name: "adhoc_bf",
            ef: None,
            policy: Some(HybridPolicy::AdhocBf),
        });
    }
    out
}

async fn measure(
    target: &RawTarget,
    queries: &[BenchQuery],
    truths: &[Vec<String>],
    rung: &str,
    share: f64,
    plan: &Plan,
) -> SweepCell {
    let mut hist = stats::new_histogram();
    let mut recalls = Vec::with_capacity(queries.len());
    let mut errors = 0;
    let mut first_error = None;
    for (q, truth) in queries.iter().zip(truths) {
        let start = Instant::now();
        match target.run(q).await {
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
    SweepCell {
        rung: rung.to_owned(),
        share,
        plan: plan.name.to_owned(),
        ef_runtime: plan.ef,
        mean_recall,
        worst_decile_recall: decile.iter().sum::<f64>() / decile.len().max(1) as f64,
        errors,
        first_error,
        latency: LatencySummary::from_histogram(&hist),
    }
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
         {:.1} -> {:.1}. One query in flight; each query sent once per plan.\n",
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
        let _ = writeln!(
            s,
            "| {} | {:.2}% | {} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {} |",
            c.rung,
            c.share * 100.0,
            c.plan,
            c.ef_runtime.map_or("-".into(), |e| e.to_string()),
            c.mean_recall,
            c.worst_decile_recall,
            c.latency.p50_ms,
            c.latency.p99_ms,
            c.errors
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtered_rungs_get_every_plan_and_unfiltered_only_the_graph() {
        let efs = [100, 400];
        let all = plans(&Filter::All, &efs);
        assert_eq!(
            all.iter().map(|p| (p.name, p.ef)).collect::<Vec<_>>(),
            [("server", Some(100)), ("server", Some(400))]
        );
        let f = Filter::range(
            "price",
            std::ops::Bound::Included(1.0),
            std::ops::Bound::Included(2.0),
        );
        let filtered = plans(&f, &efs);
        assert_eq!(
            filtered.iter().map(|p| (p.name, p.ef)).collect::<Vec<_>>(),
            [
                ("server", Some(100)),
                ("server", Some(400)),
                ("batches", Some(100)),
                ("batches", Some(400)),
                ("adhoc_bf", None)
            ]
        );
    }
}
