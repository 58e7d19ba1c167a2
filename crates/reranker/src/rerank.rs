//! The reranker's entry point: [`Reranker::rerank`] turns retrieval candidates plus user
//! features into the final, optionally explained, list.
//!
//! Steps: drop duplicate ids (first occurrence wins; retrieval lists the best first) -> compute
//! features -> drop out-of-stock items when the profile says so -> score = weighted features +
//! boost/bury -> sort by (score desc, id asc) -> place pins, then fill the remaining slots by MMR
//! and category caps (see `diversity.rs` and docs/RANKING.md).

use std::collections::{BTreeMap, HashMap, HashSet};

use redrec_core::{
    candidate::{Candidate, SourceHit, SourceKind},
    schema::ItemFields,
    user::UserFeatures,
};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    diversity::{Placement, Pool, SelectionRules, select},
    explain::{Adjustment, AdjustmentKind, Explanation, FeatureContribution, MmrNote},
    features::{Feature, FeatureContext, FeatureValues},
    profile::{CompiledProfile, ExploreRule, RankProfiles, RerankerConfig},
};

/// The profile used when a request names none.
pub const DEFAULT_PROFILE: &str = "default";

/// One rerank call's inputs.
#[derive(Debug, Clone, Copy)]
pub struct RerankRequest<'a> {
    pub candidates: &'a [Candidate],
    pub user: &'a UserFeatures,
    /// Names of the item fields (category, brand, price, ...).
    pub fields: &'a ItemFields,
    /// Rank profile name.
    pub profile: &'a str,
    /// Maximum number of results (at least 1).
    pub k: usize,
    /// Attach an [`Explanation`] to every result.
    pub explain: bool,
    /// "Now" for the `freshness` feature (Unix ms); `None` makes freshness 0.
    pub now_ms: Option<i64>,
}

impl<'a> RerankRequest<'a> {
    /// A request with the `default` profile, k = 10, no explanations, no clock.
    pub fn new(
        candidates: &'a [Candidate],
        user: &'a UserFeatures,
        fields: &'a ItemFields,
    ) -> RerankRequest<'a> {
        RerankRequest {
            candidates,
            user,
            fields,
            profile: DEFAULT_PROFILE,
            k: 10,
            explain: false,
            now_ms: None,
        }
    }

    pub fn profile(mut self, profile: &'a str) -> Self {
        self.profile = profile;
        self
    }

    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    pub fn explain(mut self, explain: bool) -> Self {
        self.explain = explain;
        self
    }

    pub fn now_ms(mut self, now_ms: i64) -> Self {
        self.now_ms = Some(now_ms);
        self
    }
}

/// One result, in presentation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedItem {
    pub id: String,
    /// Relevance under the profile: weighted features plus boost/bury amounts. Pins and MMR
    /// change the position, not this number, so a diversified list is not sorted by it.
    pub score: f64,
    /// The item fields retrieval returned.
    pub fields: BTreeMap<String, String>,
    /// The retrieval sources that found the item.
    pub sources: Vec<SourceHit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl RankedItem {
    /// A result straight from retrieval (no reranking): score is the best source similarity.
    /// For callers that skip reranking, e.g. when a latency budget is exhausted.
    pub fn from_candidate(candidate: &Candidate) -> RankedItem {
        RankedItem {
            id: candidate.id.clone(),
            score: f64::from(candidate.best_similarity()),
            fields: candidate.fields.clone(),
            sources: candidate.sources.clone(),
            explanation: None,
        }
    }
}

/// Scores, diversifies and explains candidates under named rank profiles. Cheap to share
/// (`Arc<Reranker>`); holds only validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Reranker {
    profiles: RankProfiles,
}

/// A candidate that survived dedup and eligibility, with its score.
struct Scored<'c> {
    origin: usize,
    candidate: &'c Candidate,
    values: FeatureValues,
    adjustments: Vec<Adjustment>,
    score: f64,
}

impl Reranker {
    pub fn new(profiles: RankProfiles) -> Reranker {
        Reranker { profiles }
    }

    /// Validates `config` (see [`RankProfiles::new`]).
    pub fn from_config(config: RerankerConfig) -> Result<Reranker> {
        Ok(Reranker::new(RankProfiles::new(config)?))
    }

    pub fn profiles(&self) -> &RankProfiles {
        &self.profiles
    }

    /// Reranks `req.candidates` into at most `req.k` results.
    ///
    /// Errors: [`Error::UnknownProfile`], and [`Error::Request`] for `k = 0` or candidate vectors
    /// that are non-finite or disagree in dimension (checked only when the profile uses MMR).
    pub fn rerank(&self, req: &RerankRequest<'_>) -> Result<Vec<RankedItem>> {
        let profile = self.profiles.get(req.profile)?;
        if req.k == 0 {
            return Err(Error::request("k", "must be at least 1"));
        }
        let mut ids = HashSet::with_capacity(req.candidates.len());
        let unique: Vec<(usize, &Candidate)> = req
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| ids.insert(c.id.as_str()))
            .collect();
        let refs: Vec<&Candidate> = unique.iter().map(|(_, c)| *c).collect();
        let ctx = FeatureContext::new(
            &refs,
            req.user,
            req.fields,
            self.profiles.popularity_max(),
            self.profiles.freshness(),
            req.now_ms,
        );

