//! The one error type of redrec-core. Every variant is a user error (bad input or bad config):
//! core never talks to Redis, so it has no internal failures to report.

/// Result alias used throughout redrec-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("vector has {actual} dimensions, expected {expected}")]
    VectorDimension { expected: usize, actual: usize },
    #[error("vector component {index} is {value}, expected a finite number")]
    VectorNotFinite { index: usize, value: f32 },
    #[error(
        "vector component {index} is {value}, expected a magnitude of at most {max:e} (larger components overflow f32 similarity arithmetic)"
    )]
    VectorComponentTooLarge { index: usize, value: f32, max: f32 },
    #[error("vector blob has {len} bytes, expected a multiple of 4 (little-endian f32)")]
    VectorBlobLength { len: usize },
    #[error("vector has zero length and cannot be normalised")]
    VectorZero,
    #[error(
        "vector is all zeros: cosine similarity to a zero vector is undefined; send a vector with a non-zero component"
    )]
    VectorZeroQuery,
    #[error("schema field `{field}`: {message}")]
    SchemaField { field: String, message: String },
    #[error("schema: {message}")]
    Schema { message: String },
    #[error("unknown field `{field}`: the index schema has no such field (known: {known})")]
    UnknownField { field: String, known: String },
    #[error("field `{field}` is a {actual} field, expected {expected}")]
    FieldType {
        field: String,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("invalid id `{id}`: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("invalid filter at `{path}`: {message}")]
    Filter { path: String, message: String },
    #[error("invalid query: {message}")]
    Query { message: String },
    #[error("partition `{name}`: {message}")]
    Partition { name: String, message: String },
}
