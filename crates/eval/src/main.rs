//! `redrec-eval`: the binary behind `cargo xtask eval` (see docs/QUALITY.md). Reads an
//! interaction file, splits it by time, computes the baselines and, given a gateway, imports the
//! training part through it and asks it for every evaluated user; writes the report and prints
//! the table.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::Parser;
use redrec_core::config::IndexConfig;
use redrec_eval::{
    EvalConfig, GatewayTarget,
    baselines::TifuParams,
    catalog::NonMerchRule,
    cf::CfMode,
    data::{Columns, TimeUnit, parse_datetime},
    import::{EventsTarget, ImportVia},
    split::SplitKind,
};
use redrec_ingest::source::Format;
use redrec_userstate::UserStateConfig;
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(
    name = "redrec-eval",
    about = "Next-basket quality of redrec and baselines"
)]
struct Cli {
    /// Interaction file (JSONL, CSV or Parquet; one purchased line per row)
    #[arg(long)]
    interactions: PathBuf,
    /// File format (default: from the extension)
    #[arg(long, value_enum)]
    format: Option<Format>,
    #[arg(long, default_value = "user_id")]
    user_col: String,
    #[arg(long, default_value = "item_id")]
    item_col: String,
    #[arg(long, default_value = "timestamp")]
    time_col: String,
    /// Column grouping lines into baskets; `none`: lines of one user at one time form a basket
    #[arg(long, default_value = "basket_id")]
    basket_col: String,
    /// Column with a quantity; rows with quantity <= 0 are skipped
    #[arg(long)]
    quantity_col: Option<String>,
    #[arg(long, value_enum, default_value_t = TimeUnit::Auto)]
    time_unit: TimeUnit,
    /// Train before this date (UTC, ISO-8601) and predict each user's next basket after it
    #[arg(long, default_value = "2017-12-01")]
    cutoff: String,
    /// Hold out each user's last basket instead of splitting at --cutoff
    #[arg(long)]
    last_basket: bool,
    /// Users need at least this many baskets (training + target)
    #[arg(long, default_value_t = 3)]
    min_baskets: usize,
    /// Evaluate a deterministic sample of at most this many users
    #[arg(long)]
    max_users: Option<usize>,
    /// A few hundred users (--max-users 300 unless given) and fewer bootstrap resamples
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Bootstrap resamples [default: 1000; 300 with --quick]
    #[arg(long)]
    resamples: Option<usize>,
    /// Half-life of the decayed personal frequency baseline, in days
    #[arg(long, default_value_t = 60.0)]
    half_life_days: f64,
    #[arg(long, default_value_t = TifuParams::default().group_size)]
    tifu_group_size: usize,
    #[arg(long, default_value_t = TifuParams::default().within_decay)]
    tifu_within_decay: f64,
    #[arg(long, default_value_t = TifuParams::default().group_decay)]
    tifu_group_decay: f64,
    #[arg(long, default_value_t = TifuParams::default().neighbours)]
    tifu_neighbours: usize,
    #[arg(long, default_value_t = TifuParams::default().alpha)]
    tifu_alpha: f64,
    /// Add implicit ALS (user x item factors) as an offline method; trains on every user
    /// (minutes on 2 cores)
    #[arg(long)]
    als: bool,
    /// Add the explore-frontier diagnostic arms: decayed P-Pop with fixed or novelty-adaptive
    /// places for never-bought G-Pop items (and ALS items with --als); for choosing the served
    /// explore rule on a tuning split, not results
    #[arg(long)]
    frontier: bool,
    /// ALS factors
    #[arg(long, default_value_t = 64)]
    als_factors: usize,
    /// ALS iterations
    #[arg(long, default_value_t = 10)]
    als_iterations: usize,
    #[command(flatten)]
    als_solver: redrec_ingest::cf::SolverArgs,
    /// Gateway runs: train ALS (the --als-* settings) on the training baskets and publish it as
    /// the namespace's `cf_vector` before the requests; `auto` skips this when `{ns}:meta:cf`
    /// says the field was trained on exactly this split's training data
    #[arg(long, value_enum, default_value_t = CfMode::Auto)]
    cf: CfMode,
    /// Only train and publish `cf_vector` for this split (needs --redis-url), then exit: run
    /// before the gateways start, so they serve the field from their first request
    #[arg(long)]
    cf_only: bool,
    /// Item field holding the department
    #[arg(long, default_value = "department")]
    department_field: String,
    /// Departments classed non-merchandise (comma-separated; the default suits Complete Journey);
    /// items priced <= 0 are too
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "FUEL,KIOSK-GAS,MISCELLANEOUS,COUPON,CNTRL/STORE SUP,CHARITABLE CONT,PROD-WHS SALES"
    )]
    non_merch_departments: Vec<String>,
    /// Item field holding the category
    #[arg(long, default_value = "category")]
    category_field: String,
    /// Categories classed non-merchandise (comma-separated)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "COUPON/MISC ITEMS,COUPONS/STORE & MFG,FUEL,KIOSK-GAS"
    )]
    non_merch_categories: Vec<String>,
    /// Redis holding the catalog and the gateway's user state
    #[arg(long, env = "REDREC_REDIS__URL")]
    redis_url: Option<String>,
    /// Key namespace of the catalog (and of the gateway)
    #[arg(long, default_value = "eval")]
    namespace: String,
    /// Base URL of the gateway under test (http://host:port); without it the run is offline
    #[arg(long)]
    gateway_url: Option<String>,
    /// Base URL of a gateway configured as the text-only pipeline
    #[arg(long)]
    text_only_url: Option<String>,
    #[arg(long, env = "REDREC_EVAL_API_KEY")]
    api_key: Option<String>,
    /// Profiles to request (comma-separated; `default` sends no profile)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "default,discovery,repurchase"
    )]
    profiles: Vec<String>,
    /// Do not add the `exclude_seen: false` ablation arm
    #[arg(long)]
    no_ablation: bool,
    /// Recommendation requests in flight
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How the training events reach the gateway's user state: the interaction import (each
    /// event at its basket's time) or `POST /v1/events` (the gateway's clock)
    #[arg(long, value_enum, default_value_t = ImportVia::Events)]
    import: ImportVia,
    /// Ask on the wall clock instead of at each household's next-basket time (for a gateway
    /// without `gateway.replay_clock`; decays then treat the history as years old)
    #[arg(long)]
    wall_clock: bool,
    /// Events per batch (FCALL or POST /v1/events; at most the user_state.max_batch)
    #[arg(long, default_value_t = 100)]
    import_batch: usize,
    /// Event batches in flight
    #[arg(long, default_value_t = 8)]
    import_workers: usize,
    /// Report directory
    #[arg(long, default_value = "target/eval")]
    out: PathBuf,
}

