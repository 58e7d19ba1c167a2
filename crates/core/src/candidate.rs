//! Candidates: what retrieval hands to the reranker. A candidate is one item with the fields
//! the retriever returned and one [`SourceHit`] per candidate source that produced it.
//!
//! Shared by redrec-retriever (producer) and redrec-reranker (consumer); extend additively.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// KNN around a vector given in the request.
    QueryVector,
    /// KNN around the embedding of the request's query text.
    QueryText,
    /// BM25 full-text match on the query text (fusion's lexical side).
    Lexical,
    /// "More like this": KNN around a stored item's vector.
    SimilarItem,
    /// KNN around the user's session vector.
    Session,
    /// KNN around the user's long-term vector.
    LongTerm,
    /// KNN around positive examples minus weighted negatives.
    Examples,
    /// Filtered items sorted by popularity (cold start, empty queries).
    Popular,
    /// The user's own purchase history within the filter, by time-decayed purchase count.
    History,
    /// KNN on the collaborative vector field (`cf_vector`) around the user's collaborative
    /// session vector.
    CfSession,
    /// KNN on the collaborative vector field around the user's collaborative long-term vector.
    CfLongTerm,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::QueryVector => "query_vector",
            SourceKind::QueryText => "query_text",
            SourceKind::Lexical => "lexical",
            SourceKind::SimilarItem => "similar_item",
            SourceKind::Session => "session",
            SourceKind::LongTerm => "long_term",
            SourceKind::Examples => "examples",
            SourceKind::Popular => "popular",
            SourceKind::History => "history",
            SourceKind::CfSession => "cf_session",
            SourceKind::CfLongTerm => "cf_long_term",
        }
    }
}

/// One source's opinion of a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceHit {
    pub source: SourceKind,
    /// 0-based rank within that source's result list.
    pub rank: u32,
    /// Similarity where larger is better (distance already converted, see
    /// [`crate::schema::DistanceMetric::similarity`]); for `Popular` the normalised popularity,
    /// for `Lexical` the text score, for `History` the decayed purchase count over the user's
    /// largest one.
    pub similarity: f32,
}

/// A retrieved item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: String,
    /// Item fields as stored (category, brand, price, popularity, text, ...), vector excluded.
    pub fields: BTreeMap<String, String>,
    /// The item's embedding when the caller asked for it (the reranker's MMR needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Every source that produced this item, best first.
    pub sources: Vec<SourceHit>,
}

impl Candidate {
    /// The best similarity over all sources (0 when there is none).
    pub fn best_similarity(&self) -> f32 {
        self.sources
            .iter()
            .map(|s| s.similarity)
            .fold(f32::NEG_INFINITY, f32::max)
            .max(0.0)
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    pub fn numeric(&self, name: &str) -> Option<f64> {
        self.field(name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    }
}
