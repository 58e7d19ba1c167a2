//! The soak behind `cargo xtask soak`: the gateway under a steady mixed load for many minutes,
//! watched for drift. First the gateway's read capacity is measured (closed loop, alone, then
//! next to the writes at that capacity's proportions); then, minute after minute, reads arrive in
//! open loop at half of the capacity next to the writes, click events at a tenth of the read
//! rate (`POST /v1/events`), and item vector updates at a twentieth (`HSET` of the embedding,
//! re-indexed by RediSearch). Each minute records its read p99, errors, the gateway's RSS and
//! Redis `used_memory`; [`verdict`] compares the first and last windows.
//!
//! Pass criteria (all must hold), over windows of `min(5, minutes / 2)` minutes:
//! - read p99 drift below 20%: the mean of the last window's per-minute p99s within 20% of the
//!   first window's;
//! - gateway RSS flat: the last window's mean within 10% + 4 MiB of the first window's;
//! - Redis memory growth explained by the data written: growth from the end of the first minute
//!   to the end of the run at most 200 bytes per accepted event (a seen-set and a popularity
//!   member, the rest of a user's state is bounded) plus the vector bytes of every item update
//!   plus 1 MiB;
//! - errors at most 0.1% of the requests.

mod load;

use load::{spawn_events, spawn_updates, wait_for_fold, warm_users};

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use redrec_core::{
    keys::Namespace,
    synthetic::{Synthetic, SyntheticParams},
};
use serde::Serialize;

use crate::{
    catalog,
    driver::{StageLatency, Target, closed_loop, open_loop},
    http::{GatewayTarget, HttpClient},
    raw::{RawConn, RawTarget},
    report::{Machine, load_average},
    stats,
    suite::Options,
    workload::{self, Mix},
};

/// Longest comparison window, in minutes.
const WINDOW_MINUTES: usize = 5;
/// Largest p99 drift that passes (a share of the first window's p99).
pub const MAX_P99_DRIFT: f64 = 0.20;
/// Gateway RSS growth that still counts as flat: a share of the first window's, plus a constant.
pub const RSS_GROWTH_SHARE: f64 = 0.10;
pub const RSS_GROWTH_KB: f64 = 4.0 * 1024.0;
/// Upper bound of the lasting Redis memory one accepted event may add.
pub const EVENT_BYTES: f64 = 200.0;
/// Slack on the Redis memory bound (allocator and index bookkeeping).
pub const REDIS_SLACK_BYTES: f64 = 1024.0 * 1024.0;
/// Largest share of failed requests that passes.
pub const MAX_ERROR_SHARE: f64 = 0.001;

/// What the soak adds to a bench run's options.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub minutes: usize,
    /// Seconds of the closed-loop capacity measurement.
    pub capacity_secs: f64,
    /// Closed-loop workers of the capacity measurement.
    pub capacity_concurrency: usize,
    /// Share of the capacity the reads run at.
    pub load: f64,
    /// The gateway's build profile (`release`, or `debug` for a try-out), recorded in the report.
    pub build_profile: String,
    /// Clicks per user sent before anything is measured, so every user starts with the history
    /// a long-running deployment has (the gateway caps the seen set at `user_state.seen_cap`,
    /// 500 by default). Without it the first minutes measure users with empty histories, whose
    /// requests exclude nothing, and the later ones users whose seen sets grow every minute.
    pub history: usize,
}

/// One minute of the soak.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakMinute {
    pub minute: usize,
    pub reads: u64,
    pub read_errors: u64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub events_ok: u64,
    pub event_errors: u64,
    pub updates_ok: u64,
    pub update_errors: u64,
    /// Gateway `VmRSS` at the end of the minute.
    pub gateway_rss_kb: f64,
    /// Redis `used_memory` at the end of the minute.
    pub redis_used_bytes: f64,
    pub load_average: f64,
    /// CPU of the gateway and of Redis over the minute, in percent of one core (None where the
    /// process is not visible here): tells which side a latency change comes from.
    pub gateway_cpu_pct: Option<f64>,
    pub redis_cpu_pct: Option<f64>,
    /// The gateway's own stage timings (`Server-Timing`) over the minute's answered reads.
    pub stages: Vec<StageLatency>,
    /// The first error of the minute, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// One pass criterion, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// The measured figures and the limit, in words.
    pub detail: String,
}

