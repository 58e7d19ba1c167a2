//! `cargo xtask bench`: one command for the whole benchmark. Builds `redrec-bench` and
//! `redrec-gateway` in release mode, starts a dedicated Redis (port 6391 by default, so test
//! traffic on 6380 and benchmark traffic do not disturb each other), seeds the synthetic catalog,
//! starts the gateway over it, runs the suite and writes `target/bench/report.{md,json}` and
//! `latency.png`. xtask only orchestrates processes: it links none of the heavy crates.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{cargo, redis, run_step, workspace_root};

/// The embedder's dimension: text queries through the gateway need an index of this size.
const MODEL_DIMS: usize = 384;
/// The key the bench's gateway accepts on write routes (it listens on 127.0.0.1 only).
const BENCH_API_KEY: &str = "bench-key";

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Items in the synthetic catalog [default: 100000; 20000 with --quick]
    #[arg(long)]
    items: Option<usize>,
    /// Vector dimension (384 matches the embedder and adds text queries to the gateway mix)
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Seconds per measured phase [default: 20; 4 with --quick]
    #[arg(long)]
    duration: Option<f64>,
    /// Small catalog and short phases: finishes in a few minutes
    #[arg(long)]
    quick: bool,
    /// Measure raw Redis only (no gateway)
    #[arg(long)]
    no_gateway: bool,
    /// Port of the dedicated benchmark Redis on 127.0.0.1
    #[arg(long, env = "REDREC_BENCH_REDIS_PORT", default_value_t = 6391)]
    redis_port: u16,
    /// Port the benchmark gateway listens on (127.0.0.1)
    #[arg(long, default_value_t = 8091)]
    gateway_port: u16,
    /// Leave the benchmark Redis running afterwards
    #[arg(long)]
    keep_redis: bool,
    /// Instead of the suite: read scaling. Seeds the catalog, starts N read replicas of the
    /// benchmark Redis (on the next ports) and measures the closed-loop maximum of the raw plan
    /// and of the gateway with 0, 1, .. N of them serving the searches; writes
    /// target/bench/replicas/replicas.md
    #[arg(long, default_value_t = 0)]
    replicas: u16,
    /// Further arguments for redrec-bench (see `cargo run -p redrec-bench -- --help`)
    #[arg(last = true)]
    extra: Vec<String>,
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let root = workspace_root();
    let out = root.join("target").join("bench");
    std::fs::create_dir_all(&out)?;
    let with_gateway = !args.no_gateway;

    let build_start = Instant::now();
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "redrec-bench",
        "-p",
        "redrec-ingest",
    ]);
    if with_gateway {
        build.args(["-p", "redrec-gateway"]);
    }
    run_step("cargo build --release (bench, gateway)", &mut build)?;
    eprintln!(
        "xtask: release build took {:.0} s",
        build_start.elapsed().as_secs_f64()
    );
    let bin_dir = root.join("target").join("release");

    if args.replicas > 0 {
        if let redis::Target::External(url) = redis::Target::from_env(args.redis_port) {
            bail!(
                "--replicas starts replicas of the embedded benchmark Redis, but REDREC_REDIS__URL \
                 is set ({url}); unset it, or measure your own replicas with redrec-bench \
                 --capacity-only --read-urls"
            );
        }
        if !with_gateway {
            bail!("--replicas compares the gateway too; it cannot be combined with --no-gateway");
        }
    }
    let (started_redis, redis_url) = redis::up_scratch(args.redis_port)?;
    let result = if args.replicas > 0 {
        run_replicas(args, &bin_dir, &out.join("replicas"), &redis_url)
    } else {
        run_with_redis(args, &bin_dir, &out, &redis_url, with_gateway)
    };
    if args.replicas > 0 && !args.keep_redis {
        // the replicas this run started (a primary it did not start stays up)
        crate::ha::stop(args.redis_port, &[crate::ha::Kind::Replica])?;
    }
    if started_redis && !args.keep_redis {
        redis::down(args.redis_port)?;
    }
    result
}

