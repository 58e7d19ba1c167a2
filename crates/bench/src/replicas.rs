//! Read scaling with replicas: the capacity step behind `cargo xtask bench --replicas N`.
//!
//! xtask seeds the catalog once, starts N replicas, and for each n in 0..=N restarts the gateway
//! with the first n replicas in `redis.replicas` and runs `redrec-bench --capacity-only
//! --read-urls <those n>` ([`run`]). Each step measures the closed-loop maximum of the raw plan
//! and of the gateway over the same nodes: the raw side reads the acting user's features from
//! the primary and sends its searches to the replicas in turn (the gateway's routing), or to the
//! primary when n = 0. [`table`] then renders every step side by side with the CPU of each
//! process, since on a small machine the replicas share the cores with the primary, the gateway
//! and the load generator.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use redrec_core::{
    keys::Namespace,
    synthetic::{Synthetic, SyntheticParams},
};
use serde::{Deserialize, Serialize};

use crate::{
    catalog,
    raw::{RawConn, RawTarget},
    report::{Phase, Side},
    stats::{self, CpuUse, Process},
    suite::{self, Options},
    workload,
};

/// The file each step writes into its output directory.
pub const STEP_FILE: &str = "capacity.json";
/// The table [`write_table`] writes next to the steps.
pub const TABLE_FILE: &str = "replicas.md";

/// One closed-loop phase, reduced to what the table shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityRow {
    /// `raw` or `gateway`.
    pub side: String,
    pub concurrency: usize,
    pub qps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Percent of one core per process over the phase (`redis` is the primary, `replica-i` the
    /// i-th replica, `all` the whole machine).
    pub cpu: Vec<CpuUse>,
}

/// One step: the catalog searched on `replicas` replicas (0: the primary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStep {
    pub replicas: usize,
    /// Where the searches went.
    pub search_nodes: Vec<String>,
    pub items: usize,
    pub dim: usize,
    pub load_average_start: f64,
    pub load_average_end: f64,
    pub rows: Vec<CapacityRow>,
}

impl CapacityStep {
    /// The best closed-loop row of one side (highest throughput).
    pub fn best(&self, side: &str) -> Option<&CapacityRow> {
        self.rows
            .iter()
            .filter(|r| r.side == side)
            .max_by(|a, b| a.qps.total_cmp(&b.qps))
    }
}

fn row(phase: &Phase) -> CapacityRow {
    CapacityRow {
        side: phase.side.name().to_owned(),
        concurrency: phase.concurrency.unwrap_or(0),
        qps: phase.run.achieved_qps,
        p50_ms: phase.run.latency.p50_ms,
        p99_ms: phase.run.latency.p99_ms,
        ok: phase.run.ok,
        errors: phase.run.errors,
        first_error: phase.run.first_error.clone(),
        cpu: phase.cpu.clone(),
    }
}

