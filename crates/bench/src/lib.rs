//! redrec-bench: the load generator behind `cargo xtask bench`.
//!
//! One run seeds (or reuses) a deterministic synthetic catalog, drives the same query mix at raw
//! Redis (`FT.SEARCH`) and at the gateway (`POST /v1/recommendations`) in closed and open loop,
//! walks a filter-selectivity ladder with recall against brute force, adds background writes,
//! compares one multiplexed connection with a deadpool pool, samples CPU and RSS from `/proc`,
//! and writes `report.md`, `report.json` and `latency.png`. With `--soak-minutes` it runs the
//! soak instead (`soak.rs`, behind `cargo xtask soak`).

pub mod catalog;
pub mod driver;
pub mod http;
pub mod plot;
pub mod raw;
pub mod recall;
pub mod replicas;
pub mod report;
pub mod schedule;
pub mod soak;
pub mod stats;
pub mod suite;
pub mod sweep;
pub mod workload;
