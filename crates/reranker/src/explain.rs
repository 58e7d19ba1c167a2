//! Per-result explanations: why an item has its score and its position.
//!
//! The identity every explanation satisfies (and the tests check to 1e-6):
//! `score = sum(features[*].contribution) + sum(adjustments[*].amount)`.
//! `score` is the item's *relevance*: the weighted features plus boost/bury rules. Pins and
//! diversity change the *position*, not the score, so their lines carry `amount = 0` and say what
//! they did; for MMR the numbers the choice was made with are in [`Explanation::diversity`].

use serde::{Deserialize, Serialize};

use crate::features::Feature;

/// The breakdown of one result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The rank profile that scored this result.
    pub profile: String,
    /// 1-based rank by score among the eligible candidates, before pins and diversity.
    pub relevance_rank: usize,
    /// 1-based position in the returned list.
    pub position: usize,
    /// Every feature, in [`Feature::ALL`] order.
    pub features: Vec<FeatureContribution>,
    /// Rule and position adjustments, in the order they were applied.
    pub adjustments: Vec<Adjustment>,
    /// MMR numbers when MMR chose this result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diversity: Option<MmrNote>,
}

/// One feature's part of the score: `contribution = value * weight`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    pub feature: Feature,
    pub value: f64,
    pub weight: f64,
    pub contribution: f64,
}

/// What kind of adjustment a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    /// A boost rule matched (amount > 0).
    Boost,
    /// A bury rule matched (amount < 0).
    Bury,
    /// The item was pinned to its position (amount 0).
    Pin,
    /// MMR and/or the category cap placed the item (amount 0).
    Diversity,
    /// The explore rule lifted a never-bought item just above a weak repeat purchase
    /// (amount > 0: the lift).
    Explore,
}

/// A line of the explanation that is not a feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    pub kind: AdjustmentKind,
    /// Human-readable reason, e.g. `boost brand=acme`.
    pub reason: String,
    /// Added to the score (0 for position-only lines).
    pub amount: f64,
}

/// The MMR values this result was chosen with:
/// `mmr_value = lambda * normalized_relevance - (1 - lambda) * max_similarity`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MmrNote {
    pub lambda: f64,
    /// Score min-max normalised over the eligible candidates (1 for all when scores are equal).
    pub normalized_relevance: f64,
    /// Largest cosine similarity (floored at 0) to the results placed before this one.
    pub max_similarity: f64,
    pub mmr_value: f64,
}

impl Explanation {
    /// `sum(contributions) + sum(adjustments)`, which equals the result's score.
    pub fn total(&self) -> f64 {
        self.features.iter().map(|f| f.contribution).sum::<f64>()
            + self.adjustments.iter().map(|a| a.amount).sum::<f64>()
    }

    /// The contribution line of `feature`.
    pub fn feature(&self, feature: Feature) -> &FeatureContribution {
        &self.features[feature.index()]
    }
}
