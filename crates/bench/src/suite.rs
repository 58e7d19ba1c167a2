//! The benchmark suite: every phase of one run, in order, producing a [`Report`].

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use redis::aio::MultiplexedConnection;
use redrec_core::{
    keys::Namespace,
    query::HybridPolicy,
    synthetic::{Rng, Synthetic, SyntheticParams},
};
use serde_json::json;

use crate::{
    catalog::{self, StoredCatalog},
    driver::{RunResult, StageCpu, Target, closed_loop, open_loop, stage_cpu},
    http::{GatewayTarget, HttpClient},
    plot,
    raw::{RawConn, RawTarget},
    recall,
    report::{
        ConnCompare, LadderRung, LoaderIngest, Machine, Params, Phase, PolicyRun, Report, Side,
        WriteStats,
    },
    schedule::Schedule,
    stats::{self, LatencySummary, Process, RssSeries},
    workload::{self, BenchQuery, BenchUser, Kind, Mix},
};

/// Everything a run needs (the CLI fills it).
#[derive(Debug, Clone)]
pub struct Options {
    pub redis_url: String,
    pub gateway_url: Option<String>,
    pub gateway_pid: Option<u32>,
    /// API key for the gateway's write routes (user seeding goes through `POST /v1/events`).
    pub gateway_api_key: Option<String>,
    /// Candidates per raw KNN (what the gateway retrieves for reranking).
    pub raw_candidates: usize,
    pub namespace: String,
    pub items: usize,
    pub dim: usize,
    pub seed: u64,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub quick: bool,
    pub reuse: bool,
    pub ef_runtime: u32,
    /// HNSW build parameters when the bench seeds the catalog.
    pub hnsw: catalog::HnswBuild,
    pub k: usize,
    pub concurrency: Vec<usize>,
    pub max_in_flight: usize,
    pub users: usize,
    pub mix: Mix,
    /// Namespaces dropped before seeding (e.g. the one the project's loader was timed in).
    pub drop_namespaces: Vec<String>,
    pub out: PathBuf,
}

impl Options {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }
    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_secs)
    }
    /// Queries per selectivity rung for recall.
    fn ladder_queries(&self) -> usize {
        if self.quick { 30 } else { 100 }
    }
    fn ladder_latency(&self) -> Duration {
        Duration::from_secs_f64((self.duration_secs / 4.0).max(1.5))
    }
}

fn log(msg: &str) {
    eprintln!("bench: {msg}");
}

/// Validates options before anything is written to Redis.
pub fn validate(opts: &Options) -> Result<()> {
    if opts.items < 1_000 {
        bail!("--items must be at least 1000 (got {})", opts.items);
    }
    if !(2..=4096).contains(&opts.dim) {
        bail!("--dim must be between 2 and 4096 (got {})", opts.dim);
    }
    if !(opts.duration_secs.is_finite() && opts.duration_secs >= 0.5) {
        bail!(
            "--duration must be at least 0.5 seconds (got {})",
            opts.duration_secs
        );
    }
    if !(opts.warmup_secs.is_finite() && opts.warmup_secs >= 0.0) {
        bail!("--warmup must be a non-negative number of seconds");
    }
    if opts.k == 0 || opts.k > 1000 {
        bail!("--k must be between 1 and 1000 (got {})", opts.k);
    }
    if opts.concurrency.is_empty() || opts.concurrency.contains(&0) {
        bail!("--concurrency needs one or more positive numbers");
    }
    if opts.max_in_flight == 0 {
        bail!("--max-in-flight must be positive");
    }
    if opts.namespace.is_empty() || opts.namespace.contains(['*', ' ']) {
        bail!("--namespace must be a plain name without spaces or `*`");
    }
    Ok(())
}