/// Measures one step over a catalog already seeded with `opts.items` (`--reuse`): the raw plan
/// with its searches on `read_urls` (the primary when empty), then the gateway when
/// `opts.gateway_url` is set (it must have been started with the same replicas).
pub async fn run(opts: &Options, read_urls: &[String]) -> Result<CapacityStep> {
    suite::validate(opts)?;
    let load_average_start = crate::report::load_average();
    let ns = Namespace::new(&opts.namespace);
    let mut con = catalog::connect(&opts.redis_url).await?;
    let mut procs = suite::watched_processes(&mut con, opts).await;
    for (i, url) in read_urls.iter().enumerate() {
        let mut c = catalog::connect(url)
            .await
            .with_context(|| format!("replica {url} does not answer"))?;
        match catalog::server_pid(&mut c).await {
            Ok(pid) if stats::cpu_ticks(pid).is_some() => procs.push(Process {
                name: format!("replica-{}", i + 1),
                pid,
            }),
            _ => eprintln!("bench: replica {url} runs elsewhere: no CPU figures for it"),
        }
    }
    let spec = SyntheticParams {
        items: opts.items as u64,
        dims: opts.dim,
        seed: opts.seed,
    };
    let cat = catalog::read_back(&mut con, &ns, opts.dim).await?;
    if cat.len() != opts.items {
        bail!(
            "the index holds {} readable items, expected {}: seed the catalog first \
             (redrec-bench --seed-only --items {})",
            cat.len(),
            opts.items,
            opts.items
        );
    }
    let generator = Synthetic::new(spec);
    let users = workload::make_users(&generator, &cat, opts.users, opts.seed);
    let queries = Arc::new(workload::make_queries(
        &generator, &cat, &users, opts.mix, 4_000, opts.k, opts.seed,
    ));
    let mut notes = Vec::new();
    let gateway = suite::connect_gateway(opts, &users, &mut notes).await?;

    let mut raw = RawTarget::new(
        RawConn::mux(&opts.redis_url).await?,
        ns,
        opts.dim,
        opts.ef_runtime,
    );
    raw.candidates = opts.raw_candidates;
    if !read_urls.is_empty() {
        raw.searches = Some(RawConn::spread(read_urls).await?);
    }
    let mut phases = Vec::new();
    suite::closed_phases(
        Side::Raw,
        Arc::new(raw),
        &queries,
        opts,
        &procs,
        &mut phases,
    )
    .await;
    if let Some(gw) = gateway {
        suite::closed_phases(Side::Gateway, gw, &queries, opts, &procs, &mut phases).await;
    }
    Ok(CapacityStep {
        replicas: read_urls.len(),
        search_nodes: if read_urls.is_empty() {
            vec![opts.redis_url.clone()]
        } else {
            read_urls.to_vec()
        },
        items: opts.items,
        dim: opts.dim,
        load_average_start,
        load_average_end: crate::report::load_average(),
        rows: phases.iter().map(row).collect(),
    })
}

