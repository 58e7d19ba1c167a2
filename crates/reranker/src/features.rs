//! Ranking features: the named per-candidate signals a rank profile weighs, and how each is
//! computed from a [`Candidate`] and the user's [`UserFeatures`].
//!
//! Every feature is a finite number where 0 means "no evidence either way", so missing data
//! (no price, no price band, an unknown stock state, a catalog without timestamps) contributes
//! nothing to the score instead of silently punishing or favouring an item. Ranges:
//! similarities, popularity, freshness, recency and the cart/purchase flags are in `[0, 1]`;
//! the affinities, `price_fit` and `in_stock` are signed, in `[-1, 1]`.

use std::collections::{BTreeSet, HashMap, HashSet};

use redrec_core::{
    candidate::{Candidate, SourceKind},
    schema::ItemFields,
    user::UserFeatures,
};
use serde::{Deserialize, Serialize};

/// The event name the feature store uses for purchases (see docs/USER_STATE.md).
pub const PURCHASE_EVENT: &str = "purchase";

/// The negative event: a skipped item says nothing good about its category's recency.
pub const SKIP_EVENT: &str = "skip";

/// One named ranking feature. The serde name (`snake_case`) is the key used in profile weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Best similarity over every source that produced the candidate.
    Similarity,
    /// Similarity from the `query_vector` source (0 when that source did not find the item).
    SimQueryVector,
    /// Similarity from the `query_text` source.
    SimQueryText,
    /// Lexical text score divided by the best lexical score in the candidate set.
    SimLexical,
    /// Similarity from the `similar_item` source.
    SimSimilarItem,
    /// Similarity from the `session` source.
    SimSession,
    /// Similarity from the `long_term` source.
    SimLongTerm,
    /// Similarity from the `examples` source.
    SimExamples,
    /// Score from the `popular` source (normalised popularity).
    SimPopular,
    /// Similarity from the `cf_session` source (collaborative space).
    SimCfSession,
    /// Similarity from the `cf_long_term` source (collaborative space).
    SimCfLongTerm,
    /// Fraction of the sources present in this candidate set that found this item.
    SourceAgreement,
    /// `ln(1 + popularity) / ln(1 + max popularity)`.
    Popularity,
    /// The user's decayed affinity to the item's category, in `[-1, 1]`: a positive affinity
    /// over the user's largest one, a negative one (skips) over the user's most negative one.
    CategoryAffinity,
    /// The same for the item's brand.
    BrandAffinity,
    /// `2 exp(-z^2 / 2) - 1` for the z-score of the item price in the user's price band.
    PriceFit,
    /// `0.5^(age / half_life)` from a configured timestamp field; 0 when the catalog has none.
    Freshness,
    /// +1 known in stock, -1 known out of stock, 0 unknown.
    InStock,
    /// 1 when the item is in the user's cart.
    InCart,
    /// `1 / (1 + i)` where `i` is the position (newest = 0) of the newest recent non-skip
    /// interaction in the item's category.
    CategoryRecency,
    /// 1 when the user bought this very item (a recent purchase or the purchase history).
    PurchasedBefore,
    /// The item's time-decayed purchase count in the user's history over the user's largest
    /// one, in `[0, 1]` (0 when never bought). Also the score of the `history` source.
    PurchaseFrequency,
    /// 1 when the item is in the user's seen set and was never bought: an exposure that did not
    /// convert (when retrieval did not already exclude it). A repurchase is not "seen".
    Seen,
}

/// The per-source similarity features, whose maximum is [`Feature::Similarity`].
pub const SOURCE_FEATURES: [Feature; 10] = [
    Feature::SimQueryVector,
    Feature::SimQueryText,
    Feature::SimLexical,
    Feature::SimSimilarItem,
    Feature::SimSession,
    Feature::SimLongTerm,
    Feature::SimExamples,
    Feature::SimPopular,
    Feature::SimCfSession,
    Feature::SimCfLongTerm,
];

/// Number of features.
pub const FEATURE_COUNT: usize = Feature::ALL.len();

/// One value per feature, indexed by [`Feature::index`].
pub type FeatureValues = [f64; FEATURE_COUNT];

