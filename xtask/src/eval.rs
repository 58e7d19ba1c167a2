//! `cargo xtask eval`: next-basket quality of what the gateway serves, next to baselines
//! (docs/QUALITY.md). Builds `redrec-eval`, `redrec-ingest` and `redrec-gateway` in release
//! mode, starts the embedded Redis, loads the catalog into the eval's own namespace (`eval`,
//! never the demo's; skipped when already there), has `redrec-eval --cf-only` train and publish
//! the collaborative vectors on the training part of the split (skipped when already trained on
//! exactly that), starts two gateways over the namespace on ephemeral ports (the served one, and
//! the text-only pipeline: history source off by config), and runs `redrec-eval`, which imports
//! the training events through the interaction import, asks both gateways for every evaluated
//! household and writes `target/eval/report.{md,json}` and `quality.png`. The wall time of each
//! phase goes to `target/eval/phases.json`. xtask only orchestrates processes.
//!
//! Default data: Complete Journey (`cargo xtask fetch complete-journey`). Any other catalog +
//! interactions: `--catalog items.jsonl --interactions events.csv -- --user-col ...`.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Instant,
};

use anyhow::Result;

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
    /// How the training events reach the gateway's user state: `events` (the interaction
    /// import, event time = basket time) or `http` (POST /v1/events, the gateway's clock)
    #[arg(long, default_value = "events", value_parser = ["events", "http"])]
    import: String,
    /// Collaborative vectors: `auto` trains and publishes `cf_vector` on the split's training
    /// part unless it already holds exactly that, `retrain` always, `off` leaves the field alone
    #[arg(long, default_value = "auto", value_parser = ["auto", "retrain", "off"])]
    cf: String,
    /// Do not start the text-only pipeline gateway (no `text-only pipeline` arm)
    #[arg(long)]
    no_text_only: bool,
    /// Further arguments for redrec-eval (`cargo run -p redrec-eval -- --help`)
    #[arg(last = true)]
    extra: Vec<String>,
}

/// Gateway settings of the text-only pipeline, on top of the served gateway's: the default
/// profile extended with `exclude_purchased`, which is what switches the `history` candidate
/// source off on this version (purchases then also count as seen).
const TEXT_ONLY_ENV: &[(&str, &str)] = &[
    ("REDREC_RERANKER__PROFILES__DEFAULT__EXTENDS", "default"),
    (
        "REDREC_RERANKER__PROFILES__DEFAULT__EXCLUDE_PURCHASED",
        "true",
    ),
];

/// Wall time per phase, printed at the end and written to `phases.json`.
struct Phases {
    out: PathBuf,
    phases: Vec<(String, f64)>,
    started: Instant,
}

