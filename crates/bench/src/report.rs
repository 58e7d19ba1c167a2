//! The report: every figure of a run as one serialisable value, the targets of issue 9 evaluated
//! as ratios from the same run, and the Markdown rendering written to `target/bench/report.md`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    catalog::IngestResult,
    driver::{RunResult, StageCpu, StageLatency},
    stats::{CpuUse, LatencySummary, RssSeries},
    workload::Mix,
};

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    /// 1-minute load average when the run started and when it ended (other work on the machine
    /// shows here; above the CPU count, the numbers are noisy).
    pub load_start: f64,
    pub load_end: f64,
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map_or("unknown".into(), |(_, v)| v.trim().to_owned()),
            memory_gib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0 / 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            load_start: 0.0,
            load_end: load_average(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub items: usize,
    pub dim: usize,
    pub seed: u64,
    pub quick: bool,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub k: usize,
    pub ef_runtime: u32,
    pub raw_candidates: usize,
    pub mix: Mix,
    pub closed_loop_concurrency: Vec<usize>,
    pub open_loop_max_in_flight: usize,
    pub redis_url: String,
    pub gateway_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Raw,
    Gateway,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Raw => "raw",
            Side::Gateway => "gateway",
        }
    }
}

/// Background writes during a phase (write-interference runs).
#[derive(Debug, Clone, Serialize)]
pub struct WriteStats {
    pub rate_per_sec: f64,
    pub ok: u64,
    pub errors: u64,
    pub latency: LatencySummary,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub side: Side,
    /// `closed` or `open`.
    pub mode: String,
    /// Closed loop: concurrency. Open loop: None.
    pub concurrency: Option<usize>,
    /// Open loop: offered load as a share of the raw max QPS.
    pub load: Option<f64>,
    pub writes: Option<WriteStats>,
    pub run: RunResult,
    pub cpu: Vec<CpuUse>,
    /// The gateway's CPU per completed request by stage, from its `/metrics` counters (empty for
    /// raw phases and gateways that do not export them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpu_stages: Vec<StageCpu>,
    /// Server-side stage timings reported by the gateway (empty for raw phases).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageLatency>,
}

impl Phase {
    /// CPU time `process` spent per completed request (answered or failed) in this phase, in
    /// microseconds.
    pub fn cpu_us_per_request(&self, process: &str) -> Option<f64> {
        let c = self.cpu.iter().find(|c| c.process == process)?;
        let completed = (self.run.ok + self.run.errors) as f64 / self.run.elapsed_secs;
        (completed > 0.0 && completed.is_finite())
            .then(|| c.percent_of_core / 100.0 * 1e6 / completed)
    }

