//! Property tests over random candidate sets: the output is a duplicate-free subset of the input
//! ids of the expected length, scores are finite and explanations add up.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use redrec_core::{
    candidate::{Candidate, SourceHit, SourceKind},
    schema::ItemFields,
    user::UserFeatures,
};
use redrec_reranker::{
    DiversityConfig, Feature, RankProfile, RerankRequest, Reranker, RerankerConfig,
};

fn candidate() -> impl Strategy<Value = Candidate> {
    (
        0u8..30,
        prop::option::of(0u8..4),
        prop::option::of(prop::bool::ANY),
        prop::collection::vec((0usize..8, -1.0f32..1.5), 0..3),
        prop::option::of(prop::collection::vec(-1.0f32..1.0, 3)),
        prop::option::of(0u32..1000),
    )
        .prop_map(|(id, cat, stock, hits, vector, pop)| {
            let kinds = [
                SourceKind::QueryVector,
                SourceKind::QueryText,
                SourceKind::Lexical,
                SourceKind::SimilarItem,
                SourceKind::Session,
                SourceKind::LongTerm,
                SourceKind::Examples,
                SourceKind::Popular,
            ];
            let mut fields = BTreeMap::new();
            if let Some(c) = cat {
                fields.insert("category".to_owned(), format!("c{c}"));
            }
            if let Some(s) = stock {
                fields.insert("in_stock".to_owned(), if s { "1" } else { "0" }.to_owned());
            }
            if let Some(p) = pop {
                fields.insert("popularity".to_owned(), p.to_string());
            }
            Candidate {
                id: format!("i{id}"),
                fields,
                vector,
                sources: hits
                    .into_iter()
                    .enumerate()
                    .map(|(rank, (k, similarity))| SourceHit {
                        source: kinds[k],
                        rank: rank as u32,
                        similarity,
                    })
                    .collect(),
            }
        })
}

