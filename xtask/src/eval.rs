//! `cargo xtask eval`: next-basket quality of what the gateway serves, next to baselines
//! (docs/QUALITY.md). Builds `redrec-eval`, `redrec-ingest` and `redrec-gateway` in release
//! mode, starts the embedded Redis, loads the catalog into the eval's own namespace (`eval`,
//! never the demo's; skipped when already there), starts a gateway over that namespace on an
//! ephemeral port, and runs `redrec-eval`, which imports the training events through the gateway,
//! asks it for every evaluated household and writes `target/eval/report.{md,json}` and
//! `quality.png`. xtask only orchestrates processes.
//!
//! Default data: Complete Journey (`cargo xtask fetch complete-journey`). Any other catalog +
//! interactions: `--catalog items.jsonl --interactions events.csv -- --user-col ...`.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{Asset, cargo, fetch, redis, run_step, workspace_root};

/// The key the eval's gateway accepts for `POST /v1/events` (it listens on 127.0.0.1 only).
const EVAL_API_KEY: &str = "eval-key";

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A few hundred households (a deterministic sample) instead of all
    #[arg(long)]
    quick: bool,
    /// Hold out each household's last basket instead of splitting at the cut-off date
    #[arg(long)]
    last_basket: bool,
    /// Train before this date, predict each household's next basket after it
    #[arg(long, default_value = "2017-12-01")]
    cutoff: String,
    /// Key namespace of the eval's catalog and users
    #[arg(long, default_value = "eval")]
    namespace: String,
    /// Catalog file to load with `redrec-ingest load` (default: the Complete Journey seed)
    #[arg(long, requires = "interactions")]
    catalog: Option<PathBuf>,
    /// Interaction file (default: Complete Journey's transactions.parquet with its column names)
    #[arg(long)]
    interactions: Option<PathBuf>,
    /// Port of the embedded Redis
    #[arg(long, env = "REDREC_REDIS_PORT", default_value_t = redis::DEFAULT_PORT)]
    port: u16,
    /// Run only the offline baselines (no gateway)
    #[arg(long)]
    no_gateway: bool,
    /// Further arguments for redrec-eval (`cargo run -p redrec-eval -- --help`)
    #[arg(last = true)]
    extra: Vec<String>,
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let started = Instant::now();
    let root = workspace_root();
    let out = root.join("target").join("eval");
    std::fs::create_dir_all(&out)?;
    run_step(
        "cargo build --release (eval, ingest, gateway)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "redrec-eval",
            "-p",
            "redrec-ingest",
            "-p",
            "redrec-gateway",
        ]),
    )?;
    let bin = root.join("target").join("release");
    redis::up(&redis::UpOptions {
        port: args.port,
        persist: true,
        data_dir: None,
    })?;
    let url = redis::Target::from_env(args.port).url();
    let model = fetch(Asset::Model)?;

    let mut eval = Command::new(bin.join("redrec-eval"));
    eval.current_dir(&root)
        .env("REDREC_REDIS__URL", &url)
        .args(["--namespace", &args.namespace])
        .arg("--out")
        .arg(&out);
    match (&args.catalog, &args.interactions) {
        (Some(catalog), Some(interactions)) => {
            load_catalog(&bin, &url, &model, &args.namespace, catalog)?;
            eval.arg("--interactions").arg(interactions);
        }
        (None, interactions) => {
            let data = fetch(Asset::CompleteJourney)?;
            let mut seed = Command::new(bin.join("redrec-ingest"));
            seed.current_dir(&root)
                .env("REDREC_REDIS__URL", &url)
                .env("REDREC_EMBEDDER__MODEL_DIR", &model)
                .args(["--namespace", &args.namespace, "--progress", "lines"])
                .args(["seed", "complete-journey", "--data-dir"])
                .arg(&data);
            run_step(
                "redrec-ingest seed complete-journey (once per namespace)",
                &mut seed,
            )?;
            match interactions {
                Some(i) => {
                    eval.arg("--interactions").arg(i);
                }
                None => {
                    eval.arg("--interactions")
                        .arg(data.join("transactions.parquet"))
                        .args(["--user-col", "household_id", "--item-col", "product_id"])
                        .args(["--time-col", "transaction_timestamp"])
                        .args(["--basket-col", "basket_id", "--quantity-col", "quantity"]);
                }
            }
        }
        (Some(_), None) => unreachable!("clap requires --interactions with --catalog"),
    }
    if args.quick {
        eval.arg("--quick");
    }
    if args.last_basket {
        eval.arg("--last-basket");
    } else {
        eval.args(["--cutoff", &args.cutoff]);
    }
    let mut gateway = None;
    if !args.no_gateway {
        let (child, base) = start_gateway(&bin, &url, &model, &args.namespace, &out)?;
        gateway = Some(child);
        eval.args(["--gateway-url", &base, "--api-key", EVAL_API_KEY]);
    }
    eval.args(&args.extra);
    let result = run_step("redrec-eval", &mut eval);
    if let Some(mut gw) = gateway {
        let _ = gw.kill();
        let _ = gw.wait();
    }
    result?;
    eprintln!(
        "xtask: eval took {:.0} s; report in {}",
        started.elapsed().as_secs_f64(),
        out.join("report.md").display()
    );
    Ok(())
}