pub async fn run(opts: &Options) -> Result<Report> {
    validate(opts)?;
    let load_start = crate::report::load_average();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ns = Namespace::new(&opts.namespace);
    let mut con = catalog::connect(&opts.redis_url).await?;
    let procs = watched_processes(&mut con, opts).await;
    let mut notes = Vec::new();

    // 1. Catalog.
    let spec = SyntheticParams {
        items: opts.items as u64,
        dims: opts.dim,
        seed: opts.seed,
    };
    let ingest = match seed_catalog(&mut con, &ns, spec, opts.hnsw, opts.reuse).await? {
        Some(i) => Some(i),
        None => recorded_ingest(&opts.out, spec),
    };
    let cat = catalog::read_back(&mut con, &ns, opts.dim).await?;
    if cat.len() != opts.items {
        bail!(
            "the index holds {} readable items, expected {}",
            cat.len(),
            opts.items
        );
    }
    let generator = Synthetic::new(spec);
    let users = workload::make_users(&generator, &cat, opts.users, opts.seed);
    let queries = Arc::new(workload::make_queries(
        &generator, &cat, &users, opts.mix, 4_000, opts.k, opts.seed,
    ));

    let gateway = connect_gateway(opts, &users, &mut notes).await?;

    let mut raw = RawTarget::new(
        RawConn::mux(&opts.redis_url).await?,
        ns.clone(),
        opts.dim,
        opts.ef_runtime,
    );
    raw.candidates = opts.raw_candidates;
    let raw = Arc::new(raw);
    // 2. Filter ladder first, while every stored vector is still the one read back (the write
    //    phases change some).
    let ladder = selectivity_ladder(&raw, gateway.as_ref(), &cat, &generator, opts).await?;

    // 3. Raw: closed loop for the maximum, then open loop at 50% (read-only, then with writes,
    //    back to back so the comparison sees the same machine) and 80% of it.
    let mut phases = Vec::new();
    closed_phases(Side::Raw, raw.clone(), &queries, opts, &procs, &mut phases).await;
    let raw_max = max_qps(&phases, Side::Raw);
    if raw_max <= 0.0 {
        bail!(
            "raw queries all failed: {}",
            phases
                .iter()
                .find_map(|p| p.run.first_error.clone())
                .unwrap_or_default()
        );
    }
    let writes = (&raw, &generator, &cat);
    open_phases(
        Side::Raw,
        raw.clone(),
        &queries,
        raw_max,
        writes,
        opts,
        &procs,
        &mut phases,
    )
    .await;

    // 4. Gateway: the same, at the RAW rates; its RSS is sampled throughout.
    let mut rss = Vec::new();
    if let Some(gw) = &gateway {
        let sampler = opts
            .gateway_pid
            .map(|pid| RssSampler::start("gateway", pid));
        closed_phases(
            Side::Gateway,
            gw.clone(),
            &queries,
            opts,
            &procs,
            &mut phases,
        )
        .await;
        open_phases(
            Side::Gateway,
            gw.clone(),
            &queries,
            raw_max,
            writes,
            opts,
            &procs,
            &mut phases,
        )
        .await;
        if let Some(s) = sampler {
            rss.push(s.stop().await);
        }
    }
    finish(
        opts,
        started_unix,
        load_start,
        ingest,
        phases,
        ladder,
        rss,
        notes,
        &queries,
        &ns,
    )
    .await
}

/// The processes whose CPU the report shows: the bench itself, Redis when its pid is visible
/// here, and the gateway when its pid was given.
pub(crate) async fn watched_processes(
    con: &mut MultiplexedConnection,
    opts: &Options,
) -> Vec<Process> {
    let mut procs = vec![Process {
        name: "bench".into(),
        pid: std::process::id(),
    }];
    match catalog::server_pid(con).await {
        Ok(pid) if stats::cpu_ticks(pid).is_some() => procs.push(Process {
            name: "redis".into(),
            pid,
        }),
        _ => log("redis runs elsewhere (its pid is not visible here): no redis CPU figures"),
    }
    if let Some(pid) = opts.gateway_pid {
        procs.push(Process {
            name: "gateway".into(),
            pid,
        });
    }
    procs
}

/// The gateway under test, checked on `/healthz` and given the users' histories; `None` (and a
/// note) when the run has no gateway.
pub(crate) async fn connect_gateway(
    opts: &Options,
    users: &[BenchUser],
    notes: &mut Vec<String>,
) -> Result<Option<Arc<GatewayTarget>>> {
    match &opts.gateway_url {
        Some(url) => {
            let mut client = HttpClient::new(url)?;
            client.api_key.clone_from(&opts.gateway_api_key);
            let (status, _) = client
                .get("/healthz")
                .await
                .with_context(|| format!("gateway at {url} does not answer /healthz"))?;
            if status != 200 {
                bail!("gateway at {url}: /healthz answered {status}");
            }
            let gw = Arc::new(GatewayTarget::new(client));
            seed_users(&gw, users).await?;
            Ok(Some(gw))
        }
        None => {
            notes
                .push("No gateway in this run: the gateway rows and ratios are absent.".to_owned());
            Ok(None)
        }
    }
}