        let mut scored: Vec<Scored<'_>> = unique
            .into_iter()
            .map(|(origin, candidate)| {
                let values = ctx.compute(candidate);
                let (score, adjustments) = score(profile, candidate, &values);
                Scored {
                    origin,
                    candidate,
                    values,
                    adjustments,
                    score,
                }
            })
            .filter(|s| !(profile.drop_out_of_stock() && s.values[Feature::InStock.index()] < 0.0))
            .collect();
        let by_score = |a: &Scored<'_>, b: &Scored<'_>| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.candidate.id.cmp(&b.candidate.id))
        };
        scored.sort_by(by_score);
        if let Some(rule) = profile.explore() {
            let counts: HashMap<&str, f64> = req
                .user
                .purchases
                .iter()
                .map(|p| (p.item_id.as_str(), p.count))
                .collect();
            if explore(profile, &mut scored, &counts, req.k, rule) {
                scored.sort_by(by_score);
            }
        }

        let pool = Pool {
            ids: scored.iter().map(|s| s.candidate.id.as_str()).collect(),
            scores: scored.iter().map(|s| s.score).collect(),
            categories: scored
                .iter()
                .map(|s| s.candidate.field(&req.fields.category))
                .collect(),
            vectors: scored
                .iter()
                .map(|s| s.candidate.vector.as_deref())
                .collect(),
            origin: scored.iter().map(|s| s.origin).collect(),
        };
        let pins: Vec<(usize, usize)> = profile
            .config
            .pins
            .iter()
            .filter_map(|pin| {
                pool.ids
                    .iter()
                    .position(|id| *id == pin.id)
                    .map(|i| (i, pin.position))
            })
            .collect();
        let selected = select(
            &pool,
            &SelectionRules {
                k: req.k,
                pins: &pins,
                mmr_lambda: profile.mmr_lambda(),
                max_per_category: profile.max_per_category(),
            },
        )?;

        let cap = profile.max_per_category();
        Ok(selected
            .iter()
            .enumerate()
            .map(|(pos, sel)| {
                let s = &scored[sel.pool_index];
                let explanation = req
                    .explain
                    .then(|| explain(profile, s, sel.pool_index + 1, pos + 1, sel.placement, cap));
                RankedItem {
                    id: s.candidate.id.clone(),
                    score: s.score,
                    fields: s.candidate.fields.clone(),
                    sources: s.candidate.sources.clone(),
                    explanation,
                }
            })
            .collect())
    }
}

/// The sources whose never-bought candidates the explore rule may place: the collaborative
/// ones, and popularity (the offline measurement behind the default: popular items the user
/// never bought, blended with collaborative similarity, find more explore items than either).
const EXPLORE_SOURCES: [SourceKind; 3] = [
    SourceKind::CfSession,
    SourceKind::CfLongTerm,
    SourceKind::Popular,
];

/// The explore rule (see [`crate::ExploreConfig`]) on `scored`, sorted by score: walks the first
/// `k` places as the list would fill them and, where the next item is a repeat purchase whose
/// decayed count is below `below_count`, lifts the best remaining never-bought candidate of an
/// explore source just above it (at most `slots` times). Returns whether anything moved.
fn explore(
    profile: &CompiledProfile,
    scored: &mut [Scored<'_>],
    counts: &HashMap<&str, f64>,
    k: usize,
    rule: ExploreRule,
) -> bool {
    let ExploreRule {
        slots,
        below_count: below,
        popularity_weight,
    } = rule;
    let bought = |s: &Scored<'_>| s.values[Feature::PurchasedBefore.index()] > 0.0;
    let explore_value = |s: &Scored<'_>| {
        let v = &s.values;
        v[Feature::SimCfSession.index()].max(v[Feature::SimCfLongTerm.index()])
            + popularity_weight * v[Feature::Popularity.index()]
    };
    let mut pool: Vec<(f64, usize)> = (0..scored.len())
        .filter(|&i| {
            let s = &scored[i];
            !bought(s)
                && s.candidate
                    .sources
                    .iter()
                    .any(|h| EXPLORE_SOURCES.contains(&h.source))
        })
        .map(|i| (explore_value(&scored[i]), i))
        .collect();
    // best explore value first; ties keep the score order
    pool.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let pool: Vec<usize> = pool.into_iter().map(|(_, i)| i).collect();
    let mut next_explore = pool.iter().copied().peekable();
    let mut lifted: Vec<(usize, usize)> = Vec::new(); // (explore index, displaced index)
    let mut taken = vec![false; scored.len()];
    let mut cursor = 0;
    let mut placed = 0;
    while placed < k {
        while cursor < scored.len() && taken[cursor] {
            cursor += 1;
        }
        if cursor == scored.len() {
            break;
        }
        let next = &scored[cursor];
        let weak = bought(next)
            && counts
                .get(next.candidate.id.as_str())
                .is_none_or(|c| *c < below);
        // skip explore candidates already placed on their own merit
        while next_explore.peek().is_some_and(|&e| taken[e]) {
            next_explore.next();
        }
        match next_explore.peek().copied() {
            Some(e) if weak && lifted.len() < slots => {
                taken[e] = true;
                lifted.push((e, cursor));
                next_explore.next();
            }
            _ => {
                taken[cursor] = true;
            }
        }
        placed += 1;
    }
    let n = lifted.len();
    for (j, &(e, displaced)) in lifted.iter().enumerate() {
        // earlier winners sit higher: distinct small offsets keep their order
        let target = scored[displaced].score + 1e-6 * (n - j) as f64;
        let count = counts
            .get(scored[displaced].candidate.id.as_str())
            .copied()
            .unwrap_or(0.0);
        let reason = format!(
            "explore: never bought, placed above `{}` (decayed purchase count {count:.3} < {below})",
            scored[displaced].candidate.id
        );
        let s = &mut scored[e];
        s.adjustments.push(Adjustment {
            kind: AdjustmentKind::Explore,
            reason,
            amount: target - s.score,
        });
        s.score =
            feature_sum(profile, &s.values) + s.adjustments.iter().map(|a| a.amount).sum::<f64>();
    }
    n > 0
}

