//! MMR and category caps.

use redrec_core::{schema::ItemFields, user::UserFeatures};
use redrec_reranker::{
    AdjustmentKind, DiversityConfig, Error, Feature, RankProfile, RerankRequest,
};

use crate::support::{assert_close, ids, item, items, rank, reranker_with, weighted};

fn diverse(lambda: Option<f64>, cap: Option<usize>) -> RankProfile {
    RankProfile {
        diversity: DiversityConfig {
            mmr_lambda: lambda,
            max_per_category: cap,
        },
        ..weighted(&[(Feature::Similarity, 1.0)])
    }
}

/// `a` and its near-duplicate `b` are the two most relevant; `c` is less relevant but points
/// elsewhere. Relevance alone picks [a, b]; MMR must pick [a, c].
fn near_duplicates() -> Vec<redrec_core::candidate::Candidate> {
    items(vec![
        item("a").text(0.9).vector(&[1.0, 0.0, 0.0]),
        item("b").text(0.85).vector(&[0.99, 0.141, 0.0]),
        item("c").text(0.6).vector(&[0.0, 1.0, 0.0]),
        item("d").text(0.5).vector(&[0.98, 0.0, 0.199]),
    ])
}

#[test]
fn mmr_picks_the_diverse_item_over_the_near_duplicate() {
    let reranker = reranker_with(&[
        ("plain", diverse(None, None)),
        ("mmr", diverse(Some(0.5), None)),
        ("lambda_one", diverse(Some(1.0), None)),
    ]);
    let user = UserFeatures::default();
    let c = near_duplicates();
    assert_eq!(ids(&rank(&reranker, "plain", &c, &user, 2)), ["a", "b"]);
    assert_eq!(
        ids(&rank(&reranker, "lambda_one", &c, &user, 2)),
        ["a", "b"]
    );
    let ranked = rank(&reranker, "mmr", &c, &user, 4);
    assert_eq!(ids(&ranked), ["a", "c", "b", "d"]);

    // the MMR numbers in the explanation are the ones the choice was made with
    let why_c = ranked[1].explanation.as_ref().unwrap();
    let note = why_c.diversity.expect("mmr note");
    assert_eq!(note.lambda, 0.5);
    let rel_c = (0.6 - 0.5) / (0.9 - 0.5);
    assert_close(
        note.normalized_relevance,
        rel_c,
        "normalised relevance of c",
    );
    assert_close(note.max_similarity, 0.0, "c is orthogonal to a");
    assert_close(note.mmr_value, 0.5 * rel_c, "mmr value of c");
    assert_eq!(why_c.relevance_rank, 3);
    assert_eq!(why_c.position, 2);
    let line = why_c.adjustments.last().unwrap();
    assert_eq!(line.kind, AdjustmentKind::Diversity);
    assert_eq!(line.amount, 0.0);
    // score stays the relevance score
    assert_close(ranked[1].score, 0.6, "score of c");
    // b was penalised by its similarity to a
    let note_b = ranked[2].explanation.as_ref().unwrap().diversity.unwrap();
    assert!(note_b.max_similarity > 0.99, "{note_b:?}");
    // the first pick has nothing to be similar to
    let note_a = ranked[0].explanation.as_ref().unwrap().diversity.unwrap();
    assert_eq!(note_a.max_similarity, 0.0);
    assert_eq!(note_a.normalized_relevance, 1.0);
}

#[test]
fn lambda_zero_maximises_novelty_and_vectorless_items_are_not_penalised() {
    let reranker = reranker_with(&[("novel", diverse(Some(0.0), None))]);
    let c = items(vec![
        item("a").text(0.9).vector(&[1.0, 0.0]),
        item("a2").text(0.8).vector(&[2.0, 0.0]), // same direction, other length
        item("novec").text(0.1),
        item("zero").text(0.05).vector(&[0.0, 0.0]),
    ]);
    let ranked = rank(&reranker, "novel", &c, &UserFeatures::default(), 4);
    // with lambda 0 every unpenalised item ties at 0: pool order (score, id) decides
    assert_eq!(ids(&ranked), ["a", "novec", "zero", "a2"]);
    let note = ranked[3].explanation.as_ref().unwrap().diversity.unwrap();
    assert_close(note.max_similarity, 1.0, "cosine ignores length");
}

