//! `redrec-ingest seed`: the built-in datasets (Complete Journey with its purchase histories,
//! the synthetic catalog), skipped when the namespace already holds them (`{ns}:meta:seed`).

use std::{path::PathBuf, sync::Arc, time::Instant};

use anyhow::{Context, Result, bail};
use redrec_core::keys::Namespace;
use redrec_ingest::{
    dataset::{complete_journey, synthetic},
    index, load,
    load::OnInvalid,
    validate::Mapping,
};

use crate::{Ctx, events_cli};

/// `seed complete-journey`: the catalog (embedded with the configured model), then the
/// households' purchase histories.
pub(crate) async fn seed_complete_journey(
    ctx: Ctx,
    data_dir: PathBuf,
    history: events_cli::HistoryArgs,
    force: bool,
) -> Result<()> {
    let Ctx {
        mut settings,
        ns,
        con,
        opts,
        progress,
        ..
    } = ctx;
    let (fields, features) = (&settings.index.fields, &settings.user_state);
    if !force && already_seeded(&con, &ns, "complete-journey").await? {
        return events_cli::seed_history(
            &con, &ns, fields, features, &data_dir, &history, progress,
        )
        .await;
    }
    let started = Instant::now();
    let embedder = redrec_embedder::from_config(&settings.embedder)
        .context("embedder (run `cargo xtask fetch model` for the default model)")?;
    let dims = embedder.dims();
    if dims != settings.index.vector.dims {
        settings.index.vector.dims = dims;
    }
    let mut template = settings.index.schema(1).context("index schema")?;
    complete_journey::extend_schema(&mut template);
    let catalog = complete_journey::build(
        &data_dir,
        embedder.as_ref(),
        settings.embedder.batch_size,
        progress,
    )?;
    let s = &catalog.stats;
    eprintln!(
        "complete-journey: {} products, {} transaction lines, {} with a price, {} bought; read in {:.1}s; {} distinct texts embedded in {:.1}s ({:.0} texts/s, model {})",
        s.products,
        s.transaction_lines,
        s.with_price,
        s.bought,
        s.read_secs,
        s.distinct_texts,
        s.embed_secs,
        s.texts_per_sec,
        embedder.model_id()
    );
    let mapping = Mapping {
        required: vec![settings.index.fields.text.clone()],
        ..Mapping::default()
    };
    let rows = load::MemoryRows {
        label: format!("{}", data_dir.join("products.parquet").display()),
        rows: Arc::new(catalog.rows),
    };
    let report = load::load(&con, &ns, &template, Arc::new(rows), &mapping, &opts).await?;
    println!("seed complete-journey: {report}");
    println!("total {:.1}s", started.elapsed().as_secs_f64());
    set_seed_marker(&con, &ns, "complete-journey").await?;
    let (fields, features) = (&settings.index.fields, &settings.user_state);
    events_cli::seed_history(&con, &ns, fields, features, &data_dir, &history, progress).await
}

/// `seed synthetic`: the deterministic synthetic catalog.
pub(crate) async fn seed_synthetic(
    ctx: Ctx,
    items: u64,
    dim: usize,
    seed: u64,
    force: bool,
) -> Result<()> {
    let Ctx {
        mut settings,
        ns,
        con,
        mut opts,
        ..
    } = ctx;
    if items == 0 || items > 10_000_000 || dim == 0 || dim > 4096 {
        bail!("--items must be 1..=10000000 and --dim 1..=4096");
    }
    let marker = format!("synthetic items={items} dim={dim} seed={seed}");
    if !force && already_seeded(&con, &ns, &marker).await? {
        return Ok(());
    }
    settings.index.vector.dims = dim;
    let template = settings.index.schema(1).context("index schema")?;
    let generator = synthetic::Synthetic::new(synthetic::SyntheticParams {
        items,
        dims: dim,
        seed,
    });
    let rows = synthetic::SyntheticRows(Arc::new(generator));
    // Generated rows are valid by construction: one pass.
    opts.on_invalid = OnInvalid::Skip { rejects: None };
    let report = load::load(
        &con,
        &ns,
        &template,
        Arc::new(rows),
        &Mapping::default(),
        &opts,
    )
    .await?;
    if report.rejected > 0 {
        bail!(
            "synthetic generator produced {} invalid rows: {:?}",
            report.rejected,
            report.first_rejects
        );
    }
    println!("seed synthetic: {report}");
    set_seed_marker(&con, &ns, &marker).await?;
    Ok(())
}

/// True (and says so) when the namespace's alias serves an index and `{ns}:meta:seed` names
/// this dataset: re-seeding would rewrite the same items.
async fn already_seeded(
    con: &redis::aio::MultiplexedConnection,
    ns: &Namespace,
    what: &str,
) -> Result<bool> {
    let mut c = con.clone();
    let marker: Option<String> = redis::cmd("GET")
        .arg(ns.meta("seed"))
        .query_async(&mut c)
        .await?;
    let served = index::info(&mut c, &ns.alias()).await?;
    match (marker.as_deref(), served) {
        (Some(m), Some(info)) if m == what && info.num_docs > 0 => {
            println!(
                "seed: namespace {} already holds {what} ({} docs in {}); nothing to do (--force reloads)",
                ns.name(),
                info.num_docs,
                info.name
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}

async fn set_seed_marker(
    con: &redis::aio::MultiplexedConnection,
    ns: &Namespace,
    what: &str,
) -> Result<()> {
    let mut c = con.clone();
    let _: () = redis::cmd("SET")
        .arg(ns.meta("seed"))
        .arg(what)
        .query_async(&mut c)
        .await?;
    Ok(())
}