/// The criteria over a run's minutes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub window_minutes: usize,
    pub checks: Vec<Check>,
    pub passed: bool,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Evaluates the pass criteria (module docs) over `minutes`; `dim` sizes an item update.
pub fn verdict(minutes: &[SoakMinute], dim: usize) -> Verdict {
    let window = (minutes.len() / 2).clamp(1, WINDOW_MINUTES);
    let (first, last) = (
        &minutes[..window.min(minutes.len())],
        &minutes[minutes.len().saturating_sub(window)..],
    );
    let mut checks = Vec::new();
    if minutes.is_empty() {
        checks.push(Check {
            name: "minutes",
            passed: false,
            detail: "no minute was measured".into(),
        });
        return Verdict {
            window_minutes: 0,
            passed: false,
            checks,
        };
    }

    let (p_first, p_last) = (
        mean(first.iter().map(|m| m.read_p99_ms)),
        mean(last.iter().map(|m| m.read_p99_ms)),
    );
    let drift = if p_first > 0.0 {
        (p_last - p_first).abs() / p_first
    } else {
        f64::INFINITY
    };
    checks.push(Check {
        name: "read p99 drift",
        passed: drift < MAX_P99_DRIFT,
        detail: format!(
            "{p_first:.1} ms -> {p_last:.1} ms ({:+.0}%; limit ±{:.0}%)",
            if p_first > 0.0 {
                (p_last - p_first) / p_first * 100.0
            } else {
                f64::INFINITY
            },
            MAX_P99_DRIFT * 100.0
        ),
    });

    let (r_first, r_last) = (
        mean(first.iter().map(|m| m.gateway_rss_kb)),
        mean(last.iter().map(|m| m.gateway_rss_kb)),
    );
    let rss_limit = r_first * (1.0 + RSS_GROWTH_SHARE) + RSS_GROWTH_KB;
    checks.push(Check {
        name: "gateway RSS flat",
        passed: r_first > 0.0 && r_last <= rss_limit,
        detail: format!(
            "{:.1} MiB -> {:.1} MiB (limit {:.1} MiB: +{:.0}% + {:.0} MiB)",
            r_first / 1024.0,
            r_last / 1024.0,
            rss_limit / 1024.0,
            RSS_GROWTH_SHARE * 100.0,
            RSS_GROWTH_KB / 1024.0
        ),
    });

    // growth after the first minute (warm-up: caches, connections, first user states)
    let start = minutes[0].redis_used_bytes;
    let end = minutes[minutes.len() - 1].redis_used_bytes;
    let later = &minutes[1.min(minutes.len() - 1)..];
    let (events, updates): (u64, u64) = if minutes.len() > 1 {
        (
            later.iter().map(|m| m.events_ok).sum(),
            later.iter().map(|m| m.updates_ok).sum(),
        )
    } else {
        (0, 0)
    };
    let bound = events as f64 * EVENT_BYTES + updates as f64 * (dim * 4) as f64 + REDIS_SLACK_BYTES;
    let growth = end - start;
    checks.push(Check {
        name: "redis memory explained by data written",
        passed: growth <= bound,
        detail: format!(
            "{:+.2} MiB after minute 1; bound {:.2} MiB = {events} events x {EVENT_BYTES:.0} B + {updates} updates x {} B + 1 MiB",
            growth / 1048576.0,
            bound / 1048576.0,
            dim * 4
        ),
    });

    let requests: u64 = minutes
        .iter()
        .map(|m| m.reads + m.events_ok + m.event_errors + m.updates_ok + m.update_errors)
        .sum();
    let errors: u64 = minutes
        .iter()
        .map(|m| m.read_errors + m.event_errors + m.update_errors)
        .sum();
    let share = errors as f64 / requests.max(1) as f64;
    checks.push(Check {
        name: "errors",
        passed: share <= MAX_ERROR_SHARE,
        detail: format!(
            "{errors} of {requests} requests ({:.3}%; limit {:.1}%)",
            share * 100.0,
            MAX_ERROR_SHARE * 100.0
        ),
    });
    Verdict {
        window_minutes: window,
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}

/// The whole soak report.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub machine: Machine,
    pub started_unix: u64,
    pub items: usize,
    pub dim: usize,
    pub mix: Mix,
    pub build_profile: String,
    /// Reads/s in closed loop next to the writes (the capacity the load is a share of).
    pub capacity_qps: f64,
    /// Reads/s in closed loop alone.
    pub read_only_qps: f64,
    pub read_rate: f64,
    pub event_rate: f64,
    pub update_rate: f64,
    pub minutes: Vec<SoakMinute>,
    pub verdict: Verdict,
    pub notes: Vec<String>,
}

