//! The demo's restart path against the real embedded server: seed a persistent server, stop it
//! (cleanly, then by SIGKILL), start it again on the same data directory, and check that the
//! start waits through the reload, serves the same catalog, and that seeding again writes nothing.
//! The catalog is large enough that the reload (HNSW rebuilt while the append-only file loads)
//! takes seconds, which is what broke the second `cargo xtask demo`.

use std::time::Duration;

use crate::{
    demo::{http_get_full, http_post_full},
    redis::{self, State, UpOptions},
    resp::{Conn, Value},
    test_support::{self, Gateway, Server},
};

const ITEMS: u64 = 15_000;
const DIM: usize = 32;

fn seed(port: u16, ns: &str) -> String {
    test_support::seed(port, ns, ITEMS, DIM)
}

/// (keys in the database, docs the alias serves, ids of a KNN query)
fn catalog(port: u16, ns: &str) -> (i64, u64, Vec<String>) {
    let mut con = Conn::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10)).unwrap();
    let Value::Int(keys) = con.call(&["DBSIZE"]).unwrap() else {
        panic!("DBSIZE")
    };
    let alias = format!("{ns}:items");
    let info = con.call(&["FT.INFO", &alias]).unwrap();
    let docs = info
        .field("num_docs")
        .and_then(Value::text)
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("FT.INFO {alias}: {info:?}")) as u64;
    let query: Vec<u8> = (0..DIM)
        .flat_map(|i| ((i as f32 + 1.0) / DIM as f32).to_le_bytes())
        .collect();
    let reply = con
        .call(&[
            b"FT.SEARCH".as_slice(),
            alias.as_bytes(),
            b"*=>[KNN 10 @embedding $v EF_RUNTIME 1000 AS score]",
            b"PARAMS",
            b"2",
            b"v",
            &query,
            b"SORTBY",
            b"score",
            b"RETURN",
            b"1",
            b"score",
            b"DIALECT",
            b"2",
        ])
        .unwrap();
    let Value::Array(items) = reply else {
        panic!("FT.SEARCH: {reply:?}")
    };
    let ids = items
        .iter()
        .skip(1)
        .step_by(2)
        .filter_map(Value::text)
        .collect();
    (keys, docs, ids)
}

/// The same catalog: the same keys and documents, and the same KNN answer up to HNSW's
/// approximation (the graph is rebuilt in another insertion order after a restart, so a near-tie at
/// rank 10 may change even at a high EF_RUNTIME).
fn assert_same_catalog(now: &(i64, u64, Vec<String>), before: &(i64, u64, Vec<String>)) {
    assert_eq!((now.0, now.1), (before.0, before.1), "keys and docs");
    let shared = now.2.iter().filter(|id| before.2.contains(id)).count();
    assert!(
        shared >= 9,
        "KNN answers differ: {:?} vs {:?}",
        now.2,
        before.2
    );
}

