//! What xtask's process-level tests share (the restart test, the fault suite): the debug
//! `redrec-ingest` and `redrec-gateway` binaries, an embedded Redis on a free port that is
//! stopped and deleted when the test ends, killing it with SIGKILL, and a steady request load
//! whose every answer is recorded and checked against the fault contract.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    demo::{HttpReply, http_get_full, http_post_full},
    process,
    redis::{self, UpOptions},
    resp::{Conn, Value},
    workspace_root,
};

/// The `redrec-ingest` binary `cargo test --workspace` builds for ingest's integration tests.
pub fn ingest_binary() -> PathBuf {
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

/// Runs `redrec-ingest seed synthetic` (`items` items of `dim` dimensions) into namespace `ns`;
/// returns its stdout.
pub fn seed(port: u16, ns: &str, items: u64, dim: usize) -> String {
    let out = Command::new(ingest_binary())
        .env("REDREC_REDIS__URL", format!("redis://127.0.0.1:{port}"))
        .args(["--namespace", ns, "seed", "synthetic", "--items"])
        .arg(items.to_string())
        .args(["--dim", &dim.to_string(), "--seed", "7"])
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

/// Ids of `n` items of the catalog seeded into namespace `ns` on `port`.
pub fn item_ids(port: u16, ns: &str, n: usize) -> Vec<String> {
    let reply = conn(port)
        .call(&[
            "FT.SEARCH",
            &format!("{ns}:items"),
            "*",
            "NOCONTENT",
            "LIMIT",
            "0",
            &n.to_string(),
        ])
        .expect("FT.SEARCH");
    let Value::Array(parts) = reply else {
        panic!("FT.SEARCH: {reply:?}")
    };
    let prefix = format!("{ns}:item:");
    let ids: Vec<String> = parts
        .iter()
        .skip(1)
        .filter_map(Value::text)
        .map(|k| k.trim_start_matches(&prefix).to_owned())
        .collect();
    assert_eq!(ids.len(), n, "{parts:?}");
    ids
}

/// A connection to the embedded server on `port`.
pub fn conn(port: u16) -> Conn {
    Conn::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10)).expect("connect")
}

/// `INFO section` field `name` of the server on `port`.
pub fn info_field(port: u16, section: &str, name: &str) -> Option<String> {
    let text = conn(port).call(&["INFO", section]).ok()?.text()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}:"))
            .map(|v| v.trim().to_owned())
    })
}

/// Starts the embedded server on `port` with `data_dir` (a replica of `replica_of` when set,
/// returning once it has synchronised); true when this call started it.
fn up(port: u16, persist: bool, data_dir: &std::path::Path, replica_of: Option<u16>) -> bool {
    match replica_of {
        None => redis::up_embedded(&UpOptions {
            port,
            persist,
            data_dir: Some(data_dir.to_path_buf()),
            replica_of: None,
            cluster: false,
        }),
        Some(primary) => {
            crate::ha::start_replica(port, primary, persist, Some(data_dir.to_path_buf()))
        }
    }
    .expect("redis up")
}

/// An embedded Redis on a free port with its own data directory, stopped and deleted when the
/// test ends, failed or not.
pub struct Server {
    pub port: u16,
    pub data_dir: PathBuf,
    pub persist: bool,
    /// The primary's port when this is a replica.
    pub replica_of: Option<u16>,
}

impl Server {
    /// Starts one; `label` names its data directory (`target/redrec/run/it-{label}-{port}`).
    pub fn start(label: &str, persist: bool) -> Server {
        Server::start_as(label, persist, None)
    }

    /// Starts a replica of the server on `primary` (`--replicaof`, the modules loaded);
    /// returns once it has synchronised and built its indexes.
    pub fn start_replica(label: &str, primary: u16) -> Server {
        Server::start_as(label, false, Some(primary))
    }

    fn start_as(label: &str, persist: bool, replica_of: Option<u16>) -> Server {
        let port = redis::free_port().unwrap();
        let data_dir = redis::Layout::new()
            .run_dir
            .join(format!("it-{label}-{port}"));
        let _ = std::fs::remove_dir_all(&data_dir);
        let server = Server {
            port,
            data_dir,
            persist,
            replica_of,
        };
        assert!(server.up(), "a fresh server is started");
        server
    }

    /// Starts the server again on its data directory; true when this call started it.
    pub fn up(&self) -> bool {
        up(self.port, self.persist, &self.data_dir, self.replica_of)
    }