    pub fn label(&self) -> String {
        let mut s = match (self.mode.as_str(), self.concurrency, self.load) {
            ("closed", Some(c), _) => format!("closed c={c}"),
            (_, _, Some(l)) => format!("open {:.0}%", l * 100.0),
            (m, _, _) => m.to_owned(),
        };
        if self.writes.is_some() {
            s.push_str(" +writes");
        }
        s
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LadderRung {
    pub label: String,
    pub target_share: f64,
    pub actual_share: f64,
    pub queries: usize,
    pub mean_recall: f64,
    pub min_recall: f64,
    /// Sequential (one in flight) latency of the filtered KNN on raw Redis.
    pub latency: LatencySummary,
    /// Recall of the same queries through the gateway, when it runs.
    pub gateway_mean_recall: Option<f64>,
    /// The same filtered queries forced to `HYBRID_POLICY ADHOC_BF` (brute force over the
    /// filtered set), for comparison with RediSearch's own choice.
    pub adhoc_bf: Option<PolicyRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyRun {
    pub mean_recall: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Multiplexed connection vs deadpool pool for raw queries.
#[derive(Debug, Clone, Serialize)]
pub struct ConnCompare {
    pub concurrency: usize,
    pub multiplexed: RunResult,
    pub pool: RunResult,
    pub pool_size: usize,
    pub faster: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cmp {
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::AtMost => "<=",
            Cmp::AtLeast => ">=",
            Cmp::Below => "<",
        }
    }
    fn holds(self, x: f64, limit: f64) -> bool {
        match self {
            Cmp::AtMost => x <= limit,
            Cmp::AtLeast => x >= limit,
            Cmp::Below => x < limit,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub measured: Option<f64>,
    pub cmp: Cmp,
    pub limit: f64,
    pub pass: Option<bool>,
    pub note: String,
}

/// The project's own loader (`redrec-ingest seed synthetic`), timed by xtask from the outside.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LoaderIngest {
    pub loader: String,
    pub items: usize,
    pub dim: usize,
    /// Wall-clock seconds of the whole command (it returns once the index is 100% indexed).
    pub secs: f64,
    pub items_per_sec: f64,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_unix: u64,
    pub machine: Machine,
    pub params: Params,
    pub ingest: Option<IngestResult>,
    pub loader_ingest: Option<LoaderIngest>,
    pub phases: Vec<Phase>,
    pub ladder: Vec<LadderRung>,
    pub connections: Option<ConnCompare>,
    pub rss: Vec<RssSeries>,
    pub targets: Vec<TargetCheck>,
    pub notes: Vec<String>,
}

impl Report {
    /// Highest closed-loop throughput of a side.
    pub fn max_qps(&self, side: Side) -> Option<f64> {
        self.phases
            .iter()
            .filter(|p| p.side == side && p.mode == "closed")
            .map(|p| p.run.achieved_qps)
            .reduce(f64::max)
    }

    pub fn open(&self, side: Side, load: f64, writes: bool) -> Option<&Phase> {
        self.phases.iter().find(|p| {
            p.side == side
                && p.mode == "open"
                && p.load.is_some_and(|l| (l - load).abs() < 1e-6)
                && p.writes.is_some() == writes
        })
    }

    /// Evaluates the targets from this run's figures. A latency ratio only passes when
    /// the phases behind it served (almost) every request: a fast error is not a fast answer.
    pub fn evaluate_targets(&self) -> Vec<TargetCheck> {
        let mut out = Vec::new();
        let mut check = |name: String,
                         measured: Option<f64>,
                         cmp: Cmp,
                         limit: f64,
                         missing: &str,
                         failing: Option<String>| {
            let pass = measured.map(|m| cmp.holds(m, limit) && failing.is_none());
            out.push(TargetCheck {
                name,
                measured,
                cmp,
                limit,
                pass,
                note: match (measured, failing) {
                    (None, _) => missing.to_owned(),
                    (Some(_), Some(f)) => f,
                    (Some(_), None) => String::new(),
                },
            });
        };
        let no_gw = "not measured: the gateway was not part of this run";
        for load in [0.5, 0.8] {
            let (g, r) = (
                self.open(Side::Gateway, load, false),
                self.open(Side::Raw, load, false),
            );
            check(
                format!("gateway p99 / raw p99 at {:.0}% of raw max", load * 100.0),
                p99_ratio(g, r),
                Cmp::AtMost,
                1.2,
                no_gw,
                failing(&[g, r]),
            );
        }
        let qps_ratio = match (self.max_qps(Side::Gateway), self.max_qps(Side::Raw)) {
            (Some(g), Some(r)) if r > 0.0 => Some(g / r),
            _ => None,
        };
        check(
            "gateway max QPS / raw max QPS (successful requests)".into(),
            qps_ratio,
            Cmp::AtLeast,
            0.8,
            no_gw,
            None,
        );
        let half = self.open(Side::Gateway, 0.5, false);
        check(
            "gateway CPU per request at 50% of raw max, µs".into(),
            half.and_then(|p| p.cpu_us_per_request("gateway")),
            Cmp::AtMost,
            300.0,
            no_gw,
            None,
        );
        let filtered: Vec<&LadderRung> = self.ladder.iter().filter(|r| r.label != "none").collect();
        let min_recall = filtered.iter().map(|r| r.mean_recall).reduce(f64::min);
        check(
            "filtered recall@10, worst rung (raw FT.SEARCH)".into(),
            min_recall,
            Cmp::AtLeast,
            0.95,
            "not measured: no ladder",
            None,
        );
        let rung = |label: &str| self.ladder.iter().find(|r| r.label == label);
        let sel = match (rung("1%"), rung("none")) {
            (Some(a), Some(b)) if b.latency.p99_ms > 0.0 => {
                Some(a.latency.p99_ms / b.latency.p99_ms)
            }
            _ => None,
        };
        check(
            "p99 at 1% selectivity / unfiltered p99".into(),
            sel,
            Cmp::AtMost,
            2.0,
            "not measured: no ladder",
            None,
        );
        for side in [Side::Raw, Side::Gateway] {
            let (w, r) = (self.open(side, 0.5, true), self.open(side, 0.5, false));
            check(
                format!(
                    "{} p99 with 1:10 writes / read-only p99 (50% load)",
                    side.name()
                ),
                p99_ratio(w, r),
                Cmp::AtMost,
                1.5,
                if side == Side::Gateway {
                    no_gw
                } else {
                    "not measured"
                },
                failing(&[w, r]),
            );
        }
        let (abs_side, abs_note) = if self.open(Side::Gateway, 0.8, false).is_some() {
            (Side::Gateway, "")
        } else {
            (Side::Raw, " (raw: no gateway in this run)")
        };
        let abs = self.open(abs_side, 0.8, false);
        check(
            format!(
                "{} p99 at 80% of raw max, ms, on {} items{abs_note}",
                abs_side.name(),
                self.params.items
            ),
            abs.map(|p| p.run.latency.p99_ms),
            Cmp::Below,
            10.0,
            "not measured",
            failing(&[abs]),
        );
        check(
            "loader items/s / raw writer items/s, to 100% indexed".into(),
            self.loader_ratio(),
            Cmp::AtLeast,
            0.9,
            "not measured: the catalog was reused or the loader failed",
            None,
        );
        out
    }

    /// The project's loader's items/s over the bench's own pipelined writer's, both until 100%
    /// indexed on the same server in the same run.
    pub fn loader_ratio(&self) -> Option<f64> {
        let (raw, loader) = (self.ingest.as_ref()?, self.loader_ingest.as_ref()?);
        (loader.ok && raw.items_per_sec > 0.0).then(|| loader.items_per_sec / raw.items_per_sec)
    }

    /// The report as Markdown: one section per helper below, in reading order.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        self.md_header(&mut md);
        self.md_targets(&mut md);
        self.md_throughput(&mut md);
        self.md_phase_details(&mut md);
        self.md_ladder(&mut md);
        self.md_connections(&mut md);
        self.md_ingest_memory(&mut md);
        self.md_notes(&mut md);
        md
    }

    /// Title, machine and run parameters.
    fn md_header(&self, md: &mut String) {
        let p = &self.params;
        let m = &self.machine;
        let _ = writeln!(md, "# redrec benchmark report\n");
        let _ = writeln!(
            md,
            "Machine: {} CPUs ({}), {:.1} GiB RAM, Linux {}. Everything (Redis, gateway, load \
             generator) shares these CPUs. Load average {:.1} at the start, {:.1} at the end; the \
             CPU column's `all` is every process on the machine, so `all` minus the named ones is \
             work from outside the benchmark.\n",
            m.cpus, m.cpu_model, m.memory_gib, m.kernel, m.load_start, m.load_end
        );
        let _ = writeln!(
            md,
            "Catalog: {} items x {} dims (seed {}), k = {}, EF_RUNTIME = {}, raw KNN fetches {} \
             candidates (as the gateway does for reranking), mix = {}% vector / {}% personalised / \
             {}% text. Measured phases last {:.0} s after {:.0} s warm-up{}.\n",
            p.items,
            p.dim,
            p.seed,
            p.k,
            p.ef_runtime,
            p.raw_candidates,
            p.mix.vector,
            p.mix.personal,
            p.mix.text,
            p.duration_secs,
            p.warmup_secs,
            if p.quick { " (--quick)" } else { "" }
        );
    }

    /// The targets table, one row per target with PASS or MISS.
    fn md_targets(&self, md: &mut String) {
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | measured | limit | result |");
        let _ = writeln!(md, "|---|---:|---:|---|");
        for t in &self.targets {
            let (measured, result) = match (t.measured, t.pass) {
                (Some(v), Some(true)) => (format!("{v:.2}"), "PASS".to_owned()),
                (Some(v), _) if t.note.is_empty() => (format!("{v:.2}"), "MISS".to_owned()),
                (Some(v), _) => (format!("{v:.2}"), format!("MISS: {}", t.note)),
                (None, _) => ("-".to_owned(), t.note.clone()),
            };
            let _ = writeln!(
                md,
                "| {} | {measured} | {} {} | {result} |",
                t.name,
                t.cmp.symbol(),
                t.limit
            );
        }
    }

    /// Throughput and latency of every phase, and each phase's first error.
    fn md_throughput(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Throughput and latency\n");
        let _ = writeln!(
            md,
            "Latency in ms. Open loop: measured from each request's intended send time.\n"
        );
        let _ = writeln!(
            md,
            "| side | phase | offered QPS | achieved QPS | ok | errors | p50 | p99 | p99.9 | max | CPU % of a core |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for ph in &self.phases {
            let r = &ph.run;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                ph.side.name(),
                ph.label(),
                r.offered_qps.map_or("-".into(), |q| format!("{q:.0}")),
                r.achieved_qps,
                r.ok,
                r.errors,
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.latency.p999_ms,
                r.latency.max_ms,
                cpu_cell(&ph.cpu)
            );
        }
        let _ = writeln!(
            md,
            "\nCPU per completed request, answered or failed (µs of CPU time; from the CPU column):\n"
        );
        let _ = writeln!(md, "| side | phase | gateway | redis | load generator |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|");
        for ph in &self.phases {
            let cell = |p: &str| {
                ph.cpu_us_per_request(p)
                    .map_or("-".into(), |us| format!("{us:.0}"))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                ph.side.name(),
                ph.label(),
                if ph.side == Side::Gateway {
                    cell("gateway")
                } else {
                    "-".into()
                },
                cell("redis"),
                cell("bench")
            );
        }
        self.md_stage_cpu(md);
        let errors: Vec<String> = self
            .phases
            .iter()
            .filter_map(|ph| {
                Some(format!(
                    "{} {}: {}",
                    ph.side.name(),
                    ph.label(),
                    ph.run.first_error.as_ref()?
                ))
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\nFirst error of each phase with errors:\n");
            for e in errors {
                let _ = writeln!(md, "- {e}");
            }
        }
    }

    /// The gateway's CPU per request split by stage (its `/metrics` counters), with what no
    /// stage accounts for: the process total (from /proc) minus the stages.
    fn md_stage_cpu(&self, md: &mut String) {
        let staged: Vec<&Phase> = self
            .phases
            .iter()
            .filter(|p| !p.cpu_stages.is_empty())
            .collect();
        let Some(first) = staged.first() else {
            return;
        };
        let names: Vec<&str> = first.cpu_stages.iter().map(|s| s.stage.as_str()).collect();
        let _ = writeln!(
            md,
            "\nGateway CPU per completed request by stage (µs; measured by the gateway on the threads \
             that ran each stage, `redrec_request_cpu_seconds_total`). `outside stages` is the process \
             total minus the stages: HTTP parsing and writing, Redis reply reading in the connection \
             tasks, the runtime, and the kernel's share.\n"
        );
        let _ = writeln!(
            md,
            "| phase | {} | outside stages | total |",
            names.join(" | ")
        );
        let _ = writeln!(md, "|---|{}---:|---:|", "---:|".repeat(names.len()));
        for ph in staged {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    ph.cpu_stages
                        .iter()
                        .find(|s| s.stage == *n)
                        .map_or("-".into(), |s| format!("{:.0}", s.us_per_request))
                })
                .collect();
            let staged_sum: f64 = ph.cpu_stages.iter().map(|s| s.us_per_request).sum();
            let total = ph.cpu_us_per_request("gateway");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                ph.label(),
                cells.join(" | "),
                total.map_or("-".into(), |t| format!("{:.0}", t - staged_sum)),
                total.map_or("-".into(), |t| format!("{t:.0}"))
            );
        }
    }