fn log(msg: &str) {
    eprintln!("soak: {msg}");
}

/// Runs the soak against the gateway of `opts` (its catalog seeded or reused first).
pub async fn run(opts: &Options, soak: &SoakOptions) -> Result<SoakReport> {
    crate::suite::validate(opts)?;
    if soak.minutes == 0 {
        bail!("--soak-minutes must be at least 1");
    }
    if !(soak.load > 0.0 && soak.load <= 1.0) {
        bail!("the soak's load must be a share in (0, 1]");
    }
    let url = opts
        .gateway_url
        .as_deref()
        .context("the soak needs --gateway-url")?;
    let pid = opts
        .gateway_pid
        .context("the soak needs --gateway-pid (for the gateway's RSS)")?;
    let load_start = load_average();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ns = Namespace::new(&opts.namespace);
    let mut con = catalog::connect(&opts.redis_url).await?;
    let spec = SyntheticParams {
        items: opts.items as u64,
        dims: opts.dim,
        seed: opts.seed,
    };
    let info = catalog::index_info(&mut con, &ns.alias()).await;
    if !info
        .as_ref()
        .is_ok_and(|i| i.num_docs == spec.items && i.percent_indexed >= 1.0)
    {
        bail!(
            "the soak needs the catalog seeded first (redrec-bench --seed-only with the same --items/--dim): {}",
            info.map_or_else(
                |e| e.to_string(),
                |i| format!("the index holds {} items", i.num_docs)
            )
        );
    }
    let cat = Arc::new(catalog::read_back(&mut con, &ns, opts.dim).await?);
    let generator = Synthetic::new(spec);
    let users = workload::make_users(&generator, &cat, opts.users, opts.seed);
    let queries = Arc::new(workload::make_queries(
        &generator, &cat, &users, opts.mix, 4_000, opts.k, opts.seed,
    ));
    let mut client = HttpClient::new(url)?;
    client.api_key.clone_from(&opts.gateway_api_key);
    let gw = Arc::new(GatewayTarget::new(client));
    let raw = Arc::new(RawTarget::new(
        RawConn::mux(&opts.redis_url).await?,
        ns.clone(),
        opts.dim,
        opts.ef_runtime,
    ));

    warm_users(&gw, &users, &cat.ids, soak.history, opts.seed).await?;
    wait_for_fold(&mut con, &ns).await?;
    log(&format!(
        "measuring capacity: closed loop, {} workers, {:.0} s",
        soak.capacity_concurrency, soak.capacity_secs
    ));
    let capacity = closed_loop(
        gw.clone() as Arc<dyn Target>,
        queries.clone(),
        soak.capacity_concurrency,
        Duration::from_secs(2),
        Duration::from_secs_f64(soak.capacity_secs),
    )
    .await;
    // capacity counts answered requests only (a shed request is a 503, not throughput)
    if capacity.ok == 0 {
        bail!(
            "the gateway did not serve the capacity measurement: {} ok, {} errors ({})",
            capacity.ok,
            capacity.errors,
            capacity.first_error.unwrap_or_default()
        );
    }
    // The capacity of the mixed load: the reads again, closed loop, while events and item
    // updates arrive at the read-only capacity's tenth and twentieth (the soak's proportions at
    // full load), so that "half of capacity" leaves half of the server for the whole mix, not
    // for the reads alone.
    let read_only = capacity.achieved_qps;
    let writes_for = Duration::from_secs_f64(soak.capacity_secs + 2.0);
    let events = spawn_events(
        gw.clone(),
        &users,
        &cat.ids,
        read_only / 10.0,
        writes_for,
        opts.seed,
    );
    let updates = spawn_updates(
        raw.clone(),
        cat.clone(),
        read_only / 20.0,
        writes_for,
        opts.seed,
    );
    let capacity = closed_loop(
        gw.clone() as Arc<dyn Target>,
        queries.clone(),
        soak.capacity_concurrency,
        Duration::from_secs(2),
        Duration::from_secs_f64(soak.capacity_secs),
    )
    .await;
    events.await.context("event task")?;
    updates.await.context("update task")?;
    if capacity.ok == 0 {
        bail!(
            "the gateway did not serve reads next to the writes: {} ok, {} errors ({})",
            capacity.ok,
            capacity.errors,
            capacity.first_error.unwrap_or_default()
        );
    }
    let read_rate = (capacity.achieved_qps * soak.load).max(1.0);
    let (event_rate, update_rate) = (read_rate / 10.0, read_rate / 20.0);
    if capacity.errors > 0 {
        log(&format!(
            "{} requests of the capacity measurement failed (first: {})",
            capacity.errors,
            capacity.first_error.clone().unwrap_or_default()
        ));
    }
    log(&format!(
        "capacity {:.0} reads/s next to the writes ({read_only:.0}/s reads alone): reads at {read_rate:.0}/s, events at {event_rate:.1}/s, item updates at {update_rate:.1}/s for {} minutes",
        capacity.achieved_qps, soak.minutes
    ));

    let mut procs = vec![stats::Process {
        name: "gateway".into(),
        pid,
    }];
    if let Ok(redis_pid) = catalog::server_pid(&mut con).await {
        procs.push(stats::Process {
            name: "redis".into(),
            pid: redis_pid,
        });
    }
    let mut minutes = Vec::new();
    let minute = Duration::from_secs(60);
    for m in 1..=soak.minutes {
        let cpu_mark = stats::cpu_mark(&procs);
        let events = spawn_events(
            gw.clone(),
            &users,
            &cat.ids,
            event_rate,
            minute,
            opts.seed + m as u64,
        );
        let updates = spawn_updates(
            raw.clone(),
            cat.clone(),
            update_rate,
            minute,
            opts.seed + m as u64,
        );
        gw.take_stages();
        let reads = open_loop(
            gw.clone() as Arc<dyn Target>,
            queries.clone(),
            read_rate,
            minute,
            opts.max_in_flight,
        )
        .await;
        let (events_ok, event_errors, event_error) = events.await.context("event task")?;
        let (updates_ok, update_errors) = updates.await.context("update task")?;
        let cpu = stats::cpu_since(&procs, &cpu_mark);
        let cpu_of = |name: &str| {
            cpu.iter()
                .find(|c| c.process == name)
                .map(|c| c.percent_of_core)
        };
        let row = SoakMinute {
            minute: m,
            reads: reads.ok + reads.errors,
            read_errors: reads.errors,
            read_p50_ms: reads.latency.p50_ms,
            read_p99_ms: reads.latency.p99_ms,
            events_ok,
            event_errors,
            updates_ok,
            update_errors,
            gateway_rss_kb: stats::rss_kb(pid).unwrap_or(0) as f64,
            redis_used_bytes: catalog::used_memory(&mut con).await.unwrap_or(0) as f64,
            load_average: load_average(),
            gateway_cpu_pct: cpu_of("gateway"),
            redis_cpu_pct: cpu_of("redis"),
            stages: gw.take_stages(),
            first_error: reads.first_error.or(event_error),
        };
        log(&format!(
            "minute {m}: {} reads p99 {:.1} ms, {} errors; {events_ok} events, {updates_ok} updates; gateway RSS {:.1} MiB, redis {:.1} MiB; CPU gateway {} redis {}; load {:.1}",
            row.reads,
            row.read_p99_ms,
            row.read_errors + row.event_errors + row.update_errors,
            row.gateway_rss_kb / 1024.0,
            row.redis_used_bytes / 1048576.0,
            pct(row.gateway_cpu_pct),
            pct(row.redis_cpu_pct),
            row.load_average
        ));
        minutes.push(row);
    }
    let verdict = verdict(&minutes, opts.dim);
    let mut machine = Machine::detect();
    machine.load_start = load_start;
    let mut notes = Vec::new();
    if soak.build_profile != "release" {
        notes.push(format!(
            "Gateway built in the `{}` profile: a try-out of the soak, not a performance figure.",
            soak.build_profile
        ));
    }
    if machine.load_end > machine.cpus as f64 || load_start > machine.cpus as f64 {
        notes.push(format!(
            "The machine was busy (load {load_start:.1} -> {:.1} on {} CPUs): latency figures include other work.",
            machine.load_end, machine.cpus
        ));
    }
    Ok(SoakReport {
        machine,
        started_unix,
        items: opts.items,
        dim: opts.dim,
        mix: opts.mix,
        build_profile: soak.build_profile.clone(),
        capacity_qps: capacity.achieved_qps,
        read_only_qps: read_only,
        read_rate,
        event_rate,
        update_rate,
        minutes,
        verdict,
        notes,
    })
}