/// The sections of the redrec configuration (`REDREC_CONFIG`, `REDREC_*`) this binary reads: the
/// gateway's item field names and user-state settings, so imported events weigh and decay as the
/// gateway's own would.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Settings {
    index: IndexConfig,
    #[serde(alias = "features")]
    user_state: UserStateConfig,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let settings: Settings = redrec_core::config::figment(&Settings::default())
        .context("configuration")?
        .extract()
        .context("configuration")?;
    let split = if cli.last_basket {
        SplitKind::LastBasket
    } else {
        SplitKind::Cutoff {
            at: parse_datetime(&cli.cutoff).context("--cutoff")?,
        }
    };
    let als = redrec_ingest::cf::AlsParams {
        factors: cli.als_factors,
        iterations: cli.als_iterations,
        seed: cli.seed,
        solver: cli.als_solver.solver(),
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        ..Default::default()
    };
    let config = EvalConfig {
        interactions: cli.interactions,
        format: cli.format,
        columns: Columns {
            user: cli.user_col,
            item: cli.item_col,
            time: cli.time_col,
            basket: (cli.basket_col != "none").then_some(cli.basket_col),
            quantity: cli.quantity_col,
        },
        time_unit: cli.time_unit,
        split,
        min_baskets: cli.min_baskets,
        max_users: cli.max_users.or(cli.quick.then_some(300)),
        seed: cli.seed,
        k: cli.k,
        resamples: cli.resamples.unwrap_or(if cli.quick { 300 } else { 1000 }),
        tifu: TifuParams {
            group_size: cli.tifu_group_size,
            within_decay: cli.tifu_within_decay,
            group_decay: cli.tifu_group_decay,
            neighbours: cli.tifu_neighbours,
            alpha: cli.tifu_alpha,
        },
        als: cli.als.then_some(als),
        frontier: cli.frontier,
        cf: cli.cf,
        cf_params: als,
        half_life_days: cli.half_life_days,
        non_merch: NonMerchRule::new(
            &cli.department_field,
            &cli.non_merch_departments,
            &cli.category_field,
            &cli.non_merch_categories,
        ),
        redis_url: cli.redis_url,
        namespace: cli.namespace,
        gateway: cli.gateway_url.map(|url| GatewayTarget {
            url,
            api_key: cli.api_key,
            profiles: cli
                .profiles
                .iter()
                .map(|p| (p != "default").then(|| p.clone()))
                .collect(),
            text_only_url: cli.text_only_url,
            ablate_exclude_seen: !cli.no_ablation,
            concurrency: cli.concurrency,
            import: cli.import,
            replay_clock: !cli.wall_clock,
            events: EventsTarget {
                fields: settings.index.fields,
                user_state: settings.user_state,
            },
            import_batch: cli.import_batch,
            import_workers: cli.import_workers,
        }),
        out: cli.out,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if cli.cf_only {
        let stats = rt.block_on(redrec_eval::prepare_cf(&config))?;
        if stats.trained {
            eprintln!(
                "eval: cf_vector trained in {:.1} s ({} items), published in {:.1} s ({} written, {} removed{})",
                stats.train_secs,
                stats.items_with_vector,
                stats.publish_secs,
                stats.written,
                stats.cleared,
                if stats.added_field {
                    ", field added"
                } else {
                    ""
                }
            );
        } else {
            eprintln!("eval: cf_vector already trained on this split: kept");
        }
        return Ok(());
    }
    let report = rt.block_on(redrec_eval::run(&config))?;
    println!("{}", redrec_eval::report::table(&report));
    eprintln!("eval: report in {}", config.out.join("report.md").display());
    Ok(())
}
