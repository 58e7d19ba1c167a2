//! The demo's restart path against the real embedded server: seed a persistent server, stop it
//! (cleanly, then by SIGKILL), start it again on the same data directory, and check that the
//! start waits through the reload, serves the same catalog, and that seeding again writes nothing.
//! The catalog is large enough that the reload (HNSW rebuilt while the append-only file loads)
//! takes seconds, which is what broke the second `cargo xtask demo`.

use std::{path::PathBuf, process::Command, time::Duration};

use crate::{
    demo::{http_get_full, http_post_full},
    process,
    redis::{self, State, UpOptions},
    resp::{Conn, Value},
    workspace_root,
};

const ITEMS: u64 = 15_000;
const DIM: usize = 32;

/// The `redrec-ingest` binary `cargo test --workspace` builds for ingest's integration tests.
fn ingest_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("debug").join("redrec-ingest");
    assert!(
        bin.is_file(),
        "{} is missing: run this test through `cargo xtask test` (or `cargo build -p redrec-ingest` first)",
        bin.display()
    );
    bin
}

/// Runs `redrec-ingest seed synthetic` into namespace `ns`; returns its stdout.
fn seed(port: u16, ns: &str) -> String {
    let out = Command::new(ingest_binary())
        .env("REDREC_REDIS__URL", format!("redis://127.0.0.1:{port}"))
        .args(["--namespace", ns, "seed", "synthetic", "--items"])
        .arg(ITEMS.to_string())
        .args(["--dim", &DIM.to_string(), "--seed", "7"])
        .output()
        .expect("run redrec-ingest");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "seed failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
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

/// A debug `redrec-gateway` over the test catalog (no embedder: the catalog's vectors are 32-d).
struct Gateway {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Gateway {
    /// Where the gateway's log goes (named in failure messages).
    fn log(port: u16) -> PathBuf {
        redis::Layout::new()
            .run_dir
            .join(format!("it-restart-gateway-{port}.log"))
    }

    fn start(port: u16, ns: &str) -> Gateway {
        Self::start_with(port, ns, &[])
    }

    /// [`Gateway::start`] with extra environment (settings).
    fn start_with(port: u16, ns: &str, env: &[(&str, &str)]) -> Gateway {
        let bin = ingest_binary().with_file_name("redrec-gateway");
        assert!(bin.is_file(), "{} is missing", bin.display());
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", redis::free_port().unwrap())
            .parse()
            .unwrap();
        let child = Command::new(bin)
            .env("REDREC_REDIS__URL", format!("redis://127.0.0.1:{port}"))
            .env("REDREC_INDEX__NAMESPACE", ns)
            .env("REDREC_INDEX__VECTOR__DIMS", DIM.to_string())
            .env("REDREC_EMBEDDER__MODEL_DIR", "/nonexistent-model-dir")
            .env("REDREC_GATEWAY__LISTEN", addr.to_string())
            .env("REDREC_GATEWAY__POPULARITY_FOLD_SECS", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            // the gateway logs to stdout
            .stdout(std::fs::File::create(Self::log(port)).expect("gateway log file"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the gateway");
        let gw = Gateway { child, addr };
        for _ in 0..300 {
            if http_get_full(addr, "/healthz").is_some_and(|r| r.status == 200) {
                return gw;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the gateway did not answer /healthz within 30 s");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the test's server and deletes its data when the test ends, failed or not.
struct Cleanup {
    port: u16,
    data_dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = redis::down_embedded(self.port);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
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

fn start(port: u16, data_dir: &std::path::Path) -> bool {
    redis::up_embedded(&UpOptions {
        port,
        persist: true,
        data_dir: Some(data_dir.to_path_buf()),
    })
    .expect("redis up")
}

#[test]
fn a_restarted_server_is_waited_for_and_keeps_its_catalog() {
    let port = redis::free_port().unwrap();
    let data_dir = redis::Layout::new()
        .run_dir
        .join(format!("it-restart-{port}"));
    let _ = std::fs::remove_dir_all(&data_dir);
    let _cleanup = Cleanup {
        port,
        data_dir: data_dir.clone(),
    };
    let ns = "restart";
    assert!(start(port, &data_dir), "a fresh server is started");
    let loaded = seed(port, ns);
    assert!(!loaded.contains("nothing to do"), "{loaded}");
    let before = catalog(port, ns);
    assert_eq!(before.1, ITEMS, "the alias serves every item");
    assert_eq!(before.2.len(), 10);

    // 1. clean stop, start again: up() returns only once the data is loaded and indexed
    redis::down_embedded(port).unwrap();
    assert_eq!(redis::probe(port), State::Stopped { stale_pid: None });
    assert!(start(port, &data_dir));
    assert!(matches!(redis::probe(port), State::Ready { .. }));
    assert_same_catalog(&catalog(port, ns), &before);
    let again = seed(port, ns);
    assert!(
        again.contains("nothing to do"),
        "second seed re-seeded: {again}"
    );
    assert_eq!(catalog(port, ns).0, before.0);

    // 2. the server is killed (stale pid file), the next start removes it and reloads
    let pid: u32 = std::fs::read_to_string(redis::Layout::new().pid_file(port))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    process::signal(pid, "KILL");
    while process::alive(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        redis::probe(port),
        State::Stopped {
            stale_pid: Some(pid)
        }
    );
    assert!(start(port, &data_dir));
    assert_same_catalog(&catalog(port, ns), &before);

    // 3. `up` on a server that is still loading waits for it instead of failing
    redis::down_embedded(port).unwrap();
    let layout = redis::Layout::new();
    let spawned = std::thread::spawn(move || start(port, &data_dir));
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
    })
    .expect("a second `up` while the first one starts the server");
    assert!(spawned.join().unwrap(), "the first call started it");
    assert!(!second, "the second call found it running");
    eprintln!("observed the LOADING state: {seen_loading}");
    assert_same_catalog(&catalog(port, ns), &before);

    // 4. a gateway serving through a restart answers 200 or 503 + Retry-After, never 500, and
    //    recovers on its own; /readyz is not ready until the index is complete
    let gw = Gateway::start(port, ns);
    let id = before.2[0]
        .trim_start_matches(&format!("{ns}:item:"))
        .to_owned();
    let similar = format!("/v1/items/{id}/similar?k=5");
    let ok = http_get_full(gw.addr, &similar).expect("gateway answers");
    assert_eq!(ok.status, 200, "{}", ok.body);
    redis::down_embedded(port).unwrap();
    let data_dir = layout.run_dir.join(format!("it-restart-{port}"));
    let restart = {
        let data_dir = data_dir.clone();
        std::thread::spawn(move || start(port, &data_dir))
    };
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
                Gateway::log(port).display()
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
        let gw = Gateway::start_with(
            port,
            ns,
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
    let pid: u32 = std::fs::read_to_string(layout.pid_file(port))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    process::signal(pid, "KILL");
    while process::alive(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(start(port, &data_dir));
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
    let _ = std::fs::remove_file(Gateway::log(port));
}
