//! End-to-end tests across crates, against the real Redis with the Search module.

mod foundation;