impl Feature {
    /// Every feature, in the order of [`FeatureValues`] and of explanations.
    pub const ALL: [Feature; 23] = [
        Feature::Similarity,
        Feature::SimQueryVector,
        Feature::SimQueryText,
        Feature::SimLexical,
        Feature::SimSimilarItem,
        Feature::SimSession,
        Feature::SimLongTerm,
        Feature::SimExamples,
        Feature::SimPopular,
        Feature::SimCfSession,
        Feature::SimCfLongTerm,
        Feature::SourceAgreement,
        Feature::Popularity,
        Feature::CategoryAffinity,
        Feature::BrandAffinity,
        Feature::PriceFit,
        Feature::Freshness,
        Feature::InStock,
        Feature::InCart,
        Feature::CategoryRecency,
        Feature::PurchasedBefore,
        Feature::PurchaseFrequency,
        Feature::Seen,
    ];

    /// The configuration / explanation name.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Similarity => "similarity",
            Feature::SimQueryVector => "sim_query_vector",
            Feature::SimQueryText => "sim_query_text",
            Feature::SimLexical => "sim_lexical",
            Feature::SimSimilarItem => "sim_similar_item",
            Feature::SimSession => "sim_session",
            Feature::SimLongTerm => "sim_long_term",
            Feature::SimExamples => "sim_examples",
            Feature::SimPopular => "sim_popular",
            Feature::SimCfSession => "sim_cf_session",
            Feature::SimCfLongTerm => "sim_cf_long_term",
            Feature::SourceAgreement => "source_agreement",
            Feature::Popularity => "popularity",
            Feature::CategoryAffinity => "category_affinity",
            Feature::BrandAffinity => "brand_affinity",
            Feature::PriceFit => "price_fit",
            Feature::Freshness => "freshness",
            Feature::InStock => "in_stock",
            Feature::InCart => "in_cart",
            Feature::CategoryRecency => "category_recency",
            Feature::PurchasedBefore => "purchased_before",
            Feature::PurchaseFrequency => "purchase_frequency",
            Feature::Seen => "seen",
        }
    }

    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Position in [`Feature::ALL`] and [`FeatureValues`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The per-source similarity feature of a retrieval source.
    pub fn of_source(kind: SourceKind) -> Feature {
        match kind {
            SourceKind::QueryVector => Feature::SimQueryVector,
            SourceKind::QueryText => Feature::SimQueryText,
            SourceKind::Lexical => Feature::SimLexical,
            SourceKind::SimilarItem => Feature::SimSimilarItem,
            SourceKind::Session => Feature::SimSession,
            SourceKind::LongTerm => Feature::SimLongTerm,
            SourceKind::Examples => Feature::SimExamples,
            SourceKind::Popular => Feature::SimPopular,
            SourceKind::CfSession => Feature::SimCfSession,
            SourceKind::CfLongTerm => Feature::SimCfLongTerm,
            // not a similarity: the history source's score is the purchase frequency itself
            SourceKind::History => Feature::PurchaseFrequency,
        }
    }

    /// Comma-separated list of every feature name, for error messages.
    pub fn names_list() -> String {
        Feature::ALL.map(Feature::name).join(", ")
    }
}

/// Where an item's freshness timestamp lives. Our default catalog (Complete Journey) has no
/// such field, so without this setting `freshness` is 0 for every item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessConfig {
    /// Item field holding a Unix timestamp in seconds (e.g. `created_at`).
    pub field: String,
    /// Age at which freshness halves.
    pub half_life_hours: f64,
}

/// Known stock state from an `in_stock` field value.
pub(crate) fn parse_stock(value: Option<&str>) -> f64 {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "y" | "t") => 1.0,
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "n" | "f") => -1.0,
        _ => 0.0,
    }
}