impl Phases {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let r = f();
        self.phases
            .push((name.to_owned(), t.elapsed().as_secs_f64()));
        r
    }

    fn finish(mut self) -> Result<()> {
        self.phases
            .push(("total".to_owned(), self.started.elapsed().as_secs_f64()));
        eprintln!("xtask: eval wall time by phase:");
        let mut json = String::from("{");
        for (i, (name, secs)) in self.phases.iter().enumerate() {
            eprintln!("  {name:<48} {secs:>7.1} s");
            json.push_str(&format!(
                "{}\"{}\": {secs:.1}",
                if i == 0 { "" } else { ", " },
                name.replace('"', "'")
            ));
        }
        json.push_str("}\n");
        std::fs::write(self.out.join("phases.json"), json)?;
        Ok(())
    }
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let root = workspace_root();
    let out = root.join("target").join("eval");
    std::fs::create_dir_all(&out)?;
    let mut phases = Phases {
        out: out.clone(),
        phases: Vec::new(),
        started: Instant::now(),
    };
    phases.run("cargo build --release", || {
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
        )
    })?;
    let bin = root.join("target").join("release");
    let url = phases.run("redis up", || redis::up_dev(args.port))?;
    let model = fetch(Asset::Model)?;

    // The arguments both redrec-eval runs share: data, columns, split, namespace.
    let mut common: Vec<std::ffi::OsString> = Vec::new();
    let mut push = |a: &str| common.push(a.into());
    push("--namespace");
    push(&args.namespace);
    push("--redis-url");
    push(&url);
    push("--cf");
    push(&args.cf);
    if args.quick {
        push("--quick");
    }
    if args.last_basket {
        push("--last-basket");
    } else {
        push("--cutoff");
        push(&args.cutoff);
    }
    common.push("--out".into());
    common.push(out.clone().into());
    match (&args.catalog, &args.interactions) {
        (Some(catalog), Some(interactions)) => {
            phases.run("catalog load (once per namespace)", || {
                load_catalog(&bin, &url, &model, &args.namespace, catalog)
            })?;
            common.push("--interactions".into());
            common.push(interactions.into());
        }
        (None, interactions) => {
            let data = fetch(Asset::CompleteJourney)?;
            let mut seed = Command::new(bin.join("redrec-ingest"));
            seed.current_dir(&root)
                .env("REDREC_REDIS__URL", &url)
                .env("REDREC_EMBEDDER__MODEL_DIR", &model)
                .args(["--namespace", &args.namespace, "--progress", "lines"])
                // the evaluation imports the histories of its own split itself
                .args(["seed", "complete-journey", "--no-history", "--data-dir"])
                .arg(&data);
            phases.run("catalog seed (once per namespace)", || {
                run_step(
                    "redrec-ingest seed complete-journey --no-history (once per namespace)",
                    &mut seed,
                )
            })?;
            match interactions {
                Some(i) => {
                    common.push("--interactions".into());
                    common.push(i.into());
                }
                None => {
                    common.push("--interactions".into());
                    common.push(data.join("transactions.parquet").into());
                    for a in [
                        "--user-col",
                        "household_id",
                        "--item-col",
                        "product_id",
                        "--time-col",
                        "transaction_timestamp",
                        "--basket-col",
                        "basket_id",
                        "--quantity-col",
                        "quantity",
                    ] {
                        common.push(a.into());
                    }
                }
            }
        }
        (Some(_), None) => unreachable!("clap requires --interactions with --catalog"),
    }
    common.extend(args.extra.iter().map(Into::into));
    let redrec_eval = || {
        let mut c = Command::new(bin.join("redrec-eval"));
        // the same configuration as the gateways: defaults and REDREC_* variables
        c.current_dir(&root)
            .env_remove("REDREC_CONFIG")
            .args(&common);
        c
    };

    let mut gateways: Vec<Child> = Vec::new();
    let mut eval = redrec_eval();
    if !args.no_gateway {
        if args.cf != "off" {
            phases.run("cf_vector: read + split + ALS train + publish", || {
                run_step("redrec-eval --cf-only", redrec_eval().arg("--cf-only"))
            })?;
        }
        let served = phases.run("gateway start", || {
            start_gateway(
                &bin,
                &url,
                &model,
                &args.namespace,
                &out.join("gateway.log"),
                &[],
            )
        })?;
        eval.args(["--gateway-url", &served.1, "--api-key", EVAL_API_KEY])
            .args(["--import", &args.import]);
        gateways.push(served.0);
        if !args.no_text_only {
            let text_only = phases.run("text-only gateway start", || {
                start_gateway(
                    &bin,
                    &url,
                    &model,
                    &args.namespace,
                    &out.join("gateway-text-only.log"),
                    TEXT_ONLY_ENV,
                )
            });
            match text_only {
                Ok((child, base)) => {
                    gateways.push(child);
                    eval.args(["--text-only-url", &base]);
                }
                Err(e) => {
                    stop(&mut gateways);
                    return Err(e);
                }
            }
        }
    }
    let result = phases.run(
        "redrec-eval (read, split, baselines, reset, import, requests, report)",
        || run_step("redrec-eval", &mut eval),
    );
    stop(&mut gateways);
    result?;
    eprintln!("xtask: report in {}", out.join("report.md").display());
    phases.finish()
}

fn stop(gateways: &mut Vec<Child>) {
    for mut gw in gateways.drain(..) {
        let _ = gw.kill();
        let _ = gw.wait();
    }
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

/// Starts a gateway over the eval namespace with extra settings `env`; returns it and its base
/// URL.
fn start_gateway(
    bin: &Path,
    redis_url: &str,
    model: &Path,
    ns: &str,
    log: &Path,
    env: &[(&str, &str)],
) -> Result<(Child, String)> {
    let listen = format!("127.0.0.1:{}", ephemeral_port()?);
    let mut cmd = Command::new(bin.join("redrec-gateway"));
    cmd.env("REDREC_REDIS__URL", redis_url)
        .env("REDREC_INDEX__NAMESPACE", ns)
        .env("REDREC_GATEWAY__API_KEYS", format!("[\"{EVAL_API_KEY}\"]"))
        .env("REDREC_EMBEDDER__MODEL_DIR", model)
        // The catalog's popularity stays as seeded, so every run sees the same catalog.
        .env("REDREC_GATEWAY__POPULARITY_FOLD_SECS", "0")
        // each request runs at its household's next-basket time (`x-redrec-as-of`), so decays
        // and session expiry see the replayed history as the household lived it
        .env("REDREC_GATEWAY__REPLAY_CLOCK", "true")
        .env("RUST_LOG", "warn");
    // The evaluation measures ranking quality, not latency: it asks for every household at once,
    // so it gives each request a long deadline rather than count 503s as empty lists.
    if std::env::var_os("REDREC_GATEWAY__DEADLINE_MS").is_none() {
        cmd.env("REDREC_GATEWAY__DEADLINE_MS", "5000");
    }
    if std::env::var_os("REDREC_REDIS__COMMAND_TIMEOUT_MS").is_none() {
        cmd.env("REDREC_REDIS__COMMAND_TIMEOUT_MS", "1000");
    }
    cmd.envs(env.iter().copied());
    let child = crate::bench::spawn_gateway(cmd, &listen, log)?;
    Ok((child, format!("http://{listen}")))
}
