//! Builders for candidates, users and rerankers shared by the test modules.

use std::collections::BTreeMap;

use redrec_core::{
    candidate::{Candidate, SourceHit, SourceKind},
    schema::ItemFields,
    user::UserFeatures,
};
use redrec_reranker::{Feature, RankProfile, RankedItem, RerankRequest, Reranker, RerankerConfig};

/// A candidate under construction.
#[derive(Clone)]
pub struct Item(pub Candidate);

pub fn item(id: &str) -> Item {
    Item(Candidate {
        id: id.to_owned(),
        fields: BTreeMap::new(),
        vector: None,
        sources: Vec::new(),
    })
}

impl Item {
    pub fn field(mut self, name: &str, value: &str) -> Item {
        self.0.fields.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn category(self, value: &str) -> Item {
        self.field("category", value)
    }

    pub fn sim(mut self, source: SourceKind, similarity: f32) -> Item {
        let rank = self.0.sources.len() as u32;
        self.0.sources.push(SourceHit {
            source,
            rank,
            similarity,
        });
        self
    }

    /// A `query_text` hit with this similarity (the common case).
    pub fn text(self, similarity: f32) -> Item {
        self.sim(SourceKind::QueryText, similarity)
    }

    pub fn vector(mut self, v: &[f32]) -> Item {
        self.0.vector = Some(v.to_vec());
        self
    }

    pub fn build(self) -> Candidate {
        self.0
    }
}

pub fn items(list: Vec<Item>) -> Vec<Candidate> {
    list.into_iter().map(Item::build).collect()
}

/// Built-ins plus `extra` profiles.
pub fn reranker_with(extra: &[(&str, RankProfile)]) -> Reranker {
    Reranker::from_config(RerankerConfig {
        profiles: extra
            .iter()
            .map(|(n, p)| ((*n).to_owned(), p.clone()))
            .collect(),
        ..RerankerConfig::default()
    })
    .expect("test profiles are valid")
}

/// A profile with only these weights.
pub fn weighted(pairs: &[(Feature, f64)]) -> RankProfile {
    RankProfile {
        weights: pairs
            .iter()
            .map(|(f, w)| (f.name().to_owned(), *w))
            .collect(),
        ..RankProfile::default()
    }
}

/// Reranks with `profile` and explanations on.
pub fn rank(
    reranker: &Reranker,
    profile: &str,
    candidates: &[Candidate],
    user: &UserFeatures,
    k: usize,
) -> Vec<RankedItem> {
    let fields = ItemFields::default();
    reranker
        .rerank(
            &RerankRequest::new(candidates, user, &fields)
                .profile(profile)
                .k(k)
                .explain(true),
        )
        .expect("rerank succeeds")
}

pub fn ids(ranked: &[RankedItem]) -> Vec<&str> {
    ranked.iter().map(|r| r.id.as_str()).collect()
}

/// The value of `feature` for result `id`.
pub fn feature_of(ranked: &[RankedItem], id: &str, feature: Feature) -> f64 {
    ranked
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("{id} not in results"))
        .explanation
        .as_ref()
        .expect("explained")
        .feature(feature)
        .value
}

pub fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: expected {expected}, got {actual}"
    );
}
