//! The `redrec-ingest` CLI: bulk loads, vector refreshes, schema import/export, migrations and
//! the built-in datasets. Configuration comes from `redrec.toml` / `REDREC_*` (see
//! docs/INGEST.md); flags override it.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use redrec_core::{
    config::{IndexConfig, RedisConfig},
    keys::Namespace,
    schema::{IndexSchema, StorageType},
};
use redrec_embedder::EmbedderConfig;
use redrec_ingest::{
    index, load,
    load::{LoadOptions, OnInvalid},
    migrate,
    progress::ProgressMode,
    refresh,
    source::{Format, SourceSpec},
    validate::Mapping,
    write::WriteOptions,
};
use serde::{Deserialize, Serialize};

mod events_cli;
mod partitions_cli;
mod seed_cli;

/// The settings this binary reads (other sections of redrec.toml are ignored).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Settings {
    redis: RedisConfig,
    index: IndexConfig,
    embedder: EmbedderConfig,
    ingest: WriteOptions,
    mapping: Mapping,
    /// The gateway's feature settings: imported events must weigh and decay the same way.
    #[serde(alias = "features")]
    user_state: redrec_userstate::UserStateConfig,
}

#[derive(Parser)]
#[command(
    name = "redrec-ingest",
    about = "Load items and vectors into redrec's Redis, manage indexes and migrations"
)]
struct Cli {
    /// Key namespace (overrides `index.namespace`)
    #[arg(long, global = true)]
    namespace: Option<String>,
    /// Progress display
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// Items per pipeline (overrides `ingest.batch_size`)
    #[arg(long, global = true)]
    batch_size: Option<usize>,
    /// Pipelines in flight (overrides `ingest.in_flight`)
    #[arg(long, global = true)]
    in_flight: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Progress {
    Auto,
    Lines,
    Quiet,
}

#[derive(clap::Args, Clone)]
struct InputArgs {
    /// Input file (.jsonl, .csv, .parquet, .npy, .f32)
    file: PathBuf,
    /// Format, when the extension does not say
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Id file for vector files (.npy / .f32): one id per line, in row order
    #[arg(long)]
    ids: Option<PathBuf>,
    /// Dimension of a raw .f32 file
    #[arg(long)]
    dims: Option<usize>,
    /// Write the valid rows and record the invalid ones instead of writing nothing (strict is the default)
    #[arg(long)]
    skip_invalid: bool,
    /// Where --skip-invalid writes rejected rows with reasons (JSONL)
    #[arg(long, default_value = "rejects.jsonl")]
    rejects: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate and load items (metadata and/or vectors) into the serving index
    Load {
        #[command(flatten)]
        input: InputArgs,
        /// Store items as JSON documents instead of hashes (new indexes only)
        #[arg(long)]
        json: bool,
        /// Rows may lack a vector (metadata-only load)
        #[arg(long)]
        no_vector: bool,
        /// Index schema as RedisVL YAML (overrides `index.schema_file`)
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Overwrite existing items' vectors in place while serving
    Refresh {
        #[command(flatten)]
        input: InputArgs,
        /// Vector field (query name)
        #[arg(long)]
        field: Option<String>,
    },
    /// Show the serving alias, its index and indexing progress
    Status,
    /// Measure recall@k of unfiltered KNN per EF_RUNTIME on the serving index (exact brute
    /// force here) and store the curve for the retriever's `recall_target`
    Calibrate {
        /// Queries per EF value
        #[arg(long, default_value_t = 50)]
        queries: usize,
        /// k of recall@k (the gateway fetches 50 candidates by default)
        #[arg(long, default_value_t = 50)]
        k: usize,
        /// EF_RUNTIME values to measure, ascending
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "50,100,200,400,800,1600,3200"
        )]
        ef: Vec<u32>,
        /// Seed of the query draw
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Partitioned indexes of the serving index (`FT.CREATE ... FILTER`): a filtered KNN whose
    /// filter lies inside one runs over its small graph
    Partitions {
        #[command(subcommand)]
        action: partitions_cli::PartitionsCmd,
    },
    /// Read or write the index schema as RedisVL YAML
    Schema {
        #[command(subcommand)]
        action: SchemaCmd,
    },
    /// Model / dimension migration behind the alias (resumable)
    Migrate {
        #[command(subcommand)]
        action: MigrateCmd,
    },
    /// Train collaborative item vectors (implicit ALS) from interactions and publish them as the
    /// live index's `cf_vector` field (added with FT.ALTER the first time, rewritten in place after)
    Cf(CfArgs),
    /// Import interactions (views, purchases, ...) through the real-time event function, at
    /// their own timestamps
    Events(events_cli::EventsArgs),
    /// Load a built-in dataset (skipped when the namespace already holds it, unless --force)
    Seed {
        #[command(subcommand)]
        dataset: SeedCmd,
        /// Load even if `{ns}:meta:seed` says this dataset is already loaded
        #[arg(long, global = true)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum SchemaCmd {
    /// Print (or write to --out) the serving index's schema as RedisVL YAML
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create the index described by a RedisVL YAML file (if missing) and point the alias at it
    Apply { file: PathBuf },
}

#[derive(Subcommand)]
enum MigrateCmd {
    /// Plan, backfill, shadow-compare and switch in one go (resumes where a previous run stopped)
    Run {
        /// New vectors: a file (.jsonl, .csv, .parquet, .npy, .f32) with id + vector columns
        #[arg(required_unless_present = "embed", conflicts_with = "embed")]
        file: Option<PathBuf>,
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(long)]
        ids: Option<PathBuf>,
        /// Components per row of a raw .f32 file (the new dimension when --dims is not given)
        #[arg(long = "file-dims")]
        file_dims: Option<usize>,
        /// Instead of a file: re-embed every item's text with the configured embedder (the new model)
        #[arg(long)]
        embed: bool,
        /// New vector dimension (default: the embedder's with --embed)
        #[arg(long)]
        dims: Option<usize>,
        #[arg(long)]
        field: Option<String>,
        /// Items sampled for shadow queries
        #[arg(long, default_value_t = 100)]
        shadow_sample: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
    },
    /// Show the migration state
    Status,
    /// Point the alias at the new index (after backfill)
    Switch {
        /// Switch even if fewer items have new vectors than the old index had
        #[arg(long)]
        force: bool,
    },
    /// Point the alias back at the old index
    Rollback,
    /// Drop the index that is no longer served and its vector field
    Cleanup,
}

#[derive(clap::Args)]
struct CfArgs {
    /// Interaction file (Parquet): one purchased line per row
    #[arg(
        long,
        default_value = "target/redrec/data/complete-journey/transactions.parquet"
    )]
    interactions: PathBuf,
    #[arg(long, default_value = "household_id")]
    user_col: String,
    #[arg(long, default_value = "product_id")]
    item_col: String,
    #[arg(long, default_value = "basket_id")]
    basket_col: String,
    /// Lines with quantity <= 0 are skipped ("none" to use every line)
    #[arg(long, default_value = "quantity")]
    quantity_col: String,
    /// Train only on lines whose `--time-col` value is below `--until` (in that column's unit), so
    /// an evaluation's test period stays unseen
    #[arg(long, requires = "until")]
    time_col: Option<String>,
    #[arg(long, requires = "time_col")]
    until: Option<f64>,
    #[arg(long, default_value_t = 64)]
    factors: usize,
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Items bought by fewer users get no collaborative vector
    #[arg(long, default_value_t = 5)]
    min_users: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    solver: redrec_ingest::cf::SolverArgs,
}