#[test]
fn category_cap_limits_results_per_category() {
    let c = items(vec![
        item("a1").text(0.99).category("A"),
        item("a2").text(0.98).category("A"),
        item("a3").text(0.97).category("A"),
        item("a4").text(0.96).category("A"),
        item("b1").text(0.5).category("B"),
        item("b2").text(0.4).category("B"),
        item("b3").text(0.3).category("B"),
        item("nocat1").text(0.2),
        item("nocat2").text(0.1),
    ]);
    let reranker = reranker_with(&[
        ("cap", diverse(None, Some(2))),
        ("cap_mmr", diverse(Some(0.7), Some(2))),
    ]);
    let user = UserFeatures::default();
    let ranked = rank(&reranker, "cap", &c, &user, 4);
    assert_eq!(ids(&ranked), ["a1", "a2", "b1", "b2"]);
    let line = ranked[2]
        .explanation
        .as_ref()
        .unwrap()
        .adjustments
        .last()
        .unwrap()
        .clone();
    assert_eq!(line.kind, AdjustmentKind::Diversity);
    assert_eq!(
        line.reason,
        "category cap, at most 2 per category: relevance rank 5 placed at position 3"
    );
    // the cap is strict: items without a category are never capped, the rest run out
    let all = rank(&reranker, "cap", &c, &user, 100);
    assert_eq!(ids(&all), ["a1", "a2", "b1", "b2", "nocat1", "nocat2"]);
    // combined with MMR (no vectors here, so MMR follows relevance)
    assert_eq!(ids(&rank(&reranker, "cap_mmr", &c, &user, 100)), ids(&all));
}

#[test]
fn mmr_rejects_bad_vectors_naming_the_candidate() {
    let reranker = reranker_with(&[
        ("mmr", diverse(Some(0.5), None)),
        ("plain", diverse(None, None)),
    ]);
    let (user, fields) = (UserFeatures::default(), ItemFields::default());
    let mismatched = items(vec![
        item("a").text(0.9).vector(&[1.0, 0.0]),
        item("b").text(0.8).vector(&[1.0, 0.0, 0.0]),
    ]);
    let err = reranker
        .rerank(&RerankRequest::new(&mismatched, &user, &fields).profile("mmr"))
        .unwrap_err();
    assert_eq!(
        err,
        Error::Request {
            field: "candidates[1].vector".into(),
            message: "has 3 dimensions but other candidates have 2".into(),
        }
    );
    let nan = items(vec![
        item("a").text(0.9),
        item("b").vector(&[f32::NAN, 1.0]),
    ]);
    let err = reranker
        .rerank(&RerankRequest::new(&nan, &user, &fields).profile("mmr"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Request { field, .. } if field == "candidates[1].vector"),
        "{err}"
    );
    let huge = items(vec![item("a").text(0.9), item("b").vector(&[1e30, 1e30])]);
    let err = reranker
        .rerank(&RerankRequest::new(&huge, &user, &fields).profile("mmr"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid rerank request: `candidates[1].vector` has components too large for f32 arithmetic"
    );
    // vectors are not read when the profile does not diversify
    assert!(
        reranker
            .rerank(&RerankRequest::new(&nan, &user, &fields).profile("plain"))
            .is_ok()
    );
}

#[test]
fn builtin_default_profile_diversifies_with_vectors() {
    // default uses lambda 0.8: a near duplicate loses its slot only when the gap is small
    let c = items(vec![
        item("a").text(0.90).vector(&[1.0, 0.0]),
        item("dup").text(0.89).vector(&[1.0, 0.001]),
        item("other").text(0.88).vector(&[0.0, 1.0]),
        item("far").text(0.10).vector(&[0.0, -1.0]),
    ]);
    let ranked = rank(
        &redrec_reranker::Reranker::default(),
        "default",
        &c,
        &UserFeatures::default(),
        3,
    );
    assert_eq!(ids(&ranked), ["a", "other", "dup"]);
}
