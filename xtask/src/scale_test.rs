//! Scale-out and failover on real processes (docs/SCALING.md): a primary with read replicas
//! (`--replicaof`, the modules loaded) and Sentinels, all from the provisioned binaries on free
//! ports, and the debug gateway in front of them.
//!
//! - Replica routing: the gateway configured with two replicas answers the same similar-item
//!   lists as one on the primary alone, its searches run on the replicas (the primary's
//!   `FT.SEARCH` count does not move), and read-your-writes holds for 200 click-then-recommend
//!   pairs (the acting user's features are read from the primary).
//! - Sentinel: the primary is killed (SIGKILL) under load; the gateway follows the promoted
//!   replica without a restart. The test prints the failed requests and the time to recover, and
//!   checks that no event acknowledged with `user_state.ack = replica` is missing afterwards.

use std::time::{Duration, Instant};

use crate::{
    demo::{http_get_full, http_post_full},
    resp::Value,
    test_support::{
        Gateway, Kind, Load, Sentinels, Server, conn, item_ids, seed, tally, user_counter,
    },
};

const NS: &str = "scale";
const ITEMS: u64 = 2_000;
const DIM: usize = 16;
const KEY: &str = "scale-key";

fn gateway(port: u16, env: &[(&str, &str)]) -> Gateway {
    let mut all = vec![
        ("REDREC_GATEWAY__API_KEYS", "[\"scale-key\"]"),
        ("REDREC_GATEWAY__DEADLINE_MS", "1000"),
        ("REDREC_REDIS__COMMAND_TIMEOUT_MS", "300"),
        ("REDREC_REDIS__CONNECT_TIMEOUT_MS", "300"),
    ];
    all.extend_from_slice(env);
    Gateway::start(port, NS, DIM, &all)
}