#[derive(Subcommand)]
enum SeedCmd {
    /// The Complete Journey retail catalog (92,331 products), embedded with the configured model
    CompleteJourney {
        /// Directory with products.parquet and transactions.parquet
        #[arg(long, default_value = "target/redrec/data/complete-journey")]
        data_dir: PathBuf,
        #[command(flatten)]
        history: events_cli::HistoryArgs,
    },
    /// A deterministic synthetic catalog (benchmarks)
    Synthetic {
        #[arg(long, default_value_t = 100_000)]
        items: u64,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REDREC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn spec(input: &InputArgs, mapping: &Mapping, vector_field: &str) -> Result<SourceSpec> {
    let mut s = SourceSpec::new(&input.file).or_else(|e| match input.format {
        Some(_) => Ok(SourceSpec {
            path: input.file.clone(),
            format: Format::Jsonl,
            ids: None,
            dims: None,
            id_column: String::new(),
            vector_column: String::new(),
        }),
        None => Err(e),
    })?;
    if let Some(f) = input.format {
        s.format = f;
    }
    s.ids = input.ids.clone();
    s.dims = input.dims;
    s.id_column = mapping.id.clone();
    s.vector_column = mapping.column(vector_field).to_owned();
    Ok(s)
}

fn on_invalid(input: &InputArgs) -> OnInvalid {
    if input.skip_invalid {
        OnInvalid::Skip {
            rejects: Some(input.rejects.clone()),
        }
    } else {
        OnInvalid::Strict
    }
}

/// What every subcommand works with: the settings (flags applied), the namespace, one
/// multiplexed connection and the load options.
struct Ctx {
    settings: Settings,
    ns: Namespace,
    con: redis::aio::MultiplexedConnection,
    opts: LoadOptions,
    progress: ProgressMode,
    vector_field: String,
}

async fn run(cli: Cli) -> Result<()> {
    let mut settings: Settings = redrec_core::config::figment(&Settings::default())
        .context("configuration")?
        .extract()
        .context("configuration")?;
    if let Some(ns) = &cli.namespace {
        settings.index.namespace = ns.clone();
    }
    if let Some(b) = cli.batch_size {
        settings.ingest.batch_size = b;
    }
    if let Some(f) = cli.in_flight {
        settings.ingest.in_flight = f;
    }
    let progress = match cli.progress {
        Progress::Auto => ProgressMode::Auto,
        Progress::Lines => ProgressMode::Lines,
        Progress::Quiet => ProgressMode::Quiet,
    };
    let con = redrec_ingest::connect(&settings.redis.url)
        .await
        .with_context(|| {
            format!(
                "cannot connect to redis at {}",
                redrec_core::config::redact_url(&settings.redis.url)
            )
        })?;
    let ctx = Ctx {
        ns: settings.index.namespace(),
        con,
        opts: LoadOptions {
            write: settings.ingest,
            progress,
            ..LoadOptions::default()
        },
        progress,
        vector_field: settings.index.fields.vector.clone(),
        settings,
    };
    match cli.cmd {
        Cmd::Cf(args) => cmd_cf(ctx, args).await,
        Cmd::Load {
            input,
            json,
            no_vector,
            schema,
        } => cmd_load(ctx, input, json, no_vector, schema).await,
        Cmd::Refresh { input, field } => cmd_refresh(ctx, input, field).await,
        Cmd::Status => cmd_status(ctx).await,
        Cmd::Calibrate {
            queries,
            k,
            ef,
            seed,
        } => {
            let opts = redrec_ingest::calibrate::CalibrateOptions {
                queries,
                k,
                efs: ef,
                seed,
                vector_field: ctx.vector_field.clone(),
            };
            let mut con = ctx.con.clone();
            let curve =
                redrec_ingest::calibrate::calibrate(&mut con, &ctx.ns, &opts, ctx.progress).await?;
            println!(
                "{} ({} items): recall@{} of unfiltered KNN over {} queries",
                curve.index, curve.items, curve.k, curve.queries
            );
            println!("EF_RUNTIME  recall");
            for p in &curve.points {
                println!("{:>10}  {:.3}", p.ef, p.recall);
            }
            println!(
                "stored in {}; set `retriever.recall_target` (e.g. 0.95) to use it",
                ctx.ns.ef_curve(&curve.index)
            );
            Ok(())
        }
        Cmd::Schema { action } => cmd_schema(ctx, action).await,
        Cmd::Partitions { action } => partitions_cli::run(&ctx.con, &ctx.ns, action).await,
        Cmd::Migrate { action } => cmd_migrate(ctx, action).await,
        Cmd::Events(args) => {
            if ctx.settings.redis.user_state.is_some() {
                bail!(
                    "`redis.user_state` puts user state on a Redis Cluster, which `events` does \
                     not write to (it imports into the catalog deployment): send the events \
                     through the gateway's POST /v1/events, or unset `redis.user_state`"
                );
            }
            let fields = &ctx.settings.index.fields;
            events_cli::run_events(
                &ctx.con,
                &ctx.ns,
                fields,
                &ctx.settings.user_state,
                args,
                ctx.progress,
            )
            .await
        }
        Cmd::Seed {
            dataset: SeedCmd::CompleteJourney { data_dir, history },
            force,
        } => seed_cli::seed_complete_journey(ctx, data_dir, history, force).await,
        Cmd::Seed {
            dataset: SeedCmd::Synthetic { items, dim, seed },
            force,
        } => seed_cli::seed_synthetic(ctx, items, dim, seed, force).await,
    }
}

/// `cf`: trains collaborative vectors and publishes them as the `cf_vector` field.
async fn cmd_cf(ctx: Ctx, args: CfArgs) -> Result<()> {
    let Ctx { ns, con, opts, .. } = ctx;
    let started = std::time::Instant::now();
    let quantity = (args.quantity_col != "none").then_some(args.quantity_col.as_str());
    let (by_user, names) = redrec_ingest::cf::basket_counts_from_parquet(
        &args.interactions,
        [&args.user_col, &args.item_col, &args.basket_col],
        quantity,
        args.time_col.as_deref().zip(args.until),
    )?;
    let read_secs = started.elapsed().as_secs_f64();
    let params = redrec_ingest::cf::AlsParams {
        factors: args.factors,
        iterations: args.iterations,
        min_users: args.min_users,
        seed: args.seed,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        solver: args.solver.solver(),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let model = redrec_ingest::cf::train(&by_user, names.len(), &params);
    let train_secs = t.elapsed().as_secs_f64();
    let vectors = redrec_ingest::cf::item_vectors(&model, &names);
    let mut con = con.clone();
    let report = redrec_ingest::cf_field::publish(
        &mut con,
        &ns,
        vectors,
        opts.write.batch_size,
        opts.write.in_flight,
    )
    .await?;
    println!(
        "cf: {} users, {} items with a vector (of {} bought); read {read_secs:.1}s, ALS {}-d x {} iterations {train_secs:.1}s; {} `{}` on {}: {} written, {} not in the catalog, write {:.1}s{}",
        by_user.len(),
        model.item_ids.len(),
        names.len(),
        params.factors,
        params.iterations,
        if report.added_field {
            "added"
        } else {
            "rewrote"
        },
        redrec_ingest::cf_field::CF_FIELD,
        report.index,
        report.written,
        report.missing,
        report.write_secs,
        if report.added_field {
            format!(", indexed in {:.1}s", report.index_secs)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `load`: items and vectors from a file.
async fn cmd_load(
    ctx: Ctx,
    input: InputArgs,
    json: bool,
    no_vector: bool,
    schema: Option<PathBuf>,
) -> Result<()> {
    let Ctx {
        mut settings,
        ns,
        con,
        mut opts,
        vector_field,
        ..
    } = ctx;
    if schema.is_some() {
        settings.index.schema_file = schema;
    }
    let mut template = settings.index.schema(1).context("index schema")?;
    if json {
        template.index.storage_type = StorageType::Json;
    }
    let mut mapping = settings.mapping.clone();
    if no_vector {
        mapping.require_vector = false;
    }
    opts.on_invalid = on_invalid(&input);
    let spec = spec(&input, &mapping, &vector_field)?;
    let report = load::load(&con, &ns, &template, Arc::new(spec), &mapping, &opts).await;
    print_load(report, &input)
}

/// `refresh`: new vectors for existing items, in place, while serving.
async fn cmd_refresh(ctx: Ctx, input: InputArgs, field: Option<String>) -> Result<()> {
    let Ctx {
        settings,
        ns,
        con,
        mut opts,
        vector_field,
        ..
    } = ctx;
    let field = field.unwrap_or(vector_field);
    opts.on_invalid = on_invalid(&input);
    let spec = spec(&input, &settings.mapping, &field)?;
    let r = refresh::refresh(&con, &ns, &field, Arc::new(spec), &settings.mapping, &opts).await?;
    println!("refresh: {r}");
    Ok(())
}

/// `status`: the serving index and the migration state.
async fn cmd_status(ctx: Ctx) -> Result<()> {
    let Ctx { ns, con, .. } = ctx;
    let mut c = con.clone();
    match index::info(&mut c, &ns.alias()).await? {
        None => println!(
            "alias {} does not exist (nothing loaded in namespace {})",
            ns.alias(),
            ns.name()
        ),
        Some(i) => println!(
            "alias {} -> {}: {} docs, {:.1}% indexed, {} indexing failures",
            ns.alias(),
            i.name,
            i.num_docs,
            i.percent_indexed * 100.0,
            i.hash_indexing_failures
        ),
    }
    if let Some(st) = migrate::state(&mut c, &ns).await? {
        println!("migration: {}", serde_json::to_string_pretty(&st)?);
    }
    Ok(())
}

/// `schema export` / `schema apply`.
async fn cmd_schema(ctx: Ctx, action: SchemaCmd) -> Result<()> {
    let Ctx { ns, con, .. } = ctx;
    let mut c = con.clone();
    match action {
        SchemaCmd::Export { out } => {
            let schema = index::live_schema(&mut c, &ns, &ns.alias())
                .await?
                .with_context(|| format!("alias {} does not exist", ns.alias()))?;
            match out {
                Some(p) => std::fs::write(&p, schema.to_yaml())
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => print!("{}", schema.to_yaml()),
            }
        }
        SchemaCmd::Apply { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let schema = IndexSchema::from_yaml(&text)
                .with_context(|| format!("schema {}", file.display()))?;
            let created = index::create_if_missing(
                &mut c,
                &ns,
                &schema,
                &schema.index.name,
                &Default::default(),
            )
            .await?;
            index::point_alias(&mut c, &ns.alias(), &schema.index.name).await?;
            println!(
                "index {} {}; alias {} points to it",
                schema.index.name,
                if created {
                    "created"
                } else {
                    "already existed"
                },
                ns.alias()
            );
        }
    }
    Ok(())
}

/// `migrate run|status|switch|rollback|cleanup`.
async fn cmd_migrate(ctx: Ctx, action: MigrateCmd) -> Result<()> {
    let Ctx {
        settings,
        ns,
        con,
        opts,
        progress,
        vector_field,
    } = ctx;
    match action {
        MigrateCmd::Run {
            file,
            format,
            ids,
            file_dims,
            embed,
            dims,
            field,
            shadow_sample,
            k,
        } => {
            let field = field.unwrap_or(vector_field);
            let (rows, mapping, dims) = if embed {
                embedded_rows(&settings, &con, &ns, dims, progress).await?
            } else {
                let input = InputArgs {
                    file: file.context("a vector file or --embed is required")?,
                    format,
                    ids,
                    dims: file_dims,
                    skip_invalid: false,
                    rejects: PathBuf::from("rejects.jsonl"),
                };
                let dims = dims
                    .or(file_dims)
                    .context("--dims is required with a vector file")?;
                let spec = spec(&input, &settings.mapping, &field)?;
                let rows: Arc<dyn load::RowFactory> = Arc::new(spec);
                (rows, settings.mapping.clone(), dims)
            };
            let target = migrate::Target {
                field,
                dims,
                attrs: None,
            };
            let st =
                migrate::run(&con, &ns, &target, rows, &mapping, &opts, shadow_sample, k).await?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        MigrateCmd::Status => {
            let mut c = con.clone();
            match migrate::state(&mut c, &ns).await? {
                Some(st) => println!("{}", serde_json::to_string_pretty(&st)?),
                None => println!("no migration recorded in {}", ns.meta("migration")),
            }
        }
        MigrateCmd::Switch { force } => {
            let st = migrate::switch(&con, &ns, force).await?;
            println!("alias {} -> {}", ns.alias(), st.to_index);
        }
        MigrateCmd::Rollback => {
            let st = migrate::rollback(&con, &ns).await?;
            println!("alias {} -> {} (rolled back)", ns.alias(), st.from_index);
        }
        MigrateCmd::Cleanup => {
            let (st, touched) = migrate::cleanup(&con, &ns).await?;
            println!(
                "cleaned up after migration to {}: {touched} items lost their unused vector field",
                st.to_index
            );
        }
    }
    Ok(())
}

/// A migration's rows from the catalog's own texts, embedded with the configured model
/// (`migrate run --embed`); `dims` defaults to the model's.
async fn embedded_rows(
    settings: &Settings,
    con: &redis::aio::MultiplexedConnection,
    ns: &Namespace,
    dims: Option<usize>,
    progress: ProgressMode,
) -> Result<(Arc<dyn load::RowFactory>, Mapping, usize)> {
    let embedder: Arc<dyn redrec_embedder::Embedder> =
        Arc::from(redrec_embedder::from_config(&settings.embedder).context("embedder")?);
    let dims = dims.unwrap_or(embedder.dims());
    let items = migrate::item_texts(con, ns, &settings.index.fields.text).await?;
    let batch = settings.embedder.batch_size;
    let rows = tokio::task::spawn_blocking(move || {
        migrate::embed_rows(&items, embedder.as_ref(), batch, progress)
    })
    .await??;
    Ok((Arc::new(rows), Mapping::default(), dims))
}

fn print_load(report: redrec_ingest::Result<load::LoadReport>, input: &InputArgs) -> Result<()> {
    print_outcome("load", report, |r| r.rejected, &input.file, &input.rejects)
}

/// Prints a load's or an import's report (and where its rejected rows went), or the invalid
/// rows that stopped a strict run reading `file`.
fn print_outcome<R: std::fmt::Display>(
    what: &str,
    outcome: redrec_ingest::Result<R>,
    rejected: impl Fn(&R) -> u64,
    file: &std::path::Path,
    rejects: &std::path::Path,
) -> Result<()> {
    match outcome {
        Ok(r) => {
            println!("{what}: {r}");
            if rejected(&r) > 0 {
                println!("rejected rows and reasons: {}", rejects.display());
            }
            Ok(())
        }
        Err(redrec_ingest::Error::Invalid { count, first }) => {
            for r in &first {
                eprintln!("invalid: {r}");
            }
            bail!(
                "{count} invalid row(s) in {}: nothing written (strict mode; --skip-invalid writes the valid rows)",
                file.display()
            )
        }
        Err(e) => Err(e.into()),
    }
}
