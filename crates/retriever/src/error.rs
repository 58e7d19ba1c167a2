//! The one error type of redrec-retriever. User errors (a bad filter, a wrong vector dimension, an
//! unknown item) are kept apart from internal ones (Redis down or slow, an index that is missing,
//! a reply we cannot read), so the gateway can map them to 4xx and 5xx in one place.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid: bad filter, vector, id, k, or fusion settings.
    #[error("bad query: {0}")]
    BadQuery(#[from] redrec_core::Error),
    /// A request names an item that does not exist (or has no stored vector).
    #[error("item `{id}` not found or has no `{field}` vector")]
    ItemNotFound { id: String, field: String },
    /// Redis cannot be reached, the pool is exhausted, or a command ran past its deadline.
    #[error("redis unavailable: {message}")]
    Unavailable { message: String },
    /// The index (or alias) the retriever searches does not exist.
    #[error("search index `{index}` does not exist")]
    IndexMissing { index: String },
    /// Redis rejected a query the retriever rendered (a bug: inputs are validated first).
    #[error("redis rejected the query: {message}")]
    Rejected { message: String },
    /// A reply had a shape the retriever does not understand.
    #[error("unexpected reply from redis: {message}")]
    Protocol { message: String },
    /// The retriever's configuration is unusable (a Redis URL that does not parse): an operator
    /// error, neither the request's fault nor Redis's.
    #[error("config key `{key}`: {message}")]
    Config { key: &'static str, message: String },
}

impl From<redrec_core::reply::ReplyError> for Error {
    fn from(e: redrec_core::reply::ReplyError) -> Error {
        Error::Protocol { message: e.message }
    }
}

impl Error {
    /// True for errors caused by the request (4xx), false for internal ones (5xx).
    pub fn is_user_error(&self) -> bool {
        matches!(self, Error::BadQuery(_) | Error::ItemNotFound { .. })
    }

    /// Classifies a redis error for a command sent to `index` (the one classifier,
    /// `redrec_store::error::classify`).
    pub(crate) fn from_redis(e: redis::RedisError, index: &str) -> Error {
        use redrec_store::error::{Failure, classify};
        match classify(&e) {
            // the retriever only reads; an OOM here is the server refusing everything
            Failure::Unavailable | Failure::OutOfMemory => Error::Unavailable {
                message: e.to_string(),
            },
            Failure::IndexMissing => Error::IndexMissing {
                index: index.to_owned(),
            },
            Failure::Rejected => Error::Rejected {
                message: e.to_string(),
            },
        }
    }

    pub(crate) fn from_pool(e: deadpool_redis::PoolError, index: &str) -> Error {
        match e {
            deadpool_redis::PoolError::Backend(e) => Error::from_redis(e, index),
            other => Error::Unavailable {
                message: format!("connection pool: {other}"),
            },
        }
    }

    /// A failure of `redrec_store` to give a connection for a search of `index`.
    pub(crate) fn from_store(e: redrec_store::Error, index: &str) -> Error {
        use redrec_store::Error as S;
        match e {
            S::Unavailable { message, .. } => Error::Unavailable { message },
            S::Timeout { .. } => Error::Unavailable {
                message: e.to_string(),
            },
            S::IndexMissing { .. } => Error::IndexMissing {
                index: index.to_owned(),
            },
            S::Config { key, message } => Error::Config { key, message },
            other => Error::Rejected {
                message: other.to_string(),
            },
        }
    }

    pub(crate) fn config(key: &'static str, message: impl Into<String>) -> Error {
        Error::Config {
            key,
            message: message.into(),
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::Protocol {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, ServerErrorKind};

    #[test]
    fn a_loading_server_is_unavailable_not_a_rejected_query() {
        for kind in [
            ServerErrorKind::BusyLoading,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
            ServerErrorKind::ClusterDown,
        ] {
            let e = redis::RedisError::from((ErrorKind::Server(kind), "not now"));
            let mapped = Error::from_redis(e, "idx");
            assert!(
                matches!(mapped, Error::Unavailable { .. }),
                "{kind:?}: {mapped:?}"
            );
        }
        let e = redis::RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "Syntax error",
        ));
        assert!(matches!(
            Error::from_redis(e, "idx"),
            Error::Rejected { .. }
        ));
    }
}