/// The arguments every `redrec-bench` invocation of one run shares.
fn common_args(args: &BenchArgs, out: &Path, redis_url: &str) -> Vec<String> {
    let mut common: Vec<String> = vec![
        "--redis-url".into(),
        redis_url.into(),
        "--dim".into(),
        args.dim.to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    if args.quick {
        common.push("--quick".into());
    }
    if let Some(items) = args.items {
        common.extend(["--items".into(), items.to_string()]);
    }
    if let Some(d) = args.duration {
        common.extend(["--duration".into(), d.to_string()]);
    }
    common
}

/// `--replicas N`: seed, start N replicas, then one capacity step per replica count with a
/// gateway configured for exactly those replicas, and the table of all steps.
fn run_replicas(args: &BenchArgs, bin_dir: &Path, dir: &Path, redis_url: &str) -> Result<()> {
    // a table of this run's steps only
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let bench_bin = bin_dir.join("redrec-bench");
    run_step(
        "redrec-bench --seed-only",
        Command::new(&bench_bin)
            .args(common_args(args, dir, redis_url))
            .arg("--seed-only"),
    )?;
    let ports = crate::ha::up_replicas(args.redis_port, args.replicas, false)?;
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    for n in 0..=urls.len() {
        let step_out = dir.join(format!("replicas-{n}"));
        std::fs::create_dir_all(&step_out)?;
        let gw = start_gateway(args, bin_dir, &step_out, redis_url, &urls[..n])?;
        let mut run = Command::new(&bench_bin);
        run.args(common_args(args, &step_out, redis_url))
            .arg("--capacity-only")
            .args([
                "--gateway-url",
                &format!("http://127.0.0.1:{}", args.gateway_port),
            ])
            .args(["--gateway-pid", &gw.id().to_string()])
            .args(["--gateway-api-key", BENCH_API_KEY]);
        if n > 0 {
            run.args(["--read-urls", &urls[..n].join(",")]);
        }
        if args.dim != MODEL_DIMS {
            run.args(["--mix", "75,25,0"]);
        }
        run.args(&args.extra);
        let result = run_step(
            &format!("redrec-bench --capacity-only ({n} replicas)"),
            &mut run,
        );
        let mut gw = gw;
        let _ = gw.kill();
        let _ = gw.wait();
        result?;
    }
    run_step(
        "redrec-bench --replica-table",
        Command::new(&bench_bin).arg("--replica-table").arg(dir),
    )?;
    eprintln!(
        "xtask: read-scaling table in {}",
        dir.join("replicas.md").display()
    );
    Ok(())
}

fn run_with_redis(
    args: &BenchArgs,
    bin_dir: &Path,
    out: &Path,
    redis_url: &str,
    with_gateway: bool,
) -> Result<()> {
    let common = common_args(args, out, redis_url);
    let bench_bin = bin_dir.join("redrec-bench");
    time_project_loader(args, bin_dir, out, redis_url)?;
    // Seed first, so the gateway starts over a complete index.
    run_step(
        "redrec-bench --seed-only",
        Command::new(&bench_bin)
            .args(&common)
            .arg("--seed-only")
            .args(["--drop-namespace", LOADER_NAMESPACE]),
    )?;
    let mut run = Command::new(&bench_bin);
    run.args(&common).arg("--reuse");
    if args.dim != MODEL_DIMS {
        // The gateway cannot embed text into this index (the model yields 384 dimensions), so
        // both sides run the mix without text queries.
        run.args(["--mix", "75,25,0"]);
    }
    let mut gateway = None;
    if with_gateway {
        let gw = start_gateway(args, bin_dir, out, redis_url, &[])?;
        run.args([
            "--gateway-url",
            &format!("http://127.0.0.1:{}", args.gateway_port),
        ])
        .args(["--gateway-pid", &gw.id().to_string()])
        .args(["--gateway-api-key", BENCH_API_KEY]);
        gateway = Some(gw);
    }
    run.args(&args.extra);
    let result = run_step("redrec-bench", &mut run);
    if let Some(mut gw) = gateway {
        let _ = gw.kill();
        let _ = gw.wait();
    }
    result?;
    eprintln!("xtask: report in {}", out.join("report.md").display());
    Ok(())
}

/// Namespace the project's loader is timed in (dropped again before the bench catalog is seeded).
const LOADER_NAMESPACE: &str = "bench-ingest";

/// Times `redrec-ingest seed synthetic` (it returns once the index is 100% indexed) and records
/// the figure in `ingest-loader.json` for the report. A failure is recorded, not fatal.
fn time_project_loader(
    args: &BenchArgs,
    bin_dir: &Path,
    out: &Path,
    redis_url: &str,
) -> Result<()> {
    let items = args
        .items
        .unwrap_or(if args.quick { 20_000 } else { 100_000 });
    let log_path = out.join("ingest.log");
    let log = std::fs::File::create(&log_path)?;
    eprintln!("xtask: timing redrec-ingest seed synthetic ({items} items)");
    let start = Instant::now();
    let status = Command::new(bin_dir.join("redrec-ingest"))
        .current_dir(workspace_root())
        .env_remove("REDREC_CONFIG")
        .env("REDREC_REDIS__URL", redis_url)
        .args(["--namespace", LOADER_NAMESPACE, "--progress", "lines"])
        .args(["seed", "synthetic", "--items", &items.to_string()])
        .args(["--dim", &args.dim.to_string(), "--seed", "42"])
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .status()
        .context("cannot run redrec-ingest")?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        eprintln!(
            "xtask: redrec-ingest failed ({status}); see {}",
            log_path.display()
        );
    }
    let json = format!(
        "{{\"loader\":\"redrec-ingest seed synthetic\",\"items\":{items},\"dim\":{},\"secs\":{secs:.3},\"items_per_sec\":{:.1},\"ok\":{}}}\n",
        args.dim,
        items as f64 / secs,
        status.success()
    );
    std::fs::write(out.join("ingest-loader.json"), json)?;
    Ok(())
}

