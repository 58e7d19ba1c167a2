//! One connection setup per deployment and the single home of "which node serves this command".
//!
//! Every binary builds one [`Redis`] from `[redis]`: a deadpool pool per node speaking RESP3 (the
//! retriever reads partial-result warnings that only RESP3 carries; every parser in
//! `redrec_core::reply` reads both protocols), with connect and response timeouts. Callers say
//! what a command needs with a [`Route`]; [`Redis::conn`] decides which node serves it:
//!
//! - [`Route::Primary`]: the primary, from `redis.url` or, with `redis.sentinel`, the node the
//!   Sentinels name (asked again at once when the primary cannot be reached, and every
//!   `check_ms` in the background, so a failover is followed without a restart: `sentinel.rs`).
//! - [`Route::Replica`]: one of `redis.replicas`, the one with the fewest requests outstanding
//!   (connections checked out plus callers waiting; ties go to a pseudo-random replica, so a
//!   caller's fixed pattern of requests cannot pin its searches to one). A replica whose connection
//!   fails is left out for `replica_retry_ms`; with no replica left, the primary serves.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool_redis::{Connection, Manager, Pool, PoolError, Runtime, Status, TimeoutType};
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion};

use redrec_core::config::RedisConfig;

use crate::error::{Error, Result};

/// What a command needs from the node that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Writes, and reads that must see the latest write (read-your-writes, rate limits).
    Primary,
    /// Reads that tolerate replication lag (search, item reads, index info): a replica serves
    /// them when replicas are configured.
    Replica,
}

/// One node: its pool, a client for connections outside the pool, and, for a replica, until
/// when it is left out.
pub(crate) struct Node {
    /// `host:port` (no credentials), for readiness reports and logs.
    pub(crate) addr: String,
    pub(crate) pool: Pool,
    /// The pool's connection settings (TLS roots, RESP3), for [`Redis::dedicated_conn`].
    client: redis::Client,
    down_until: Mutex<Option<Instant>>,
}

impl Node {
    /// The node `info` names, with the deployment's TLS roots, protocol and timeouts.
    pub(crate) fn from_info(
        addr: String,
        info: redis::ConnectionInfo,
        cfg: &RedisConfig,
    ) -> Result<Node> {
        let info = node_info(info, cfg)?;
        let client = redis::Client::open(info.clone()).map_err(|e| Error::Config {
            key: "redis.url",
            message: format!("`{addr}`: {e}"),
        })?;
        Ok(Node {
            addr,
            pool: pool_from_info(info, cfg)?,
            client,
            down_until: Mutex::new(None),
        })
    }

    fn is_down(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| now < t)
    }

    fn set_down(&self, until: Option<Instant>) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }

    /// Requests this node is busy with: connections checked out plus callers waiting for one.
    fn outstanding(&self) -> usize {
        let s = self.pool.status();
        s.size.saturating_sub(s.available) + s.waiting
    }
}

/// What a readiness check found on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCheck {
    /// `primary` or `replica`.
    pub role: &'static str,
    /// `host:port`.
    pub addr: String,
    /// `Ok` when it answered `PING`; for a replica, also that its link to the primary is up.
    pub result: std::result::Result<(), String>,
}

pub(crate) struct Nodes {
    pub(crate) cfg: RedisConfig,
    /// `None` until Sentinel named a primary.
    pub(crate) primary: RwLock<Option<Arc<Node>>>,
    replicas: Vec<Arc<Node>>,
    /// Rotates the first replica looked at, so equal loads take turns.
    next: AtomicUsize,
    pub(crate) sentinel: Option<crate::sentinel::Sentinel>,
    /// The user-state cluster (`redis.user_state`); `None`: user state lives on the primary.
    pub(crate) user_state: Option<crate::cluster::UserStateCluster>,
}

/// The connection setup of a deployment (cheap to clone: the nodes are shared).
#[derive(Clone)]
pub struct Redis {
    pub(crate) nodes: Arc<Nodes>,
    command_timeout: Duration,
}

