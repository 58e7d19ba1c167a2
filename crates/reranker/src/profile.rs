//! Rank profiles: named scoring configurations (feature weights, business rules, diversity),
//! their serde shape ([`RerankerConfig`], the `[reranker]` config section), the built-in
//! `default`, `discovery` and `repurchase` profiles, and validation into [`RankProfiles`].
//!
//! Validation happens once, at construction: a profile set that exists is valid, so a request
//! can only fail on its own inputs (e.g. an unknown profile name).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    features::{FEATURE_COUNT, Feature, FeatureValues, FreshnessConfig},
};

/// Largest accepted pin position; results are short lists, a larger position is a typo.
pub const MAX_PIN_POSITION: usize = 1000;

/// Largest accepted |weight| and rule amount. Features are in [-1, 1], so this keeps every score
/// finite (no overflow to infinity) while leaving room for "this rule dominates everything".
pub const MAX_WEIGHT: f64 = 1e6;

/// The `[reranker]` configuration section. Profiles given here are added to the built-in ones;
/// a profile named like a built-in replaces it entirely.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankerConfig {
    pub profiles: BTreeMap<String, RankProfile>,
    /// Popularity that maps to `popularity = 1`. Unset: the largest popularity in the
    /// candidate set (scores are then relative to the request).
    pub popularity_max: Option<f64>,
    /// Where item timestamps live, for the `freshness` feature. Unset: freshness is 0.
    pub freshness: Option<FreshnessConfig>,
}

/// One named scoring configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankProfile {
    /// Start from this profile: its weights are merged key by key under this profile's, and every
    /// other setting this profile leaves unset (empty list, absent value) is inherited. A profile
    /// extending its own name extends the built-in of that name.
    pub extends: Option<String>,
    /// Feature name -> weight. Features not listed weigh 0 (unless inherited).
    pub weights: BTreeMap<String, f64>,
    /// Add `amount` to the score of items whose `field` matches `value`.
    pub boost: Vec<FieldRule>,
    /// Subtract `amount` from the score of items whose `field` matches `value`.
    pub bury: Vec<FieldRule>,
    /// Put these items at fixed 1-based positions when they are among the candidates.
    pub pins: Vec<Pin>,
    /// Remove items whose stock field says they are out of stock (unknown stock is kept).
    /// Unset: inherited, else false.
    pub drop_out_of_stock: Option<bool>,
    pub diversity: DiversityConfig,
    /// Items this profile never recommends (fuel, coupons, ...): TAG values per field, applied
    /// as a retrieval filter. Unset: inherited; an empty list turns the built-in rules off.
    pub exclude: Option<Vec<ExcludeRule>>,
    /// Also never recommend items whose known price is zero or negative (items without a price
    /// are kept). Unset: inherited, else false.
    pub exclude_zero_price: Option<bool>,
    /// With `exclude_seen`, also exclude the items the user bought. False keeps repurchases
    /// eligible: a staple bought every week is not "seen" the way a viewed-and-skipped item is.
    /// Unset: inherited, else false.
    pub exclude_purchased: Option<bool>,
    /// Retrieve the user's own purchases (the `history` source) for recommendations. Never with
    /// `exclude_purchased`. Unset: inherited, else true.
    pub history_source: Option<bool>,
    /// Retrieve around the user's collaborative vectors (the `cf_session` / `cf_long_term`
    /// sources, when the index has a `cf_vector` field). Unset: inherited, else true.
    pub collaborative_sources: Option<bool>,
    /// Slots for items the user never bought, given where they are likely to beat the next
    /// repeat purchase. Unset values are inherited; no `slots`: no explore rule.
    pub explore: ExploreConfig,
}