/// Open loop at 50% of the raw max, the same with 1:10 writes, then 80%.
#[allow(clippy::too_many_arguments)]
async fn open_phases(
    side: Side,
    target: Arc<dyn Target>,
    queries: &Arc<Vec<BenchQuery>>,
    raw_max: f64,
    writes: (&Arc<RawTarget>, &Synthetic, &StoredCatalog),
    opts: &Options,
    procs: &[Process],
    phases: &mut Vec<Phase>,
) {
    for (load, with_writes) in [(0.5, false), (0.5, true), (0.8, false)] {
        log(&format!(
            "{} open loop at {:.0} req/s{}",
            side.name(),
            raw_max * load,
            if with_writes { " with 1:10 writes" } else { "" }
        ));
        phases.push(
            open_phase(
                side,
                target.clone(),
                queries,
                raw_max,
                load,
                with_writes.then_some(writes),
                opts,
                procs,
            )
            .await,
        );
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    opts: &Options,
    started_unix: u64,
    load_start: f64,
    ingest: Option<catalog::IngestResult>,
    phases: Vec<Phase>,
    ladder: Vec<LadderRung>,
    rss: Vec<RssSeries>,
    mut notes: Vec<String>,
    queries: &Arc<Vec<BenchQuery>>,
    ns: &Namespace,
) -> Result<Report> {
    // 6. One multiplexed connection vs a deadpool pool.
    let connections = Some(compare_connections(opts, queries, ns).await?);
    let mut machine = Machine::detect();
    machine.load_start = load_start;
    if opts.mix.text > 0 {
        notes.push(
        "Text queries: the raw side runs BM25 + KNN (with a pre-computed vector) in one pipeline; \
         the gateway embeds the text with the model first, so its text p99 includes the embedder."
            .to_owned(),
    );
    }
    notes.push(
        "Personalised queries: the raw side reads the user's feature keys (one pipelined round \
         trip), then runs the KNN with the session vector (a second round trip)."
            .to_owned(),
    );
    let loader_ingest = std::fs::read(opts.out.join(LOADER_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<LoaderIngest>(&b).ok())
        .filter(|l| l.items == opts.items && l.dim == opts.dim);
    let mut report = Report {
        started_unix,
        loader_ingest,
        machine,
        params: Params {
            items: opts.items,
            dim: opts.dim,
            seed: opts.seed,
            quick: opts.quick,
            duration_secs: opts.duration_secs,
            warmup_secs: opts.warmup_secs,
            k: opts.k,
            ef_runtime: opts.ef_runtime,
            raw_candidates: opts.raw_candidates,
            mix: opts.mix,
            closed_loop_concurrency: opts.concurrency.clone(),
            open_loop_max_in_flight: opts.max_in_flight,
            redis_url: opts.redis_url.clone(),
            gateway_url: opts.gateway_url.clone(),
        },
        ingest,
        phases,
        ladder,
        connections,
        rss,
        targets: Vec::new(),
        notes,
    };
    report.targets = report.evaluate_targets();
    Ok(report)
}

/// Writes report.json, report.md and latency.png into `out`; returns the paths written.
pub fn write_report(report: &Report, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let png = out.join("latency.png");
    let mut report = report.clone();
    let plotted = plot::latency_plot(&report.phases, &png)?;
    if plotted {
        report
            .notes
            .push("Latency plot: `latency.png` (same directory).".into());
    } else {
        report
            .notes
            .push("No latency plot: no TrueType font (DejaVu or Liberation) is installed.".into());
    }
    let md = out.join("report.md");
    std::fs::write(&md, report.to_markdown())
        .with_context(|| format!("writing {}", md.display()))?;
    let mut paths = vec![md, json];
    if plotted {
        paths.push(png);
    }
    Ok(paths)
}

/// Seeds a fresh catalog and records the ingest figures in `{out}/ingest.json`, for a later
/// `--reuse` run (xtask seeds first, then starts the gateway over the finished index).
pub async fn seed_only(opts: &Options) -> Result<catalog::IngestResult> {
    validate(opts)?;
    let mut con = catalog::connect(&opts.redis_url).await?;
    for extra in &opts.drop_namespaces {
        log(&format!("dropping namespace `{extra}`"));
        catalog::drop_namespace(&mut con, &Namespace::new(extra)).await?;
    }
    let spec = SyntheticParams {
        items: opts.items as u64,
        dims: opts.dim,
        seed: opts.seed,
    };
    let result = seed_catalog(
        &mut con,
        &Namespace::new(&opts.namespace),
        spec,
        opts.hnsw,
        false,
    )
    .await?
    .context("a fresh seed always measures ingest")?;
    std::fs::create_dir_all(&opts.out)?;
    std::fs::write(
        opts.out.join(INGEST_FILE),
        serde_json::to_vec_pretty(&result)?,
    )?;
    Ok(result)
}

const INGEST_FILE: &str = "ingest.json";
/// Written by xtask after timing `redrec-ingest seed synthetic`.
const LOADER_FILE: &str = "ingest-loader.json";

/// Ingest figures recorded by [`seed_only`] for this exact catalog, if any.
fn recorded_ingest(out: &Path, spec: SyntheticParams) -> Option<catalog::IngestResult> {
    let text = std::fs::read(out.join(INGEST_FILE)).ok()?;
    let r: catalog::IngestResult = serde_json::from_slice(&text).ok()?;
    (r.items as u64 == spec.items && r.dim == spec.dims && r.seed == spec.seed).then_some(r)
}

async fn seed_catalog(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    spec: SyntheticParams,
    hnsw: catalog::HnswBuild,
    reuse: bool,
) -> Result<Option<catalog::IngestResult>> {
    if reuse
        && let Ok(info) = catalog::index_info(con, &ns.alias()).await
        && info.num_docs == spec.items
        && info.percent_indexed >= 1.0
    {
        log(&format!(
            "reusing the catalog under {} ({} items)",
            ns.alias(),
            info.num_docs
        ));
        return Ok(None);
    }
    log(&format!(
        "seeding {} items x {} dims under namespace `{}` (HNSW M {}, EF_CONSTRUCTION {})",
        spec.items,
        spec.dims,
        ns.name(),
        hnsw.m,
        hnsw.ef_construction
    ));
    catalog::drop_namespace(con, ns).await?;
    let result = catalog::load(con, ns, spec, hnsw, 500, 4).await?;
    log(&format!(
        "seeded: {:.0} items/s until 100% indexed ({:.1} s), {:.0} bytes/item",
        result.items_per_sec, result.indexed_secs, result.memory_per_item_bytes
    ));
    Ok(Some(result))
}

/// Gives each synthetic user a history through the events API, so personalised queries read
/// real features.
async fn seed_users(gw: &GatewayTarget, users: &[BenchUser]) -> Result<()> {
    log(&format!(
        "seeding {} users through POST /v1/events",
        users.len()
    ));
    for chunk in users.chunks(20) {
        let events: Vec<serde_json::Value> = chunk
            .iter()
            .flat_map(|u| {
                u.clicked
                    .iter()
                    .map(move |item| json!({ "type": "click", "user_id": u.id, "item_id": item }))
            })
            .collect();
        let (status, body) = gw
            .client
            .post_json("/v1/events", &serde_json::Value::Array(events))
            .await?;
        if !(200..300).contains(&status) {
            bail!(
                "POST /v1/events answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
    }
    Ok(())
}

fn max_qps(phases: &[Phase], side: Side) -> f64 {
    phases
        .iter()
        .filter(|p| p.side == side && p.mode == "closed")
        .map(|p| p.run.achieved_qps)
        .fold(0.0, f64::max)
}

/// One closed-loop phase per configured concurrency.
pub(crate) async fn closed_phases(
    side: Side,
    target: Arc<dyn Target>,
    queries: &Arc<Vec<BenchQuery>>,
    opts: &Options,
    procs: &[Process],
    phases: &mut Vec<Phase>,
) {
    for &c in &opts.concurrency {
        log(&format!("{} closed loop, {c} workers", side.name()));
        phases.push(closed_phase(side, target.clone(), queries, c, opts, procs).await);
    }
}

async fn closed_phase(
    side: Side,
    target: Arc<dyn Target>,
    queries: &Arc<Vec<BenchQuery>>,
    concurrency: usize,
    opts: &Options,
    procs: &[Process],
) -> Phase {
    let counters = target.cpu_counters().await;
    let mark = stats::cpu_mark(procs);
    target.take_stages();
    let run = closed_loop(
        target.clone(),
        queries.clone(),
        concurrency,
        opts.warmup(),
        opts.duration(),
    )
    .await;
    let cpu = stats::cpu_since(procs, &mark);
    let cpu_stages = stage_cpu_since(target.as_ref(), counters, &mark, &run).await;
    Phase {
        side,
        mode: "closed".into(),
        concurrency: Some(concurrency),
        load: None,
        writes: None,
        cpu,
        cpu_stages,
        stages: target.take_stages(),
        run,
    }
}

#[allow(clippy::too_many_arguments)]
async fn open_phase(
    side: Side,
    target: Arc<dyn Target>,
    queries: &Arc<Vec<BenchQuery>>,
    raw_max: f64,
    load: f64,
    writes: Option<(&Arc<RawTarget>, &Synthetic, &StoredCatalog)>,
    opts: &Options,
    procs: &[Process],
) -> Phase {
    let rate = (raw_max * load).max(1.0);
    let counters = target.cpu_counters().await;
    let mark = stats::cpu_mark(procs);
    let writer = writes.map(|(raw, generator, cat)| {
        let ids: Vec<String> = cat.ids.clone();
        let raw = raw.clone();
        let mut rng = Rng::stream(opts.seed, 0x5EED);
        let vectors: Vec<Vec<f32>> = (0..256)
            .map(|_| generator.query_vector_with(&mut rng))
            .collect();
        let schedule = Schedule::for_duration(rate / 10.0, opts.duration());
        tokio::spawn(async move {
            let mut h = stats::new_histogram();
            let (mut ok, mut errors) = (0, 0);
            let start = Instant::now();
            for i in 0..schedule.count {
                let intended = start + schedule.offset(i);
                tokio::time::sleep_until(intended.into()).await;
                let id = &ids[rng.below(ids.len())];
                match raw
                    .write_vector(id, &vectors[i as usize % vectors.len()])
                    .await
                {
                    Ok(()) => {
                        ok += 1;
                        stats::record(&mut h, intended.elapsed());
                    }
                    Err(_) => errors += 1,
                }
            }
            WriteStats {
                rate_per_sec: schedule.rate_per_sec,
                ok,
                errors,
                latency: LatencySummary::from_histogram(&h),
            }
        })
    });
    target.take_stages();
    let run = open_loop(
        target.clone(),
        queries.clone(),
        rate,
        opts.duration(),
        opts.max_in_flight,
    )
    .await;
    let writes = match writer {
        Some(w) => Some(w.await.expect("writer task")),
        None => None,
    };
    let cpu = stats::cpu_since(procs, &mark);
    let cpu_stages = stage_cpu_since(target.as_ref(), counters, &mark, &run).await;
    Phase {
        side,
        mode: "open".into(),
        concurrency: None,
        load: Some(load),
        writes,
        cpu,
        cpu_stages,
        stages: target.take_stages(),
        run,
    }
}

/// The target's CPU per request by stage since `mark`, from its counters then and now (empty
/// when it reports none).
async fn stage_cpu_since(
    target: &dyn Target,
    before: Option<Vec<(String, f64)>>,
    mark: &stats::CpuMark,
    run: &RunResult,
) -> Vec<StageCpu> {
    let after = target.cpu_counters().await;
    let seconds = mark.elapsed().as_secs_f64();
    let (Some(before), Some(after)) = (before, after) else {
        return Vec::new();
    };
    let completed_per_sec = (run.ok + run.errors) as f64 / run.elapsed_secs;
    stage_cpu(&before, &after, seconds, completed_per_sec)
}

/// Recall and latency at about 1%, 5%, 25%, 90% selectivity and unfiltered.
async fn selectivity_ladder(
    raw: &Arc<RawTarget>,
    gateway: Option<&Arc<GatewayTarget>>,
    cat: &StoredCatalog,
    generator: &Synthetic,
    opts: &Options,
) -> Result<Vec<LadderRung>> {
    let mut rungs = Vec::new();
    for (label, share, filter) in workload::selectivity_ladder(cat) {
        log(&format!("selectivity ladder: {label}"));
        let matching: Vec<bool> = (0..cat.len())
            .map(|i| workload::ladder_matches(cat, &filter, i))
            .collect();
        let mut rng = Rng::stream(opts.seed, 0x1ADDE4 + rungs.len() as u64);
        let qs: Vec<BenchQuery> = (0..opts.ladder_queries())
            .map(|_| BenchQuery {
                kind: Kind::Vector,
                vector: generator.query_vector_with(&mut rng),
                user_id: None,
                text: None,
                filter: filter.clone(),
                k: opts.k,
            })
            .collect();
        let mut recalls = Vec::new();
        let mut gw_recalls = Vec::new();
        for q in &qs {
            let truth = recall::exact_top_k(cat, &q.vector, opts.k, |i| matching[i]);
            let got = raw.run(q).await?;
            recalls.push(recall::recall(&truth, &got));
            if let Some(gw) = gateway
                && let Ok(ids) = gw.recommend(q).await
            {
                gw_recalls.push(recall::recall(&truth, &ids));
            }
        }
        let adhoc_bf = if filter.is_all() {
            None
        } else {
            let forced = RawTarget {
                hybrid_policy: Some(HybridPolicy::AdhocBf),
                ..(**raw).clone()
            };
            let mut r = Vec::new();
            for q in &qs {
                let truth = recall::exact_top_k(cat, &q.vector, opts.k, |i| matching[i]);
                r.push(recall::recall(&truth, &forced.run(q).await?));
            }
            let run = closed_loop(
                Arc::new(forced),
                Arc::new(qs.clone()),
                1,
                Duration::from_millis(200),
                opts.ladder_latency() / 2,
            )
            .await;
            Some(PolicyRun {
                mean_recall: mean(&r),
                p50_ms: run.latency.p50_ms,
                p99_ms: run.latency.p99_ms,
            })
        };
        let qs = Arc::new(qs);
        let run = closed_loop(
            raw.clone(),
            qs.clone(),
            1,
            Duration::from_millis(200),
            opts.ladder_latency(),
        )
        .await;
        rungs.push(LadderRung {
            label,
            target_share: share,
            actual_share: matching.iter().filter(|m| **m).count() as f64 / cat.len() as f64,
            queries: qs.len(),
            mean_recall: mean(&recalls),
            min_recall: recalls.iter().copied().fold(f64::INFINITY, f64::min),
            latency: run.latency,
            gateway_mean_recall: (!gw_recalls.is_empty()).then(|| mean(&gw_recalls)),
            adhoc_bf,
        });
    }
    Ok(rungs)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

async fn compare_connections(
    opts: &Options,
    queries: &Arc<Vec<BenchQuery>>,
    ns: &Namespace,
) -> Result<ConnCompare> {
    let vector_only: Arc<Vec<BenchQuery>> = Arc::new(
        queries
            .iter()
            .filter(|q| q.kind == Kind::Vector)
            .cloned()
            .collect(),
    );
    let concurrency = 16;
    let secs = Duration::from_secs_f64((opts.duration_secs / 2.0).max(1.0));
    let mut results: Vec<RunResult> = Vec::new();
    for conn in [
        RawConn::mux(&opts.redis_url).await?,
        RawConn::pool(&opts.redis_url, concurrency)?,
    ] {
        log(&format!("raw {} connection, closed loop", conn.label()));
        let mut target = RawTarget::new(conn, ns.clone(), opts.dim, opts.ef_runtime);
        target.candidates = opts.raw_candidates;
        let target = Arc::new(target);
        results.push(
            closed_loop(
                target,
                vector_only.clone(),
                concurrency,
                opts.warmup(),
                secs,
            )
            .await,
        );
    }
    let pool = results.pop().expect("two runs");
    let multiplexed = results.pop().expect("two runs");
    let faster = if multiplexed.achieved_qps >= pool.achieved_qps {
        "multiplexed"
    } else {
        "pool"
    };
    Ok(ConnCompare {
        concurrency,
        pool_size: concurrency,
        faster: format!(
            "{faster} ({:.0} vs {:.0} QPS)",
            multiplexed.achieved_qps.max(pool.achieved_qps),
            multiplexed.achieved_qps.min(pool.achieved_qps)
        ),
        multiplexed,
        pool,
    })
}

/// Samples a process's VmRSS every 250 ms until stopped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<RssSeries>,
}

impl RssSampler {
    fn start(name: &str, pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut series = RssSeries {
                process: name,
                samples: Vec::new(),
            };
            while !flag.load(Ordering::Relaxed) {
                if let Some(kb) = stats::rss_kb(pid) {
                    series.samples.push((start.elapsed().as_secs_f64(), kb));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            series
        });
        RssSampler { stop, task }
    }

    async fn stop(self) -> RssSeries {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
