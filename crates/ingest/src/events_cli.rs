//! The `redrec-ingest events` subcommand and the Complete Journey household histories of
//! `redrec-ingest seed complete-journey`: flags to [`redrec_ingest::events::ImportOptions`].

use std::{collections::HashSet, path::PathBuf, sync::Arc};

use anyhow::{Context, Result, bail};
use redis::aio::MultiplexedConnection;
use redrec_core::{keys::Namespace, schema::ItemFields};
use redrec_ingest::{
    dataset::complete_journey,
    events::{self, EventColumns, ImportOptions},
    load::OnInvalid,
    progress::ProgressMode,
    source::{Format, SourceSpec, Value},
};
use redrec_userstate::{UserStateConfig, UserStateStore};

/// `redrec-ingest events FILE`.
#[derive(clap::Args, Clone, Debug)]
pub struct EventsArgs {
    /// Interaction file (.jsonl, .csv, .parquet): user, item, timestamp, type or quantity
    file: PathBuf,
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write the valid events and record the invalid rows instead of writing nothing
    #[arg(long)]
    skip_invalid: bool,
    /// Where --skip-invalid writes rejected rows with reasons (JSONL)
    #[arg(long, default_value = "rejects.jsonl")]
    rejects: PathBuf,
    #[command(flatten)]
    select: SelectArgs,
    #[arg(long, default_value = "user_id")]
    user_column: String,
    #[arg(long, default_value = "item_id")]
    item_column: String,
    #[arg(long, default_value = "timestamp")]
    time_column: String,
    #[arg(long, default_value = "type")]
    type_column: String,
    #[arg(long, default_value = "quantity")]
    quantity_column: String,
    #[arg(long, default_value = "event_id")]
    event_id_column: String,
    #[arg(long, default_value = "basket_id")]
    basket_column: String,
}

/// What part of the interactions to import.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SelectArgs {
    /// Import only events before this instant (`YYYY-MM-DD`, RFC 3339, or unix s / ms)
    #[arg(long)]
    until: Option<String>,
    /// Import only the users listed in this file (one id per line)
    #[arg(long)]
    users: Option<PathBuf>,
    /// How long the idempotency markers of imported events live: a re-run within this time
    /// applies nothing twice
    #[arg(long, default_value_t = 3600)]
    idempotency_ttl_secs: u64,
    /// Batches (of up to `features.max_batch` events) in flight
    #[arg(long, default_value_t = 8)]
    event_batches_in_flight: usize,
}

/// `seed complete-journey` flags for the household histories.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct HistoryArgs {
    /// Seed only the catalog, not the household purchase histories
    #[arg(long)]
    no_history: bool,
    /// Seed the histories of this many households (the smallest ids); default all
    #[arg(long)]
    households: Option<usize>,
    /// Seed only transactions before this date (`YYYY-MM-DD`): a train / test split
    #[arg(long)]
    until: Option<String>,
}

/// What a finished history import is recorded as in `{ns}:meta:seed:history`.
fn history_marker(args: &HistoryArgs) -> String {
    format!(
        "complete-journey households={} until={}",
        args.households
            .map_or_else(|| "all".to_owned(), |n| n.to_string()),
        args.until.as_deref().unwrap_or("none")
    )
}

fn until_ms(text: Option<&str>) -> Result<Option<i64>> {
    text.map(|t| {
        events::time::to_unix_ms(&Value::Str(t.to_owned()))
            .map_err(|m| anyhow::anyhow!("--until: {m}"))
    })
    .transpose()
}

fn store(
    ns: &Namespace,
    fields: &ItemFields,
    features: &UserStateConfig,
    ttl_secs: u64,
) -> Result<UserStateStore> {
    if ttl_secs == 0 {
        bail!("--idempotency-ttl-secs must be at least 1");
    }
    let config = UserStateConfig {
        idempotency_ttl_ms: ttl_secs * 1000,
        ..features.clone()
    };
    UserStateStore::new(ns.clone(), fields.clone(), config).context("features config")
}