/// The explore rule: never-bought candidates from the collaborative sources take up to `slots`
/// places of the list, each one where the repeat purchase it displaces is weak, i.e. its
/// decayed purchase count (as of the user's latest event, see
/// [`redrec_core::user::PurchaseFrequency::count`]) is below `below_count`. The item is lifted
/// just above the displaced one by an `explore` adjustment (its explanation says so), so pins
/// and diversity still apply after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExploreConfig {
    /// At most this many explore items per list (0 turns the rule off).
    pub slots: Option<usize>,
    /// A repeat purchase with a decayed count below this yields its place.
    pub below_count: Option<f64>,
    /// Explore candidates are ordered by `max(sim_cf_session, sim_cf_long_term) +
    /// popularity_weight * popularity`: "people like you buy it" plus "many people buy it".
    /// Unset: inherited, else 0.
    pub popularity_weight: Option<f64>,
}

/// Items to keep out of a profile's lists: any of `values` in the TAG field `field`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeRule {
    pub field: String,
    pub values: Vec<String>,
}

/// A boost or bury rule. `value` matches the field case-insensitively, either the whole value or
/// one element of a comma-separated TAG value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    pub field: String,
    pub value: String,
    /// Positive, finite amount added (boost) or subtracted (bury).
    pub amount: f64,
}

impl FieldRule {
    pub(crate) fn matches(&self, field_value: Option<&str>) -> bool {
        let Some(v) = field_value else { return false };
        let want = self.value.trim();
        v.trim().eq_ignore_ascii_case(want)
            || v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(want))
    }
}

/// Pin an item to a 1-based position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub id: String,
    pub position: usize,
}

/// Diversity settings. Both are optional and combine: the cap filters, MMR orders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiversityConfig {
    /// MMR trade-off in `[0, 1]`: 1 = pure relevance (MMR off), 0 = pure novelty.
    pub mmr_lambda: Option<f64>,
    /// At most this many results per category value (items without a category are not capped).
    pub max_per_category: Option<usize>,
}

/// The resolved explore rule of a profile (see [`ExploreConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExploreRule {
    pub slots: usize,
    pub below_count: f64,
    pub popularity_weight: f64,
}

/// A validated profile, with weights resolved to a dense vector.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledProfile {
    pub name: String,
    pub weights: FeatureValues,
    pub config: RankProfile,
}

impl CompiledProfile {
    /// The MMR lambda when MMR changes anything (lambda < 1).
    pub fn mmr_lambda(&self) -> Option<f64> {
        self.config.diversity.mmr_lambda.filter(|l| *l < 1.0)
    }

    pub fn weight(&self, feature: Feature) -> f64 {
        self.weights[feature.index()]
    }

    pub fn drop_out_of_stock(&self) -> bool {
        self.config.drop_out_of_stock.unwrap_or(false)
    }

    pub fn max_per_category(&self) -> Option<usize> {
        self.config.diversity.max_per_category
    }

    /// Whether seen-exclusion also removes the user's purchases (see [`RankProfile::exclude_purchased`]).
    pub fn exclude_purchased(&self) -> bool {
        self.config.exclude_purchased.unwrap_or(false)
    }

    /// Whether recommendations retrieve the user's purchase history.
    pub fn history_source(&self) -> bool {
        !self.exclude_purchased() && self.config.history_source.unwrap_or(true)
    }

    /// Whether recommendations retrieve around the user's collaborative vectors.
    pub fn collaborative_sources(&self) -> bool {
        self.config.collaborative_sources.unwrap_or(true)
    }

    /// The explore rule when it is on (`slots` > 0 and `below_count` set).
    pub fn explore(&self) -> Option<ExploreRule> {
        let e = &self.config.explore;
        match (e.slots, e.below_count) {
            (Some(slots), Some(below_count)) if slots > 0 => Some(ExploreRule {
                slots,
                below_count,
                popularity_weight: e.popularity_weight.unwrap_or(0.0),
            }),
            _ => None,
        }
    }
}

/// The validated, immutable set of profiles a [`crate::Reranker`] serves. Reloading config means
/// building a new `RankProfiles` (which validates) and swapping it in.
#[derive(Debug, Clone, PartialEq)]
pub struct RankProfiles {
    profiles: BTreeMap<String, CompiledProfile>,
    popularity_max: Option<f64>,
    freshness: Option<FreshnessConfig>,
}