/// `FT.SEARCH` calls the server on `port` has served (`INFO commandstats`).
fn searches(port: u16) -> u64 {
    let text = conn(port)
        .call(&["INFO", "commandstats"])
        .ok()
        .and_then(|v| v.text())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("cmdstat_FT.SEARCH:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The result ids of a gateway answer, in order (each result object starts with its `id`).
fn result_ids(body: &str) -> Vec<String> {
    body.split("{\"id\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

fn similar(gw: &Gateway, id: &str) -> Vec<String> {
    let reply = http_get_full(gw.addr, &format!("/v1/items/{id}/similar?k=10"))
        .expect("an answer to similar items");
    assert_eq!(reply.status, 200, "{}", reply.body);
    result_ids(&reply.body)
}

fn recommend(gw: &Gateway, user: &str) -> Vec<String> {
    let reply = http_post_full(
        gw.addr,
        "/v1/recommendations",
        KEY,
        &format!(r#"{{"user_id":"{user}","k":10,"exclude_seen":true}}"#),
    )
    .expect("an answer to recommendations");
    assert_eq!(reply.status, 200, "{}", reply.body);
    result_ids(&reply.body)
}

fn click(gw: &Gateway, user: &str, item: &str) -> u16 {
    http_post_full(
        gw.addr,
        "/v1/events",
        KEY,
        &format!(r#"{{"type":"click","user_id":"{user}","item_id":"{item}"}}"#),
    )
    .map_or(0, |r| r.status)
}

fn replicas_env(replicas: &[&Server]) -> String {
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| format!("\"redis://127.0.0.1:{}\"", r.port))
        .collect();
    format!("[{}]", urls.join(","))
}

#[test]
fn replicas_serve_the_same_lists_and_the_acting_user_reads_its_writes() {
    let primary = Server::start("scale-primary", false);
    seed(primary.port, NS, ITEMS, DIM);
    let r1 = Server::start_replica("scale-r1", primary.port);
    let r2 = Server::start_replica("scale-r2", primary.port);
    let ids = item_ids(primary.port, NS, 40);
    let spread = gateway(
        primary.port,
        &[("REDREC_REDIS__REPLICAS", &replicas_env(&[&r1, &r2]))],
    );

    // 1. every search of the gateway with replicas runs on a replica
    let before = (searches(primary.port), searches(r1.port), searches(r2.port));
    let on_replicas: Vec<Vec<String>> = ids.iter().map(|id| similar(&spread, id)).collect();
    let after = (searches(primary.port), searches(r1.port), searches(r2.port));
    eprintln!(
        "searches for 40 similar-item requests: primary +{}, replica 1 +{}, replica 2 +{}",
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2
    );
    assert_eq!(after.0, before.0, "a search went to the primary");
    assert!(
        after.1 > before.1 && after.2 > before.2,
        "both replicas serve"
    );

    // readiness names each node
    let ready = http_get_full(spread.addr, "/readyz").expect("readyz");
    for port in [primary.port, r1.port, r2.port] {
        assert!(
            ready.body.contains(&format!(":{port}\":\"ok\"")),
            "/readyz reports the node on port {port}: {}",
            ready.body
        );
    }

    // 2. the same lists as a gateway on the primary alone
    let single = gateway(primary.port, &[]);
    for (id, listed) in ids.iter().zip(&on_replicas) {
        assert!(!listed.is_empty(), "no similar items for {id}");
        assert_eq!(&similar(&single, id), listed, "similar items of {id}");
    }
    drop(single);

    // 3. read-your-writes: the clicked item is excluded from the very next recommendation,
    //    even with replicas that never catch up: both are cut off from the primary (pointed at
    //    a port where nothing listens; they keep serving their stale copy), so a user feature
    //    read from a replica would miss every click
    let nowhere = crate::redis::free_port().unwrap().to_string();
    for r in [&r1, &r2] {
        let reply = r
            .conn()
            .call(&["REPLICAOF", "127.0.0.1", &nowhere])
            .unwrap();
        assert!(matches!(reply, Value::Simple(_)), "REPLICAOF: {reply:?}");
    }
    let before = (searches(r1.port), searches(r2.port));
    let user = "ryw-user";
    let mut shown = recommend(&spread, user);
    let t0 = Instant::now();
    for pair in 0..200 {
        let clicked = shown.first().cloned().expect("a recommendation to click");
        assert_eq!(click(&spread, user, &clicked), 202, "click {pair}");
        shown = recommend(&spread, user);
        assert!(
            !shown.contains(&clicked),
            "pair {pair}: `{clicked}` was clicked but is recommended again: {shown:?}"
        );
    }
    eprintln!(
        "read-your-writes: 200 click-then-recommend pairs in {:?} with replicas cut off, none stale",
        t0.elapsed()
    );
    assert_eq!(user_counter(primary.port, NS, user, "n:click"), 200);
    assert_eq!(
        user_counter(r1.port, NS, user, "n:click"),
        0,
        "replica 1 is stale"
    );
    let after = (searches(r1.port), searches(r2.port));
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "the recommendations searched the stale replicas"
    );
}

#[test]
fn the_gateway_follows_a_sentinel_failover_and_keeps_every_acknowledged_event() {
    let primary = Server::start("ha-primary", false);
    seed(primary.port, NS, ITEMS, DIM);
    let r1 = Server::start_replica("ha-r1", primary.port);
    let r2 = Server::start_replica("ha-r2", primary.port);
    let sentinels = Sentinels::start(primary.port, 3);
    let ids = item_ids(primary.port, NS, 20);
    let gw = gateway(
        primary.port,
        &[
            ("REDREC_REDIS__REPLICAS", &replicas_env(&[&r1, &r2])),
            (
                "REDREC_REDIS__SENTINEL__MASTER_NAME",
                crate::ha::MASTER_NAME,
            ),
            ("REDREC_REDIS__SENTINEL__NODES", &sentinels.nodes_env()),
            ("REDREC_REDIS__SENTINEL__CHECK_MS", "500"),
            ("REDREC_USER_STATE__ACK", "replica"),
            ("REDREC_USER_STATE__ACK_TIMEOUT_MS", "500"),
        ],
    );
    let load = Load::start(&gw, &ids, "ha-load", KEY);
    // events of their own: one user per event, so each acknowledged one can be looked up
    let events_gw = gw.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let events = {
        let stop = stop.clone();
        let ids = ids.clone();
        std::thread::spawn(move || {
            let mut sent = Vec::new();
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let status = http_post_full(
                    events_gw,
                    "/v1/events",
                    KEY,
                    &format!(
                        r#"{{"type":"click","user_id":"ha-{n}","item_id":"{}"}}"#,
                        ids[n % ids.len()]
                    ),
                )
                .map_or(0, |r| r.status);
                sent.push((n, status, Instant::now()));
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = load.now();
    let killed = Instant::now();
    primary.kill9();
    let recovered = load.wait_ok(Kind::Event, killed_at, Duration::from_secs(30));
    let recommend_back = load.wait_ok(Kind::Recommend, killed_at, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = events.join().unwrap();
    let answers = load.finish();

    let new_primary = sentinels.primary_port();
    assert!(
        new_primary == r1.port || new_primary == r2.port,
        "a replica was promoted (sentinel names port {new_primary})"
    );
    let recovered = recovered.expect("an event succeeded within 30 s of the kill") - killed_at;
    let recommend_back = recommend_back.expect("a recommendation within 30 s") - killed_at;
    for (kind, ok, unavailable, other) in tally(&answers, killed_at, killed_at + recovered) {
        eprintln!(
            "failover window ({recovered:?}): {kind:?} {ok} ok, {unavailable} x 503, {other} other"
        );
    }
    let failed_after_kill = answers
        .iter()
        .filter(|a| a.at >= killed_at && !a.ok())
        .count();
    let similar_failed = answers
        .iter()
        .filter(|a| a.at >= killed_at && a.kind == Kind::Similar && !a.ok())
        .count();
    eprintln!(
        "sentinel failover: events back after {recovered:?}, recommendations after \
         {recommend_back:?}; {failed_after_kill} load requests failed after the kill \
         ({similar_failed} of them similar-item reads served by replicas)"
    );
    for a in answers.iter().filter(|a| !a.ok()) {
        assert!(
            a.status == 503 || a.status == 0,
            "only 503s (or a dropped connection) during a failover: {a:?}"
        );
    }
    // every event acknowledged with ack = replica is on the new primary
    let acked: Vec<usize> = sent
        .iter()
        .filter(|(_, s, _)| *s == 202)
        .map(|(n, _, _)| *n)
        .collect();
    let mut con = conn(new_primary);
    let lost: Vec<usize> = acked
        .iter()
        .copied()
        .filter(|n| {
            let v = con
                .call(&["HGET", &format!("{NS}:user:ha-{n}"), "n:click"])
                .ok();
            v.as_ref().and_then(Value::text).as_deref() != Some("1")
        })
        .collect();
    let refused = sent.iter().filter(|(_, s, _)| *s != 202).count();
    eprintln!(
        "ack = replica: {} events acknowledged, {} refused or unanswered, {} lost",
        acked.len(),
        refused,
        lost.len()
    );
    assert!(
        acked.len() > 20,
        "events were acknowledged: {}",
        acked.len()
    );
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");
    assert!(
        sent.iter().any(|(_, s, at)| *s == 202 && *at > killed),
        "events are acknowledged again after the failover"
    );
}
