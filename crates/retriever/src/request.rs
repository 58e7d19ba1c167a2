//! What a caller asks for ([`RetrievalRequest`] and its [`Source`]s) and what it gets back
//! ([`Retrieval`]).

use std::collections::{BTreeMap, BTreeSet};

use redrec_core::candidate::Candidate;
use redrec_core::filter::Filter;
use redrec_core::hybrid::HybridSyntax;
use redrec_core::query::HybridPolicy;
use redrec_core::user::UserFeatures;

/// Where candidates come from. Vectors are computed by the caller (the gateway embeds query text
/// and reads user features); the retriever only reads item vectors it needs itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// KNN around a vector given in the request.
    Vector(Vec<f32>),
    /// Query text: BM25 over the text and KNN around its embedding, fused.
    Text { text: String, vector: Vec<f32> },
    /// "More like this": KNN around a stored item's vector; the item itself is excluded.
    SimilarItem(String),
    /// KNN around the user's session vector.
    Session(Vec<f32>),
    /// KNN around the user's long-term vector.
    LongTerm(Vec<f32>),
    /// KNN around `mean(positives) - negative_weight * mean(negatives)`, normalised; the
    /// example items are excluded.
    Examples {
        positive: Vec<String>,
        negative: Vec<String>,
        negative_weight: f32,
    },
    /// Filtered items by popularity (cold start, empty queries).
    Popular,
    /// The user's purchase history: `(item id, score)` pairs (see
    /// [`crate::history::history_items`]); the items that pass the filter, by score.
    History(Vec<(String, f32)>),
    /// KNN on the index's collaborative vector field (`cf_vector`) around the user's
    /// collaborative session vector. Skipped (no query, no error) when the serving index has no
    /// such field or the vector's dimension is not the field's: the capability is detected from
    /// `FT.INFO`, see [`crate::Retriever::cf_field`].
    CfSession(Vec<f32>),
    /// The same around the user's collaborative long-term vector.
    CfLongTerm(Vec<f32>),
}

impl Source {
    /// The session and long-term sources a user's features provide (empty for cold start).
    pub fn from_user(user: &UserFeatures) -> Vec<Source> {
        let mut out = Vec::new();
        if let Some(v) = &user.session_vector {
            out.push(Source::Session(v.clone()));
        }
        if let Some(v) = &user.long_term_vector {
            out.push(Source::LongTerm(v.clone()));
        }
        out
    }

    /// The collaborative-space sources a user's features provide (empty when the user touched
    /// no item with a collaborative vector).
    pub fn cf_from_user(user: &UserFeatures) -> Vec<Source> {
        let mut out = Vec::new();
        if let Some(v) = &user.cf_session_vector {
            out.push(Source::CfSession(v.clone()));
        }
        if let Some(v) = &user.cf_long_term_vector {
            out.push(Source::CfLongTerm(v.clone()));
        }
        out
    }

    /// Whether this source searches the collaborative vector field.
    pub fn is_collaborative(&self) -> bool {
        matches!(self, Source::CfSession(_) | Source::CfLongTerm(_))
    }
}

/// One retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalRequest {
    /// Empty means popularity only.
    pub sources: Vec<Source>,
    pub filter: Filter,
    /// Items never to return by their fields (a rank profile's exclusion rules). Unlike
    /// `filter`, the retriever chooses where it is checked: in the search, or on the candidates
    /// when the selectivity sample says it removes few items (`retriever.post_filter_below`).
    pub exclusion: Filter,
    pub k: usize,
    /// Item ids never to return (the user's seen set, the cart...).
    pub exclude: BTreeSet<String>,
    /// Return each candidate's embedding (for MMR).
    pub with_vectors: bool,
    /// Stored vectors of items the sources name (more-like-this, examples) that the caller
    /// already holds (e.g. cached): not read from Redis again.
    pub stored_vectors: BTreeMap<String, Vec<f32>>,
}

impl RetrievalRequest {
    pub fn new(sources: Vec<Source>, k: usize) -> RetrievalRequest {
        RetrievalRequest {
            sources,
            filter: Filter::All,
            exclusion: Filter::All,
            k,
            exclude: BTreeSet::new(),
            with_vectors: false,
            stored_vectors: BTreeMap::new(),
        }
    }
}

/// Which text+vector fusion ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusionPath {
    /// No text source in the request.
    None,
    /// The server's `FT.HYBRID`.
    Server(HybridSyntax),
    /// BM25 and KNN `FT.SEARCH` in one pipeline, fused here.
    Client,
}

/// The outcome of a retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieval {
    pub candidates: Vec<Candidate>,
    /// Pipelines sent to Redis for this request.
    pub round_trips: u32,
    /// Search hits dropped because their id was excluded, or because the request's exclusion
    /// was checked on the candidates and removed them.
    pub excluded: usize,
    /// Whether the request's exclusion was checked on the candidates instead of in the search.
    pub exclusion_after_search: bool,
    /// Whether the search pipeline was re-sent with a larger k.
    pub retried: bool,
    /// The server flagged a result as partial (RESP3 warning, e.g. a timeout with ON_TIMEOUT return).
    pub partial: bool,
    pub fusion: FusionPath,
    /// The `HYBRID_POLICY` sent with filtered KNN queries (`None`: the server chose).
    pub policy: Option<HybridPolicy>,
    /// The partition whose index the searches ran on (`redrec-ingest partitions`), if any.
    pub partition: Option<String>,
    /// The filter was checked on the hits of an unfiltered KNN (a broad filter,
    /// `retriever.post_filter_above`) rather than sent with the search.
    pub post_filtered: bool,
}