pub async fn run_events(
    con: &MultiplexedConnection,
    ns: &Namespace,
    fields: &ItemFields,
    features: &UserStateConfig,
    args: EventsArgs,
    progress: ProgressMode,
) -> Result<()> {
    let spec = match args.format {
        Some(format) => SourceSpec {
            path: args.file.clone(),
            format,
            ids: None,
            dims: None,
            id_column: String::new(),
            vector_column: String::new(),
        },
        None => SourceSpec::new(&args.file)?,
    };
    if matches!(spec.format, Format::Npy | Format::F32) {
        bail!("events are read from .jsonl, .csv or .parquet files");
    }
    let users = match &args.select.users {
        None => None,
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<HashSet<_>>(),
        ),
    };
    let opts = ImportOptions {
        columns: EventColumns {
            user: args.user_column,
            item: args.item_column,
            timestamp: args.time_column,
            event_type: args.type_column,
            quantity: args.quantity_column,
            event_id: args.event_id_column,
            basket: args.basket_column,
            ..EventColumns::default()
        },
        on_invalid: if args.skip_invalid {
            OnInvalid::Skip {
                rejects: Some(args.rejects.clone()),
            }
        } else {
            OnInvalid::Strict
        },
        until_ms: until_ms(args.select.until.as_deref())?,
        users,
        in_flight: args.select.event_batches_in_flight,
        progress,
        ..ImportOptions::default()
    };
    let store = store(ns, fields, features, args.select.idempotency_ttl_secs)?;
    let outcome = events::import(con, &store, Arc::new(spec), &opts).await;
    crate::print_outcome("events", outcome, |r| r.rejected, &args.file, &args.rejects)
}

/// Imports the Complete Journey transactions as `purchase` events of their households.
pub async fn seed_history(
    con: &MultiplexedConnection,
    ns: &Namespace,
    fields: &ItemFields,
    features: &UserStateConfig,
    data_dir: &std::path::Path,
    args: &HistoryArgs,
    progress: ProgressMode,
) -> Result<()> {
    if args.no_history {
        return Ok(());
    }
    // The import is idempotent only while its event markers live (they expire), so a finished
    // import is recorded: seeding again (every `cargo xtask demo` does) must not apply the same
    // purchases a second time.
    let marker_key = ns.meta("seed:history");
    let marker = history_marker(args);
    let mut c = con.clone();
    let done: Option<String> = redis::cmd("GET")
        .arg(&marker_key)
        .query_async(&mut c)
        .await?;
    if done.as_deref() == Some(marker.as_str()) {
        println!(
            "seed: namespace {} already holds the household histories ({marker}); nothing to do",
            ns.name()
        );
        return Ok(());
    }
    if let Some(other) = done {
        bail!(
            "namespace {} holds household histories imported as `{other}`, not `{marker}`: importing \
             again would count purchases twice; seed with --no-history, or into a fresh --namespace",
            ns.name()
        );
    }
    let (_, transactions) = complete_journey::files(data_dir)?;
    let users = match args.households {
        None => None,
        Some(n) => Some(complete_journey::first_households(&transactions, n)?),
    };
    let opts = ImportOptions {
        columns: complete_journey::transaction_columns(),
        // quantity-0 lines (voids, some coupons) are not purchases: skipped and counted
        on_invalid: OnInvalid::Skip { rejects: None },
        until_ms: until_ms(args.until.as_deref())?,
        users,
        progress,
        ..ImportOptions::default()
    };
    let store = store(ns, fields, features, 3600)?;
    let spec = SourceSpec::new(&transactions)?;
    let r = events::import(con, &store, Arc::new(spec), &opts).await?;
    println!("seed complete-journey histories: {r}");
    let _: () = redis::cmd("SET")
        .arg(&marker_key)
        .arg(&marker)
        .query_async(&mut c)
        .await?;
    if r.rejected > 0 {
        let first = r
            .first_rejects
            .first()
            .map(|r| r.to_string())
            .unwrap_or_default();
        println!(
            "skipped {} transaction lines that are not purchases; first: {first}",
            r.rejected
        );
    }
    Ok(())
}