#[test]
fn a_restarted_server_is_waited_for_and_keeps_its_catalog() {
    let server = Server::start("restart", true);
    let port = server.port;
    let ns = "restart";
    let loaded = seed(port, ns);
    assert!(!loaded.contains("nothing to do"), "{loaded}");
    let before = catalog(port, ns);
    assert_eq!(before.1, ITEMS, "the alias serves every item");
    assert_eq!(before.2.len(), 10);

    // 1. clean stop, start again: up() returns only once the data is loaded and indexed
    redis::down_embedded(port).unwrap();
    assert_eq!(redis::probe(port), State::Stopped { stale_pid: None });
    assert!(server.up());
    assert!(matches!(redis::probe(port), State::Ready { .. }));
    assert_same_catalog(&catalog(port, ns), &before);
    let again = seed(port, ns);
    assert!(
        again.contains("nothing to do"),
        "second seed re-seeded: {again}"
    );
    assert_eq!(catalog(port, ns).0, before.0);

    // 2. the server is killed (stale pid file), the next start removes it and reloads
    let pid = server.kill9();
    assert_eq!(
        redis::probe(port),
        State::Stopped {
            stale_pid: Some(pid)
        }
    );
    assert!(server.up());
    assert_same_catalog(&catalog(port, ns), &before);

    // 3. `up` on a server that is still loading waits for it instead of failing
    redis::down_embedded(port).unwrap();
    let spawned = server.up_in_background();
    // give the first start a moment to launch the process, then ask again concurrently
    let mut seen_loading = false;
    for _ in 0..200 {
        if matches!(redis::probe(port), State::Loading { .. }) {
            seen_loading = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = redis::up_embedded(&UpOptions {
        port,
        persist: true,
        data_dir: None,
        replica_of: None,
        cluster: false,
    })
    .expect("a second `up` while the first one starts the server");
    assert!(spawned.join().unwrap(), "the first call started it");
    assert!(!second, "the second call found it running");
    eprintln!("observed the LOADING state: {seen_loading}");
    assert_same_catalog(&catalog(port, ns), &before);

    // 4. a gateway serving through a restart answers 200 or 503 + Retry-After, never 500, and
    //    recovers on its own; /readyz is not ready until the index is complete
    let gw = Gateway::start(port, ns, DIM, &[]);
    let id = before.2[0]
        .trim_start_matches(&format!("{ns}:item:"))
        .to_owned();
    let similar = format!("/v1/items/{id}/similar?k=5");
    let ok = http_get_full(gw.addr, &similar).expect("gateway answers");
    assert_eq!(ok.status, 200, "{}", ok.body);
    redis::down_embedded(port).unwrap();
    let restart = server.up_in_background();
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    let mut readyz_notes = std::collections::BTreeSet::new();
    while !restart.is_finished() {
        let r = http_get_full(gw.addr, &similar).expect("gateway answers");
        *seen.entry(r.status).or_default() += 1;
        match r.status {
            200 => {}
            503 => assert!(
                r.head.to_ascii_lowercase().contains("retry-after:"),
                "503 without Retry-After: {}",
                r.head
            ),
            other => panic!(
                "{other} during the restart: {} (gateway log: {})",
                r.body,
                gw.log().display()
            ),
        }
        let ready = http_get_full(gw.addr, "/readyz").expect("readyz answers");
        if ready.status == 503 {
            for note in ["loading", "indexed", "refused", "redis"] {
                if ready.body.contains(note) {
                    readyz_notes.insert(note);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(restart.join().unwrap());
    eprintln!("statuses during the restart: {seen:?}; /readyz mentioned {readyz_notes:?}");
    assert!(seen.get(&503).is_some_and(|n| *n > 0), "{seen:?}");
    let mut recovered = false;
    for _ in 0..100 {
        let r = http_get_full(gw.addr, &similar).expect("gateway answers");
        let ready = http_get_full(gw.addr, "/readyz").expect("readyz answers");
        if r.status == 200 && ready.body.contains("\"index\":\"ok\"") {
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(recovered, "the gateway did not recover after the restart");
    drop(gw);

    // 5. `user_state.ack = aof`: every event acknowledged with 202 survives a SIGKILL of Redis
    //    right after the last acknowledgement (with `memory` the last second may be lost)
    let ids: Vec<String> = before
        .2
        .iter()
        .map(|k| k.trim_start_matches(&format!("{ns}:item:")).to_owned())
        .collect();
    let mut per_event = Vec::new();
    // (sequential acks in aof mode wait for the server's next everysec fsync: ~1 s each)
    for (mode, user, n) in [("memory", "fast-u", 50usize), ("aof", "durable-u", 10)] {
        let gw = Gateway::start(
            port,
            ns,
            DIM,
            &[
                ("REDREC_USER_STATE__ACK", mode),
                ("REDREC_USER_STATE__ACK_TIMEOUT_MS", "3000"),
                ("REDREC_GATEWAY__API_KEYS", "[\"restart-key\"]"),
            ],
        );
        let started = std::time::Instant::now();
        for i in 0..n {
            let body = format!(
                r#"{{"type":"click","user_id":"{user}","item_id":"{}","event_id":"{mode}-{i}"}}"#,
                ids[i % ids.len()]
            );
            let r = http_post_full(gw.addr, "/v1/events", "restart-key", &body)
                .expect("gateway answers");
            assert_eq!(r.status, 202, "event {i} in {mode} mode: {}", r.body);
        }
        per_event.push((mode, started.elapsed() / n as u32));
        drop(gw);
    }
    server.kill9();
    assert!(server.up());
    let mut con = Conn::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10)).unwrap();
    let clicks = con
        .call(&["HGET", &format!("{ns}:user:durable-u"), "n:click"])
        .unwrap()
        .text()
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    eprintln!(
        "acknowledgement cost per event (sequential, debug gateway): {per_event:?}; clicks after SIGKILL: {clicks}/10"
    );
    assert_eq!(clicks, 10, "acknowledged events lost in aof mode");
}
