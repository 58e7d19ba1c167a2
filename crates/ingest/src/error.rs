//! The one error type of redrec-ingest. User errors (bad input files, bad mapping, invalid rows,
//! a migration asked to do something its state does not allow) are kept apart from internal ones
//! (Redis unreachable or answering unexpectedly, I/O failures).

use std::path::PathBuf;

use crate::validate::Reject;

/// Result alias used throughout redrec-ingest.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- user errors -------------------------------------------------------------------------
    /// A source file cannot be parsed at all (not a row-level problem).
    #[error("{file}: {message}")]
    Source { file: PathBuf, message: String },
    /// Strict mode found invalid rows: nothing was written.
    #[error("{} invalid row(s), nothing written (strict mode); first: {}", .count, .first.first().map(|r| r.to_string()).unwrap_or_default())]
    Invalid { count: u64, first: Vec<Reject> },
    #[error("mapping: {message}")]
    Mapping { message: String },
    /// A command-line option out of range (the message names it).
    #[error("{message}")]
    Usage { message: String },
    #[error("{0}")]
    Core(#[from] redrec_core::Error),
    #[error("migration: {message}")]
    Migration { message: String },
    #[error("index `{index}`: {message}")]
    Index { index: String, message: String },
    #[error("embedder: {0}")]
    Embed(#[from] redrec_embedder::Error),
    /// The feature store refused an event batch, or could not reach Redis.
    #[error("events: {0}")]
    Features(#[from] redrec_userstate::Error),

    // ---- internal errors ---------------------------------------------------------------------
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Store(#[from] redrec_store::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal: {message}")]
    Internal { message: String },
}

impl Error {
    /// True when the error is caused by the input or the request, not by the environment.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Features(e) => e.is_client_error(),
            other => !matches!(
                other,
                Error::Redis(_) | Error::Store(_) | Error::Io { .. } | Error::Internal { .. }
            ),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn source(file: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Source {
            file: file.into(),
            message: message.into(),
        }
    }
}
