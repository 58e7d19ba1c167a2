//! Following the primary through Sentinel (`[redis.sentinel]`).
//!
//! The Sentinels are asked `SENTINEL GET-MASTER-ADDR-BY-NAME` (in the configured order, the first
//! answer wins) when no primary is known yet, at once when the primary cannot be reached, and
//! every `check_ms` in the background (a demoted primary that came back as a replica accepts
//! connections but refuses writes with `READONLY`). When the answer names another node, a pool
//! to it replaces the primary's: requests in flight on the old pool finish or fail, the next
//! ones go to the new primary, without a restart. The primary's URL scheme, credentials and
//! database come from `redis.url`; only its host and port come from Sentinel.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redrec_core::config::SentinelConfig;

use crate::error::{Error, Result};
use crate::node::{Node, Redis, parse_url};

pub(crate) struct Sentinel {
    master_name: String,
    /// `host:port` of each Sentinel.
    nodes: Vec<String>,
    check: Duration,
    /// When the last background check started.
    last_check: Mutex<Option<Instant>>,
    /// One question to the Sentinels at a time: a burst of failing requests asks once.
    asking: tokio::sync::Mutex<()>,
}

impl Sentinel {
    pub(crate) fn new(cfg: &SentinelConfig) -> Result<Sentinel> {
        let bad = |key: &'static str, message: String| Error::Config { key, message };
        if cfg.master_name.trim().is_empty() {
            return Err(bad(
                "redis.sentinel.master_name",
                "must name the monitored primary (`sentinel monitor <name> ...`)".into(),
            ));
        }
        if cfg.nodes.is_empty() {
            return Err(bad(
                "redis.sentinel.nodes",
                "must list at least one sentinel as `host:port`".into(),
            ));
        }
        for node in &cfg.nodes {
            let port = node.rsplit_once(':').and_then(|(h, p)| {
                (!h.is_empty()).then_some(())?;
                p.parse::<u16>().ok()
            });
            if port.is_none() {
                return Err(bad(
                    "redis.sentinel.nodes",
                    format!("`{node}` is not `host:port`"),
                ));
            }
        }
        if cfg.check_ms == 0 {
            return Err(bad(
                "redis.sentinel.check_ms",
                "expected a positive number of milliseconds".into(),
            ));
        }
        Ok(Sentinel {
            master_name: cfg.master_name.clone(),
            nodes: cfg.nodes.clone(),
            check: Duration::from_millis(cfg.check_ms),
            last_check: Mutex::new(None),
            asking: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts a background check when the last one is older than `check_ms` (needs a Tokio
    /// runtime; without one the check happens only when the primary fails).
    pub(crate) fn maybe_refresh_in_background(&self, redis: &Redis) {
        {
            let mut last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.check) {
                return;
            }
            *last = Some(Instant::now());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let redis = redis.clone();
        runtime.spawn(async move {
            if let Some(sentinel) = &redis.nodes.sentinel
                && let Err(e) = sentinel.refresh(&redis).await
            {
                tracing::warn!(error = %e, "cannot ask sentinel for the primary");
            }
        });
    }

    /// Asks the Sentinels for the primary; when it moved, the primary's pool is replaced.
    pub(crate) async fn refresh(&self, redis: &Redis) -> Result<Arc<Node>> {
        let _one = self.asking.lock().await;
        let cfg = &redis.nodes.cfg;
        let (host, port) = self
            .ask(Duration::from_millis(cfg.connect_timeout_ms.max(1)))
            .await?;
        let addr = format!("{host}:{port}");
        if let Some(current) = redis.primary_node()
            && current.addr == addr
        {
            return Ok(current);
        }
        let info = parse_url(&cfg.url, "redis.url")?;
        let target = match info.addr() {
            redis::ConnectionAddr::TcpTls { insecure, .. } => redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => redis::ConnectionAddr::Tcp(host, port),
        };
        let node = Arc::new(Node::from_info(addr.clone(), info.set_addr(target), cfg)?);
        let previous = redis
            .nodes
            .primary
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(node.clone());
        match previous {
            Some(old) => tracing::warn!(from = %old.addr, to = %addr, "primary moved (sentinel)"),
            None => tracing::info!(primary = %addr, "primary found through sentinel"),
        }
        Ok(node)
    }

    /// The primary's address according to the first Sentinel that answers.
    async fn ask(&self, timeout: Duration) -> Result<(String, u16)> {
        let mut failures = Vec::new();
        for node in &self.nodes {
            let answer = tokio::time::timeout(timeout, async {
                let client = redis::Client::open(format!("redis://{node}"))?;
                let mut con = client.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.master_name)
                    .query_async::<Option<(String, u16)>>(&mut con)
                    .await
            })
            .await;
            match answer {
                Ok(Ok(Some(addr))) => return Ok(addr),
                Ok(Ok(None)) => {
                    failures.push(format!("{node} does not monitor `{}`", self.master_name))
                }
                Ok(Err(e)) => failures.push(format!("{node}: {e}")),
                Err(_) => failures.push(format!("{node}: no answer within {timeout:?}")),
            }
        }
        Err(Error::Unavailable {
            what: "asking sentinel for the primary".into(),
            message: failures.join("; "),
        })
    }
}