/// Writes `report.json` and `report.md` into `out`; returns their paths.
pub fn write_report(report: &SoakReport, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)?;
    let md = out.join("report.md");
    std::fs::write(&md, render(report))?;
    Ok(vec![md, json])
}

/// The Markdown report.
pub fn render(r: &SoakReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Soak: {} minutes\n", r.minutes.len());
    let _ = writeln!(
        s,
        "**{}**. Gateway build: {}. Machine: {} CPUs ({}), load {:.1} -> {:.1}. Catalog {} items x {} dims, mix vector/personal/text {}/{}/{}.\n",
        if r.verdict.passed { "PASS" } else { "FAIL" },
        r.build_profile,
        r.machine.cpus,
        r.machine.cpu_model,
        r.machine.load_start,
        r.machine.load_end,
        r.items,
        r.dim,
        r.mix.vector,
        r.mix.personal,
        r.mix.text
    );
    let _ = writeln!(
        s,
        "Capacity (closed loop): {:.0} reads/s next to the writes ({:.0}/s reads alone). Load: reads {:.0}/s (open loop), click events {:.1}/s, item vector updates {:.1}/s.\n",
        r.capacity_qps, r.read_only_qps, r.read_rate, r.event_rate, r.update_rate
    );
    let _ = writeln!(
        s,
        "| criterion (windows of {} min) | result | measured |\n|---|---|---|",
        r.verdict.window_minutes
    );
    for c in &r.verdict.checks {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            c.name,
            if c.passed { "pass" } else { "FAIL" },
            c.detail
        );
    }
    let _ = writeln!(
        s,
        "\n| minute | reads | read p50 ms | read p99 ms | errors | events | item updates | gateway RSS MiB | redis used MiB | gateway CPU % | redis CPU % | load | gateway stages p50 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for m in &r.minutes {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {} | {} | {} | {:.1} | {:.1} | {} | {} | {:.1} | {} |",
            m.minute,
            m.reads,
            m.read_p50_ms,
            m.read_p99_ms,
            m.read_errors + m.event_errors + m.update_errors,
            m.events_ok,
            m.updates_ok,
            m.gateway_rss_kb / 1024.0,
            m.redis_used_bytes / 1048576.0,
            pct(m.gateway_cpu_pct),
            pct(m.redis_cpu_pct),
            m.load_average,
            stage_p50s(&m.stages)
        );
    }
    if let Some(e) = r.minutes.iter().find_map(|m| m.first_error.clone()) {
        let _ = writeln!(s, "\nFirst error: `{e}`");
    }
    for n in &r.notes {
        let _ = writeln!(s, "\n{n}");
    }
    s
}

