//! `cargo xtask demo`: the main job end to end, on every run. Starts (or reuses) the embedded
//! Redis with an append-only file and waits while it reloads and re-indexes persisted data,
//! seeds the Complete Journey catalog unless the namespace already holds it, builds the gateway in
//! release mode, frees the listen address from a gateway an earlier demo left behind, serves it
//! with a fresh API key and waits for `/readyz` before printing the demo URL.
//!
//! Ctrl-C stops the gateway (it drains in-flight requests); Redis keeps running with the catalog,
//! so the next demo starts in seconds. `cargo xtask redis down` stops it.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::{Asset, cargo, fetch, process, redis, run_step, seed, workspace_root};

/// Where the demo gateway listens unless `--listen` / REDREC_DEMO_LISTEN says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How long the gateway may take from spawn to a ready `/readyz`.
const READY_LIMIT: Duration = Duration::from_secs(120);

pub fn demo(port: u16, listen: &str) -> Result<()> {
    let listen_addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen `{listen}` is not an address like 127.0.0.1:8080"))?;
    let started = Instant::now();
    let url = redis::up_dev(port)?;
    let model_dir = fetch(Asset::Model)?;
    // `seed` is a no-op when `{ns}:meta:seed` says the catalog is loaded and the alias serves it;
    // an interrupted seed left no marker, so it is resumed by loading again.
    seed::seed_default(port)?;
    run_step(
        "cargo build --release -p redrec-gateway",
        cargo().args(["build", "--release", "-p", "redrec-gateway"]),
    )?;
    let binary = workspace_root().join("target/release/redrec-gateway");
    free_listen_address(listen_addr, &binary)?;
    let key = std::env::var("REDREC_DEMO_KEY").unwrap_or_else(|_| fresh_key());
    let mut cmd = Command::new(&binary);
    cmd.current_dir(workspace_root())
        .env("REDREC_REDIS__URL", &url)
        .env("REDREC_EMBEDDER__MODEL_DIR", &model_dir)
        .env("REDREC_GATEWAY__LISTEN", listen)
        .env("REDREC_GATEWAY__API_KEYS", format!("[\"{key}\"]"));
    // The demo serves with the production defaults (200 ms deadline, `hybrid_policy = "auto"`,
    // admission control; docs/SERVING.md); any `REDREC_*` variable set by the caller still applies.
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    wait_ready(&mut child, listen_addr)?;
    println!(
        "\nredrec demo: http://{listen}/#key={key}\n  \
         ready {:.0} s after start (the key authorises clicks; API: docs/API.md)\n  \
         Ctrl-C stops the gateway; Redis keeps running on port {port} with the catalog, so the next \
         `cargo xtask demo` starts in seconds (`cargo xtask redis down` stops it)\n",
        started.elapsed().as_secs_f64()
    );
    let status = child.wait().context("waiting for the gateway")?;
    if !status.success() {
        bail!(
            "the gateway exited with {status}; Redis is still running on port {port}: run `cargo xtask demo` again"
        );
    }
    Ok(())
}

/// Makes sure `addr` can be listened on: a gateway left running by an earlier demo (this
/// workspace's binary) is stopped; anything else holding it is named with how to free it.
fn free_listen_address(addr: SocketAddr, binary: &std::path::Path) -> Result<()> {
    if std::net::TcpListener::bind(addr).is_ok() {
        return Ok(());
    }
    let Some(holder) = process::holder(addr.port()) else {
        bail!(
            "{addr} is in use by a process this user cannot see; free it, or serve elsewhere with \
             `cargo xtask demo --listen 127.0.0.1:8081`"
        );
    };
    let ours = process::exe(holder.pid).is_some_and(|exe| exe == binary);
    if !ours {
        bail!(
            "{addr} is in use by pid {} (`{}`); stop it (`kill {}`), or serve elsewhere with \
             `cargo xtask demo --listen 127.0.0.1:8081`",
            holder.pid,
            holder.cmdline,
            holder.pid
        );
    }
    eprintln!(
        "xtask: stopping the gateway an earlier demo left on {addr} (pid {})",
        holder.pid
    );
    process::signal(holder.pid, "TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpListener::bind(addr).is_err() {
        if Instant::now() > deadline {
            process::signal(holder.pid, "KILL");
        }
        if Instant::now() > deadline + Duration::from_secs(5) {
            bail!(
                "the old gateway (pid {}) did not release {addr}",
                holder.pid
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Waits until `/readyz` answers 200, printing what it waits for; fails when the gateway exits.
fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<()> {
    let started = Instant::now();
    let mut last_note = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the gateway exited ({status}) before it was ready; its log is above");
        }
        let reply = http_get(addr, "/readyz");
        if let Some((200, _)) = reply {
            return Ok(());
        }
        let waiting_on = match &reply {
            Some((_, body)) => body.clone(),
            None => "the gateway to listen".to_owned(),
        };
        if last_note.elapsed() > Duration::from_secs(5) {
            eprintln!("xtask: waiting for the gateway to be ready: {waiting_on}");
            last_note = Instant::now();
        }
        if started.elapsed() > READY_LIMIT {
            let _ = child.kill();
            bail!(
                "the gateway on {addr} was not ready within {} s: {waiting_on}",
                READY_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A random-enough demo key: a digest of the time and process id.
fn fresh_key() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!(
        "{:?}-{}-{n}",
        std::time::SystemTime::now(),
        std::process::id()
    );
    let d = Sha256::digest(seed.as_bytes());
    format!(
        "demo-{}",
        d[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// `GET path` over HTTP/1.1: the status code and body, `None` when nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get_full(addr, path).map(|r| (r.status, r.body))
}

/// An HTTP response as xtask reads it.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Status line and headers.
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the restart test"))]
    pub head: String,
    pub body: String,
}

/// `GET path` over HTTP/1.1, `None` when nothing answers.
pub fn http_get_full(addr: SocketAddr, path: &str) -> Option<HttpReply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    parse_response(&reply)
}

/// `POST path` with a JSON body and a bearer key; `None` when the gateway does not answer.
#[cfg_attr(not(test), expect(dead_code, reason = "used by the restart test"))]
pub fn http_post_full(addr: SocketAddr, path: &str, key: &str, json: &str) -> Option<HttpReply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    parse_response(&reply)
}

fn parse_response(reply: &str) -> Option<HttpReply> {
    let status = reply
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse::<u16>()
        .ok()?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((reply, ""));
    Some(HttpReply {
        status,
        head: head.to_owned(),
        body: body.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_keys_are_fresh_and_url_safe() {
        let (a, b) = (fresh_key(), fresh_key());
        assert!(a.starts_with("demo-") && a.len() == 5 + 24, "{a}");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
        assert_ne!(a, b);
    }

    #[test]
    fn reads_status_head_and_body() {
        let r = parse_response(
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\r\n{\"ready\":false}",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "{\"ready\":false}"));
        assert!(r.head.contains("retry-after: 1"));
        let r = parse_response("HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, ""));
        assert!(parse_response("garbage").is_none());
    }
}
