//! Each feature's value, read back from explanations, including the neutral value for missing
//! data and the NaN guards.

use redrec_core::{
    candidate::{Candidate, SourceKind},
    schema::ItemFields,
    user::{Interaction, PriceBand, UserFeatures},
};
use redrec_reranker::{
    Feature, FreshnessConfig, RankedItem, RerankRequest, Reranker, RerankerConfig,
};

use crate::support::{assert_close, feature_of, item, items, rank};

/// Every candidate back, features computed, order irrelevant.
fn all(candidates: &[Candidate], user: &UserFeatures) -> Vec<RankedItem> {
    rank(&Reranker::default(), "repurchase", candidates, user, 1000)
}

fn check(candidates: &[Candidate], user: &UserFeatures, feature: Feature, expect: &[(&str, f64)]) {
    let ranked = all(candidates, user);
    for (id, value) in expect {
        assert_close(
            feature_of(&ranked, id, feature),
            *value,
            &format!("{} of {id}", feature.name()),
        );
    }
}

#[test]
fn similarity_per_source_and_best() {
    let c = items(vec![
        item("a").text(0.8).sim(SourceKind::Session, 0.6),
        item("b").sim(SourceKind::Session, 0.7),
        item("c").sim(SourceKind::LongTerm, -0.4),
        item("d"),
    ]);
    let u = UserFeatures::default();
    check(
        &c,
        &u,
        Feature::SimQueryText,
        &[("a", 0.8), ("b", 0.0), ("d", 0.0)],
    );
    check(&c, &u, Feature::SimSession, &[("a", 0.6), ("b", 0.7)]);
    // negative cosine means unrelated: floored at 0
    check(&c, &u, Feature::SimLongTerm, &[("c", 0.0)]);
    check(
        &c,
        &u,
        Feature::Similarity,
        &[("a", 0.8), ("b", 0.7), ("c", 0.0), ("d", 0.0)],
    );
}

#[test]
fn lexical_scores_are_divided_by_the_best_in_the_set() {
    let c = items(vec![
        item("a").sim(SourceKind::Lexical, 4.0),
        item("b").sim(SourceKind::Lexical, 2.0),
        item("c").text(0.3),
    ]);
    let u = UserFeatures::default();
    check(
        &c,
        &u,
        Feature::SimLexical,
        &[("a", 1.0), ("b", 0.5), ("c", 0.0)],
    );
    check(&c, &u, Feature::Similarity, &[("b", 0.5), ("c", 0.3)]);
}

#[test]
fn source_agreement_counts_sources_present_in_the_set() {
    let c = items(vec![
        item("both").text(0.5).sim(SourceKind::Session, 0.5),
        item("one").sim(SourceKind::Session, 0.5),
        item("none"),
    ]);
    check(
        &c,
        &UserFeatures::default(),
        Feature::SourceAgreement,
        &[("both", 1.0), ("one", 0.5), ("none", 0.0)],
    );
}

#[test]
fn popularity_is_log_scaled_against_the_set_maximum() {
    let c = items(vec![
        item("zero").field("popularity", "0"),
        item("mid").field("popularity", "9"),
        item("top").field("popularity", "99"),
        item("missing"),
        item("garbage").field("popularity", "lots"),
        item("negative").field("popularity", "-5"),
    ]);
    check(
        &c,
        &UserFeatures::default(),
        Feature::Popularity,
        &[
            ("zero", 0.0),
            ("mid", 0.5),
            ("top", 1.0),
            ("missing", 0.0),
            ("garbage", 0.0),
            ("negative", 0.0),
        ],
    );
}

#[test]
fn popularity_uses_the_configured_maximum() {
    let reranker = Reranker::from_config(RerankerConfig {
        popularity_max: Some(999.0),
        ..RerankerConfig::default()
    })
    .unwrap();
    let c = items(vec![
        item("a").field("popularity", "99"),
        item("b").field("popularity", "5000"),
    ]);
    let ranked = rank(&reranker, "default", &c, &UserFeatures::default(), 10);
    assert_close(
        feature_of(&ranked, "a", Feature::Popularity),
        2.0 / 3.0,
        "a",
    );
    // above the configured maximum: clamped
    assert_close(feature_of(&ranked, "b", Feature::Popularity), 1.0, "b");
}