impl Default for RankProfiles {
    fn default() -> Self {
        RankProfiles::builtin()
    }
}

impl RankProfiles {
    /// Validates `config` and merges its profiles over the built-ins. The error names the
    /// offending key, e.g. `profiles.discovery.weights.simlarity`.
    pub fn new(config: RerankerConfig) -> Result<RankProfiles> {
        if let Some(m) = config.popularity_max
            && !(m.is_finite() && m > 0.0)
        {
            return Err(Error::config(
                "popularity_max",
                format!("expected a finite number > 0, got {m}"),
            ));
        }
        if let Some(f) = &config.freshness {
            if f.field.trim().is_empty() {
                return Err(Error::config("freshness.field", "expected a field name"));
            }
            if !(f.half_life_hours.is_finite() && f.half_life_hours > 0.0) {
                return Err(Error::config(
                    "freshness.half_life_hours",
                    format!("expected a finite number > 0, got {}", f.half_life_hours),
                ));
            }
        }
        let builtins = builtin_profiles();
        let mut all = builtins.clone();
        all.extend(config.profiles);
        // each profile's own values first, so an error names the profile that holds the value
        for (name, profile) in &all {
            compile(name, profile.clone())?;
        }
        let mut profiles = BTreeMap::new();
        for name in all.keys() {
            let resolved = resolve(name, &all, &builtins)?;
            profiles.insert(name.clone(), compile(name, resolved)?);
        }
        Ok(RankProfiles {
            profiles,
            popularity_max: config.popularity_max,
            freshness: config.freshness,
        })
    }

    /// Only the built-in profiles.
    pub fn builtin() -> RankProfiles {
        RankProfiles::new(RerankerConfig::default()).expect("built-in profiles are valid")
    }

    /// Profile names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }

    /// The profile called `name`, or [`Error::UnknownProfile`] listing the available ones.
    pub fn get(&self, name: &str) -> Result<&CompiledProfile> {
        self.profiles
            .get(name)
            .ok_or_else(|| Error::UnknownProfile {
                name: name.to_owned(),
                available: self.names(),
            })
    }

    pub fn popularity_max(&self) -> Option<f64> {
        self.popularity_max
    }

    pub fn freshness(&self) -> Option<&FreshnessConfig> {
        self.freshness.as_ref()
    }
}

