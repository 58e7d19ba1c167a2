//! Built-in datasets for `cargo xtask seed`: the real Complete Journey retail catalog (default)
//! and a deterministic synthetic catalog for benchmarks.

pub mod complete_journey;
pub mod synthetic;