/// Per-request statistics the features are normalised with, computed once over the candidate set.
pub(crate) struct FeatureContext<'a> {
    fields: &'a ItemFields,
    user: &'a UserFeatures,
    /// `ln(1 + max popularity)`; 0 when no candidate has a positive popularity.
    log_popularity_max: f64,
    /// Best lexical score in the set (0 when none).
    lexical_max: f64,
    /// Number of distinct sources in the set.
    sources_in_set: usize,
    category_scale: AffinityScale,
    brand_scale: AffinityScale,
    /// Position of the newest recent interaction in each category.
    category_position: HashMap<&'a str, usize>,
    purchased: HashSet<&'a str>,
    /// Decayed purchase count over the user's largest, per item of the purchase history.
    frequency: HashMap<&'a str, f64>,
    freshness: Option<(&'a str, f64, i64)>,
}

/// The strongest like and dislike among a user's affinities, to map them to `[-1, 1]`.
#[derive(Debug, Clone, Copy)]
struct AffinityScale {
    max_positive: f64,
    max_negative: f64,
}

impl AffinityScale {
    fn of<'v>(values: impl Iterator<Item = &'v f64>) -> AffinityScale {
        let mut scale = AffinityScale {
            max_positive: 0.0,
            max_negative: 0.0,
        };
        for v in values.copied().filter(|v| v.is_finite()) {
            scale.max_positive = scale.max_positive.max(v);
            scale.max_negative = scale.max_negative.max(-v);
        }
        scale
    }

    fn normalise(self, affinity: Option<&f64>) -> f64 {
        match affinity.copied() {
            Some(a) if a > 0.0 && self.max_positive > 0.0 => (a / self.max_positive).min(1.0),
            Some(a) if a < 0.0 && self.max_negative > 0.0 => (a / self.max_negative).max(-1.0),
            _ => 0.0,
        }
    }
}

/// `x` when finite, else 0: the last guard that keeps NaN out of every score.
fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

