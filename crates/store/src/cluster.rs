//! User state on its own deployment: a Redis Cluster (`[redis.user_state] cluster = [...]`).
//!
//! The catalog (item hashes, the search index, popularity, served lists) stays on the primary
//! (+ replicas) of `redis.url`; per-user keys, event idempotency markers and rate-limit counters
//! go to the cluster, each per-user key under one hash tag so a user's atomic event step touches
//! one slot (`redrec-userstate` builds those keys). [`Redis::user_state_conn`] hands out the
//! connection that serves user state: a pooled connection to the primary when no cluster is
//! configured (the default: nothing changes), else the cluster connection, which routes each
//! command by the slot of its keys and follows `MOVED` / `ASK` redirections itself.

use std::time::Duration;

use deadpool_redis::Connection;
use redis::{
    Cmd, Pipeline, ProtocolVersion, RedisFuture, Value,
    aio::ConnectionLike,
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
};
use redrec_core::config::RedisConfig;

use crate::{
    error::{Error, Result},
    node::{Redis, display_addr, parse_url},
};

/// The user-state cluster: a client built from the seed nodes and the one multiplexed cluster
/// connection every request shares (opened on first use, opened again after it failed to open).
pub(crate) struct UserStateCluster {
    client: ClusterClient,
    /// `host:port` of the seed nodes, for readiness reports.
    pub(crate) seeds: Vec<String>,
    conn: tokio::sync::Mutex<Option<ClusterConnection>>,
    connect_timeout: Duration,
}

impl UserStateCluster {
    /// A client for `urls` with the deployment's timeouts and TLS roots (no I/O).
    pub(crate) fn new(urls: &[String], cfg: &RedisConfig) -> Result<UserStateCluster> {
        const KEY: &str = "redis.user_state.cluster";
        if urls.is_empty() {
            return Err(Error::Config {
                key: KEY,
                message: "is empty: list the seed nodes of the cluster (`redis://host:port`), \
                          or remove `[redis.user_state]` to keep user state with the catalog"
                    .into(),
            });
        }
        let infos = urls
            .iter()
            .map(|u| parse_url(u, KEY))
            .collect::<Result<Vec<_>>>()?;
        let tls = infos
            .iter()
            .any(|i| matches!(i.addr(), redis::ConnectionAddr::TcpTls { .. }));
        if tls {
            crate::node::install_crypto_provider();
        }
        let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms.max(1));
        let mut builder = ClusterClientBuilder::new(infos)
            .use_protocol(ProtocolVersion::RESP3)
            .connection_timeout(connect_timeout)
            .response_timeout(Duration::from_millis(cfg.command_timeout_ms.max(1)));
        if let Some(path) = &cfg.tls_ca_file
            && tls
        {
            let pem = std::fs::read(path).map_err(|e| Error::Config {
                key: "redis.tls_ca_file",
                message: format!("cannot read `{path}`: {e}"),
            })?;
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            });
        }
        let client = builder.build().map_err(|e| Error::Config {
            key: KEY,
            message: e.to_string(),
        })?;
        Ok(UserStateCluster {
            client,
            seeds: urls.iter().map(|u| display_addr(u)).collect(),
            conn: tokio::sync::Mutex::new(None),
            connect_timeout,
        })
    }

    /// The shared cluster connection (a cheap clone), opening it on first use.
    pub(crate) async fn conn(&self) -> Result<ClusterConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        // discovering the slots asks the seeds one after the other
        let limit = self.connect_timeout * (self.seeds.len() as u32 + 1);
        let con = match tokio::time::timeout(limit, self.client.get_async_connection()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(Error::from_redis("connect to the user-state cluster", &e)),
            Err(_) => {
                return Err(Error::Timeout {
                    what: "connecting to the user-state cluster".into(),
                    ms: limit.as_millis(),
                });
            }
        };
        *slot = Some(con.clone());
        Ok(con)
    }
}

/// The connection that serves user state: the primary's (no cluster configured) or the
/// user-state cluster's. Any `ConnectionLike` call works on it; with a cluster every command
/// (and every pipeline) must keep its keys in one slot.
pub enum UserStateConn {
    /// A pooled connection to the catalog's primary.
    Primary(Connection),
    /// The user-state cluster.
    Cluster(ClusterConnection),
}

impl UserStateConn {
    /// Whether this connection reaches a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, UserStateConn::Cluster(_))
    }
}

impl ConnectionLike for UserStateConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            UserStateConn::Primary(c) => c.req_packed_command(cmd),
            UserStateConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            UserStateConn::Primary(c) => c.req_packed_commands(pipeline, offset, count),
            UserStateConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            UserStateConn::Primary(c) => c.get_db(),
            UserStateConn::Cluster(c) => c.get_db(),
        }
    }
}

impl Redis {
    /// Whether user state lives on a Redis Cluster of its own (`[redis.user_state]`).
    pub fn has_user_state_cluster(&self) -> bool {
        self.nodes.user_state.is_some()
    }

    /// The connection serving user state (per-user features, event markers, rate limits): a
    /// pooled primary connection, or the user-state cluster's, within the command timeout.
    pub async fn user_state_conn(&self) -> Result<UserStateConn> {
        match &self.nodes.user_state {
            None => Ok(UserStateConn::Primary(
                self.conn(crate::node::Route::Primary).await?,
            )),
            Some(cluster) => Ok(UserStateConn::Cluster(cluster.conn().await?)),
        }
    }

    /// Readiness of the user-state cluster: `PING` on every primary (`None` without a cluster).
    pub(crate) async fn check_user_state_cluster(&self) -> Option<crate::node::NodeCheck> {
        let cluster = self.nodes.user_state.as_ref()?;
        let result = match cluster.conn().await {
            // PING goes to every primary; it succeeds only when all of them answer
            Ok(mut con) => self
                .call("PING", async {
                    redis::cmd("PING")
                        .query_async::<Value>(&mut con)
                        .await
                        .map(|_| ())
                        .map_err(|e| Error::from_redis("PING the user-state cluster", &e))
                })
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        Some(crate::node::NodeCheck {
            role: "user-state cluster",
            addr: cluster.seeds.join(","),
            result,
        })
    }
}