impl Redis {
    /// Builds the pools (no I/O: connections open lazily, so this succeeds while Redis is down;
    /// with Sentinel the primary is looked up on first use).
    pub fn new(cfg: &RedisConfig) -> Result<Redis> {
        let sentinel = cfg
            .sentinel
            .as_ref()
            .map(crate::sentinel::Sentinel::new)
            .transpose()?;
        let primary = match sentinel {
            Some(_) => None,
            None => Some(Arc::new(Node::from_info(
                display_addr(&cfg.url),
                parse_url(&cfg.url, "redis.url")?,
                cfg,
            )?)),
        };
        let replicas = cfg
            .replicas
            .iter()
            .map(|url| {
                let info = parse_url(url, "redis.replicas")?;
                Ok(Arc::new(Node::from_info(display_addr(url), info, cfg)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let user_state = cfg
            .user_state
            .as_ref()
            .map(|u| crate::cluster::UserStateCluster::new(&u.cluster, cfg))
            .transpose()?;
        Ok(Redis {
            nodes: Arc::new(Nodes {
                cfg: cfg.clone(),
                primary: RwLock::new(primary),
                replicas,
                next: AtomicUsize::new(0),
                sentinel,
                user_state,
            }),
            command_timeout: Duration::from_millis(cfg.command_timeout_ms.max(1)),
        })
    }

    /// Timeout of one call.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// One node serves everything: no replicas, no Sentinel, no user-state cluster (the default).
    pub fn is_single_node(&self) -> bool {
        self.nodes.replicas.is_empty()
            && self.nodes.sentinel.is_none()
            && self.nodes.user_state.is_none()
    }

    /// Whether read replicas are configured.
    pub fn has_replicas(&self) -> bool {
        !self.nodes.replicas.is_empty()
    }

    /// The current primary (`None` while Sentinel has not named one).
    pub(crate) fn primary_node(&self) -> Option<Arc<Node>> {
        self.nodes
            .primary
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A pooled connection to the node serving `route`, within the command timeout.
    pub async fn conn(&self, route: Route) -> Result<Connection> {
        match route {
            Route::Replica if self.has_replicas() => match self.replica_conn().await {
                Some(c) => Ok(c),
                None => self.primary_conn().await,
            },
            Route::Primary | Route::Replica => self.primary_conn().await,
        }
    }

    /// A new connection, outside the pool, to the node serving `route`, whose commands may
    /// take up to `timeout`: for slow calls off the hot path (a whole-catalog `FT.AGGREGATE`).
    ///
    /// Not a handle on a pooled connection: Redis answers one connection's commands in order,
    /// so a slow command on a shared multiplexed connection would hold up every request that
    /// the pool hands the same connection to (and those fail at the command timeout). The
    /// caller drops it when done; it is meant for calls made every few minutes, not per request.
    pub async fn dedicated_conn(
        &self,
        route: Route,
        timeout: Duration,
    ) -> Result<redis::aio::MultiplexedConnection> {
        let node = match route {
            Route::Replica if self.has_replicas() => self.least_busy_replica(),
            _ => None,
        };
        let node = match node {
            Some(n) => n,
            None => {
                // the primary; with Sentinel, asking for a pooled connection finds it first
                if self.primary_node().is_none() {
                    drop(self.primary_conn().await?);
                }
                self.primary_node().ok_or_else(|| Error::Unavailable {
                    what: "connect".into(),
                    message: "no primary known".into(),
                })?
            }
        };
        let connect = Duration::from_millis(self.nodes.cfg.connect_timeout_ms.max(1));
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(timeout));
        node.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| Error::from_redis(&format!("connect to {}", node.addr), &e))
    }

    /// The replica with the fewest requests outstanding among those not left out.
    fn least_busy_replica(&self) -> Option<Arc<Node>> {
        let now = Instant::now();
        self.nodes
            .replicas
            .iter()
            .filter(|n| !n.is_down(now))
            .min_by_key(|n| n.outstanding())
            .cloned()
    }

    /// A connection to the least busy replica that is not left out; a replica that fails to
    /// give one is left out for `replica_retry_ms`. `None` when no replica can serve.
    async fn replica_conn(&self) -> Option<Connection> {
        let nodes = &self.nodes.replicas;
        let now = Instant::now();
        // Ties are broken by a scrambled counter, not the counter itself: a plain rotation
        // sends every search of a sequential caller whose requests each take an even number of
        // replica connections (an item-vector read, then the search) to the same replica.
        let start = scramble(self.nodes.next.fetch_add(1, Ordering::Relaxed));
        let mut order: Vec<&Arc<Node>> = (0..nodes.len())
            .map(|i| &nodes[(start + i) % nodes.len()])
            .filter(|n| !n.is_down(now))
            .collect();
        // stable: among equal loads the rotation decides
        order.sort_by_key(|n| n.outstanding());
        for node in order {
            // A replica whose pool is busy (every connection checked out) is skipped, not
            // left out: saturation is load, not failure.
            let saturated = {
                let s = node.pool.status();
                s.available == 0 && s.size >= s.max_size
            };
            let failure = match tokio::time::timeout(self.command_timeout, node.pool.get()).await {
                Ok(Ok(c)) => return Some(c),
                Ok(Err(PoolError::Timeout(TimeoutType::Wait))) => continue,
                Err(_) if saturated => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!(
                    "no connection within {} ms",
                    self.command_timeout.as_millis()
                ),
            };
            let retry = Duration::from_millis(self.nodes.cfg.replica_retry_ms);
            node.set_down(Some(Instant::now() + retry));
            tracing::warn!(replica = %node.addr, error = %failure,
                retry_ms = retry.as_millis() as u64, "replica left out");
        }
        None
    }

    /// A connection to the primary. With Sentinel, a primary that cannot be reached (or none
    /// known yet) sends the question to the Sentinels once before giving up.
    async fn primary_conn(&self) -> Result<Connection> {
        let Some(sentinel) = &self.nodes.sentinel else {
            // without Sentinel the primary is set once, in `new`
            let node = self.primary_node().ok_or_else(|| Error::Unavailable {
                what: "connect".into(),
                message: "no primary configured".into(),
            })?;
            return self.get(&node.pool).await;
        };
        sentinel.maybe_refresh_in_background(self);
        if let Some(node) = self.primary_node() {
            match self.get(&node.pool).await {
                Ok(c) => return Ok(c),
                Err(e) if !matches!(e, Error::Unavailable { .. } | Error::Timeout { .. }) => {
                    return Err(e);
                }
                Err(_) => {}
            }
        }
        let node = sentinel.refresh(self).await?;
        self.get(&node.pool).await
    }

    async fn get(&self, pool: &Pool) -> Result<Connection> {
        match tokio::time::timeout(self.command_timeout, pool.get()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(Error::from_pool(&e)),
            Err(_) => Err(Error::Timeout {
                what: "waiting for a connection".into(),
                ms: self.command_timeout.as_millis(),
            }),
        }
    }

    /// Runs one call (`what` names it in errors) within the command timeout.
    pub async fn call<T>(&self, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        self.call_within(what, self.command_timeout, fut).await
    }

    /// Runs one call within `timeout` (calls off the hot path that may take longer).
    pub async fn call_within<T>(
        &self,
        what: &str,
        timeout: Duration,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: what.to_owned(),
                ms: timeout.as_millis(),
            }),
        }
    }

