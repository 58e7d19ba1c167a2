//! Replicas and Sentinels next to the embedded server, from the same pinned binaries: `redis up
//! --replicas N` starts read replicas (modules loaded, `--replicaof` the primary) on the ports
//! after the primary's, `redis sentinel up` starts Sentinels (`redis-server <conf> --sentinel`)
//! watching it. What was started is recorded next to the primary's pid file (`group-{port}`),
//! so `redis down` stops every process of the group: Sentinels first (so they do not fail
//! over while the rest stops), then replicas, then the primary. See docs/SCALING.md.

use std::{
    fs,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    provision,
    redis::{self, Layout, State, UpOptions},
    resp::{Conn, Value},
};

/// The name Sentinel monitors the primary under (`redis.sentinel.master_name`).
pub const MASTER_NAME: &str = "redrec";
/// Sentinel ports start this far above the primary's (6380 -> 26380, next to Sentinel's
/// customary 26379).
pub const SENTINEL_PORT_OFFSET: u16 = 20_000;
/// How long a primary may not answer before a Sentinel considers it down. Short, so a failover
/// on this machine takes a few seconds; production setups often use 5-30 s.
const DOWN_AFTER_MS: u64 = 1_000;
/// Sentinel's failover timeout (also the pause before the same primary is failed over again).
const FAILOVER_TIMEOUT_MS: u64 = 10_000;
/// How long a replica may take to finish its first synchronisation.
const SYNC_LIMIT: Duration = Duration::from_secs(120);

/// What a group member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Replica,
    Sentinel,
    /// Another primary of a Redis Cluster whose first node is the group's port (`cluster.rs`).
    Shard,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Replica => "replica",
            Kind::Sentinel => "sentinel",
            Kind::Shard => "shard",
        }
    }
}

fn group_file(primary: u16) -> PathBuf {
    Layout::new().run_dir.join(format!("group-{primary}"))
}

/// The members recorded for the primary on `primary`, in start order.
pub(crate) fn members(primary: u16) -> Vec<(Kind, u16)> {
    let text = fs::read_to_string(group_file(primary)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (kind, port) = l.split_once(' ')?;
            let kind = match kind {
                "replica" => Kind::Replica,
                "sentinel" => Kind::Sentinel,
                "shard" => Kind::Shard,
                _ => return None,
            };
            Some((kind, port.trim().parse().ok()?))
        })
        .collect()
}

pub fn record(primary: u16, kind: Kind, port: u16) -> Result<()> {
    let mut all = members(primary);
    if !all.contains(&(kind, port)) {
        all.push((kind, port));
    }
    let text: String = all
        .iter()
        .map(|(k, p)| format!("{} {p}\n", k.word()))
        .collect();
    fs::create_dir_all(Layout::new().run_dir)?;
    fs::write(group_file(primary), text).context("cannot record the replica / sentinel group")
}

/// Starts `n` replicas of the server on `primary` on the next ports (`primary + 1 ..`), each
/// with the modules loaded, and waits until each has synchronised and indexed the catalog.
/// Replicas already running there are kept (after checking whose replicas they are).
pub fn up_replicas(primary: u16, n: u16, persist: bool) -> Result<Vec<u16>> {
    let mut ports = Vec::new();
    for i in 1..=n {
        let port = primary
            .checked_add(i)
            .context("replica ports run past 65535")?;
        start_replica(port, primary, persist, None)?;
        record(primary, Kind::Replica, port)?;
        ports.push(port);
    }
    Ok(ports)
}