fn feature_sum(profile: &CompiledProfile, values: &FeatureValues) -> f64 {
    values
        .iter()
        .zip(profile.weights.iter())
        .map(|(v, w)| contribution(*v, *w))
        .sum()
}

/// `value * weight`, with the sign of a zero product dropped (`-0.0` reads badly in JSON).
fn contribution(value: f64, weight: f64) -> f64 {
    value * weight + 0.0
}

/// Relevance score and the boost/bury lines. Summed in the same order as
/// [`Explanation::total`] so the explanation reproduces the score bit for bit.
fn score(
    profile: &CompiledProfile,
    candidate: &Candidate,
    values: &FeatureValues,
) -> (f64, Vec<Adjustment>) {
    let features = feature_sum(profile, values);
    let mut adjustments = Vec::new();
    for (kind, rules, sign) in [
        (AdjustmentKind::Boost, &profile.config.boost, 1.0),
        (AdjustmentKind::Bury, &profile.config.bury, -1.0),
    ] {
        for rule in rules {
            if rule.matches(candidate.field(&rule.field)) {
                adjustments.push(Adjustment {
                    kind,
                    reason: format!(
                        "{} {}={}",
                        if sign > 0.0 { "boost" } else { "bury" },
                        rule.field,
                        rule.value
                    ),
                    amount: sign * rule.amount,
                });
            }
        }
    }
    let rules: f64 = adjustments.iter().map(|a| a.amount).sum();
    (features + rules, adjustments)
}

fn explain(
    profile: &CompiledProfile,
    s: &Scored<'_>,
    relevance_rank: usize,
    position: usize,
    placement: Placement,
    cap: Option<usize>,
) -> Explanation {
    let features = Feature::ALL
        .iter()
        .map(|f| {
            let value = s.values[f.index()];
            let weight = profile.weight(*f);
            FeatureContribution {
                feature: *f,
                value,
                weight,
                contribution: contribution(value, weight),
            }
        })
        .collect();
    let mut adjustments = s.adjustments.clone();
    let mut diversity = None;
    let cap_note = cap
        .map(|c| format!(", at most {c} per category"))
        .unwrap_or_default();
    match placement {
        Placement::Pinned { position } => adjustments.push(Adjustment {
            kind: AdjustmentKind::Pin,
            reason: format!("pinned to position {position}"),
            amount: 0.0,
        }),
        Placement::Mmr {
            lambda,
            normalized_relevance,
            max_similarity,
            mmr_value,
        } => {
            adjustments.push(Adjustment {
                kind: AdjustmentKind::Diversity,
                reason: format!(
                    "mmr lambda {lambda}{cap_note}: relevance rank {relevance_rank} placed at \
                     position {position} (max similarity to earlier results {max_similarity:.3})"
                ),
                amount: 0.0,
            });
            diversity = Some(MmrNote {
                lambda,
                normalized_relevance,
                max_similarity,
                mmr_value,
            });
        }
        Placement::Relevance if cap.is_some() => adjustments.push(Adjustment {
            kind: AdjustmentKind::Diversity,
            reason: format!(
                "category cap{cap_note}: relevance rank {relevance_rank} placed at \
                 position {position}"
            ),
            amount: 0.0,
        }),
        Placement::Relevance => {}
    }
    Explanation {
        profile: profile.name.clone(),
        relevance_rank,
        position,
        features,
        adjustments,
        diversity,
    }
}

/// The first `k` candidates in retrieval order as results, duplicates removed: the fallback
/// list when reranking is skipped.
pub fn retrieval_order(candidates: &[Candidate], k: usize) -> Vec<RankedItem> {
    let mut ids = HashSet::new();
    candidates
        .iter()
        .filter(|c| ids.insert(c.id.as_str()))
        .take(k)
        .map(RankedItem::from_candidate)
        .collect()
}
