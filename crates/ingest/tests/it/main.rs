//! Integration tests of redrec-ingest against the real Redis (one binary, several modules).

mod acl;
mod calibrate;
mod cf_field;
mod cli;
mod common;
mod events;
mod loaders;
mod partitions;
mod schema_yaml;
mod validation;
mod zero_downtime;