#[test]
fn category_and_brand_affinity_are_relative_to_the_users_strongest_like_or_dislike() {
    let user = UserFeatures {
        category_affinity: [
            ("tea".to_owned(), 2.0),
            ("coffee".to_owned(), 4.0),
            // skips push affinities below zero
            ("beer".to_owned(), -1.0),
            ("wine".to_owned(), -0.25),
        ]
        .into(),
        brand_affinity: [("acme".to_owned(), 0.3)].into(),
        ..UserFeatures::default()
    };
    let c = items(vec![
        item("t").category("tea").field("brand", "acme"),
        item("c").category("coffee").field("brand", "other"),
        item("x").category("milk"),
        item("b").category("beer"),
        item("w").category("wine"),
        item("none"),
    ]);
    check(
        &c,
        &user,
        Feature::CategoryAffinity,
        &[
            ("t", 0.5),
            ("c", 1.0),
            ("x", 0.0),
            ("b", -1.0),
            ("w", -0.25),
            ("none", 0.0),
        ],
    );
    check(
        &c,
        &user,
        Feature::BrandAffinity,
        &[("t", 1.0), ("c", 0.0), ("none", 0.0)],
    );
    // a cold-start user has no affinities at all
    check(
        &c,
        &UserFeatures::default(),
        Feature::CategoryAffinity,
        &[("t", 0.0), ("c", 0.0)],
    );
}

#[test]
fn price_fit_is_a_signed_gaussian_of_the_z_score() {
    let band = |mean, std_dev, count| UserFeatures {
        price_band: Some(PriceBand {
            mean,
            std_dev,
            count,
        }),
        ..UserFeatures::default()
    };
    let c = items(vec![
        item("at_mean").field("price", "10"),
        item("one_sd").field("price", "12"),
        item("far").field("price", "30"),
        item("no_price"),
        item("bad_price").field("price", "NaN"),
    ]);
    let one_sd = 2.0 * (-0.5f64).exp() - 1.0;
    check(
        &c,
        &band(10.0, 2.0, 20),
        Feature::PriceFit,
        &[
            ("at_mean", 1.0),
            ("one_sd", one_sd),
            ("far", -1.0),
            ("no_price", 0.0),
            ("bad_price", 0.0),
        ],
    );
    // no band (cold start) or an empty one: neutral for everyone
    check(
        &c,
        &UserFeatures::default(),
        Feature::PriceFit,
        &[("at_mean", 0.0), ("far", 0.0)],
    );
    check(
        &c,
        &band(10.0, 2.0, 0),
        Feature::PriceFit,
        &[("at_mean", 0.0), ("far", 0.0)],
    );
    // a band from one purchase has std dev 0: spread floored at 10% of the mean (1.0 here)
    let narrow = items(vec![item("p").field("price", "11")]);
    check(
        &narrow,
        &band(10.0, 0.0, 1),
        Feature::PriceFit,
        &[("p", one_sd)],
    );
    // a corrupt band never produces NaN: the spread falls back to the floor (1.0), z = 2
    let two_sd = 2.0 * (-2.0f64).exp() - 1.0;
    check(
        &c,
        &band(10.0, f64::NAN, 3),
        Feature::PriceFit,
        &[("one_sd", two_sd)],
    );
}

#[test]
fn freshness_halves_every_half_life_and_is_neutral_without_timestamps() {
    let fields = ItemFields::default();
    let user = UserFeatures::default();
    let t0: i64 = 1_700_000_000; // seconds
    let c = items(vec![
        item("new").field("created_at", &t0.to_string()),
        item("day_old").field("created_at", &(t0 - 86_400).to_string()),
        item("future").field("created_at", &(t0 + 3_600).to_string()),
        item("unknown"),
    ]);
    let reranker = Reranker::from_config(RerankerConfig {
        freshness: Some(FreshnessConfig {
            field: "created_at".into(),
            half_life_hours: 24.0,
        }),
        ..RerankerConfig::default()
    })
    .unwrap();
    let req = RerankRequest::new(&c, &user, &fields).k(10).explain(true);
    let ranked = reranker.rerank(&req.now_ms(t0 * 1000)).unwrap();
    for (id, want) in [
        ("new", 1.0),
        ("day_old", 0.5),
        ("future", 1.0),
        ("unknown", 0.0),
    ] {
        assert_close(feature_of(&ranked, id, Feature::Freshness), want, id);
    }
    // without a clock, or without the config (our catalog), freshness is 0 for all
    let no_clock = reranker.rerank(&req).unwrap();
    assert_close(
        feature_of(&no_clock, "new", Feature::Freshness),
        0.0,
        "no clock",
    );
    let no_config = Reranker::default().rerank(&req.now_ms(t0 * 1000)).unwrap();
    assert_close(
        feature_of(&no_config, "new", Feature::Freshness),
        0.0,
        "no config",
    );
}

