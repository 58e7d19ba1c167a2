//! How the retriever reaches Redis: a deadpool pool (the serving path) or one shared multiplexed
//! connection handed in by the caller. Every command the retriever sends goes through
//! [`Conn::run`], so redis and pool errors are classified in one place.

use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, Value};

use redrec_core::config::RedisConfig;

use crate::error::{Error, Result};

pub(super) enum Conn {
    Pool(Pool),
    Shared(redis::aio::MultiplexedConnection),
}

impl Conn {
    /// Sends one pipeline; errors are classified for a command sent to `index`.
    pub(super) async fn run(&self, pipe: &redis::Pipeline, index: &str) -> Result<Vec<Value>> {
        let result = match self {
            Conn::Pool(pool) => {
                let mut conn = pool.get().await.map_err(|e| Error::from_pool(e, index))?;
                pipe.query_async::<Vec<Value>>(&mut conn).await
            }
            Conn::Shared(conn) => {
                let mut conn = conn.clone();
                pipe.query_async::<Vec<Value>>(&mut conn).await
            }
        };
        result.map_err(|e| Error::from_redis(e, index))
    }
}

/// Builds the deadpool pool: RESP3 (to see partial-result warnings), connect and response
/// timeouts from the config, `pool_size` connections. A URL that does not parse is a
/// [`Error::Config`] naming `redis.url`.
pub fn create_pool(redis: &RedisConfig) -> Result<Pool> {
    let info = redis
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| Error::config("redis.url", format!("`{}`: {e}", redis.url)))?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    let command_timeout = Duration::from_millis(redis.command_timeout_ms.max(1));
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(redis.connect_timeout_ms.max(1))))
        .set_response_timeout(Some(command_timeout));
    let manager = Manager::new_with_config(info, config).map_err(|e| Error::Unavailable {
        message: e.to_string(),
    })?;
    Pool::builder(manager)
        .max_size(redis.pool_size.max(1))
        .wait_timeout(Some(command_timeout))
        .create_timeout(Some(Duration::from_millis(redis.connect_timeout_ms.max(1))))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| Error::config("redis.pool_size", format!("redis pool: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_a_config_error_naming_the_key() {
        let cfg = RedisConfig {
            url: "http://not-redis".into(),
            ..RedisConfig::default()
        };
        let Err(e) = create_pool(&cfg) else {
            panic!("the URL does not parse")
        };
        assert!(
            matches!(
                e,
                Error::Config {
                    key: "redis.url",
                    ..
                }
            ) && !e.is_user_error(),
            "{e:?}"
        );
        assert!(e.to_string().contains("http://not-redis"), "{e}");
    }
}