    /// Pool occupancy of the node serving `route` (for metrics; for replicas, summed over them).
    pub fn status(&self, route: Route) -> Status {
        let pools: Vec<Status> = match route {
            Route::Replica if self.has_replicas() => self
                .nodes
                .replicas
                .iter()
                .map(|n| n.pool.status())
                .collect(),
            _ => self
                .primary_node()
                .map(|n| n.pool.status())
                .into_iter()
                .collect(),
        };
        pools.into_iter().fold(
            Status {
                max_size: 0,
                size: 0,
                available: 0,
                waiting: 0,
            },
            |a, s| Status {
                max_size: a.max_size + s.max_size,
                size: a.size + s.size,
                available: a.available + s.available,
                waiting: a.waiting + s.waiting,
            },
        )
    }

    /// `PING`s every node (the primary, then each replica, whether left out or not; a replica
    /// also reports its link to the primary; then every primary of the user-state cluster). A
    /// replica found answering is taken back in.
    pub async fn check_nodes(&self) -> Vec<NodeCheck> {
        let mut out = Vec::new();
        match self.primary_conn().await {
            Ok(mut con) => {
                let addr = self
                    .primary_node()
                    .map(|n| n.addr.clone())
                    .unwrap_or_default();
                let result = self
                    .call("PING", crate::index::ping(&mut con))
                    .await
                    .map_err(|e| e.to_string());
                out.push(NodeCheck {
                    role: "primary",
                    addr,
                    result,
                });
            }
            Err(e) => out.push(NodeCheck {
                role: "primary",
                addr: self
                    .primary_node()
                    .map(|n| n.addr.clone())
                    .unwrap_or_default(),
                result: Err(e.to_string()),
            }),
        }
        for node in &self.nodes.replicas {
            let result = match self.get(&node.pool).await {
                Ok(mut con) => self
                    .call("INFO replication", crate::index::replica_link(&mut con))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|up| {
                        if up {
                            Ok(())
                        } else {
                            Err("its link to the primary is down".into())
                        }
                    }),
                Err(e) => Err(e.to_string()),
            };
            node.set_down(match result {
                Ok(()) => None,
                Err(_) => {
                    Some(Instant::now() + Duration::from_millis(self.nodes.cfg.replica_retry_ms))
                }
            });
            out.push(NodeCheck {
                role: "replica",
                addr: node.addr.clone(),
                result,
            });
        }
        out.extend(self.check_user_state_cluster().await);
        out
    }
}

