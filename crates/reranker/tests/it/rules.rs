//! Business rules: boost, bury, pins, out-of-stock dropping, duplicates and ties.

use redrec_core::user::UserFeatures;
use redrec_reranker::{AdjustmentKind, Feature, FieldRule, Pin, RankProfile, retrieval_order};

use crate::support::{assert_close, ids, item, items, rank, reranker_with, weighted};

fn sim_only() -> RankProfile {
    weighted(&[(Feature::Similarity, 1.0)])
}

fn rule(field: &str, value: &str, amount: f64) -> FieldRule {
    FieldRule {
        field: field.into(),
        value: value.into(),
        amount,
    }
}

#[test]
fn boost_lifts_matching_items_and_shows_the_line() {
    let c = items(vec![
        item("a").text(0.9).field("brand", "other"),
        item("b").text(0.7).field("brand", "Acme"),
        item("c").text(0.66).field("brand", "house,acme"),
    ]);
    let profile = RankProfile {
        boost: vec![rule("brand", "acme", 0.25)],
        ..sim_only()
    };
    let ranked = rank(
        &reranker_with(&[("p", profile)]),
        "p",
        &c,
        &UserFeatures::default(),
        3,
    );
    // case-insensitive, and one element of a comma-separated TAG value matches
    assert_eq!(ids(&ranked), ["b", "c", "a"]);
    assert_close(ranked[0].score, 0.7 + 0.25, "b");
    let line = &ranked[0].explanation.as_ref().unwrap().adjustments[0];
    assert_eq!(line.kind, AdjustmentKind::Boost);
    assert_eq!(line.reason, "boost brand=acme");
    assert_eq!(line.amount, 0.25);
    assert!(
        ranked[2]
            .explanation
            .as_ref()
            .unwrap()
            .adjustments
            .is_empty()
    );
}

#[test]
fn bury_sinks_matching_items() {
    let c = items(vec![
        item("a").text(0.9).category("alcohol"),
        item("b").text(0.7).category("tea"),
    ]);
    let profile = RankProfile {
        bury: vec![rule("category", "alcohol", 0.5)],
        ..sim_only()
    };
    let ranked = rank(
        &reranker_with(&[("p", profile)]),
        "p",
        &c,
        &UserFeatures::default(),
        2,
    );
    assert_eq!(ids(&ranked), ["b", "a"]);
    let line = &ranked[1].explanation.as_ref().unwrap().adjustments[0];
    assert_eq!(line.kind, AdjustmentKind::Bury);
    assert_eq!(line.amount, -0.5);
    assert_close(ranked[1].score, 0.9 - 0.5, "a");
}

#[test]
fn pins_place_items_at_their_position_when_present() {
    let c = items(vec![
        item("a").text(0.9),
        item("b").text(0.8),
        item("c").text(0.7),
        item("promo").text(0.1),
    ]);
    let profile = RankProfile {
        pins: vec![
            Pin {
                id: "promo".into(),
                position: 1,
            },
            // not a candidate: ignored
            Pin {
                id: "absent".into(),
                position: 2,
            },
            // beyond the list length: competes normally
            Pin {
                id: "a".into(),
                position: 50,
            },
        ],
        ..sim_only()
    };
    let reranker = reranker_with(&[("p", profile)]);
    let ranked = rank(&reranker, "p", &c, &UserFeatures::default(), 3);
    assert_eq!(ids(&ranked), ["promo", "a", "b"]);
    let why = ranked[0].explanation.as_ref().unwrap();
    assert_eq!(why.adjustments[0].kind, AdjustmentKind::Pin);
    assert_eq!(why.adjustments[0].reason, "pinned to position 1");
    assert_eq!(why.relevance_rank, 4);
    assert_eq!(why.position, 1);
    // the pinned item keeps its own score
    assert_close(ranked[0].score, 0.1, "promo");
}

#[test]
fn a_pin_in_the_middle_shifts_the_rest_down() {
    let c = items(vec![
        item("a").text(0.9),
        item("b").text(0.8),
        item("c").text(0.7),
        item("promo").text(0.1),
    ]);
    let profile = RankProfile {
        pins: vec![Pin {
            id: "promo".into(),
            position: 2,
        }],
        ..sim_only()
    };
    let ranked = rank(
        &reranker_with(&[("p", profile)]),
        "p",
        &c,
        &UserFeatures::default(),
        10,
    );
    assert_eq!(ids(&ranked), ["a", "promo", "b", "c"]);
}

#[test]
fn out_of_stock_items_are_dropped_only_when_the_profile_says_so() {
    let c = items(vec![
        item("gone").text(0.9).field("in_stock", "0"),
        item("here").text(0.8).field("in_stock", "1"),
        item("unknown").text(0.7),
    ]);
    let dropping = RankProfile {
        drop_out_of_stock: Some(true),
        pins: vec![Pin {
            id: "gone".into(),
            position: 1,
        }],
        ..sim_only()
    };
    let reranker = reranker_with(&[("drop", dropping), ("keep", sim_only())]);
    let user = UserFeatures::default();
    // dropping wins over a pin; unknown stock is kept
    assert_eq!(
        ids(&rank(&reranker, "drop", &c, &user, 10)),
        ["here", "unknown"]
    );
    assert_eq!(
        ids(&rank(&reranker, "keep", &c, &user, 10)),
        ["gone", "here", "unknown"]
    );
}

#[test]
fn ties_break_by_id_whatever_the_input_order() {
    let forward = items(vec![
        item("b").text(0.5),
        item("a").text(0.5),
        item("d").text(0.5),
        item("c").text(0.9),
    ]);
    let mut backward = forward.clone();
    backward.reverse();
    let reranker = reranker_with(&[("p", sim_only())]);
    let user = UserFeatures::default();
    for profile in ["p", "default", "discovery", "repurchase"] {
        let a = ids(&rank(&reranker, profile, &forward, &user, 10))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let b = ids(&rank(&reranker, profile, &backward, &user, 10))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        assert_eq!(a, b, "{profile}");
        assert_eq!(a, ["c", "a", "b", "d"], "{profile}");
    }
}

#[test]
fn duplicate_ids_keep_the_first_occurrence() {
    let c = items(vec![
        item("a").text(0.4),
        item("b").text(0.5),
        item("a").text(0.99),
    ]);
    let ranked = rank(
        &reranker_with(&[("p", sim_only())]),
        "p",
        &c,
        &UserFeatures::default(),
        10,
    );
    assert_eq!(ids(&ranked), ["b", "a"]);
    assert_close(ranked[1].score, 0.4, "first a wins");
}

#[test]
fn retrieval_order_is_the_no_rerank_fallback() {
    let c = items(vec![
        item("x")
            .text(0.2)
            .sim(redrec_core::candidate::SourceKind::Session, 0.6),
        item("y").text(0.9),
        item("x").text(0.3),
        item("z").text(0.1),
    ]);
    let fallback = retrieval_order(&c, 2);
    assert_eq!(ids(&fallback), ["x", "y"]);
    assert_close(fallback[0].score, 0.6f32 as f64, "best source");
    assert!(fallback[0].explanation.is_none());
    assert_eq!(fallback[0].sources.len(), 2);
}