    /// [`Server::up`] on another thread (a test watches the start).
    pub fn up_in_background(&self) -> JoinHandle<bool> {
        let (port, persist, dir, of) = (
            self.port,
            self.persist,
            self.data_dir.clone(),
            self.replica_of,
        );
        std::thread::spawn(move || up(port, persist, &dir, of))
    }

    /// SIGKILL, then waits until the process is gone; returns its pid.
    pub fn kill9(&self) -> u32 {
        let pid: u32 = std::fs::read_to_string(redis::Layout::new().pid_file(self.port))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        process::signal(pid, "KILL");
        while process::alive(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
        pid
    }

    pub fn conn(&self) -> Conn {
        conn(self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = redis::down_embedded(self.port);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Sentinels on free ports watching a primary as [`crate::ha::MASTER_NAME`] (quorum: a
/// majority), stopped when the test ends.
pub struct Sentinels {
    pub ports: Vec<u16>,
}

impl Sentinels {
    /// Starts `count` of them and waits until they see each other.
    pub fn start(primary: u16, count: u16) -> Sentinels {
        let mut sentinels = Sentinels { ports: Vec::new() };
        for _ in 0..count {
            let port = redis::free_port().unwrap();
            crate::ha::start_sentinel(port, primary, count / 2 + 1).expect("sentinel up");
            sentinels.ports.push(port);
        }
        crate::ha::wait_quorum(sentinels.ports[0], count).expect("sentinel quorum");
        sentinels
    }

    /// `["127.0.0.1:p1",...]`, for `REDREC_REDIS__SENTINEL__NODES`.
    pub fn nodes_env(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", nodes.join(","))
    }

    /// The primary's port according to the first Sentinel.
    pub fn primary_port(&self) -> u16 {
        let reply = conn(self.ports[0])
            .call(&[
                "SENTINEL",
                "GET-MASTER-ADDR-BY-NAME",
                crate::ha::MASTER_NAME,
            ])
            .expect("SENTINEL GET-MASTER-ADDR-BY-NAME");
        let Value::Array(parts) = &reply else {
            panic!("SENTINEL GET-MASTER-ADDR-BY-NAME: {reply:?}")
        };
        parts[1]
            .text()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        let run_dir = redis::Layout::new().run_dir;
        for port in &self.ports {
            let _ = redis::down_embedded(*port);
            let _ = std::fs::remove_file(run_dir.join(format!("sentinel-{port}.conf")));
        }
    }
}

/// A debug `redrec-gateway` over a synthetic catalog (no embedder: the catalog's vectors are
/// not the model's), killed on drop.
pub struct Gateway {
    child: std::process::Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Gateway {
    /// Starts one against the server on `port`, namespace `ns`, `dim`-dimensional vectors, with
    /// extra environment (settings); waits for `/healthz`.
    pub fn start(port: u16, ns: &str, dim: usize, env: &[(&str, &str)]) -> Gateway {
        let bin = ingest_binary().with_file_name("redrec-gateway");
        assert!(bin.is_file(), "{} is missing", bin.display());
        let addr: SocketAddr = format!("127.0.0.1:{}", redis::free_port().unwrap())
            .parse()
            .unwrap();
        let log = redis::Layout::new()
            .run_dir
            .join(format!("it-gateway-{}.log", addr.port()));
        let child = Command::new(bin)
            .env("REDREC_REDIS__URL", format!("redis://127.0.0.1:{port}"))
            .env("REDREC_INDEX__NAMESPACE", ns)
            .env("REDREC_INDEX__VECTOR__DIMS", dim.to_string())
            .env("REDREC_EMBEDDER__MODEL_DIR", "/nonexistent-model-dir")
            .env("REDREC_GATEWAY__LISTEN", addr.to_string())
            .env("REDREC_GATEWAY__POPULARITY_FOLD_SECS", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            // the gateway logs to stdout
            .stdout(std::fs::File::create(&log).expect("gateway log file"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the gateway");
        let gw = Gateway { child, addr, log };
        for _ in 0..300 {
            if http_get_full(addr, "/healthz").is_some_and(|r| r.status == 200) {
                return gw;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the gateway did not answer /healthz within 30 s");
    }

    /// Where the gateway's log goes (named in failure messages).
    pub fn log(&self) -> &std::path::Path {
        &self.log
    }

    /// The log's text (the fault tests check it holds no panic).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The kinds of request a [`Load`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /v1/items/{id}/similar`
    Similar,
    /// `POST /v1/recommendations` for the load's user
    Recommend,
    /// `POST /v1/events` (a click of the load's user)
    Event,
}

/// One answered (or unanswered: status 0) request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When it was sent, since the load started.
    pub at: Duration,
    pub took: Duration,
    pub status: u16,
    pub retry_after: bool,
    pub kind: Kind,
    /// The body of a non-2xx answer.
    pub body: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One thread per request kind, each sending a request, then pausing 20 ms, until stopped.
pub struct Load {
    t0: Instant,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the load on `gw`: `items` are item ids (similar items, event targets), `user` the
    /// user of the recommendations and events, `key` the API key for events.
    pub fn start(gw: &Gateway, items: &[String], user: &str, key: &str) -> Load {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
        let threads = [Kind::Similar, Kind::Recommend, Kind::Event]
            .into_iter()
            .map(|kind| {
                let (stop, answers) = (stop.clone(), answers.clone());
                let (addr, items, user, key) =
                    (gw.addr, items.to_vec(), user.to_owned(), key.to_owned());
                std::thread::spawn(move || {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let item = &items[n % items.len()];
                        let sent = Instant::now();
                        let reply: Option<HttpReply> = match kind {
                            Kind::Similar => {
                                http_get_full(addr, &format!("/v1/items/{item}/similar?k=5"))
                            }
                            Kind::Recommend => http_post_full(
                                addr,
                                "/v1/recommendations",
                                &key,
                                &format!(r#"{{"user_id":"{user}","k":5}}"#),
                            ),
                            Kind::Event => http_post_full(
                                addr,
                                "/v1/events",
                                &key,
                                &format!(
                                    r#"{{"type":"click","user_id":"{user}","item_id":"{item}"}}"#
                                ),
                            ),
                        };
                        let answer = match reply {
                            Some(r) => Answer {
                                at: sent - t0,
                                took: sent.elapsed(),
                                status: r.status,
                                retry_after: r.head.to_ascii_lowercase().contains("retry-after:"),
                                kind,
                                body: if (200..300).contains(&r.status) {
                                    String::new()
                                } else {
                                    r.body
                                },
                            },
                            None => Answer {
                                at: sent - t0,
                                took: sent.elapsed(),
                                status: 0,
                                retry_after: false,
                                kind,
                                body: "no answer".into(),
                            },
                        };
                        answers.lock().unwrap().push(answer);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        Load {
            t0,
            stop,
            answers,
            threads,
        }
    }

    /// Time since the load started (the clock of [`Answer::at`]).
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Waits until a request of `kind` sent after `since` succeeds, at most `limit`; returns
    /// when it was answered (load clock).
    pub fn wait_ok(&self, kind: Kind, since: Duration, limit: Duration) -> Option<Duration> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(a) = self
                .answers
                .lock()
                .unwrap()
                .iter()
                .find(|a| a.kind == kind && a.at >= since && a.ok())
            {
                return Some(a.at + a.took);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Stops the load and returns every answer.
    pub fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.answers.lock().unwrap().clone()
    }
}

/// The fault contract for every answer: an answer came (no hang), within `max_took`; its status
/// is a success, a 503 with `Retry-After`, or one of `also` (a 4xx the case expects).
pub fn check_answers(answers: &[Answer], max_took: Duration, also: &[u16]) {
    for a in answers {
        assert!(a.status != 0, "no answer: {a:?}");
        assert!(
            a.ok() || a.status == 503 || also.contains(&a.status),
            "only a success or a 503 under faults: {a:?}"
        );
        if a.status == 503 {
            assert!(a.retry_after, "a 503 without Retry-After: {a:?}");
        }
        assert!(a.took <= max_took, "an answer took {:?}: {a:?}", a.took);
    }
}

/// Counts per kind in a window of the load clock: (successes, 503s, others).
pub fn tally(answers: &[Answer], from: Duration, to: Duration) -> Vec<(Kind, usize, usize, usize)> {
    [Kind::Similar, Kind::Recommend, Kind::Event]
        .into_iter()
        .map(|k| {
            let within = answers
                .iter()
                .filter(|a| a.kind == k && a.at >= from && a.at < to);
            let (mut ok, mut unavailable, mut other) = (0, 0, 0);
            for a in within {
                match a.status {
                    s if (200..300).contains(&s) => ok += 1,
                    503 => unavailable += 1,
                    _ => other += 1,
                }
            }
            (k, ok, unavailable, other)
        })
        .collect()
}

/// `HGET` of a user-state counter (`n:click`, ...) in namespace `ns`.
pub fn user_counter(port: u16, ns: &str, user: &str, counter: &str) -> usize {
    conn(port)
        .call(&["HGET", &format!("{ns}:user:{user}"), counter])
        .ok()
        .as_ref()
        .and_then(Value::text)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}
