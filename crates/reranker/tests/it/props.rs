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
            .filter(|c| !(p.config.drop_out_of_stock && c.field("in_stock") == Some("0")))
            .collect();
        let capacity = match p.config.diversity.max_per_category {
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
        if let Some(cap) = p.config.diversity.max_per_category {
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
