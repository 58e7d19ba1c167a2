//! The reranker's one error type. Every variant is a user error (bad configuration or a bad
//! request): the reranker does no I/O, so there is nothing internal that can fail.

/// Errors of redrec-reranker.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A rank-profile configuration value is invalid; `key` is the dotted path below the
    /// reranker section (e.g. `profiles.discovery.weights.simlarity`).
    #[error("invalid reranker config at `{key}`: {message}")]
    Config { key: String, message: String },

    /// The request named a profile that does not exist.
    #[error("unknown rank profile `{name}`; available profiles: {}", available.join(", "))]
    UnknownProfile {
        name: String,
        available: Vec<String>,
    },

    /// A request value is invalid; `field` names it (e.g. `k`, `candidates[3].vector`).
    #[error("invalid rerank request: `{field}` {message}")]
    Request { field: String, message: String },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn request(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Request {
            field: field.into(),
            message: message.into(),
        }
    }
}