/// `host:port` of a URL, without credentials (what readiness reports name).
pub(crate) fn display_addr(url: &str) -> String {
    match url.into_connection_info() {
        Ok(info) => match info.addr() {
            redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
            other => other.to_string(),
        },
        Err(_) => redrec_core::config::redact_url(url),
    }
}

/// `rediss://` needs a rustls crypto provider for the process; the first pool installs ring's
/// (a no-op when the application installed one already).
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Adds `redis.tls_ca_file` as the trusted root of a `rediss://` connection.
fn with_tls_roots(
    info: redis::ConnectionInfo,
    redis: &RedisConfig,
) -> Result<redis::ConnectionInfo> {
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    if tls {
        install_crypto_provider();
    }
    let Some(path) = &redis.tls_ca_file else {
        return Ok(info);
    };
    if !tls {
        return Err(Error::Config {
            key: "redis.tls_ca_file",
            message: "is set but redis.url is not a `rediss://` (TLS) URL".into(),
        });
    }
    let pem = std::fs::read(path).map_err(|e| Error::Config {
        key: "redis.tls_ca_file",
        message: format!("cannot read `{path}`: {e}"),
    })?;
    let client = redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
    .map_err(|e| Error::Config {
        key: "redis.tls_ca_file",
        message: format!("`{path}`: {e} (expected PEM certificates)"),
    })?;
    Ok(client.get_connection_info().clone())
}

/// Builds a deadpool pool: RESP3, connect and response timeouts from the config, `pool_size`
/// connections. A URL that does not parse is an [`Error::Config`] naming `redis.url`.
pub fn create_pool(redis: &RedisConfig) -> Result<Pool> {
    pool_from_info(
        node_info(parse_url(&redis.url, "redis.url")?, redis)?,
        redis,
    )
}

/// Parses a node URL; an error names the config key it came from.
pub(crate) fn parse_url(url: &str, key: &'static str) -> Result<redis::ConnectionInfo> {
    url.into_connection_info().map_err(|e| Error::Config {
        key,
        message: format!("`{}`: {e}", redrec_core::config::redact_url(url)),
    })
}

/// `info` with the deployment's TLS roots, speaking RESP3.
fn node_info(info: redis::ConnectionInfo, redis: &RedisConfig) -> Result<redis::ConnectionInfo> {
    let info = with_tls_roots(info, redis)?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}

/// A pool to the node `info` (from [`node_info`]) names, with the deployment's timeouts.
fn pool_from_info(info: redis::ConnectionInfo, redis: &RedisConfig) -> Result<Pool> {
    let connect_timeout = Duration::from_millis(redis.connect_timeout_ms.max(1));
    let command_timeout = Duration::from_millis(redis.command_timeout_ms.max(1));
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(command_timeout));
    let manager = Manager::new_with_config(info, config).map_err(|e| Error::Unavailable {
        what: "connect".into(),
        message: e.to_string(),
    })?;
    Pool::builder(manager)
        .max_size(redis.pool_size.max(1))
        .wait_timeout(Some(command_timeout))
        .create_timeout(Some(connect_timeout))
        .recycle_timeout(Some(connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Config {
            key: "redis.pool_size",
            message: format!("redis pool: {e}"),
        })
}

/// SplitMix64's output function: consecutive inputs give unrelated outputs (in particular,
/// unrelated parities), deterministically and without a random number generator.
fn scramble(n: usize) -> usize {
    let mut z = (n as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as usize
}

#[cfg(test)]
mod tests {
    use super::scramble;

    /// A caller taking two replica connections per request gets every second counter value;
    /// with a plain rotation over two replicas those all pick the same one. Scrambled, both
    /// replicas get about half (for 1,000 requests: 450-550 each).
    #[test]
    fn every_second_tie_break_still_reaches_both_replicas() {
        for offset in 0..2 {
            let first = (0..1000)
                .filter(|i| scramble(2 * i + offset).is_multiple_of(2))
                .count();
            assert!(
                (450..=550).contains(&first),
                "offset {offset}: {first} of 1000"
            );
        }
        // three replicas, three connections per request
        let mut counts = [0; 3];
        for i in 0..999 {
            counts[scramble(3 * i) % 3] += 1;
        }
        assert!(counts.iter().all(|c| (280..=390).contains(c)), "{counts:?}");
    }
}
