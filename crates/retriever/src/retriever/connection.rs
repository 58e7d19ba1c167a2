//! How the retriever reaches Redis: a deadpool pool (the serving path) or one shared multiplexed
//! connection handed in by the caller. Every command the retriever sends goes through
//! [`Conn::run`], so redis and pool errors are classified in one place.

use deadpool_redis::Pool;
use redis::{RedisFuture, RedisResult, Value, aio::ConnectionLike};

use redrec_core::config::RedisConfig;

use crate::error::{Error, Result};

pub(super) enum Conn {
    Pool(Pool),
    /// The deployment's nodes: searches tolerate replication lag, so `Route::Replica`.
    Store(redrec_store::Redis),
    Shared(redis::aio::MultiplexedConnection),
}

impl Conn {
    /// Sends one pipeline; errors are classified for a command sent to `index`.
    pub(super) async fn run(&self, pipe: &redis::Pipeline, index: &str) -> Result<Vec<Value>> {
        let result = match self {
            Conn::Pool(pool) => {
                let mut conn = pool.get().await.map_err(|e| Error::from_pool(e, index))?;
                send(pipe, &mut conn).await
            }
            Conn::Store(redis) => {
                let mut conn = redis
                    .conn(redrec_store::Route::Replica)
                    .await
                    .map_err(|e| Error::from_store(e, index))?;
                send(pipe, &mut conn).await
            }
            Conn::Shared(conn) => {
                let mut conn = conn.clone();
                send(pipe, &mut conn).await
            }
        };
        result.map_err(|e| Error::from_redis(e, index))
    }
}

/// The replies of `pipe`, exactly as `Pipeline::query_async::<Vec<Value>>` returns them, without
/// its cost on success: it rebuilds every reply (each map and array of a search page, thousands
/// of values) only to look for a server error inside. Here the replies are scanned in place,
/// and only when one carries an error are they handed to redis-rs to compose the very error
/// `query_async` reports. Transactions, which redis-rs unwraps itself, take its own path. (No
/// pipeline of the retriever marks commands `.ignore()`, whose replies `query_async` would drop.)
async fn send(pipe: &redis::Pipeline, con: &mut impl ConnectionLike) -> RedisResult<Vec<Value>> {
    if pipe.is_transaction() {
        return pipe.query_async(con).await;
    }
    let replies = con.req_packed_commands(pipe, 0, pipe.len()).await?;
    if !replies.iter().any(carries_error) {
        return Ok(replies);
    }
    pipe.query_async(&mut Replay(Some(replies))).await
}

/// Whether a reply is or contains a server error.
fn carries_error(v: &Value) -> bool {
    match v {
        Value::ServerError(_) => true,
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            items.iter().any(carries_error)
        }
        Value::Map(pairs) => pairs
            .iter()
            .any(|(k, v)| carries_error(k) || carries_error(v)),
        Value::Attribute { data, attributes } => {
            carries_error(data)
                || attributes
                    .iter()
                    .any(|(k, v)| carries_error(k) || carries_error(v))
        }
        _ => false,
    }
}

/// A connection that answers a pipeline with replies already read, so redis-rs composes the
/// result (and its error) of a pipeline that was sent on a real connection.
struct Replay(Option<Vec<Value>>);

impl ConnectionLike for Replay {
    fn req_packed_command<'a>(&'a mut self, _cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async {
            Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "replay connection answers pipelines only",
            )))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        _pipeline: &'a redis::Pipeline,
        _offset: usize,
        _count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let replies = self.0.take();
        Box::pin(async move {
            replies.ok_or_else(|| {
                redis::RedisError::from((redis::ErrorKind::Client, "replies already replayed"))
            })
        })
    }

    fn get_db(&self) -> i64 {
        0
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

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn pipe_of(n: usize) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for _ in 0..n {
            pipe.cmd("PING");
        }
        pipe
    }

    fn server_error(text: &str) -> Value {
        // the parser's own reading of an error line, as a connection would produce it
        redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).expect("an error reply")
    }

    #[tokio::test]
    async fn replies_and_errors_are_those_of_query_async() {
        let page = Value::Map(vec![
            (bulk("total_results"), Value::Int(1)),
            (
                bulk("results"),
                Value::Array(vec![Value::Map(vec![(bulk("id"), bulk("i:1"))])]),
            ),
        ]);
        let cases = [
            vec![page.clone(), Value::Int(3)],
            vec![page.clone(), server_error("ERR no such index")],
            // an error nested inside a reply
            vec![Value::Array(vec![
                Value::Int(1),
                server_error("WRONGTYPE x"),
            ])],
            vec![server_error("LOADING loading"), server_error("ERR second")],
        ];
        for replies in cases {
            let pipe = pipe_of(replies.len());
            let ours = send(&pipe, &mut Replay(Some(replies.clone()))).await;
            let theirs = pipe
                .query_async::<Vec<Value>>(&mut Replay(Some(replies.clone())))
                .await;
            match (ours, theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => {
                    assert_eq!(a.to_string(), b.to_string());
                    assert_eq!(a.kind(), b.kind());
                }
                (a, b) => panic!("{replies:?}: ours {a:?}, query_async {b:?}"),
            }
        }
        assert!(!carries_error(&page));
    }

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
