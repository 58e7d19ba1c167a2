//! redrec-retriever: candidate retrieval over Redis Search.
//!
//! One [`Retriever`] per index alias. A [`RetrievalRequest`] lists candidate [`Source`]s (query
//! vector, query text, more-like-this, session and long-term user vectors, examples,
//! popularity), one structured [`Filter`](redrec_core::filter::Filter), `k` and the ids to
//! exclude. Every source becomes a filtered KNN (or sorted) `FT.SEARCH`; all of them go to Redis
//! in one pipeline, and the lists are merged into [`Candidate`](redrec_core::candidate::Candidate)s.
//!
//! The retriever embeds no text and reads no user features: the caller (the gateway) embeds
//! query text and reads `UserFeatures`, and passes vectors and seen ids in as data.

mod config;
pub mod error;
pub mod history;
pub mod merge;
mod request;
mod retriever;
pub mod selectivity;

pub use config::{FetchMode, PolicyName, RetrieverConfig};
pub use error::{Error, Result};
pub use request::{FusionPath, Retrieval, RetrievalRequest, Source};
pub use retriever::{CfField, IndexStatus, Retriever, SampleStatus, create_pool};
