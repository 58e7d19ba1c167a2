//! redrec-reranker: turns retrieval candidates into the final list for one user.
//!
//! Pure computation, no I/O: candidates ([`redrec_core::candidate::Candidate`]) and user
//! features ([`redrec_core::user::UserFeatures`]) come in as data. A [`Reranker`] holds validated
//! [`RankProfiles`]; [`Reranker::rerank`] computes [`Feature`]s per candidate, scores them with
//! the requested profile's weights and boost/bury rules, places pins, diversifies with MMR and
//! category caps, and optionally explains every result. See docs/RANKING.md.
//!
//! ```
//! use redrec_core::{candidate::{Candidate, SourceHit, SourceKind}, schema::ItemFields, user::UserFeatures};
//! use redrec_reranker::{RerankRequest, Reranker};
//!
//! let candidate = |id: &str, sim: f32| Candidate {
//!     id: id.into(),
//!     fields: [("category".to_owned(), "tea".to_owned())].into(),
//!     vector: None,
//!     sources: vec![SourceHit { source: SourceKind::QueryText, rank: 0, similarity: sim }],
//! };
//! let candidates = vec![candidate("a", 0.5), candidate("b", 0.9)];
//! let (user, fields) = (UserFeatures::default(), ItemFields::default());
//! let reranker = Reranker::default(); // built-in profiles: default, discovery, repurchase
//! let req = RerankRequest::new(&candidates, &user, &fields).k(1).explain(true);
//! let ranked = reranker.rerank(&req).unwrap();
//! assert_eq!(ranked[0].id, "b");
//! let why = ranked[0].explanation.as_ref().unwrap();
//! assert!((why.total() - ranked[0].score).abs() < 1e-9);
//! ```

mod diversity;
pub mod error;
pub mod exclusion;
pub mod explain;
pub mod features;
pub mod profile;
pub mod rerank;

pub use error::{Error, Result};
pub use exclusion::exclusion_filter;
pub use explain::{Adjustment, AdjustmentKind, Explanation, FeatureContribution, MmrNote};
pub use features::{Feature, FreshnessConfig};
pub use profile::{
    CompiledProfile, DiversityConfig, ExcludeRule, ExploreConfig, ExploreRule, FieldRule,
    NON_MERCHANDISE, Pin, RankProfile, RankProfiles, RerankerConfig,
};
pub use rerank::{DEFAULT_PROFILE, RankedItem, RerankRequest, Reranker, retrieval_order};

/// The Rust examples of docs/RANKING.md, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/RANKING.md")]
pub struct RankingDocExamples;
