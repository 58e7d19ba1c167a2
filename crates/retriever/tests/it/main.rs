//! Integration tests of redrec-retriever against the real Redis with the Search module.
//! Each test works in its own `TestSpace` namespace (own keys, index and alias).

mod broad;
mod collaborative;
mod ef_curve;
mod filters;
mod fusion;
mod partitions;
mod recall;
mod sampling;
mod sources;
mod support;
