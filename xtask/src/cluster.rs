//! A local Redis Cluster of N primaries from the same pinned binaries (`cargo xtask redis cluster
//! up --shards N`): nodes on consecutive ports (their cluster bus on port + 10000), the modules
//! loaded, the 16384 slots split evenly, joined with `CLUSTER MEET`, ready once every node says
//! `cluster_state:ok`. The other shards are recorded in the first node's group (`ha.rs`), so
//! `redis down --port <first>` stops the whole cluster.
//!
//! redrec keeps user state on such a cluster when `[redis.user_state]` names it (the catalog
//! stays on a primary + replicas: a search index in a cluster without the query-engine
//! coordinator sees only its node's keys). `cargo xtask test` starts one on free ports for the
//! user-state cluster tests (`REDREC_TEST_CLUSTER`). See docs/SCALING.md.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{
    ha::{self, Kind},
    redis::{self, Layout, UpOptions},
    resp::{Conn, Value},
};

/// Slots of a Redis Cluster.
const SLOTS: u32 = 16_384;
/// How long the nodes may take to agree that the cluster is up.
const FORM_LIMIT: Duration = Duration::from_secs(30);

/// Starts `shards` cluster nodes on `first ..` and forms the cluster (kept when it runs already).
pub fn up(first: u16, shards: u16, persist: bool) -> Result<Vec<u16>> {
    if shards == 0 {
        bail!("--shards must be at least 1");
    }
    let ports: Vec<u16> = (0..shards)
        .map(|i| first.checked_add(i).filter(|p| *p <= 55_535))
        .collect::<Option<_>>()
        .context("cluster ports must stay below 55536 (each node's bus is its port + 10000)")?;
    up_ports(&ports, persist)?;
    Ok(ports)
}

/// [`up`] on any ports (tests take free ones); the first port names the group.
pub fn up_ports(ports: &[u16], persist: bool) -> Result<()> {
    let layout = Layout::new();
    for &port in ports {
        redis::up_embedded(&UpOptions {
            port,
            persist,
            data_dir: Some(layout.run_dir.join(format!("cluster-{port}"))),
            replica_of: None,
            cluster: true,
        })?;
        if ha::info_value(&ha::info(port, "cluster")?, "cluster_enabled").as_deref() != Some("1") {
            bail!(
                "the redis on port {port} runs without cluster mode: stop it with `cargo xtask redis down --port {port}`"
            );
        }
        if port != ports[0] {
            ha::record(ports[0], Kind::Shard, port)?;
        }
    }
    if formed(ports)? {
        eprintln!("xtask: cluster on ports {ports:?} already formed");
        return Ok(());
    }
    let n = ports.len() as u32;
    for (i, &port) in ports.iter().enumerate() {
        let (from, to) = (i as u32 * SLOTS / n, (i as u32 + 1) * SLOTS / n - 1);
        let mut con = node(port)?;
        let own = ha::info_value(&cluster_info(&mut con)?, "cluster_slots_assigned");
        if own.as_deref() == Some("0") {
            expect_ok(
                con.call(&[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &from.to_string(),
                    &to.to_string(),
                ])?,
                "CLUSTER ADDSLOTSRANGE",
            )?;
        }
    }
    let mut first = node(ports[0])?;
    for &port in &ports[1..] {
        expect_ok(
            first.call(&["CLUSTER", "MEET", "127.0.0.1", &port.to_string()])?,
            "CLUSTER MEET",
        )?;
    }
    let t0 = Instant::now();
    while !formed(ports)? {
        if t0.elapsed() > FORM_LIMIT {
            bail!(
                "the cluster on ports {ports:?} did not reach cluster_state:ok within {} s; see \
                 `cargo xtask redis logs --port {}`",
                FORM_LIMIT.as_secs(),
                ports[0]
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "xtask: cluster of {} primaries up on ports {ports:?} (redis://127.0.0.1:{})",
        ports.len(),
        ports[0]
    );
    Ok(())
}

/// `n` free ports whose cluster bus ports (+ 10000) are free too.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    let mut tries = 0;
    while out.len() < n {
        tries += 1;
        if tries > 200 {
            bail!("found no {n} free ports with free cluster bus ports");
        }
        let p = redis::free_port()?;
        if p <= 55_535
            && !out.contains(&p)
            && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            out.push(p);
        }
    }
    Ok(out)
}

