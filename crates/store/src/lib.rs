//! redrec-store: the one place that knows how redrec reaches Redis.
//!
//! - [`node`]: the connection setup every deployment uses (a RESP3 pool per node, per-call
//!   timeouts) and the single home of "which node serves this command" ([`Route`],
//!   [`Redis::conn`]): the primary, or the least busy read replica; `sentinel` follows the
//!   primary through a failover; `cluster` reaches a Redis Cluster that holds user state
//!   ([`Redis::user_state_conn`], `[redis.user_state]`).
//! - Typed calls per concern, each over any connection (`redis::aio::ConnectionLike`: a pooled
//!   connection or a multiplexed one): [`catalog`] (item hashes), [`index`] (`FT.INFO`,
//!   facets, `PING`), [`ratelimit`] (fixed-window counters), [`online`] (served lists,
//!   feedback attribution and experiment counters). User state lives in
//!   `redrec-userstate` (a Redis Function), retrieval in `redrec-retriever`.
//!
//! Replies are parsed by `redrec_core::reply`; this crate sends commands and classifies errors.

pub mod acl;
pub mod catalog;
mod cluster;
pub mod error;
pub mod index;
pub mod node;
pub mod online;
pub mod ratelimit;
mod sentinel;

pub use cluster::UserStateConn;
pub use error::{Error, Failure, Result, classify};
pub use node::{NodeCheck, Redis, Route, create_pool};