    /// Per phase: p99 by query kind, gateway stage timings, background writes.
    fn md_phase_details(&self, md: &mut String) {
        let _ = writeln!(md, "\n### p99 by query kind (ms)\n");
        let _ = writeln!(md, "| side | phase | vector | personal | text |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|");
        for ph in &self.phases {
            let cell = |name: &str| {
                ph.run
                    .by_kind
                    .iter()
                    .find(|k| k.kind.name() == name)
                    .map_or("-".into(), |k| format!("{:.2}", k.latency.p99_ms))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                ph.side.name(),
                ph.label(),
                cell("vector"),
                cell("personal"),
                cell("text")
            );
        }

        let staged: Vec<&Phase> = self
            .phases
            .iter()
            .filter(|p| !p.stages.is_empty())
            .collect();
        if !staged.is_empty() {
            let _ = writeln!(
                md,
                "\n### Gateway stage timings (server side, from each response's `timings`, p50 / p99 ms)\n"
            );
            let _ = writeln!(md, "| phase | stages |");
            let _ = writeln!(md, "|---|---|");
            for ph in staged {
                let cells: Vec<String> = ph
                    .stages
                    .iter()
                    .map(|s| format!("{} {:.2} / {:.2}", s.stage, s.p50_ms, s.p99_ms))
                    .collect();
                let _ = writeln!(md, "| {} | {} |", ph.label(), cells.join(", "));
            }
        }

        let writes: Vec<&Phase> = self.phases.iter().filter(|p| p.writes.is_some()).collect();
        if !writes.is_empty() {
            let _ = writeln!(md, "\n### Background writes (item vector HSETs)\n");
            let _ = writeln!(
                md,
                "| side | phase | write rate/s | ok | errors | write p99 ms |"
            );
            let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
            for ph in writes {
                let w = ph.writes.as_ref().expect("filtered");
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {} | {} | {:.2} |",
                    ph.side.name(),
                    ph.label(),
                    w.rate_per_sec,
                    w.ok,
                    w.errors,
                    w.latency.p99_ms
                );
            }
        }
    }

    /// The filter selectivity ladder.
    fn md_ladder(&self, md: &mut String) {
        let p = &self.params;
        if !self.ladder.is_empty() {
            let _ = writeln!(md, "\n## Filter selectivity ladder\n");
            let _ = writeln!(
                md,
                "Price-range filters holding the given share of the catalog; recall@{} against exact \
                 brute force over the matching items; latency of raw FT.SEARCH with one request in \
                 flight. The gateway column is the overlap of its final, reranked (and diversified) top {} \
                 with the exact neighbours: it shows how far ranking moves results, not a retrieval \
                 defect.\n",
                p.k, p.k
            );
            let _ = writeln!(
                md,
                "| rung | actual share | queries | mean recall | min recall | gateway overlap@k | p50 ms | p99 ms | ADHOC_BF recall | ADHOC_BF p50 / p99 ms |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for r in &self.ladder {
                let _ = writeln!(
                    md,
                    "| {} | {:.2}% | {} | {:.3} | {:.2} | {} | {:.2} | {:.2} | {} | {} |",
                    r.label,
                    r.actual_share * 100.0,
                    r.queries,
                    r.mean_recall,
                    r.min_recall,
                    r.gateway_mean_recall
                        .map_or("-".into(), |g| format!("{g:.3}")),
                    r.latency.p50_ms,
                    r.latency.p99_ms,
                    r.adhoc_bf
                        .as_ref()
                        .map_or("-".into(), |a| format!("{:.3}", a.mean_recall)),
                    r.adhoc_bf
                        .as_ref()
                        .map_or("-".into(), |a| format!("{:.2} / {:.2}", a.p50_ms, a.p99_ms)),
                );
            }
        }
    }

    /// One multiplexed connection vs a pool.
    fn md_connections(&self, md: &mut String) {
        if let Some(c) = &self.connections {
            let _ = writeln!(md, "\n## One multiplexed connection vs a deadpool pool\n");
            let _ = writeln!(
                md,
                "Raw vector queries, closed loop, {} workers; pool of {} connections.\n",
                c.concurrency, c.pool_size
            );
            let _ = writeln!(md, "| connection | QPS | p50 ms | p99 ms | errors |");
            let _ = writeln!(md, "|---|---:|---:|---:|---:|");
            for (name, r) in [("multiplexed", &c.multiplexed), ("pool", &c.pool)] {
                let _ = writeln!(
                    md,
                    "| {name} | {:.0} | {:.2} | {:.2} | {} |",
                    r.achieved_qps, r.latency.p50_ms, r.latency.p99_ms, r.errors
                );
            }
            let _ = writeln!(md, "\nFaster: **{}**.", c.faster);
        }
    }

    /// Ingest rate, memory per item, the project's loader and RSS over the run.
    fn md_ingest_memory(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Ingest and memory\n");
        match &self.ingest {
            Some(i) => {
                let _ = writeln!(
                    md,
                    "| items | batch x in flight | write s | until 100% indexed s | items/s | Redis used_memory delta | bytes/item |"
                );
                let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|");
                let _ = writeln!(
                    md,
                    "| {} | {} x {} | {:.1} | {:.1} | {:.0} | {:.1} MiB | {:.0} |",
                    i.items,
                    i.batch,
                    i.in_flight,
                    i.write_secs,
                    i.indexed_secs,
                    i.items_per_sec,
                    i.used_memory_after.saturating_sub(i.used_memory_before) as f64 / 1048576.0,
                    i.memory_per_item_bytes
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "The catalog was reused; ingest was not measured in this run."
                );
            }
        }
        if let Some(l) = &self.loader_ingest {
            let _ = writeln!(
                md,
                "\nThe project's loader, `{}` ({} items x {} dims, into its own namespace): {}",
                l.loader,
                l.items,
                l.dim,
                if l.ok {
                    format!(
                        "{:.1} s until 100% indexed, **{:.0} items/s**{}.",
                        l.secs,
                        l.items_per_sec,
                        self.loader_ratio()
                            .map(|r| format!(", {r:.2}x the raw writer's items/s above"))
                            .unwrap_or_default()
                    )
                } else {
                    "failed (see target/bench/ingest.log).".to_owned()
                }
            );
        }
        for s in &self.rss {
            if let (Some(first), Some(last), Some(max)) = (s.first_kb(), s.last_kb(), s.max_kb()) {
                let secs = s.samples.last().map_or(0.0, |x| x.0);
                let _ = writeln!(
                    md,
                    "\n{} RSS over {:.0} s of load ({} samples): first {:.1} MiB, last {:.1} MiB, max {:.1} MiB.",
                    s.process,
                    secs,
                    s.samples.len(),
                    first as f64 / 1024.0,
                    last as f64 / 1024.0,
                    max as f64 / 1024.0
                );
            }
        }
    }

    /// Free-form notes of the run.
    fn md_notes(&self, md: &mut String) {
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
    }
}

