//! The one error type of redrec-store: the caller's bad input apart from Redis being unreachable
//! or slow, apart from Redis refusing a command or answering in a shape we cannot read.
//!
//! [`classify`] is the one reading of a `redis::RedisError` in the workspace: the retriever, the
//! gateway (user-state failures) and this crate's own calls all ask it what a failure means.

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

/// What a failed Redis call means for its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Redis is not there right now: unreachable, connection dropped, client-side timeout, or
    /// the server is up but cannot answer yet (loading its data after a restart, a failover, a
    /// cluster slot moving), or a search ran past its server-side `TIMEOUT`. Retry later.
    Unavailable,
    /// The search index or alias the command names does not exist (`Unknown index name`,
    /// `no such index`, `Alias does not exist`).
    IndexMissing,
    /// Redis refused a write because it reached `maxmemory` (`OOM command not allowed when used
    /// memory > 'maxmemory'`): reads still work; writes resume once memory is freed or the limit
    /// raised. Retry later.
    OutOfMemory,
    /// Redis refused the command (a syntax error, a wrong type): a bug or a bad argument.
    Rejected,
}

/// The one classifier of Redis errors.
///
/// | server answer | failure |
/// |---|---|
/// | `LOADING`, `MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`, `READONLY` (a replica, or a primary demoted by a failover), `NOREPLICAS`, `MISCONF` (persistence failing, writes refused), `BUSY` (a script running past its limit); connection refused, reset or timed out; a search past its `TIMEOUT` | [`Failure::Unavailable`] |
/// | `OOM` | [`Failure::OutOfMemory`] |
/// | `Unknown index name`, `no such index`, `Alias does not exist` | [`Failure::IndexMissing`] |
/// | anything else | [`Failure::Rejected`] |
pub fn classify(e: &redis::RedisError) -> Failure {
    // codes redis-rs has no kind for arrive as extension errors with the server's first word
    match e.code() {
        Some("OOM") => return Failure::OutOfMemory,
        Some("NOREPLICAS" | "MISCONF" | "BUSY") => return Failure::Unavailable,
        _ => {}
    }
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        )
    {
        return Failure::Unavailable;
    }
    // redis-rs splits the server's first word off as an error code and quotes it
    // (`"Timeout": limit was reached`): compare the whole rendering without the punctuation.
    let text = format!("{e} {e:?}").to_lowercase().replace(['"', ':'], "");
    if text.contains("no such index")
        || (text.contains("unknown") && text.contains("index name"))
        || text.contains("alias does not exist")
    {
        Failure::IndexMissing
    } else if text.contains("timeout limit was reached") || text.contains("timed out") {
        Failure::Unavailable
    } else {
        Failure::Rejected
    }
}

impl Error {
    /// Classifies a redis error of the call `what` (a command that names no search index):
    /// see [`classify`].
    pub fn from_redis(what: &str, e: &redis::RedisError) -> Error {
        let message = e.to_string();
        match classify(e) {
            Failure::Unavailable => Error::Unavailable {
                what: what.to_owned(),
                message,
            },
            Failure::OutOfMemory => Error::Unavailable {
                what: what.to_owned(),
                message: format!(
                    "redis is out of memory (maxmemory reached): writes are refused until memory is freed or the limit raised ({message})"
                ),
            },
            Failure::IndexMissing | Failure::Rejected => Error::Rejected {
                what: what.to_owned(),
                message,
            },
        }
    }

    /// Classifies a redis error of the call `what` sent to the search index (or alias) `index`:
    /// an unknown index is [`Error::IndexMissing`].
    pub fn from_search(what: &str, index: &str, e: &redis::RedisError) -> Error {
        match classify(e) {
            Failure::IndexMissing => Error::IndexMissing {
                index: index.to_owned(),
            },
            _ => Error::from_redis(what, e),
        }
    }

    /// Classifies a failure to get a pooled connection.
    pub fn from_pool(e: &deadpool_redis::PoolError) -> Error {
        match e {
            deadpool_redis::PoolError::Backend(e) => Error::from_redis("connect", e),
            other => Error::Unavailable {
                what: "connect".into(),
                message: format!("connection pool: {other}"),
            },
        }
    }