fn reranker() -> Reranker {
    let mut profiles = BTreeMap::new();
    profiles.insert(
        "capped".to_owned(),
        RankProfile {
            weights: [(Feature::Similarity.name().to_owned(), 1.0)].into(),
            diversity: DiversityConfig {
                mmr_lambda: Some(0.3),
                max_per_category: Some(2),
            },
            ..RankProfile::default()
        },
    );
    Reranker::from_config(RerankerConfig {
        profiles,
        ..RerankerConfig::default()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn output_is_a_duplicate_free_subset_of_the_right_length(
        candidates in prop::collection::vec(candidate(), 0..40),
        k in 1usize..30,
        profile in prop::sample::select(vec!["default", "discovery", "repurchase", "capped"]),
    ) {
        let reranker = reranker();
        let (user, fields) = (UserFeatures::default(), ItemFields::default());
        let ranked = reranker
            .rerank(&RerankRequest::new(&candidates, &user, &fields).profile(profile).k(k).explain(true))
            .unwrap();

        let p = reranker.profiles().get(profile).unwrap();
        // eligible: first occurrence of each id, minus known out-of-stock when dropping
        let mut seen = HashSet::new();
        let eligible: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| seen.insert(c.id.as_str()))
            .filter(|c| !(p.drop_out_of_stock() && c.field("in_stock") == Some("0")))
            .collect();
        let capacity = match p.max_per_category() {
            None => eligible.len(),
            Some(cap) => {
                let mut per_cat: HashMap<Option<&str>, usize> = HashMap::new();
                for c in &eligible {
                    *per_cat.entry(c.field("category")).or_default() += 1;
                }
                per_cat
                    .iter()
                    .map(|(cat, n)| if cat.is_some() { (*n).min(cap) } else { *n })
                    .sum()
            }
        };
        prop_assert_eq!(ranked.len(), k.min(capacity));

        let eligible_ids: HashSet<&str> = eligible.iter().map(|c| c.id.as_str()).collect();
        let mut out_ids = HashSet::new();
        for r in &ranked {
            prop_assert!(eligible_ids.contains(r.id.as_str()), "{} not eligible", r.id);
            prop_assert!(out_ids.insert(r.id.as_str()), "{} twice", r.id);
            prop_assert!(r.score.is_finite());
            let why = r.explanation.as_ref().unwrap();
            prop_assert!((why.total() - r.score).abs() < 1e-6);
        }
        if let Some(cap) = p.max_per_category() {
            let mut per_cat: HashMap<&str, usize> = HashMap::new();
            for r in &ranked {
                if let Some(c) = r.fields.get("category") {
                    *per_cat.entry(c.as_str()).or_default() += 1;
                }
            }
            prop_assert!(per_cat.values().all(|n| *n <= cap));
        }
        if p.mmr_lambda().is_none() {
            // relevance order: score desc, then id asc
            for w in ranked.windows(2) {
                prop_assert!(
                    w[0].score > w[1].score || (w[0].score == w[1].score && w[0].id < w[1].id)
                );
            }
        }
    }

    #[test]
    fn input_order_does_not_change_the_output(
        candidates in prop::collection::vec(candidate(), 0..30),
        k in 1usize..20,
        profile in prop::sample::select(vec!["default", "discovery", "repurchase", "capped"]),
    ) {
        // dedup first so "first occurrence wins" does not depend on order
        let mut seen = HashSet::new();
        let unique: Vec<Candidate> = candidates.into_iter().filter(|c| seen.insert(c.id.clone())).collect();
        let mut reversed = unique.clone();
        reversed.reverse();
        let reranker = reranker();
        let (user, fields) = (UserFeatures::default(), ItemFields::default());
        let run = |c: &[Candidate]| {
            reranker
                .rerank(&RerankRequest::new(c, &user, &fields).profile(profile).k(k))
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(run(&unique), run(&reversed));
    }
}

/// Cosine similarity in f64, floored at 0; 0 when either vector is missing or zero.
fn reference_similarity(a: Option<&Vec<f32>>, b: Option<&Vec<f32>>) -> f64 {
    let (Some(a), Some(b)) = (a, b) else {
        return 0.0;
    };
    let dot = |x: &[f32], y: &[f32]| -> f64 {
        x.iter()
            .zip(y)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum()
    };
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    if norms == 0.0 {
        0.0
    } else {
        (dot(a, b) / norms).max(0.0)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every MMR pick maximises `lambda * rel_norm - (1 - lambda) * max_sim` given the picks
    /// before it, recomputed from scratch in f64 (checks the incremental max-sim update).
    #[test]
    fn every_mmr_pick_maximises_the_objective(
        candidates in prop::collection::vec(candidate(), 1..30),
        k in 1usize..12,
        lambda in 0.0f64..=1.0,
        cap in prop::option::of(1usize..3),
    ) {
        let mut seen = HashSet::new();
        let unique: Vec<Candidate> = candidates.into_iter().filter(|c| seen.insert(c.id.clone())).collect();
        let profile = RankProfile {
            weights: [(Feature::Similarity.name().to_owned(), 1.0)].into(),
            diversity: DiversityConfig { mmr_lambda: Some(lambda), max_per_category: cap },
            ..RankProfile::default()
        };
        let reranker = Reranker::from_config(RerankerConfig {
            profiles: [("mmr".to_owned(), profile)].into(),
            ..RerankerConfig::default()
        })
        .unwrap();
        let (user, fields) = (UserFeatures::default(), ItemFields::default());
        let ranked = reranker
            .rerank(&RerankRequest::new(&unique, &user, &fields).profile("mmr").k(k).explain(true))
            .unwrap();
        if cap.is_none() {
            prop_assert_eq!(ranked.len(), k.min(unique.len()));
        }
        if lambda >= 1.0 || unique.len() < 2 {
            return Ok(());
        }

        // relevance as the profile defines it: the best source similarity, clamped to [0, 1],
        // lexical scores divided by the best lexical score of the set
        let lexical_max = unique
            .iter()
            .flat_map(|c| &c.sources)
            .filter(|s| s.source == SourceKind::Lexical)
            .map(|s| f64::from(s.similarity))
            .fold(0.0, f64::max);
        let rel: HashMap<&str, f64> = unique
            .iter()
            .map(|c| {
                let best = c
                    .sources
                    .iter()
                    .map(|s| {
                        let sim = (f64::from(s.similarity) * 1e6).round() / 1e6;
                        let sim = match s.source {
                            SourceKind::Lexical if lexical_max > 0.0 => sim / lexical_max,
                            SourceKind::Lexical => 0.0,
                            _ => sim,
                        };
                        sim.clamp(0.0, 1.0)
                    })
                    .fold(0.0, f64::max);
                (c.id.as_str(), best)
            })
            .collect();
        let lo = rel.values().copied().fold(f64::INFINITY, f64::min);
        let hi = rel.values().copied().fold(f64::NEG_INFINITY, f64::max);
        let rel_norm = |id: &str| if hi > lo { (rel[id] - lo) / (hi - lo) } else { 1.0 };
        let by_id: HashMap<&str, &Candidate> = unique.iter().map(|c| (c.id.as_str(), c)).collect();
        let objective = |id: &str, picked: &[&str]| {
            let max_sim = picked
                .iter()
                .map(|p| reference_similarity(by_id[id].vector.as_ref(), by_id[p].vector.as_ref()))
                .fold(0.0, f64::max);
            lambda * rel_norm(id) - (1.0 - lambda) * max_sim
        };

        let mut picked: Vec<&str> = Vec::new();
        for r in &ranked {
            let chosen = objective(&r.id, &picked);
            let capped = |c: &Candidate| match (cap, c.field("category")) {
                (Some(cap), Some(cat)) => {
                    picked.iter().filter(|p| by_id[**p].field("category") == Some(cat)).count() >= cap
                }
                _ => false,
            };
            prop_assert!(!capped(by_id[r.id.as_str()]), "{} exceeds the cap", r.id);
            let best = unique
                .iter()
                .filter(|c| !picked.contains(&c.id.as_str()) && !capped(c))
                .map(|c| objective(&c.id, &picked))
                .fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(chosen >= best - 1e-5, "{} picked with {chosen}, best was {best}", r.id);
            let note = r.explanation.as_ref().unwrap().diversity.unwrap();
            prop_assert!((note.mmr_value - chosen).abs() < 1e-5, "{} vs {chosen}", note.mmr_value);
            picked.push(&r.id);
        }
    }
}
