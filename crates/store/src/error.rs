//! The one error type of redrec-store: the caller's bad input apart from Redis being unreachable
//! or slow, apart from Redis refusing a command or answering in a shape we cannot read.

use redrec_core::reply::ReplyError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument is invalid (an item id, a field name).
    #[error("{0}")]
    BadInput(#[from] redrec_core::Error),
    /// The connection settings are unusable (a URL that does not parse): an operator error.
    #[error("config key `{key}`: {message}")]
    Config { key: &'static str, message: String },
    /// Redis cannot be reached, is loading, the pool is exhausted, or a call ran past its
    /// deadline.
    #[error("redis unavailable during {what}: {message}")]
    Unavailable { what: String, message: String },
    /// The deadline of one call passed.
    #[error("redis did not answer {what} within {ms} ms")]
    Timeout { what: String, ms: u128 },
    /// The index or alias a command names does not exist.
    #[error("search index `{index}` does not exist")]
    IndexMissing { index: String },
    /// Redis refused the command.
    #[error("redis {what}: {message}")]
    Rejected { what: String, message: String },
    /// A reply had a shape we do not understand.
    #[error("{0}")]
    Reply(#[from] ReplyError),
}

impl Error {
    /// Classifies a redis error of the call `what`: transport problems are
    /// [`Error::Unavailable`], everything else [`Error::Rejected`].
    pub fn from_redis(what: &str, e: &redis::RedisError) -> Error {
        if is_transport_error(e) {
            Error::Unavailable {
                what: what.to_owned(),
                message: e.to_string(),
            }
        } else {
            Error::Rejected {
                what: what.to_owned(),
                message: e.to_string(),
            }
        }
    }

    /// True when the failure is Redis not being there right now (retry later), not a bug.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }
}

/// True for errors that mean "Redis is not there right now" rather than "the command was wrong".
pub fn is_transport_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
                | redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown)
        )
}

/// Whether an error is RediSearch's "Unknown index name" / "no such index" (redis-rs splits the
/// server's first word off as a code, so the whole rendering is searched).
pub fn is_unknown_index(e: &redis::RedisError) -> bool {
    let m = format!("{e} {e:?}").to_lowercase();
    (m.contains("unknown") && m.contains("index name")) || m.contains("no such index")
}