/// `retrieve 3.10, rerank 0.40, ...`: each stage's p50 (the column that shows where a change in
/// latency comes from).
fn stage_p50s(stages: &[StageLatency]) -> String {
    if stages.is_empty() {
        return "-".to_owned();
    }
    stages
        .iter()
        .map(|s| format!("{} {:.2}", s.stage, s.p50_ms))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A CPU share for the log and the table (`-` when the process was not visible).
fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(m: usize, p99: f64, rss_mib: f64, redis_mib: f64, events: u64) -> SoakMinute {
        SoakMinute {
            minute: m,
            reads: 6000,
            read_errors: 0,
            read_p50_ms: p99 / 4.0,
            read_p99_ms: p99,
            events_ok: events,
            event_errors: 0,
            updates_ok: 0,
            update_errors: 0,
            gateway_rss_kb: rss_mib * 1024.0,
            redis_used_bytes: redis_mib * 1048576.0,
            load_average: 1.0,
            gateway_cpu_pct: Some(30.0),
            redis_cpu_pct: None,
            stages: Vec::new(),
            first_error: None,
        }
    }

    fn check<'a>(v: &'a Verdict, name: &str) -> &'a Check {
        v.checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_steady_run_passes() {
        let minutes: Vec<_> = (1..=30)
            .map(|m| minute(m, 20.0 + (m % 3) as f64, 60.0, 100.0 + m as f64 * 0.05, 600))
            .collect();
        let v = verdict(&minutes, 128);
        assert_eq!(v.window_minutes, 5);
        assert!(v.passed, "{v:#?}");
    }

    #[test]
    fn p99_drift_fails_past_20_percent_either_way() {
        let mut minutes: Vec<_> = (1..=10)
            .map(|m| minute(m, 20.0, 60.0, 100.0, 600))
            .collect();
        for m in &mut minutes[5..] {
            m.read_p99_ms = 24.5; // +22.5%
        }
        let v = verdict(&minutes, 128);
        assert!(!check(&v, "read p99 drift").passed, "{v:#?}");
        assert!(!v.passed);
        for m in &mut minutes[5..] {
            m.read_p99_ms = 23.0; // +15%
        }
        assert!(check(&verdict(&minutes, 128), "read p99 drift").passed);
        for m in &mut minutes[5..] {
            m.read_p99_ms = 15.0; // -25%: a change is a change
        }
        assert!(!check(&verdict(&minutes, 128), "read p99 drift").passed);
    }

    #[test]
    fn a_growing_gateway_fails_the_rss_check() {
        // 60 MiB: +10% + 4 MiB allows 70 MiB
        let flat: Vec<_> = (1..=10)
            .map(|m| minute(m, 20.0, if m > 5 { 69.0 } else { 60.0 }, 100.0, 600))
            .collect();
        assert!(check(&verdict(&flat, 128), "gateway RSS flat").passed);
        let leaking: Vec<_> = (1..=10)
            .map(|m| minute(m, 20.0, 60.0 + m as f64 * 3.0, 100.0, 600))
            .collect();
        assert!(!check(&verdict(&leaking, 128), "gateway RSS flat").passed);
    }

    #[test]
    fn redis_growth_must_be_covered_by_the_data_written() {
        // minutes 2..=3 wrote 1,200 events: bound 1,200 x 200 B + 1 MiB = 1.23 MiB
        let ok = vec![
            minute(1, 20.0, 60.0, 100.0, 600),
            minute(2, 20.0, 60.0, 100.5, 600),
            minute(3, 20.0, 60.0, 101.2, 600),
        ];
        let v = verdict(&ok, 128);
        assert_eq!(
            v.window_minutes, 1,
            "3 minutes compare minute 1 with minute 3"
        );
        assert!(
            check(&v, "redis memory explained by data written").passed,
            "{v:#?}"
        );
        let mut unexplained = ok.clone();
        unexplained[2].redis_used_bytes = 102.0 * 1048576.0;
        assert!(
            !check(
                &verdict(&unexplained, 128),
                "redis memory explained by data written"
            )
            .passed
        );
        // item updates count with their vector bytes: 2,000 x 512 B covers it
        for m in &mut unexplained[1..] {
            m.updates_ok = 1_000;
        }
        assert!(
            check(
                &verdict(&unexplained, 128),
                "redis memory explained by data written"
            )
            .passed
        );
    }

    #[test]
    fn errors_past_a_tenth_of_a_percent_fail() {
        let mut minutes: Vec<_> = (1..=4).map(|m| minute(m, 20.0, 60.0, 100.0, 600)).collect();
        minutes[2].read_errors = 20; // 20 of 26,400
        assert!(check(&verdict(&minutes, 128), "errors").passed);
        minutes[2].read_errors = 40;
        minutes[3].event_errors = 10;
        assert!(!check(&verdict(&minutes, 128), "errors").passed);
    }

    #[test]
    fn per_minute_cpu_and_stage_columns_render() {
        assert_eq!(
            (pct(Some(29.6)), pct(None)),
            ("30".to_owned(), "-".to_owned())
        );
        let stages = [("features", 0.412), ("retrieve", 3.1)].map(|(stage, p50_ms)| StageLatency {
            stage: stage.into(),
            count: 10,
            p50_ms,
            p99_ms: 9.0,
        });
        assert_eq!(stage_p50s(&stages), "features 0.41, retrieve 3.10");
        assert_eq!(stage_p50s(&[]), "-");
    }

    #[test]
    fn no_minutes_is_a_failure_not_a_panic() {
        let v = verdict(&[], 128);
        assert!(!v.passed);
        assert_eq!(v.checks[0].name, "minutes");
    }
}
