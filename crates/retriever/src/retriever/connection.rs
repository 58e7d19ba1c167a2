//! How the retriever reaches Redis: a deadpool pool (the serving path) or one shared multiplexed
//! connection handed in by the caller. Every command the retriever sends goes through
//! [`Conn::run`], so redis and pool errors are classified in one place.

use deadpool_redis::Pool;
use redis::Value;

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

/// The deployment's pool (`redrec_store::create_pool`: RESP3, to see partial-result warnings;
/// connect and response timeouts from the config). A URL that does not parse is an
/// [`Error::Config`] naming `redis.url`.
pub fn create_pool(redis: &RedisConfig) -> Result<Pool> {
    redrec_store::create_pool(redis).map_err(|e| match e {
        redrec_store::Error::Config { key, message } => Error::config(key, message),
        other => Error::Unavailable {
            message: other.to_string(),
        },
    })
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
