//! `cargo xtask seed`: loads a dataset into the Redis redrec uses. Starts the embedded Redis
//! when needed, fetches the pinned dataset and model, and runs the `redrec-ingest` binary (in
//! release mode): xtask orchestrates, it links none of the ingest crates.
//!
//! - `cargo xtask seed` / `cargo xtask seed complete-journey`: the real retail catalog and its
//!   2,469 household purchase histories (`--households N` for a subset, `--until DATE` for a
//!   train / test cut-off, `--no-history` for the catalog alone).
//! - `cargo xtask seed synthetic --items 100000 --dim 128 --seed 42 [--namespace X]`.
//!
//! A namespace that already holds the requested dataset is left alone unless `--force`.

use anyhow::Result;

use crate::{Asset, cargo, fetch, redis, run_step};

#[derive(clap::Args, Debug)]
pub struct SeedArgs {
    #[command(subcommand)]
    dataset: Option<Dataset>,
    /// Key namespace to load into (default: `index.namespace` from the config, `redrec`)
    #[arg(long, global = true)]
    namespace: Option<String>,
    /// Reload even if the namespace already holds this dataset (otherwise a second seed is a no-op)
    #[arg(long, global = true)]
    force: bool,
    /// Port of the embedded Redis (ignored when REDREC_REDIS__URL is set)
    #[arg(long, global = true, env = "REDREC_REDIS_PORT", default_value_t = redis::DEFAULT_PORT)]
    port: u16,
}

#[derive(clap::Subcommand, Debug)]
enum Dataset {
    /// The Complete Journey retail catalog (default): 92,331 products, embedded with MiniLM, and
    /// the households' purchase histories
    CompleteJourney {
        /// Seed only the catalog, not the household histories
        #[arg(long)]
        no_history: bool,
        /// Seed the histories of this many households (the smallest ids); default all 2,469
        #[arg(long)]
        households: Option<usize>,
        /// Seed only transactions before this date (`YYYY-MM-DD`)
        #[arg(long)]
        until: Option<String>,
    },
    /// A deterministic synthetic catalog for benchmarks
    Synthetic {
        #[arg(long, default_value_t = 100_000)]
        items: u64,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// `cargo xtask seed` with no dataset: Complete Journey with all household histories.
const COMPLETE_JOURNEY: Dataset = Dataset::CompleteJourney {
    no_history: false,
    households: None,
    until: None,
};

pub fn seed(args: &SeedArgs) -> Result<()> {
    let dataset = args.dataset.as_ref().unwrap_or(&COMPLETE_JOURNEY);
    run_ingest_seed(args.port, args.namespace.as_deref(), dataset, args.force)
}

/// Seeds the default dataset (Complete Journey) into the default namespace, as `cargo xtask seed`
/// does: a no-op when the namespace already holds it.
pub fn seed_default(port: u16) -> Result<()> {
    run_ingest_seed(port, None, &COMPLETE_JOURNEY, false)
}

fn run_ingest_seed(
    port: u16,
    namespace: Option<&str>,
    dataset: &Dataset,
    force: bool,
) -> Result<()> {
    // the development server keeps its data (what seed loads survives a restart)
    let url = redis::up_dev(port)?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "redrec-ingest", "--"])
        .env("REDREC_REDIS__URL", &url);
    if let Some(ns) = namespace {
        cmd.args(["--namespace", ns]);
    }
    match dataset {
        Dataset::CompleteJourney {
            no_history,
            households,
            until,
        } => {
            let data = fetch(Asset::CompleteJourney)?;
            let model = fetch(Asset::Model)?;
            cmd.env("REDREC_EMBEDDER__MODEL_DIR", &model)
                .args(["seed", "complete-journey", "--data-dir"])
                .arg(&data);
            if *no_history {
                cmd.arg("--no-history");
            }
            if let Some(n) = households {
                cmd.arg("--households").arg(n.to_string());
            }
            if let Some(u) = until {
                cmd.arg("--until").arg(u);
            }
        }
        &Dataset::Synthetic { items, dim, seed } => {
            cmd.args(["seed", "synthetic", "--items"])
                .arg(items.to_string())
                .arg("--dim")
                .arg(dim.to_string())
                .arg("--seed")
                .arg(seed.to_string());
        }
    }
    if force {
        cmd.arg("--force");
    }
    run_step("redrec-ingest seed", &mut cmd)
}
