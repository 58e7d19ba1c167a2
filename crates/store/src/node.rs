//! One connection setup per deployment and the single home of "which node serves this command".
//!
//! Every binary builds one [`Redis`] from `[redis]`: a deadpool pool speaking RESP3 (the
//! retriever reads partial-result warnings that only RESP3 carries; every parser in
//! `redrec_core::reply` reads both protocols), with connect and response timeouts. Callers say
//! what a command needs with a [`Route`]; [`Redis::pool_for`] decides which node serves it.

use std::future::Future;
use std::time::Duration;

use deadpool_redis::{Connection, Manager, Pool, Runtime, Status};
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion};

use redrec_core::config::RedisConfig;

use crate::error::{Error, Result};

/// What a command needs from the node that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Writes, and reads that must see the latest write (read-your-writes, rate limits).
    Primary,
    /// Reads that tolerate replication lag (search, item reads, index info): a replica may
    /// serve them once replicas are configured.
    Replica,
}

/// The connection setup of a deployment.
#[derive(Clone)]
pub struct Redis {
    primary: Pool,
    command_timeout: Duration,
}

impl Redis {
    /// Builds the pool (no I/O: connections open lazily, so this succeeds while Redis is down).
    pub fn new(cfg: &RedisConfig) -> Result<Redis> {
        Ok(Redis {
            primary: create_pool(cfg)?,
            command_timeout: Duration::from_millis(cfg.command_timeout_ms.max(1)),
        })
    }

    /// The pool whose node serves commands with this route. Today one node serves everything;
    /// replica routing changes this function only.
    pub fn pool_for(&self, route: Route) -> &Pool {
        match route {
            Route::Primary | Route::Replica => &self.primary,
        }
    }

    /// Timeout of one call.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// A pooled connection to the node serving `route`, within the command timeout.
    pub async fn conn(&self, route: Route) -> Result<Connection> {
        match tokio::time::timeout(self.command_timeout, self.pool_for(route).get()).await {
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

    /// Pool occupancy of the node serving `route` (for metrics).
    pub fn status(&self, route: Route) -> Status {
        self.pool_for(route).status()
    }
}

/// `rediss://` needs a rustls crypto provider for the process; the first pool installs ring's
/// (a no-op when the application installed one already).
fn install_crypto_provider() {
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
    let info = redis
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| Error::Config {
            key: "redis.url",
            message: format!("`{}`: {e}", redrec_core::config::redact_url(&redis.url)),
        })?;
    let info = with_tls_roots(info, redis)?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
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