/// Starts the benchmark gateway over `redis_url`, its searches on `replicas` when any.
fn start_gateway(
    args: &BenchArgs,
    bin_dir: &Path,
    out: &Path,
    redis_url: &str,
    replicas: &[String],
) -> Result<Child> {
    let model_dir = if args.dim == MODEL_DIMS {
        crate::fetch(crate::Asset::Model)?
    } else {
        // No model: the gateway serves vector and personalised queries without an embedder.
        out.join("no-model")
    };
    let listen = format!("127.0.0.1:{}", args.gateway_port);
    if TcpStream::connect(&listen).is_ok() {
        bail!("port {listen} is already in use; choose another with --gateway-port");
    }
    let mut cmd = Command::new(bin_dir.join("redrec-gateway"));
    cmd.env("REDREC_REDIS__URL", redis_url)
        .env("REDREC_INDEX__NAMESPACE", "bench")
        .env("REDREC_INDEX__VECTOR__DIMS", args.dim.to_string())
        .env("REDREC_GATEWAY__API_KEYS", format!("[\"{BENCH_API_KEY}\"]"))
        .env("REDREC_EMBEDDER__MODEL_DIR", &model_dir);
    if !replicas.is_empty() {
        let list: Vec<String> = replicas.iter().map(|u| format!("\"{u}\"")).collect();
        cmd.env("REDREC_REDIS__REPLICAS", format!("[{}]", list.join(",")));
    }
    spawn_gateway(cmd, &listen, &out.join("gateway.log"))
}

/// Starts a configured `redrec-gateway` command on `listen` (from the workspace root, without
/// `REDREC_CONFIG`, logging at warn into `log_path`: request logging costs CPU per request) and
/// waits until `GET /healthz` answers 200, at most 60 s. Shared by `bench` and `eval`.
pub(crate) fn spawn_gateway(mut cmd: Command, listen: &str, log_path: &Path) -> Result<Child> {
    let log = std::fs::File::create(log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut child = cmd
        .current_dir(workspace_root())
        .env_remove("REDREC_CONFIG")
        .env("REDREC_GATEWAY__LISTEN", listen)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("cannot start redrec-gateway")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "redrec-gateway exited with {status} before it was healthy; log:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        if healthy(listen) {
            eprintln!("xtask: gateway up on http://{listen} (pid {})", child.id());
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "redrec-gateway did not answer /healthz within 60 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `GET /healthz` answers 200.
pub(crate) fn healthy(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    status_is_ok(&buf)
}

fn status_is_ok(response: &[u8]) -> bool {
    response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_a_healthy_answer() {
        assert!(status_is_ok(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        ));
        assert!(!status_is_ok(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        assert!(!status_is_ok(b""));
    }
}
