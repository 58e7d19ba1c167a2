//! Integration tests of redrec-userstate against the real Redis (one binary, see STYLE.md).

mod apply;
mod cluster;
mod collaborative;
mod concurrency;
mod history;
mod lifecycle;
mod ranking;
mod support;
