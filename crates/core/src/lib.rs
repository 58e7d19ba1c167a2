//! redrec-core: the vocabulary every other crate shares. It does no network I/O: it renders
//! commands and reads replies, it never sends anything.
//!
//! - [`schema`]: the RedisVL-compatible index schema model and the `FT.CREATE` arguments;
//! - [`filter`]: the filter AST, its JSON form and escaping;
//! - [`query`]: KNN, range, sorted and BM25 `FT.SEARCH` builders; [`hybrid`]: `FT.HYBRID` and
//!   client-side RRF / linear fusion;
//! - [`reply`]: parsing Redis replies (`FT.SEARCH`, `FT.HYBRID`, `FT.INFO`, `FT.AGGREGATE`,
//!   `HMGET`, `MODULE LIST`) in RESP2 and RESP3;
//! - [`item`]: the item codec (value rules, hash and JSON encoding) of ingest and the gateway;
//! - [`keys`]: key naming under a namespace; [`vector`]: the little-endian f32 codec;
//! - [`config`]: configuration types and the figment layering;
//! - [`candidate`] and [`user`]: the data passed between stages (`Candidate`, `UserFeatures`);
//! - [`synthetic`]: the deterministic synthetic catalog (ingest, bench and tests share it);
//! - [`partition`]: partitioned indexes (`FT.CREATE ... FILTER`), their filters and query routing;
//! - [`calibration`]: the measured recall per `EF_RUNTIME` of an index and the EF a recall
//!   target needs;
//! - [`error`]: the crate's error type (every variant a user error).

pub mod calibration;
pub mod candidate;
pub mod config;
pub mod error;
pub mod filter;
pub mod hybrid;
pub mod item;
pub mod keys;
pub mod lru;
pub mod partition;
pub mod query;
pub mod reply;
pub mod schema;
pub mod synthetic;
pub mod user;
pub mod vector;

pub use error::{Error, Result};