/// Stops the cluster whose first node is on `first` (every shard of its group, whatever
/// `REDREC_REDIS__URL` says) and deletes the nodes' run directories: a node's `nodes.conf`
/// would make a later node on the same port rejoin a cluster that is gone.
pub fn down_and_clean(first: u16) -> Result<()> {
    let mut ports = vec![first];
    ports.extend(
        ha::members(first)
            .into_iter()
            .filter(|(k, _)| *k == Kind::Shard)
            .map(|(_, p)| p),
    );
    let stopped = ha::down_all_embedded(first);
    for p in ports {
        let _ = std::fs::remove_dir_all(Layout::new().run_dir.join(format!("cluster-{p}")));
    }
    stopped
}

/// Every node sees every other one, all slots assigned, state ok.
fn formed(ports: &[u16]) -> Result<bool> {
    for &port in ports {
        let info = cluster_info(&mut node(port)?)?;
        let ok = ha::info_value(&info, "cluster_state").as_deref() == Some("ok")
            && ha::info_value(&info, "cluster_known_nodes") == Some(ports.len().to_string())
            && ha::info_value(&info, "cluster_slots_assigned") == Some(SLOTS.to_string());
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn node(port: u16) -> Result<Conn> {
    Conn::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(2))
}

fn cluster_info(con: &mut Conn) -> Result<String> {
    con.call(&["CLUSTER", "INFO"])?
        .text()
        .context("CLUSTER INFO did not answer text")
}

fn expect_ok(reply: Value, what: &str) -> Result<()> {
    match reply {
        Value::Simple(s) if s == "OK" => Ok(()),
        other => bail!("{what} answered {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_ports(n: usize) -> Vec<u16> {
        free_ports(n).unwrap()
    }

    /// A write sent to any node ends on the slot's owner (following `-MOVED`).
    fn set_anywhere(port: u16, key: &str) -> u16 {
        let reply = node(port).unwrap().call(&["SET", key, "1"]).unwrap();
        match reply {
            Value::Simple(s) if s == "OK" => port,
            Value::Error(e) if e.starts_with("MOVED") => {
                let owner: u16 = e
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("{e}"));
                let again = node(owner).unwrap().call(&["SET", key, "1"]).unwrap();
                assert!(
                    matches!(again, Value::Simple(ref s) if s == "OK"),
                    "{again:?}"
                );
                owner
            }
            other => panic!("SET {key}: {other:?}"),
        }
    }

    #[test]
    fn a_three_shard_cluster_forms_serves_every_slot_and_stops_as_one_group() {
        let ports = cluster_ports(3);
        let result = std::panic::catch_unwind(|| {
            up_ports(&ports, false).expect("cluster up");
            assert!(formed(&ports).unwrap());
            // a second `up` keeps the running cluster
            up_ports(&ports, false).expect("cluster up again");
            let owners: std::collections::BTreeSet<u16> = (0..30)
                .map(|i| set_anywhere(ports[0], &format!("k{i}")))
                .collect();
            assert_eq!(owners.len(), 3, "keys spread over every shard: {owners:?}");
            // keys under one hash tag share a slot, so one node serves them all
            let tagged: std::collections::BTreeSet<u16> = ["a", "b", "c"]
                .iter()
                .map(|k| set_anywhere(ports[1], &format!("redrec:user:{{u1}}:{k}")))
                .collect();
            assert_eq!(tagged.len(), 1, "{tagged:?}");
        });
        // the processes, not the ports: a concurrent test may take a port once it is free
        let pids: Vec<Option<u32>> = ports
            .iter()
            .map(|p| {
                std::fs::read_to_string(Layout::new().pid_file(*p))
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
            })
            .collect();
        ha::down_all_embedded(ports[0]).expect("down");
        for (p, pid) in ports.iter().zip(pids) {
            let pid = pid.unwrap_or_else(|| panic!("no pid file for port {p}"));
            assert!(
                !crate::process::alive(pid),
                "the node on port {p} (pid {pid}) still runs"
            );
            let _ = std::fs::remove_dir_all(Layout::new().run_dir.join(format!("cluster-{p}")));
        }
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}
