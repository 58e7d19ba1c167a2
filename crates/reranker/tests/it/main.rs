//! Integration tests of redrec-reranker's public API (one test binary, several modules).

mod config;
mod diversity;
mod explain;
mod explore;
mod features;
mod profiles;
mod props;
mod rules;
mod support;