    /// True when the failure is Redis not being there right now (retry later), not a bug.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    fn check(kind: ErrorKind, text: &'static str, expect: Failure) {
        let e = RedisError::from((kind, text));
        assert_eq!(classify(&e), expect, "{kind:?} {text}: {e:?}");
    }

    #[test]
    fn a_server_that_cannot_answer_yet_is_unavailable() {
        for kind in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
            ServerErrorKind::ClusterDown,
        ] {
            check(ErrorKind::Server(kind), "not now", Failure::Unavailable);
        }
        check(ErrorKind::Io, "connection reset", Failure::Unavailable);
    }

    /// The error redis-rs makes of a server's error line, as it comes over the wire.
    fn wire(line: &str) -> RedisError {
        match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()) {
            Ok(redis::Value::ServerError(e)) => e.into(),
            Err(e) => e,
            other => panic!("not an error reply: {other:?}"),
        }
    }

    #[test]
    fn real_server_error_lines_are_classified() {
        // the texts of redis-server 7.4 / 8.x and RediSearch 2.10 / 8.x
        for (line, expect) in [
            (
                "LOADING Redis is loading the dataset in memory",
                Failure::Unavailable,
            ),
            (
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
                Failure::Unavailable,
            ),
            (
                "READONLY You can't write against a read only replica.",
                Failure::Unavailable,
            ),
            (
                "TRYAGAIN Multiple keys request during rehashing of slot",
                Failure::Unavailable,
            ),
            ("CLUSTERDOWN The cluster is down", Failure::Unavailable),
            ("CLUSTERDOWN Hash slot not served", Failure::Unavailable),
            (
                "NOREPLICAS Not enough good replicas to write.",
                Failure::Unavailable,
            ),
            (
                "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
                Failure::Unavailable,
            ),
            (
                "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
                Failure::Unavailable,
            ),
            (
                "OOM command not allowed when used memory > 'maxmemory'.",
                Failure::OutOfMemory,
            ),
            ("Unknown index name", Failure::IndexMissing),
            ("Unknown Index name", Failure::IndexMissing),
            ("redrec:items: no such index", Failure::IndexMissing),
            ("Alias does not exist", Failure::IndexMissing),
            ("Timeout limit was reached", Failure::Unavailable),
            ("ERR Function not found", Failure::Rejected),
            (
                "NOSCRIPT No matching script. Please use EVAL.",
                Failure::Rejected,
            ),
            (
                "ERR unknown command 'FT.HYBRID', with args beginning with: ",
                Failure::Rejected,
            ),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                Failure::Rejected,
            ),
            (
                "NOPERM User redrec-gateway has no permissions to run the 'flushall' command",
                Failure::Rejected,
            ),
        ] {
            let e = wire(line);
            assert_eq!(classify(&e), expect, "{line}: {e:?}");
        }
    }

    #[test]
    fn out_of_memory_is_unavailable_and_names_memory() {
        let e = Error::from_redis(
            "FCALL",
            &wire("OOM command not allowed when used memory > 'maxmemory'."),
        );
        assert!(e.is_unavailable(), "{e:?}");
        assert!(e.to_string().contains("out of memory"), "{e}");
    }

    #[test]
    fn search_errors_are_told_apart() {
        let response = ErrorKind::Server(ServerErrorKind::ResponseError);
        check(response, "Unknown index name", Failure::IndexMissing);
        check(response, "idx: no such index", Failure::IndexMissing);
        check(response, "Alias does not exist", Failure::IndexMissing);
        check(response, "Timeout limit was reached", Failure::Unavailable);
        check(response, "Syntax error at offset 3", Failure::Rejected);
    }

    #[test]
    fn the_index_is_named_only_for_search_commands() {
        let e = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "Unknown index name",
        ));
        assert!(matches!(
            Error::from_search("FT.SEARCH", "idx", &e),
            Error::IndexMissing { ref index } if index == "idx"
        ));
        assert!(matches!(
            Error::from_redis("HGETALL", &e),
            Error::Rejected { .. }
        ));
    }
}
