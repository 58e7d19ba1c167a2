//! A validated read request ([`Plan`]): what the routes build from a request body and the
//! pipeline and the retrieval edge consume.

use std::sync::Arc;

use redrec_core::filter::Filter;

use crate::online::{Assignment, Live, RouteKind};

/// What to retrieve around (already validated).
#[derive(Debug, Clone, Default)]
pub struct QueryInput {
    pub text: Option<String>,
    pub vector: Option<Vec<f32>>,
    pub item_id: Option<String>,
    pub positive: Vec<String>,
    pub negative: Vec<String>,
}

impl QueryInput {
    pub fn is_empty(&self) -> bool {
        self.text.is_none()
            && self.vector.is_none()
            && self.item_id.is_none()
            && self.positive.is_empty()
    }
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct Plan {
    pub k: usize,
    pub profile: String,
    pub filter: Filter,
    pub user_id: Option<String>,
    pub exclude_seen: bool,
    pub explain: bool,
    pub query: QueryInput,
    /// Add the user's session / long-term vectors as candidate sources (recommendations);
    /// search and similar only rerank with the user's features.
    pub personalise: bool,
    /// The request's clock (epoch ms): the wall clock, or a replay's `x-redrec-as-of`.
    pub now_ms: i64,
    /// The profiles and experiments this request was validated against (one snapshot, so a
    /// reload during the request cannot remove its profile).
    pub live: Arc<Live>,
    /// Which route serves it (experiments may be limited to some).
    pub route: RouteKind,
    /// The experiment variant that chose `profile`, if any.
    pub assignment: Option<Assignment>,
}

/// How many candidates retrieval fetches for `k` results: enough for reranking and diversity
/// to matter, bounded so a large `k` stays within the budget.
pub fn candidate_count(k: usize) -> usize {
    (k * 4).clamp(50, 1000)
}