/// Starts one replica of `primary` on `port` (data in `data_dir`, or the port's default),
/// waits until its link is up and every index is built; true when this call started it.
pub fn start_replica(
    port: u16,
    primary: u16,
    persist: bool,
    data_dir: Option<PathBuf>,
) -> Result<bool> {
    // the primary waits 5 s (default) for more replicas before a diskless full sync
    let mut con = Conn::connect(&format!("127.0.0.1:{primary}"), Duration::from_secs(2))
        .with_context(|| format!("no redis answers on port {primary}: start the primary first"))?;
    con.call(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"])?;
    let started = redis::up_embedded(&UpOptions {
        port,
        persist,
        data_dir,
        replica_of: Some(primary),
        cluster: false,
    })?;
    wait_synced(port, primary)?;
    redis::wait_indexed(port)?;
    eprintln!("xtask: replica of 127.0.0.1:{primary} up on redis://127.0.0.1:{port}");
    Ok(started)
}

/// `field:value` pairs of `INFO section` on `port`.
pub fn info(port: u16, section: &str) -> Result<String> {
    let mut con = Conn::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(2))?;
    con.call(&["INFO", section])?
        .text()
        .context("INFO did not answer text")
}

pub fn info_value(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Waits until the server on `port` is a replica of `primary` whose link is up.
fn wait_synced(port: u16, primary: u16) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let text = info(port, "replication")?;
        let role = info_value(&text, "role");
        let master = info_value(&text, "master_port");
        if role.as_deref() != Some("slave") || master.as_deref() != Some(&primary.to_string()) {
            bail!(
                "the server on port {port} is not a replica of port {primary} (role {}, master port {}): \
                 stop it with `cargo xtask redis down --port {port}`",
                role.unwrap_or_default(),
                master.unwrap_or_default()
            );
        }
        if info_value(&text, "master_link_status").as_deref() == Some("up") {
            return Ok(());
        }
        if t0.elapsed() > SYNC_LIMIT {
            bail!(
                "the replica on port {port} did not synchronise with port {primary} within {} s; see \
                 `cargo xtask redis logs --port {port}`",
                SYNC_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `count` Sentinels on `first_port ..` watching the primary on `primary` (quorum: a
/// majority), waits until they see each other and the quorum is reachable.
pub fn up_sentinels(primary: u16, count: u16, first_port: u16) -> Result<Vec<u16>> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    if !matches!(redis::probe(primary), State::Ready { .. }) {
        bail!(
            "no redis answers on port {primary}: start it first with `cargo xtask redis up --port {primary}`"
        );
    }
    let quorum = count / 2 + 1;
    let mut ports = Vec::new();
    for i in 0..count {
        let port = first_port
            .checked_add(i)
            .context("sentinel ports run past 65535")?;
        start_sentinel(port, primary, quorum)?;
        record(primary, Kind::Sentinel, port)?;
        ports.push(port);
    }
    wait_quorum(ports[0], count)?;
    eprintln!(
        "xtask: {count} sentinel(s) on ports {ports:?} watch `{MASTER_NAME}` on 127.0.0.1:{primary} (quorum {quorum})"
    );
    Ok(ports)
}

/// Starts one Sentinel on `port` watching `primary` under [`MASTER_NAME`] (a fresh config file:
/// Sentinel rewrites it with what it learns); a Sentinel already running there is kept.
pub fn start_sentinel(port: u16, primary: u16, quorum: u16) -> Result<bool> {
    let layout = Layout::new();
    match redis::probe(port) {
        State::Ready { .. } => {
            let mode = info_value(&info(port, "server")?, "redis_mode");
            if mode.as_deref() != Some("sentinel") {
                bail!("port {port} is held by a redis that is not a sentinel");
            }
            eprintln!("xtask: sentinel already running on 127.0.0.1:{port}");
            return Ok(false);
        }
        State::Stopped { .. } => {}
        other => bail!("port {port} is not free for a sentinel: {other:?}"),
    }
    provision::ensure(&provision::REDIS_SERVER, &layout.bin_dir)?;
    fs::create_dir_all(&layout.run_dir)?;
    let conf = layout.run_dir.join(format!("sentinel-{port}.conf"));
    let log = layout.log_file(port);
    let _ = fs::remove_file(&log);
    let text = format!(
        "port {port}\nbind 127.0.0.1\ndaemonize yes\npidfile {pid}\nlogfile {log}\ndir {dir}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} {quorum}\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        pid = layout.pid_file(port).display(),
        log = log.display(),
        dir = layout.run_dir.display(),
    );
    fs::write(&conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
    let status = Command::new(layout.bin_dir.join("redis-server"))
        .arg(&conf)
        .arg("--sentinel")
        .status()
        .context("cannot start redis-server --sentinel")?;
    if !status.success() {
        bail!(
            "redis-server --sentinel exited with {status}\n{}",
            redis::tail(&log, 20)
        );
    }
    let t0 = Instant::now();
    while !matches!(redis::probe(port), State::Ready { .. }) {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!(
                "the sentinel on port {port} does not answer PING after 30 s\n{}",
                redis::tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}

/// Waits until the Sentinel on `port` knows `count - 1` other Sentinels and the quorum is
/// reachable (`SENTINEL CKQUORUM`): a failover can be authorised from then on.
pub fn wait_quorum(port: u16, count: u16) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let mut con = Conn::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(2))?;
        let others = match con.call(&["SENTINEL", "SENTINELS", MASTER_NAME])? {
            Value::Array(list) => list.len(),
            _ => 0,
        };
        let quorum = con.call(&["SENTINEL", "CKQUORUM", MASTER_NAME])?;
        if others + 1 >= count as usize && matches!(quorum, Value::Simple(_)) {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!(
                "the sentinels did not find each other within 30 s ({others} other sentinel(s) seen, \
                 CKQUORUM: {quorum:?})"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops the Sentinels recorded for `primary`.
pub fn down_sentinels(primary: u16) -> Result<()> {
    stop(primary, &[Kind::Sentinel])
}

/// Stops every process recorded for `primary` (Sentinels, replicas, other cluster shards),
/// then the primary (unless `REDREC_REDIS__URL` names a server xtask did not start).
pub fn down_all(primary: u16) -> Result<()> {
    stop(primary, &[Kind::Sentinel, Kind::Replica, Kind::Shard])?;
    redis::down(primary)
}

/// [`down_all`] whatever `REDREC_REDIS__URL` says (tests, which run with it set, and the test
/// cluster of `cargo xtask test`).
pub fn down_all_embedded(primary: u16) -> Result<()> {
    stop(primary, &[Kind::Sentinel, Kind::Replica, Kind::Shard])?;
    redis::down_embedded(primary)
}

/// Stops the recorded `kinds` of the group of `primary` (the primary itself stays up).
pub fn stop(primary: u16, kinds: &[Kind]) -> Result<()> {
    let all = members(primary);
    let mut failed = Vec::new();
    for kind in kinds {
        for (k, port) in all.iter().filter(|(k, _)| k == kind) {
            if let Err(e) = redis::down_embedded(*port) {
                failed.push(format!("{} on port {port}: {e:#}", k.word()));
            }
        }
    }
    let left: Vec<(Kind, u16)> = all
        .into_iter()
        .filter(|(k, _)| !kinds.contains(k))
        .collect();
    if left.is_empty() {
        let _ = fs::remove_file(group_file(primary));
    } else {
        let text: String = left
            .iter()
            .map(|(k, p)| format!("{} {p}\n", k.word()))
            .collect();
        fs::write(group_file(primary), text)?;
    }
    if !failed.is_empty() {
        bail!("could not stop: {}", failed.join("; "));
    }
    Ok(())
}

/// The replicas and Sentinels recorded for `primary`, for `redis status`.
pub fn describe(primary: u16) -> Vec<String> {
    members(primary)
        .into_iter()
        .map(|(k, port)| {
            let state = match redis::probe(port) {
                State::Ready { .. } => "up",
                State::Stopped { .. } => "stopped",
                _ => "not answering",
            };
            format!("{} on 127.0.0.1:{port} ({state})", k.word())
        })
        .collect()
}