/// Share of requests above which a phase's latency does not count as a pass.
pub const MAX_ERROR_SHARE: f64 = 0.01;

fn p99_ratio(a: Option<&Phase>, b: Option<&Phase>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.run.latency.p99_ms > 0.0 && a.run.latency.count > 0 => {
            Some(a.run.latency.p99_ms / b.run.latency.p99_ms)
        }
        _ => None,
    }
}

/// Why the phases' latencies cannot pass: too many failed requests.
fn failing(phases: &[Option<&Phase>]) -> Option<String> {
    let bad: Vec<String> = phases
        .iter()
        .flatten()
        .filter_map(|p| {
            let total = p.run.ok + p.run.errors;
            let share = p.run.errors as f64 / total.max(1) as f64;
            (share > MAX_ERROR_SHARE).then(|| {
                format!(
                    "{} {} failed {:.1}% of requests",
                    p.side.name(),
                    p.label(),
                    share * 100.0
                )
            })
        })
        .collect();
    (!bad.is_empty()).then(|| bad.join("; "))
}

fn cpu_cell(cpu: &[CpuUse]) -> String {
    if cpu.is_empty() {
        return "-".into();
    }
    cpu.iter()
        .map(|c| format!("{} {:.0}", c.process, c.percent_of_core))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{driver::KindLatency, workload::Kind};

    fn lat(p99: f64) -> LatencySummary {
        LatencySummary {
            count: 100,
            mean_ms: p99 / 3.0,
            p50_ms: p99 / 4.0,
            p90_ms: p99 / 2.0,
            p99_ms: p99,
            p999_ms: p99 * 1.5,
            max_ms: p99 * 2.0,
            curve: vec![(0.5, p99 / 4.0), (0.99, p99)],
        }
    }

    fn run(qps: f64, p99: f64, offered: Option<f64>) -> RunResult {
        RunResult {
            offered_qps: offered,
            achieved_qps: qps,
            ok: 1000,
            errors: 0,
            first_error: None,
            elapsed_secs: 10.0,
            latency: lat(p99),
            by_kind: vec![KindLatency {
                kind: Kind::Vector,
                latency: lat(p99),
            }],
        }
    }

    fn phase(side: Side, mode: &str, load: Option<f64>, writes: bool, qps: f64, p99: f64) -> Phase {
        Phase {
            side,
            mode: mode.into(),
            concurrency: (mode == "closed").then_some(16),
            load,
            writes: writes.then(|| WriteStats {
                rate_per_sec: 100.0,
                ok: 500,
                errors: 0,
                latency: lat(1.0),
            }),
            run: run(qps, p99, load.map(|l| l * 1000.0)),
            cpu_stages: if side == Side::Gateway {
                vec![
                    StageCpu {
                        stage: "request".into(),
                        us_per_request: 40.0,
                    },
                    StageCpu {
                        stage: "retrieve".into(),
                        us_per_request: 210.0,
                    },
                ]
            } else {
                vec![]
            },
            stages: if side == Side::Gateway {
                vec![StageLatency {
                    stage: "retrieve".into(),
                    count: 10,
                    p50_ms: 1.25,
                    p99_ms: 3.5,
                }]
            } else {
                vec![]
            },
            cpu: std::iter::once("redis")
                .chain((side == Side::Gateway).then_some("gateway"))
                .map(|p| CpuUse {
                    process: p.into(),
                    percent_of_core: 93.4,
                })
                .collect(),
        }
    }

    fn report(with_gateway: bool) -> Report {
        let mut phases = vec![
            phase(Side::Raw, "closed", None, false, 1000.0, 8.0),
            phase(Side::Raw, "open", Some(0.5), false, 500.0, 2.0),
            phase(Side::Raw, "open", Some(0.8), false, 800.0, 4.0),
            phase(Side::Raw, "open", Some(0.5), true, 500.0, 2.6),
        ];
        if with_gateway {
            phases.extend([
                phase(Side::Gateway, "closed", None, false, 700.0, 12.0),
                phase(Side::Gateway, "open", Some(0.5), false, 500.0, 2.2),
                phase(Side::Gateway, "open", Some(0.8), false, 800.0, 6.0),
            ]);
        }
        let rung = |label: &str, recall: f64, p99: f64| LadderRung {
            label: label.into(),
            target_share: 0.01,
            actual_share: 0.0102,
            queries: 50,
            mean_recall: recall,
            min_recall: recall - 0.1,
            latency: lat(p99),
            gateway_mean_recall: None,
            adhoc_bf: Some(PolicyRun {
                mean_recall: 1.0,
                p50_ms: 0.5,
                p99_ms: 2.0,
            }),
        };
        let mut r = Report {
            started_unix: 0,
            machine: Machine {
                cpus: 2,
                cpu_model: "Test CPU".into(),
                memory_gib: 23.5,
                kernel: "6.1".into(),
                load_start: 1.5,
                load_end: 2.25,
            },
            params: Params {
                items: 100_000,
                dim: 128,
                seed: 42,
                quick: false,
                duration_secs: 20.0,
                warmup_secs: 2.0,
                k: 10,
                ef_runtime: 100,
                raw_candidates: 50,
                mix: Mix::default(),
                closed_loop_concurrency: vec![16],
                open_loop_max_in_flight: 256,
                redis_url: "redis://127.0.0.1:6391".into(),
                gateway_url: None,
            },
            ingest: None,
            loader_ingest: Some(LoaderIngest {
                loader: "redrec-ingest seed synthetic".into(),
                items: 100_000,
                dim: 128,
                secs: 40.0,
                items_per_sec: 2500.0,
                ok: true,
            }),
            phases,
            ladder: vec![
                rung("1%", 0.99, 3.0),
                rung("25%", 0.93, 1.0),
                rung("none", 0.97, 1.0),
            ],
            connections: None,
            rss: vec![RssSeries {
                process: "gateway".into(),
                samples: vec![(0.0, 10240), (5.0, 20480), (10.0, 15360)],
            }],
            targets: vec![],
            notes: vec!["a note".into()],
        };
        r.targets = r.evaluate_targets();
        r
    }

    fn target<'a>(r: &'a Report, prefix: &str) -> &'a TargetCheck {
        r.targets
            .iter()
            .find(|t| t.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no target {prefix}"))
    }

    #[test]
    fn loader_against_the_raw_writer_is_a_target() {
        let mut r = report(false);
        let t = target(&r, "loader items/s / raw writer");
        assert_eq!((t.measured, t.pass), (None, None));
        r.ingest = Some(IngestResult {
            items: 100_000,
            dim: 128,
            seed: 42,
            batch: 500,
            in_flight: 4,
            write_secs: 30.0,
            indexed_secs: 32.0,
            items_per_sec: 3125.0,
            used_memory_before: 0,
            used_memory_after: 0,
            memory_per_item_bytes: 0.0,
        });
        r.targets = r.evaluate_targets();
        let t = target(&r, "loader items/s / raw writer");
        assert_eq!((t.measured, t.pass), (Some(0.8), Some(false)));
        let md = r.to_markdown();
        assert!(
            md.contains("**2500 items/s**, 0.80x the raw writer's items/s above."),
            "{md}"
        );
    }

    #[test]
    fn evaluates_every_target_as_a_ratio_of_the_same_run() {
        let r = report(true);
        let t = target(&r, "gateway p99 / raw p99 at 50%");
        assert!((t.measured.unwrap() - 1.1).abs() < 1e-9 && t.pass == Some(true));
        let t = target(&r, "gateway p99 / raw p99 at 80%");
        assert!((t.measured.unwrap() - 1.5).abs() < 1e-9 && t.pass == Some(false));
        let t = target(&r, "gateway max QPS");
        assert!((t.measured.unwrap() - 0.7).abs() < 1e-9 && t.pass == Some(false));
        assert!(t.note.is_empty());
        let t = target(&r, "filtered recall");
        assert_eq!((t.measured, t.pass), (Some(0.93), Some(false)));
        let t = target(&r, "p99 at 1%");
        assert_eq!((t.measured, t.pass), (Some(3.0), Some(false)));
        let t = target(&r, "raw p99 with 1:10 writes");
        assert!((t.measured.unwrap() - 1.3).abs() < 1e-9 && t.pass == Some(true));
        let t = target(&r, "gateway p99 at 80% of raw max, ms");
        assert_eq!((t.measured, t.pass), (Some(6.0), Some(true)));
        let t = target(&r, "gateway CPU per request");
        // 93.4% of a core, 1000 requests in 10 s: 9340 µs per request
        assert!(
            (t.measured.unwrap() - 9340.0).abs() < 1e-3,
            "{:?}",
            t.measured
        );
        assert_eq!(t.pass, Some(false));
        assert_eq!(r.targets.len(), 10);
    }

    #[test]
    fn fast_errors_do_not_pass_a_latency_target() {
        let mut r = report(true);
        let gw80 = r
            .phases
            .iter_mut()
            .find(|p| p.side == Side::Gateway && p.load == Some(0.8))
            .unwrap();
        gw80.run.errors = 500;
        r.targets = r.evaluate_targets();
        let t = target(&r, "gateway p99 at 80% of raw max, ms");
        assert_eq!((t.measured, t.pass), (Some(6.0), Some(false)));
        assert_eq!(t.note, "gateway open 80% failed 33.3% of requests");
        let t = target(&r, "gateway p99 / raw p99 at 50%");
        assert_eq!(t.pass, Some(true));
        assert!(
            r.to_markdown()
                .contains("| 6.00 | < 10 | MISS: gateway open 80% failed 33.3% of requests |")
        );
    }

    #[test]
    fn missing_gateway_is_reported_not_guessed() {
        let r = report(false);
        let t = target(&r, "gateway max QPS");
        assert_eq!((t.measured, t.pass), (None, None));
        assert!(t.note.contains("gateway was not part"));
        let t = target(&r, "raw p99 at 80% of raw max, ms");
        assert_eq!(t.measured, Some(4.0));
    }

    #[test]
    fn renders_the_tables() {
        let md = report(true).to_markdown();
        for needle in [
            "# redrec benchmark report",
            "2 CPUs (Test CPU), 23.5 GiB RAM",
            "Load average 1.5 at the start, 2.2 at the end",
            "| gateway p99 / raw p99 at 80% of raw max | 1.50 | <= 1.2 | MISS |",
            "| raw | closed c=16 | - | 1000 | 1000 | 0 | 2.00 | 8.00 | 12.00 | 16.00 | redis 93 |",
            "| raw | open 50% +writes | 500 | 500 |",
            "| raw | open 50% | 500 | 500 | 1000 | 0 | 0.50 | 2.00 |",
            "| 1% | 1.02% | 50 | 0.990 | 0.89 | - | 0.75 | 3.00 | 1.000 | 0.50 / 2.00 |",
            "gateway RSS over 10 s of load (3 samples): first 10.0 MiB, last 15.0 MiB, max 20.0 MiB.",
            "The catalog was reused",
            "`redrec-ingest seed synthetic` (100000 items x 128 dims, into its own namespace): 40.0 s until 100% indexed, **2500 items/s**.",
            "- a note",
            "| open 50% | retrieve 1.25 / 3.50 |",
            "| gateway | open 50% | 9340 | 9340 | - |",
            "| raw | open 50% | - | 9340 | - |",
            "| phase | request | retrieve | outside stages | total |",
            "| open 50% | 40 | 210 | 9090 | 9340 |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in:\n{md}");
        }
        let json = serde_json::to_value(report(true)).unwrap();
        assert_eq!(json["targets"][0]["cmp"], "<=");
        assert_eq!(json["phases"][0]["side"], "raw");
    }
}
