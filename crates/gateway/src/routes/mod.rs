//! HTTP routes, one module per resource; each exposes `router()`.

pub mod experiments;
pub mod items;
pub mod query;
pub mod system;
pub mod users;
