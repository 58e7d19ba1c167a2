//! redrec-core: the vocabulary every other crate shares.
//!
//! Schema model ([`schema`]), Redis key naming ([`keys`]), the little-endian f32 vector codec
//! ([`vector`]) and configuration types ([`config`]). This crate does no network I/O: it renders
//! commands, it never sends them.

pub mod candidate;
pub mod config;
pub mod error;
pub mod filter;
pub mod hybrid;
pub mod keys;
pub mod query;
pub mod schema;
pub mod user;
pub mod vector;

pub use error::{Error, Result};