/// Writes the step as `<out>/capacity.json`.
pub fn write_step(step: &CapacityStep, out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(STEP_FILE);
    std::fs::write(&path, serde_json::to_vec_pretty(step)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Reads every `<dir>/*/capacity.json`, ordered by the number of replicas.
pub fn read_steps(dir: &Path) -> Result<Vec<CapacityStep>> {
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path().join(STEP_FILE);
        if path.is_file() {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            steps.push(
                serde_json::from_slice::<CapacityStep>(&bytes)
                    .with_context(|| format!("{} is not a capacity step", path.display()))?,
            );
        }
    }
    if steps.is_empty() {
        bail!(
            "no {STEP_FILE} under {}: run the steps first (cargo xtask bench --replicas N)",
            dir.display()
        );
    }
    steps.sort_by_key(|s| s.replicas);
    Ok(steps)
}

fn cpu_of(row: &CapacityRow, process: &str) -> Option<f64> {
    row.cpu
        .iter()
        .find(|c| c.process == process)
        .map(|c| c.percent_of_core)
}

/// The markdown table of the steps: per side, the best closed-loop throughput, its p50/p99,
/// the scaling against the step without replicas, and the CPU of every process in that phase.
pub fn table(steps: &[CapacityStep]) -> String {
    let most = steps.iter().map(|s| s.replicas).max().unwrap_or(0);
    let mut procs: Vec<String> = vec!["redis".into()];
    procs.extend((1..=most).map(|i| format!("replica-{i}")));
    procs.extend(["gateway".into(), "bench".into(), "all".into()]);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Closed loop, best of the configured concurrencies; CPU in percent of one core over that phase \
         (`redis` is the primary, `all` the whole machine, {} cores).\n",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let mut header = String::from(
        "| side | replicas | searches on | max QPS | vs 0 replicas | workers | p50 ms | p99 ms | errors |",
    );
    let mut rule = String::from("|---|---|---|---|---|---|---|---|---|");
    for p in &procs {
        let _ = write!(header, " {p} CPU % |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for side in ["raw", "gateway"] {
        let base = steps
            .iter()
            .find(|s| s.replicas == 0)
            .and_then(|s| s.best(side))
            .map(|r| r.qps);
        for step in steps {
            let Some(r) = step.best(side) else { continue };
            let ratio = match base {
                Some(b) if b > 0.0 => format!("{:.2}x", r.qps / b),
                _ => "-".into(),
            };
            let on = if step.replicas == 0 {
                "primary".to_owned()
            } else {
                format!("{} replica(s)", step.replicas)
            };
            let _ = write!(
                out,
                "| {side} | {} | {on} | {:.0} | {ratio} | {} | {:.2} | {:.2} | {} |",
                step.replicas, r.qps, r.concurrency, r.p50_ms, r.p99_ms, r.errors
            );
            for p in &procs {
                match cpu_of(r, p) {
                    Some(v) => {
                        let _ = write!(out, " {v:.0} |");
                    }
                    None => out.push_str(" - |"),
                }
            }
            out.push('\n');
        }
    }
    let loads: Vec<String> = steps
        .iter()
        .map(|s| {
            format!(
                "{} replica(s): {:.2} -> {:.2}",
                s.replicas, s.load_average_start, s.load_average_end
            )
        })
        .collect();
    let _ = writeln!(out, "\nLoad average per step: {}.", loads.join("; "));
    out
}

/// Renders the steps under `dir` into `<dir>/replicas.md`.
pub fn write_table(dir: &Path) -> Result<(PathBuf, String)> {
    let steps = read_steps(dir)?;
    let first = &steps[0];
    let text = format!(
        "# Read scaling with replicas ({} items x {} dims)\n\n{}",
        first.items,
        first.dim,
        table(&steps)
    );
    let path = dir.join(TABLE_FILE);
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok((path, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(replicas: usize, raw_qps: f64, gw_qps: f64) -> CapacityStep {
        let r = |side: &str, c: usize, qps: f64| CapacityRow {
            side: side.into(),
            concurrency: c,
            qps,
            p50_ms: 1.0,
            p99_ms: 4.0,
            ok: 100,
            errors: 0,
            first_error: None,
            cpu: vec![
                CpuUse {
                    process: "redis".into(),
                    percent_of_core: 90.0,
                },
                CpuUse {
                    process: "all".into(),
                    percent_of_core: 190.0,
                },
            ],
        };
        CapacityStep {
            replicas,
            search_nodes: vec![],
            items: 1000,
            dim: 8,
            load_average_start: 0.5,
            load_average_end: 1.5,
            rows: vec![
                r("raw", 8, raw_qps / 2.0),
                r("raw", 32, raw_qps),
                r("gateway", 8, gw_qps),
            ],
        }
    }

    #[test]
    fn the_table_scales_each_side_against_its_own_step_without_replicas() {
        let t = table(&[step(0, 400.0, 200.0), step(2, 600.0, 300.0)]);
        assert!(
            t.contains("| raw | 0 | primary | 400 | 1.00x | 32 |"),
            "{t}"
        );
        assert!(
            t.contains("| raw | 2 | 2 replica(s) | 600 | 1.50x | 32 |"),
            "{t}"
        );
        assert!(
            t.contains("| gateway | 2 | 2 replica(s) | 300 | 1.50x | 8 |"),
            "{t}"
        );
        // one CPU column per replica of the largest step; absent figures are dashes
        assert!(t.contains("replica-2 CPU %"), "{t}");
        assert!(t.contains("| 90 | - | - | - | - | 190 |"), "{t}");
    }

    #[test]
    fn steps_round_trip_through_their_files_in_replica_order() {
        let dir = std::env::temp_dir().join(format!("redrec-replicas-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (n, name) in [(2, "replicas-2"), (0, "replicas-0"), (1, "replicas-1")] {
            write_step(&step(n, 100.0 * (n + 1) as f64, 50.0), &dir.join(name)).unwrap();
        }
        let steps = read_steps(&dir).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.replicas).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(steps[1], step(1, 200.0, 50.0));
        let (path, text) = write_table(&dir).unwrap();
        assert!(path.ends_with(TABLE_FILE));
        assert!(
            text.contains("| raw | 1 | 1 replica(s) | 200 | 2.00x |"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_steps_is_an_error_that_says_what_to_run() {
        let dir =
            std::env::temp_dir().join(format!("redrec-replicas-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = read_steps(&dir).unwrap_err().to_string();
        assert!(err.contains("cargo xtask bench --replicas"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