#[test]
fn in_stock_is_signed_and_unknown_is_neutral() {
    let c = items(vec![
        item("one").field("in_stock", "1"),
        item("true").field("in_stock", "TRUE"),
        item("zero").field("in_stock", "0"),
        item("false").field("in_stock", "false"),
        item("missing"),
        item("odd").field("in_stock", "maybe"),
    ]);
    check(
        &c,
        &UserFeatures::default(),
        Feature::InStock,
        &[
            ("one", 1.0),
            ("true", 1.0),
            ("zero", -1.0),
            ("false", -1.0),
            ("missing", 0.0),
            ("odd", 0.0),
        ],
    );
}

#[test]
fn cart_seen_recency_and_purchase_history_come_from_the_user() {
    let interaction = |id: &str, event: &str, cat: Option<&str>| Interaction {
        item_id: id.into(),
        event: event.into(),
        category: cat.map(str::to_owned),
        at_ms: 0,
    };
    let user = UserFeatures {
        cart: ["carted".to_owned()].into(),
        seen: ["t".to_owned(), "x1".to_owned()].into(),
        // newest first; a skip is not a sign of interest
        recent: vec![
            interaction("s", "skip", Some("milk")),
            interaction("x1", "click", Some("tea")),
            interaction("bought", "purchase", Some("coffee")),
            interaction("x2", "click", Some("tea")),
            interaction("x3", "click", None),
        ],
        ..UserFeatures::default()
    };
    let c = items(vec![
        item("carted").category("milk"),
        item("t").category("tea"),
        item("bought").category("coffee"),
        item("x1").category("juice"),
    ]);
    check(&c, &user, Feature::InCart, &[("carted", 1.0), ("t", 0.0)]);
    check(
        &c,
        &user,
        Feature::Seen,
        &[("t", 1.0), ("x1", 1.0), ("carted", 0.0)],
    );
    check(
        &c,
        &user,
        Feature::CategoryRecency,
        &[("t", 1.0), ("bought", 0.5), ("carted", 0.0), ("x1", 0.0)],
    );
    // a click is not a purchase
    check(
        &c,
        &user,
        Feature::PurchasedBefore,
        &[("bought", 1.0), ("x1", 0.0), ("carted", 0.0)],
    );
}

#[test]
fn garbage_inputs_never_produce_nan() {
    let c = items(vec![
        item("a")
            .text(f32::NAN)
            .sim(SourceKind::Lexical, f32::INFINITY)
            .field("popularity", "inf")
            .field("price", "-inf"),
        item("b")
            .sim(SourceKind::Session, 3.0)
            .field("popularity", "1e308"),
    ]);
    let user = UserFeatures {
        category_affinity: [("x".to_owned(), f64::NAN)].into(),
        price_band: Some(PriceBand {
            mean: f64::INFINITY,
            std_dev: 1.0,
            count: 1,
        }),
        ..UserFeatures::default()
    };
    for profile in ["default", "discovery", "repurchase"] {
        let ranked = rank(&Reranker::default(), profile, &c, &user, 10);
        assert_eq!(ranked.len(), 2);
        for r in &ranked {
            assert!(
                r.score.is_finite(),
                "{profile}: score of {} is {}",
                r.id,
                r.score
            );
            for f in &r.explanation.as_ref().unwrap().features {
                assert!(
                    f.value.is_finite(),
                    "{profile}: {:?} of {}",
                    f.feature,
                    r.id
                );
            }
        }
        // similarities above 1 are clamped
        assert_close(feature_of(&ranked, "b", Feature::SimSession), 1.0, "clamp");
    }
}

#[test]
fn custom_field_names_are_honoured() {
    let fields = ItemFields {
        category: "product_category".into(),
        ..ItemFields::default()
    };
    let user = UserFeatures {
        category_affinity: [("tea".to_owned(), 1.0)].into(),
        ..UserFeatures::default()
    };
    let c = items(vec![item("a").field("product_category", "tea")]);
    let ranked = Reranker::default()
        .rerank(&RerankRequest::new(&c, &user, &fields).explain(true))
        .unwrap();
    assert_close(
        feature_of(&ranked, "a", Feature::CategoryAffinity),
        1.0,
        "a",
    );
}
