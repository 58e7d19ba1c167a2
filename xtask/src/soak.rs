//! `cargo xtask soak --minutes N`: builds `redrec-bench` and `redrec-gateway`, starts a dedicated
//! Redis (no persistence), seeds the synthetic catalog, starts the gateway over it and runs
//! `redrec-bench --soak-minutes N` (the soak itself: capacity, then reads at half of it with
//! click events and item updates, per-minute figures and the pass criteria; see
//! `crates/bench/src/soak.rs`). Writes `target/soak/report.{md,json}`; fails when the soak does.

use std::process::Command;

use anyhow::Result;

use crate::{bench, cargo, redis, run_step, workspace_root};

/// The key the soak's gateway accepts on write routes (it listens on 127.0.0.1 only).
const SOAK_API_KEY: &str = "soak-key";
const NAMESPACE: &str = "soak";

#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Minutes of steady load after the capacity measurement
    #[arg(long, default_value_t = 30)]
    minutes: usize,
    /// Items in the synthetic catalog
    #[arg(long, default_value_t = 20_000)]
    items: usize,
    /// Vector dimension (no embedder is loaded: the mix is vector and personalised queries)
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Port of the dedicated soak Redis on 127.0.0.1
    #[arg(long, env = "REDREC_SOAK_REDIS_PORT", default_value_t = 6394)]
    redis_port: u16,
    /// Use the debug build (faster to build; the report says so, and the gateway gets a 1 s
    /// deadline instead of 200 ms): for trying the soak out
    #[arg(long)]
    debug: bool,
    /// Leave the soak Redis running afterwards
    #[arg(long)]
    keep_redis: bool,
}

pub fn soak(args: &SoakArgs) -> Result<()> {
    let root = workspace_root();
    let out = root.join("target").join("soak");
    std::fs::create_dir_all(&out)?;
    let profile = if args.debug { "debug" } else { "release" };
    let mut build = cargo();
    build.arg("build");
    if !args.debug {
        build.arg("--release");
    }
    build.args(["-p", "redrec-bench", "-p", "redrec-gateway"]);
    run_step(
        &format!("cargo build ({profile}: bench, gateway)"),
        &mut build,
    )?;
    let bin_dir = root.join("target").join(profile);

    let (started_redis, redis_url) = redis::up_scratch(args.redis_port)?;
    let result = (|| -> Result<()> {
        let common = [
            "--redis-url".to_owned(),
            redis_url.clone(),
            "--namespace".into(),
            NAMESPACE.into(),
            "--items".into(),
            args.items.to_string(),
            "--dim".into(),
            args.dim.to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        let bench_bin = bin_dir.join("redrec-bench");
        run_step(
            "redrec-bench --seed-only",
            Command::new(&bench_bin).args(&common).arg("--seed-only"),
        )?;
        let listen = format!("127.0.0.1:{}", redis::free_port()?);
        let mut cmd = Command::new(bin_dir.join("redrec-gateway"));
        cmd.env("REDREC_REDIS__URL", &redis_url)
            .env("REDREC_INDEX__NAMESPACE", NAMESPACE)
            .env("REDREC_INDEX__VECTOR__DIMS", args.dim.to_string())
            .env("REDREC_GATEWAY__API_KEYS", format!("[\"{SOAK_API_KEY}\"]"))
            .env("REDREC_EMBEDDER__MODEL_DIR", out.join("no-model"));
        if args.debug {
            // an unoptimised build needs several times the release build's CPU per request
            cmd.env("REDREC_GATEWAY__DEADLINE_MS", "1000");
        }
        let mut gw = bench::spawn_gateway(cmd, &listen, &out.join("gateway.log"))?;
        let run = run_step(
            &format!("redrec-bench --soak-minutes {}", args.minutes),
            Command::new(&bench_bin)
                .args(&common)
                .args(["--soak-minutes", &args.minutes.to_string()])
                .args(["--mix", "75,25,0"])
                .args(["--gateway-url", &format!("http://{listen}")])
                .args(["--gateway-pid", &gw.id().to_string()])
                .args(["--gateway-api-key", SOAK_API_KEY])
                .args(["--build-profile", profile]),
        );
        let _ = gw.kill();
        let _ = gw.wait();
        run
    })();
    if started_redis && !args.keep_redis {
        redis::down(args.redis_port)?;
    }
    eprintln!("xtask: soak report in {}", out.join("report.md").display());
    result
}