/// `name` with its `extends` chain applied (root first), `extends` cleared.
fn resolve(
    name: &str,
    all: &BTreeMap<String, RankProfile>,
    builtins: &BTreeMap<String, RankProfile>,
) -> Result<RankProfile> {
    // (name, is the built-in) of every profile in the chain, leaf first
    let mut chain: Vec<(String, bool)> = vec![(name.to_owned(), false)];
    let mut lineage = vec![all[name].clone()];
    while let Some(parent) = lineage.last().and_then(|p| p.extends.clone()) {
        let (child, child_is_builtin) = chain.last().cloned().expect("chain starts non-empty");
        let key = format!("profiles.{child}.extends");
        let (base, is_builtin) = if parent == child && !child_is_builtin {
            match builtins.get(&parent) {
                Some(b) => (b, true),
                None => {
                    return Err(Error::config(
                        key,
                        format!("`{parent}` extends itself and there is no built-in `{parent}`"),
                    ));
                }
            }
        } else {
            match all.get(&parent) {
                Some(b) => (b, false),
                None => {
                    return Err(Error::config(
                        key,
                        format!(
                            "unknown profile `{parent}`; available profiles: {}",
                            all.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        };
        if chain.contains(&(parent.clone(), is_builtin)) {
            let mut names: Vec<&str> = chain.iter().map(|(n, _)| n.as_str()).collect();
            names.push(&parent);
            return Err(Error::config(
                key,
                format!(
                    "profiles extend each other in a cycle: {}",
                    names.join(" -> ")
                ),
            ));
        }
        chain.push((parent, is_builtin));
        lineage.push(base.clone());
    }
    let mut merged = lineage.pop().expect("lineage starts non-empty");
    while let Some(child) = lineage.pop() {
        merged = inherit(merged, child);
    }
    merged.extends = None;
    Ok(merged)
}

/// `child` over `base`: weights merge key by key, lists and options are taken from the child
/// when it sets them.
fn inherit(base: RankProfile, child: RankProfile) -> RankProfile {
    let or_base =
        |own: Vec<FieldRule>, base: Vec<FieldRule>| if own.is_empty() { base } else { own };
    let mut weights = base.weights;
    weights.extend(child.weights);
    RankProfile {
        extends: None,
        weights,
        boost: or_base(child.boost, base.boost),
        bury: or_base(child.bury, base.bury),
        pins: if child.pins.is_empty() {
            base.pins
        } else {
            child.pins
        },
        drop_out_of_stock: child.drop_out_of_stock.or(base.drop_out_of_stock),
        exclude: child.exclude.or(base.exclude),
        exclude_zero_price: child.exclude_zero_price.or(base.exclude_zero_price),
        exclude_purchased: child.exclude_purchased.or(base.exclude_purchased),
        history_source: child.history_source.or(base.history_source),
        collaborative_sources: child.collaborative_sources.or(base.collaborative_sources),
        explore: ExploreConfig {
            slots: child.explore.slots.or(base.explore.slots),
            below_count: child.explore.below_count.or(base.explore.below_count),
            popularity_weight: child
                .explore
                .popularity_weight
                .or(base.explore.popularity_weight),
        },
        diversity: DiversityConfig {
            mmr_lambda: child.diversity.mmr_lambda.or(base.diversity.mmr_lambda),
            max_per_category: child
                .diversity
                .max_per_category
                .or(base.diversity.max_per_category),
        },
    }
}

fn compile(name: &str, profile: RankProfile) -> Result<CompiledProfile> {
    let key = |rest: &str| format!("profiles.{name}.{rest}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::config(
            format!("profiles.{name}"),
            "profile names must be non-empty and use only ASCII letters, digits, `_` and `-`",
        ));
    }
    let mut weights = [0.0; FEATURE_COUNT];
    for (feature_name, weight) in &profile.weights {
        let k = key(&format!("weights.{feature_name}"));
        let Some(feature) = Feature::from_name(feature_name) else {
            return Err(Error::config(
                k,
                format!(
                    "unknown feature `{feature_name}`; expected one of: {}",
                    Feature::names_list()
                ),
            ));
        };
        if !weight.is_finite() {
            return Err(Error::config(
                k,
                format!("expected a finite weight, got {weight}"),
            ));
        }
        if weight.abs() > MAX_WEIGHT {
            return Err(Error::config(
                k,
                format!("expected a weight in [-{MAX_WEIGHT:e}, {MAX_WEIGHT:e}], got {weight}"),
            ));
        }
        weights[feature.index()] = *weight;
    }
    for (list, rules) in [("boost", &profile.boost), ("bury", &profile.bury)] {
        for (i, rule) in rules.iter().enumerate() {
            if rule.field.trim().is_empty() {
                return Err(Error::config(
                    key(&format!("{list}[{i}].field")),
                    "expected a field name",
                ));
            }
            if rule.value.trim().is_empty() {
                return Err(Error::config(
                    key(&format!("{list}[{i}].value")),
                    "expected a non-empty value to match",
                ));
            }
            if !(rule.amount.is_finite() && rule.amount > 0.0 && rule.amount <= MAX_WEIGHT) {
                return Err(Error::config(
                    key(&format!("{list}[{i}].amount")),
                    format!(
                        "expected an amount in (0, {MAX_WEIGHT:e}] (use `{}` to go the other way), got {}",
                        if list == "boost" { "bury" } else { "boost" },
                        rule.amount
                    ),
                ));
            }
        }
    }
    let mut pin_ids = HashSet::new();
    let mut pin_positions = HashSet::new();
    for (i, pin) in profile.pins.iter().enumerate() {
        if pin.id.is_empty() {
            return Err(Error::config(
                key(&format!("pins[{i}].id")),
                "expected an item id",
            ));
        }
        if !pin_ids.insert(pin.id.as_str()) {
            return Err(Error::config(
                key(&format!("pins[{i}].id")),
                format!("item `{}` is pinned twice", pin.id),
            ));
        }
        if !(1..=MAX_PIN_POSITION).contains(&pin.position) {
            return Err(Error::config(
                key(&format!("pins[{i}].position")),
                format!(
                    "expected a 1-based position in 1..={MAX_PIN_POSITION}, got {}",
                    pin.position
                ),
            ));
        }
        if !pin_positions.insert(pin.position) {
            return Err(Error::config(
                key(&format!("pins[{i}].position")),
                format!("position {} is pinned twice", pin.position),
            ));
        }
    }
    if let Some(lambda) = profile.diversity.mmr_lambda
        && !(0.0..=1.0).contains(&lambda)
    {
        return Err(Error::config(
            key("diversity.mmr_lambda"),
            format!("expected a number in [0, 1], got {lambda}"),
        ));
    }
    for (i, rule) in profile.exclude.iter().flatten().enumerate() {
        if rule.field.trim().is_empty() {
            return Err(Error::config(
                key(&format!("exclude[{i}].field")),
                "expected a field name",
            ));
        }
        if rule.values.is_empty() || rule.values.iter().any(|v| v.trim().is_empty()) {
            return Err(Error::config(
                key(&format!("exclude[{i}].values")),
                "expected a list of non-empty values",
            ));
        }
    }
    if let Some(n) = profile.explore.slots
        && n > MAX_PIN_POSITION
    {
        return Err(Error::config(
            key("explore.slots"),
            format!("expected at most {MAX_PIN_POSITION} slots, got {n}"),
        ));
    }
    if let Some(c) = profile.explore.below_count
        && !(c.is_finite() && c >= 0.0)
    {
        return Err(Error::config(
            key("explore.below_count"),
            format!("expected a finite count >= 0, got {c}"),
        ));
    }
    if let Some(w) = profile.explore.popularity_weight
        && !(w.is_finite() && w.abs() <= MAX_WEIGHT)
    {
        return Err(Error::config(
            key("explore.popularity_weight"),
            format!("expected a weight in [-{MAX_WEIGHT:e}, {MAX_WEIGHT:e}], got {w}"),
        ));
    }
    if profile.diversity.max_per_category == Some(0) {
        return Err(Error::config(
            key("diversity.max_per_category"),
            "expected at least 1 (omit it for no cap)",
        ));
    }
    Ok(CompiledProfile {
        name: name.to_owned(),
        weights,
        config: profile,
    })
}

fn weights(pairs: &[(Feature, f64)]) -> BTreeMap<String, f64> {
    pairs
        .iter()
        .map(|(f, w)| (f.name().to_owned(), *w))
        .collect()
}

/// Non-merchandise in the Complete Journey catalog: `(field, values)` the built-in profiles
/// exclude. Fuel, coupons, gift-card activations, key rings, donations and store supplies are
/// lines of a receipt, not products to recommend: in Complete Journey 2.0 they are the `FUEL`,
/// `COUPON` and store-internal departments and the `COUPON/MISC ITEMS` category (which holds
/// the gasoline line, 1.0% of all transaction lines, under both `FUEL` and `MISCELLANEOUS`);
/// `KIOSK-GAS` and `MISC SALES TRAN` are their names in Complete Journey 1.0. `MISCELLANEOUS`
/// holds the gasoline line and 490 products without a category (88% without a product type
/// either: lines nobody can recognise in a list); the evaluation classes the whole department as
/// non-merchandise, and it showed up in explore places before it was listed here. Rules on fields a
/// catalog lacks are skipped (see [`crate::exclusion`]).
pub const NON_MERCHANDISE: &[(&str, &[&str])] = &[
    (
        "department",
        &[
            "FUEL",
            "KIOSK-GAS",
            "COUPON",
            "MISC SALES TRAN",
            "MISCELLANEOUS",
            "MISC. TRANS.",
            "CNTRL/STORE SUP",
            "CHARITABLE CONT",
            "PROD-WHS SALES",
        ],
    ),
    (
        "category",
        &[
            "COUPON/MISC ITEMS",
            "COUPONS/STORE & MFG",
            "COUPON",
            "FUEL",
            "GASOLINE",
        ],
    ),
];

fn non_merchandise() -> Option<Vec<ExcludeRule>> {
    Some(
        NON_MERCHANDISE
            .iter()
            .map(|(field, values)| ExcludeRule {
                field: (*field).to_owned(),
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            })
            .collect(),
    )
}

/// The built-in profiles, usable without any configuration:
///
/// - `default`: the user's repeat purchases first, by time-decayed purchase count (bought items
///   are not "seen"), then relevance personalised by affinities and the session, light MMR.
/// - `discovery`: strong diversity (MMR 0.5, at most 3 per category), little weight on what the
///   user already knows, out-of-stock items dropped.
/// - `repurchase`: favours items and categories the user already buys, the cart, and price fit;
///   no diversity.
///
/// All three exclude [`NON_MERCHANDISE`] and items with a known price of zero or less.
pub fn builtin_profiles() -> BTreeMap<String, RankProfile> {
    use Feature::*;
    let default = RankProfile {
        weights: weights(&[
            (Similarity, 1.0),
            (SourceAgreement, 0.1),
            (Popularity, 0.15),
            (CategoryAffinity, 0.3),
            (BrandAffinity, 0.15),
            (PriceFit, 0.1),
            (Freshness, 0.05),
            (InStock, 0.05),
            (InCart, -0.2),
            (CategoryRecency, 0.2),
            // a bought item outranks anything else (the other weights sum to about 2), and
            // the user's own items are ordered by their decayed purchase counts: at 20, a
            // difference of 0.1 in relative count outweighs every other feature together, so
            // the history keeps the decayed-frequency order that was measured (docs/RANKING.md)
            (PurchasedBefore, 2.0),
            (PurchaseFrequency, 20.0),
            (Seen, -0.05),
        ]),
        diversity: DiversityConfig {
            mmr_lambda: Some(0.8),
            max_per_category: None,
        },
        exclude: non_merchandise(),
        exclude_zero_price: Some(true),
        exclude_purchased: Some(false),
        // chosen on the 2017-10-01 split (docs/QUALITY.md): up to 5 never-bought items, each
        // in the place of a repeat purchase bought less than 1.5 times (decayed), ordered by
        // collaborative similarity + popularity
        explore: ExploreConfig {
            slots: Some(5),
            below_count: Some(1.5),
            popularity_weight: Some(1.0),
        },
        ..RankProfile::default()
    };
    let discovery = RankProfile {
        weights: weights(&[
            (Similarity, 1.0),
            (Popularity, 0.05),
            (CategoryAffinity, 0.05),
            (PriceFit, 0.1),
            (Freshness, 0.1),
            (InCart, -0.5),
            (CategoryRecency, -0.1),
            (PurchasedBefore, -0.3),
            (Seen, -0.3),
        ]),
        drop_out_of_stock: Some(true),
        diversity: DiversityConfig {
            mmr_lambda: Some(0.5),
            max_per_category: Some(3),
        },
        exclude: non_merchandise(),
        exclude_zero_price: Some(true),
        exclude_purchased: Some(true),
        ..RankProfile::default()
    };
    let repurchase = RankProfile {
        weights: weights(&[
            (Similarity, 0.4),
            (Popularity, 0.1),
            (CategoryAffinity, 0.6),
            (BrandAffinity, 0.4),
            (PriceFit, 0.2),
            (InStock, 0.1),
            (InCart, 0.3),
            (CategoryRecency, 0.3),
            (PurchasedBefore, 0.8),
            (PurchaseFrequency, 3.0),
        ]),
        exclude: non_merchandise(),
        exclude_zero_price: Some(true),
        exclude_purchased: Some(false),
        ..RankProfile::default()
    };
    BTreeMap::from([
        ("default".to_owned(), default),
        ("discovery".to_owned(), discovery),
        ("repurchase".to_owned(), repurchase),
    ])
}
