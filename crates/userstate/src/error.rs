//! The one error type of redrec-userstate. Client errors (a bad event, an unknown item, a bad
//! config value) are kept apart from internal ones (Redis unreachable, stored data corrupt), so
//! the gateway can map the first kind to 4xx and the second to 5xx.

/// Result alias used throughout redrec-userstate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An event of a batch is invalid; nothing of the batch was written.
    #[error("event {index}: field `{field}`: {message}")]
    Invalid {
        index: usize,
        field: &'static str,
        message: String,
    },
    /// An event names an item that does not exist; nothing of the batch was written.
    #[error("event {index}: field `item_id`: unknown item `{item_id}`")]
    UnknownItem { index: usize, item_id: String },
    /// The batch holds more events than `max_batch` allows; nothing was written.
    #[error("batch has {size} events, at most {max} are accepted")]
    BatchTooLarge { size: usize, max: usize },
    /// A user id given to `read` or `delete` is not a valid id.
    #[error("user id: {message}")]
    InvalidUserId { user_id: String, message: String },
    /// A configuration value is out of range.
    #[error("config `{field}`: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    /// Stored data could not be decoded (written by something else, or by an older version).
    #[error("stored data at `{key}` is corrupt: {message}")]
    Corrupt { key: String, message: String },
    /// The Redis Function returned something this version does not understand.
    #[error("unexpected reply from the feature function: {message}")]
    Protocol { message: String },
    /// The batch was applied but its durability (`ack = aof` / `replica`) was not confirmed in
    /// time. Resending it with the same event ids is safe (they are deduplicated).
    #[error("events applied but not confirmed durable ({mode}): {message}")]
    NotDurable { mode: &'static str, message: String },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl Error {
    /// True for errors caused by the caller's input (4xx), false for internal failures (5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::Invalid { .. }
                | Error::UnknownItem { .. }
                | Error::BatchTooLarge { .. }
                | Error::InvalidUserId { .. }
        )
    }
}

impl From<redis::ParsingError> for Error {
    fn from(e: redis::ParsingError) -> Self {
        Error::Protocol {
            message: e.to_string(),
        }
    }
}