impl<'a> FeatureContext<'a> {
    /// `popularity_max` replaces the in-set maximum when configured (scores then stay comparable
    /// across requests); `freshness` needs both the config and the request's `now_ms`.
    pub(crate) fn new(
        candidates: &[&Candidate],
        user: &'a UserFeatures,
        fields: &'a ItemFields,
        popularity_max: Option<f64>,
        freshness: Option<&'a FreshnessConfig>,
        now_ms: Option<i64>,
    ) -> FeatureContext<'a> {
        let pop_max = match popularity_max {
            Some(m) => m,
            None => candidates
                .iter()
                .filter_map(|c| c.numeric(&fields.popularity))
                .fold(0.0, f64::max),
        };
        let log_popularity_max = if pop_max > 0.0 { pop_max.ln_1p() } else { 0.0 };
        let mut lexical_max = 0.0f64;
        let mut kinds = BTreeSet::new();
        for c in candidates {
            for hit in &c.sources {
                kinds.insert(hit.source);
                if hit.source == SourceKind::Lexical && hit.similarity.is_finite() {
                    lexical_max = lexical_max.max(f64::from(hit.similarity));
                }
            }
        }
        let mut category_position = HashMap::new();
        let mut purchased = HashSet::new();
        let positive = user.recent.iter().filter(|i| i.event != SKIP_EVENT);
        for (i, interaction) in positive.enumerate() {
            if let Some(cat) = &interaction.category {
                category_position.entry(cat.as_str()).or_insert(i);
            }
            if interaction.event == PURCHASE_EVENT {
                purchased.insert(interaction.item_id.as_str());
            }
        }
        let top = user.top_purchase_score();
        let frequency = if top > 0.0 {
            user.purchases
                .iter()
                .map(|p| {
                    (
                        p.item_id.as_str(),
                        finite_or_zero(p.score / top).clamp(0.0, 1.0),
                    )
                })
                .collect()
        } else {
            HashMap::new()
        };
        let freshness = match (freshness, now_ms) {
            (Some(f), Some(now)) if f.half_life_hours > 0.0 => {
                Some((f.field.as_str(), f.half_life_hours * 3_600_000.0, now))
            }
            _ => None,
        };
        FeatureContext {
            fields,
            user,
            log_popularity_max,
            lexical_max,
            sources_in_set: kinds.len(),
            category_scale: AffinityScale::of(user.category_affinity.values()),
            brand_scale: AffinityScale::of(user.brand_affinity.values()),
            category_position,
            purchased,
            frequency,
            freshness,
        }
    }

    /// All feature values of one candidate; each is finite.
    pub(crate) fn compute(&self, c: &Candidate) -> FeatureValues {
        let mut v: FeatureValues = [0.0; FEATURE_COUNT];
        let f = self.fields;

        // one bit per source feature: no allocation per candidate
        let mut seen_sources = 0u32;
        for hit in &c.sources {
            // f32 carries ~7 significant digits: rounding to 6 decimals shows 0.71 as 0.71,
            // not 0.7099999785, in explanations.
            let raw = (f64::from(hit.similarity) * 1e6).round() / 1e6;
            let sim = match hit.source {
                SourceKind::Lexical if self.lexical_max > 0.0 => raw / self.lexical_max,
                SourceKind::Lexical => 0.0,
                _ => raw,
            };
            let sim = finite_or_zero(sim).clamp(0.0, 1.0);
            let slot = &mut v[Feature::of_source(hit.source).index()];
            *slot = slot.max(sim);
            seen_sources |= 1 << Feature::of_source(hit.source).index();
        }
        v[Feature::Similarity.index()] = SOURCE_FEATURES
            .iter()
            .map(|f| v[f.index()])
            .fold(0.0, f64::max);
        if self.sources_in_set > 0 {
            v[Feature::SourceAgreement.index()] =
                f64::from(seen_sources.count_ones()) / self.sources_in_set as f64;
        }

        if self.log_popularity_max > 0.0
            && let Some(p) = c.numeric(&f.popularity)
        {
            v[Feature::Popularity.index()] =
                (p.max(0.0).ln_1p() / self.log_popularity_max).clamp(0.0, 1.0);
        }

        let category = c.field(&f.category);
        if let Some(cat) = category {
            v[Feature::CategoryAffinity.index()] = self
                .category_scale
                .normalise(self.user.category_affinity.get(cat));
            if let Some(i) = self.category_position.get(cat) {
                v[Feature::CategoryRecency.index()] = 1.0 / (1.0 + *i as f64);
            }
        }
        if let Some(brand) = c.field(&f.brand) {
            v[Feature::BrandAffinity.index()] = self
                .brand_scale
                .normalise(self.user.brand_affinity.get(brand));
        }

        if let (Some(band), Some(price)) = (self.user.price_band, c.numeric(&f.price))
            && band.count > 0
            && band.mean.is_finite()
        {
            v[Feature::PriceFit.index()] = price_fit(price, band.mean, band.std_dev);
        }

        if let Some((field, half_life_ms, now_ms)) = self.freshness
            && let Some(t) = c.numeric(field)
        {
            let age_ms = (now_ms as f64 - t * 1000.0).max(0.0);
            v[Feature::Freshness.index()] = 0.5f64.powf(age_ms / half_life_ms);
        }

        v[Feature::InStock.index()] = parse_stock(c.field(&f.in_stock));
        if self.user.cart.contains(&c.id) {
            v[Feature::InCart.index()] = 1.0;
        }
        let frequency = self.frequency.get(c.id.as_str()).copied();
        if self.purchased.contains(c.id.as_str()) || frequency.is_some() {
            v[Feature::PurchasedBefore.index()] = 1.0;
        }
        if let Some(f) = frequency {
            let slot = &mut v[Feature::PurchaseFrequency.index()];
            *slot = slot.max(f);
        }
        if self.user.seen.contains(&c.id) && v[Feature::PurchasedBefore.index()] == 0.0 {
            v[Feature::Seen.index()] = 1.0;
        }

        for x in &mut v {
            *x = finite_or_zero(*x);
        }
        v
    }
}

