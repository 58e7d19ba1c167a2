//! What route handlers and the pipeline call: typed operations over `redrec_store`, the feature
//! store and the embedder, each bounded by the per-call timeout, with failures already mapped to
//! `ApiError`s. The module graph is a DAG: services never import from `routes`.

pub mod catalog;
pub mod embed;
pub mod index;
pub mod online;
pub mod users;
