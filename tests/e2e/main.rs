//! End-to-end tests across crates, against the real Redis with the Search module.

mod acl;
mod contract;
mod faults;
#[path = "../../crates/gateway/tests/it/fixture.rs"]
mod fixture;
mod foundation;
mod gateway;
mod http;
mod indexing;
mod support;
mod tls;
