//! `redrec-bench`: runs the whole benchmark suite once and writes the report. Normally started
//! by `cargo xtask bench`, which also starts a dedicated Redis and the gateway.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use redrec_bench::{
    soak::SoakOptions,
    suite::{self, Options},
    sweep::SweepOptions,
    workload::Mix,
};

#[derive(Parser, Debug)]
#[command(
    name = "redrec-bench",
    about = "raw FT.SEARCH vs the redrec gateway, open loop, with a report"
)]
struct Cli {
    /// Redis with the Search module (use a dedicated instance: the bench drops its namespace)
    #[arg(
        long,
        env = "REDREC_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6391"
    )]
    redis_url: String,
    /// Base URL of a running gateway (http://host:port); without it only raw Redis is measured
    #[arg(long)]
    gateway_url: Option<String>,
    /// Process id of the gateway, for its CPU and RSS
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// API key for the gateway's write routes (users are seeded through POST /v1/events)
    #[arg(long, env = "REDREC_BENCH_API_KEY")]
    gateway_api_key: Option<String>,
    /// Candidates per raw KNN: the gateway retrieves max(50, 4k) for reranking, the raw side the same
    #[arg(long, default_value_t = 50)]
    raw_candidates: usize,
    /// Key namespace of the catalog (the gateway must serve the same one)
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Items in the synthetic catalog [default: 100000, 20000 with --quick]
    #[arg(long)]
    items: Option<usize>,
    /// Vector dimension
    #[arg(long, default_value_t = 128)]
    dim: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seconds per measured phase [default: 20, 4 with --quick]
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of unrecorded warm-up before closed-loop phases [default: 2, 1 with --quick]
    #[arg(long)]
    warmup: Option<f64>,
    /// Small catalog and short phases (finishes in a couple of minutes)
    #[arg(long)]
    quick: bool,
    /// Only seed the catalog (recording ingest figures in <out>/ingest.json), then exit
    #[arg(long)]
    seed_only: bool,
    /// Reuse the catalog when the index already holds exactly --items documents
    #[arg(long)]
    reuse: bool,
    /// EF_RUNTIME of raw KNN queries (the retriever's default)
    #[arg(long, default_value_t = 100)]
    ef_runtime: u32,
    /// HNSW M of the index when the bench seeds it (the project's default schema: 16)
    #[arg(long, default_value_t = 16)]
    hnsw_m: u32,
    /// HNSW EF_CONSTRUCTION of the index when the bench seeds it (default schema: 200)
    #[arg(long, default_value_t = 200)]
    ef_construction: u32,
    /// Instead of the suite: recall and single-flight latency of every KNN plan (server's
    /// choice and BATCHES at each of these EF_RUNTIME values, ADHOC_BF, and the retriever's own
    /// choice) at each selectivity rung, on the catalog already seeded with --items (see
    /// docs/RETRIEVAL.md, "At a million items")
    #[arg(long, value_delimiter = ',')]
    sweep_ef: Option<Vec<u32>>,
    /// Sweep: queries per rung (each sent once per plan)
    #[arg(long, default_value_t = 100)]
    sweep_queries: usize,
    /// Sweep: `recall_target` of the retriever row (its EF_RUNTIME is the smallest the index's
    /// measured curve from `redrec-ingest calibrate` says reaches it; without a curve,
    /// --ef-runtime)
    #[arg(long, default_value_t = 0.95)]
    sweep_recall_target: f64,
    /// Sweep: `post_filter_above` of the retriever row (the share a filter must keep to be
    /// checked on unfiltered hits) [default: the retriever's]
    #[arg(long)]
    sweep_post_filter_above: Option<f64>,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Closed-loop concurrency levels, comma separated [default: 4,16,64; 8,32 with --quick]
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// Most requests outstanding in open loop
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Synthetic users for personalised queries
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Query mix as percentages vector,personal,text (e.g. 75,25,0 when the gateway has no
    /// embedder for the catalog's dimension)
    #[arg(long, value_delimiter = ',', default_value = "70,20,10")]
    mix: Vec<u32>,
    /// Namespace to drop before seeding (repeatable), e.g. where the project's loader was timed
    #[arg(long)]
    drop_namespace: Vec<String>,
    /// Where report.md, report.json and latency.png go
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Run the soak for this many minutes instead of the suite (needs the gateway and a seeded
    /// catalog; see `cargo xtask soak`)
    #[arg(long)]
    soak_minutes: Option<usize>,
    /// Soak: share of the measured capacity the reads run at
    #[arg(long, default_value_t = 0.5)]
    soak_load: f64,
    /// Soak: seconds of the closed-loop capacity measurement
    #[arg(long, default_value_t = 10.0)]
    capacity_secs: f64,
    /// Soak: closed-loop workers of the capacity measurement
    #[arg(long, default_value_t = 4)]
    capacity_concurrency: usize,
    /// Soak: the gateway's build profile, recorded in the report
    #[arg(long, default_value = "release")]
    build_profile: String,
    /// Soak: clicks per user before anything is measured (steady-state histories; the
    /// gateway's default `user_state.seen_cap` is 500)
    #[arg(long, default_value_t = 500)]
    soak_history: usize,
    /// Instead of the suite: one read-scaling step over a seeded catalog, the closed-loop
    /// maximum of the raw plan and of the gateway, written to <out>/capacity.json (see
    /// `cargo xtask bench --replicas`)
    #[arg(long)]
    capacity_only: bool,
    /// With --capacity-only: the replicas the raw side sends its searches to, in turn (comma
    /// separated; the acting user's features stay on --redis-url, as in the gateway)
    #[arg(long, value_delimiter = ',')]
    read_urls: Vec<String>,
    /// Render the capacity steps under this directory (<dir>/*/capacity.json) into
    /// <dir>/replicas.md and print it, then exit
    #[arg(long)]
    replica_table: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(dir) = &cli.replica_table {
        return exit(
            redrec_bench::replicas::write_table(dir).map(|(path, text)| {
                println!("{text}");
                eprintln!("bench: table in {}", path.display());
            }),
        );
    }
    if !cli.read_urls.is_empty() && !cli.capacity_only {
        eprintln!("error: --read-urls applies to --capacity-only runs only");
        return ExitCode::FAILURE;
    }
    let mix = match cli.mix[..] {
        [vector, personal, text] if vector + personal + text == 100 => Mix {
            vector,
            personal,
            text,
        },
        _ => {
            eprintln!(
                "error: --mix takes three percentages vector,personal,text that add up to 100 (got {:?})",
                cli.mix
            );
            return ExitCode::FAILURE;
        }
    };
    let quick = cli.quick;
    let opts = Options {
        redis_url: cli.redis_url,
        gateway_url: cli.gateway_url,
        gateway_pid: cli.gateway_pid,
        gateway_api_key: cli.gateway_api_key,
        raw_candidates: cli.raw_candidates,
        namespace: cli.namespace,
        items: cli.items.unwrap_or(if quick { 20_000 } else { 100_000 }),
        dim: cli.dim,
        seed: cli.seed,
        duration_secs: cli.duration.unwrap_or(if quick { 4.0 } else { 20.0 }),
        warmup_secs: cli.warmup.unwrap_or(if quick { 1.0 } else { 2.0 }),
        quick,
        reuse: cli.reuse,
        ef_runtime: cli.ef_runtime,
        hnsw: redrec_bench::catalog::HnswBuild {
            m: cli.hnsw_m,
            ef_construction: cli.ef_construction,
        },
        k: cli.k,
        concurrency: cli
            .concurrency
            .unwrap_or_else(|| if quick { vec![8, 32] } else { vec![4, 16, 64] }),
        max_in_flight: cli.max_in_flight,
        users: cli.users,
        mix,
        drop_namespaces: cli.drop_namespace,
        out: cli.out,
    };
    let soak = cli.soak_minutes.map(|minutes| SoakOptions {
        minutes,
        capacity_secs: cli.capacity_secs,
        capacity_concurrency: cli.capacity_concurrency,
        load: cli.soak_load,
        build_profile: cli.build_profile.clone(),
        history: cli.soak_history,
    });
    let sweep = cli.sweep_ef.map(|efs| SweepOptions {
        efs,
        queries: cli.sweep_queries,
        recall_target: cli.sweep_recall_target,
        post_filter_above: cli.sweep_post_filter_above,
    });
    if cli.capacity_only {
        return exit(capacity(&opts, &cli.read_urls));
    }
    exit(run(opts, cli.seed_only, soak, sweep))
}

/// The process's exit: success, or the error with its causes on stderr.
fn exit(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn capacity(opts: &Options, read_urls: &[String]) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let step = rt.block_on(redrec_bench::replicas::run(opts, read_urls))?;
    let path = redrec_bench::replicas::write_step(&step, &opts.out)?;
    println!("{}", path.display());
    Ok(())
}

fn run(
    opts: Options,
    seed_only: bool,
    soak: Option<SoakOptions>,
    sweep: Option<SweepOptions>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(sweep) = sweep {
        let report = rt.block_on(redrec_bench::sweep::run(&opts, &sweep))?;
        for p in redrec_bench::sweep::write_report(&report, &opts.out)? {
            println!("{}", p.display());
        }
        return Ok(());
    }
    if let Some(soak) = soak {
        let report = rt.block_on(redrec_bench::soak::run(&opts, &soak))?;
        for p in redrec_bench::soak::write_report(&report, &opts.out)? {
            println!("{}", p.display());
        }
        if !report.verdict.passed {
            anyhow::bail!("the soak failed its criteria (see the report)");
        }
        return Ok(());
    }
    if seed_only {
        rt.block_on(suite::seed_only(&opts))?;
        return Ok(());
    }
    let report = rt.block_on(suite::run(&opts))?;
    let paths = suite::write_report(&report, &opts.out)?;
    for p in paths {
        println!("{}", p.display());
    }
    Ok(())
}