/// Loads a catalog file into the namespace (strict validation, so a bad row stops the load).
fn load_catalog(bin: &Path, url: &str, model: &Path, ns: &str, file: &Path) -> Result<()> {
    run_step(
        "redrec-ingest load (catalog)",
        Command::new(bin.join("redrec-ingest"))
            .current_dir(workspace_root())
            .env("REDREC_REDIS__URL", url)
            .env("REDREC_EMBEDDER__MODEL_DIR", model)
            .args(["--namespace", ns, "--progress", "lines", "load"])
            .arg(file),
    )
}

/// A free port on 127.0.0.1 (bound, read, released).
fn ephemeral_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts a gateway over the eval namespace; returns it and its base URL.
fn start_gateway(
    bin: &Path,
    redis_url: &str,
    model: &Path,
    ns: &str,
    out: &Path,
) -> Result<(Child, String)> {
    let listen = format!("127.0.0.1:{}", ephemeral_port()?);
    let log_path = out.join("gateway.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(bin.join("redrec-gateway"));
    cmd.current_dir(workspace_root())
        .env_remove("REDREC_CONFIG")
        .env("REDREC_REDIS__URL", redis_url)
        .env("REDREC_INDEX__NAMESPACE", ns)
        .env("REDREC_GATEWAY__LISTEN", &listen)
        .env("REDREC_GATEWAY__API_KEYS", format!("[\"{EVAL_API_KEY}\"]"))
        .env("REDREC_EMBEDDER__MODEL_DIR", model)
        // The catalog's popularity stays as seeded, so every run sees the same catalog.
        .env("REDREC_GATEWAY__POPULARITY_FOLD_SECS", "0")
        .env("RUST_LOG", "warn");
    // The evaluation measures ranking quality, not latency: it asks for every household at once,
    // so it gives each request a long deadline rather than count 503s as empty lists.
    if std::env::var_os("REDREC_GATEWAY__DEADLINE_MS").is_none() {
        cmd.env("REDREC_GATEWAY__DEADLINE_MS", "5000");
    }
    if std::env::var_os("REDREC_REDIS__COMMAND_TIMEOUT_MS").is_none() {
        cmd.env("REDREC_REDIS__COMMAND_TIMEOUT_MS", "1000");
    }
    let mut child = cmd
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("cannot start redrec-gateway")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "redrec-gateway exited with {status} before it was healthy; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if crate::bench::healthy(&listen) {
            eprintln!(
                "xtask: eval gateway on http://{listen} (pid {})",
                child.id()
            );
            return Ok((child, format!("http://{listen}")));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "redrec-gateway did not answer /healthz within 60 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