/// Gaussian fit of `price` in a band, mapped to `[-1, 1]`: 1 at the mean, 0 at |z| = 1.18,
/// towards -1 far away. The spread is floored at 10% of the mean (and 0.01) so a band built from
/// a single purchase (std dev 0) is not a needle.
pub(crate) fn price_fit(price: f64, mean: f64, std_dev: f64) -> f64 {
    let spread = if std_dev.is_finite() {
        std_dev.abs()
    } else {
        0.0
    };
    let sigma = spread.max(0.1 * mean.abs()).max(0.01);
    let z = (price - mean) / sigma;
    finite_or_zero(2.0 * (-0.5 * z * z).exp() - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_round_trip_and_match_serde() {
        for (i, f) in Feature::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(Feature::from_name(f.name()), Some(*f));
            let json = serde_json::to_string(f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.name()));
        }
        assert_eq!(Feature::from_name("nope"), None);
        assert_eq!(Feature::of_source(SourceKind::Popular), Feature::SimPopular);
    }

    #[test]
    fn stock_values() {
        let check = |v: Option<&str>, want: f64| assert_eq!(parse_stock(v), want, "{v:?}");
        for v in ["1", "true", "True", " yes ", "y", "t"] {
            check(Some(v), 1.0);
        }
        for v in ["0", "false", "FALSE", "no", "n", "f"] {
            check(Some(v), -1.0);
        }
        for v in [None, Some(""), Some("2"), Some("unknown")] {
            check(v, 0.0);
        }
    }

    #[test]
    fn price_fit_shape() {
        let check = |price: f64, mean: f64, sd: f64, want: f64| {
            let got = price_fit(price, mean, sd);
            assert!(
                (got - want).abs() < 1e-9,
                "price_fit({price}, {mean}, {sd}) = {got}, want {want}"
            );
        };
        check(10.0, 10.0, 2.0, 1.0);
        check(8.0, 10.0, 2.0, 2.0 * (-0.5f64).exp() - 1.0);
        check(1e9, 10.0, 2.0, -1.0);
        // spread floors: 10% of the mean, then 0.01
        check(11.0, 10.0, 0.0, 2.0 * (-0.5f64).exp() - 1.0);
        check(0.01, 0.0, 0.0, 2.0 * (-0.5f64).exp() - 1.0);
        check(f64::NAN, 10.0, 2.0, 0.0);
    }

    #[test]
    fn history_hits_and_purchases_give_purchase_frequency_not_seen() {
        use redrec_core::{candidate::SourceHit, user::PurchaseFrequency};
        let hit = |source, similarity| SourceHit {
            source,
            rank: 0,
            similarity,
        };
        let candidate = |id: &str, sources| Candidate {
            id: id.into(),
            fields: Default::default(),
            vector: None,
            sources,
        };
        let user = UserFeatures {
            purchases: vec![
                PurchaseFrequency {
                    item_id: "a".into(),
                    score: 4.0,
                    count: 0.0,
                },
                PurchaseFrequency {
                    item_id: "b".into(),
                    score: 1.0,
                    count: 0.0,
                },
            ],
            seen: ["a".to_owned(), "c".to_owned()].into(),
            ..UserFeatures::default()
        };
        let a = candidate(
            "a",
            vec![hit(SourceKind::History, 1.0), hit(SourceKind::Session, 0.5)],
        );
        let b = candidate("b", vec![hit(SourceKind::Popular, 0.9)]);
        let c = candidate("c", vec![hit(SourceKind::Session, 0.7)]);
        let fields = ItemFields::default();
        let all = [&a, &b, &c];
        let ctx = FeatureContext::new(&all, &user, &fields, None, None, None);
        let (va, vb, vc) = (ctx.compute(&a), ctx.compute(&b), ctx.compute(&c));
        let f = |v: &FeatureValues, f: Feature| v[f.index()];
        assert_eq!(f(&va, Feature::PurchaseFrequency), 1.0);
        assert_eq!(f(&vb, Feature::PurchaseFrequency), 0.25);
        assert_eq!(f(&vc, Feature::PurchaseFrequency), 0.0);
        // the history score is not a similarity
        assert_eq!(f(&va, Feature::Similarity), 0.5);
        assert_eq!(
            (f(&va, Feature::PurchasedBefore), f(&va, Feature::Seen)),
            (1.0, 0.0)
        );
        assert_eq!(
            (f(&vc, Feature::PurchasedBefore), f(&vc, Feature::Seen)),
            (0.0, 1.0)
        );
        // three sources in the set (history, session, popular), a has two of them
        assert!((f(&va, Feature::SourceAgreement) - 2.0 / 3.0).abs() < 1e-12);
    }
}
