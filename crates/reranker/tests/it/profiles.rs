//! Profile selection, built-ins, overrides and validation errors that name the wrong key.

use std::collections::BTreeMap;

use redrec_core::{schema::ItemFields, user::UserFeatures};
use redrec_reranker::{
    DiversityConfig, Error, Feature, FieldRule, Pin, RankProfile, RankProfiles, RerankRequest,
    Reranker, RerankerConfig,
};

use crate::support::{ids, item, items, rank, reranker_with, weighted};

#[test]
fn builtin_profiles_exist_without_config() {
    let profiles = RankProfiles::builtin();
    assert_eq!(profiles.names(), ["default", "discovery", "repurchase"]);
    assert_eq!(Reranker::default().profiles(), &profiles);
    let discovery = profiles.get("discovery").unwrap();
    assert_eq!(discovery.mmr_lambda(), Some(0.5));
    assert_eq!(discovery.max_per_category(), Some(3));
    assert!(discovery.drop_out_of_stock());
    assert_eq!(profiles.get("repurchase").unwrap().mmr_lambda(), None);
}

#[test]
fn unknown_profile_is_a_typed_error_listing_the_available_ones() {
    let c = items(vec![item("a").text(0.5)]);
    let user = UserFeatures::default();
    let fields = ItemFields::default();
    let err = Reranker::default()
        .rerank(&RerankRequest::new(&c, &user, &fields).profile("discovry"))
        .unwrap_err();
    assert_eq!(
        err,
        Error::UnknownProfile {
            name: "discovry".into(),
            available: vec!["default".into(), "discovery".into(), "repurchase".into()],
        }
    );
    assert_eq!(
        err.to_string(),
        "unknown rank profile `discovry`; available profiles: default, discovery, repurchase"
    );
}

#[test]
fn k_zero_is_rejected_naming_the_field() {
    let c = items(vec![item("a").text(0.5)]);
    let (user, fields) = (UserFeatures::default(), ItemFields::default());
    let err = Reranker::default()
        .rerank(&RerankRequest::new(&c, &user, &fields).k(0))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Request { field, .. } if field == "k"),
        "{err}"
    );
}

#[test]
fn the_requested_profile_decides_the_order() {
    // "fav" is less similar but in the user's favourite category and bought before
    let c = items(vec![
        item("similar").text(0.9).category("tea"),
        item("fav").text(0.5).category("coffee"),
    ]);
    let user = UserFeatures {
        category_affinity: [("coffee".to_owned(), 5.0)].into(),
        recent: vec![redrec_core::user::Interaction {
            item_id: "fav".into(),
            event: "purchase".into(),
            category: Some("coffee".into()),
            at_ms: 0,
        }],
        ..UserFeatures::default()
    };
    let reranker = Reranker::default();
    assert_eq!(
        ids(&rank(&reranker, "repurchase", &c, &user, 2)),
        ["fav", "similar"]
    );
    assert_eq!(
        ids(&rank(&reranker, "discovery", &c, &user, 2)),
        ["similar", "fav"]
    );
    // a custom profile that weighs only similarity
    let custom = reranker_with(&[("plain", weighted(&[(Feature::Similarity, 1.0)]))]);
    let ranked = rank(&custom, "plain", &c, &user, 2);
    assert_eq!(ids(&ranked), ["similar", "fav"]);
    assert_eq!(ranked[0].explanation.as_ref().unwrap().profile, "plain");
    assert_eq!(ranked[0].score, 0.9);
}

#[test]
fn a_configured_profile_replaces_the_builtin_of_the_same_name() {
    let reranker = reranker_with(&[("default", weighted(&[(Feature::Popularity, 1.0)]))]);
    let profile = reranker.profiles().get("default").unwrap();
    assert_eq!(profile.weight(Feature::Popularity), 1.0);
    assert_eq!(profile.weight(Feature::Similarity), 0.0);
    assert_eq!(profile.mmr_lambda(), None);
    assert_eq!(
        reranker.profiles().names(),
        ["default", "discovery", "repurchase"]
    );
}

/// Builds a config with one profile `p` and returns the validation error's key and message.
fn invalid(profile: RankProfile) -> (String, String) {
    invalid_config(RerankerConfig {
        profiles: BTreeMap::from([("p".to_owned(), profile)]),
        ..RerankerConfig::default()
    })
}

fn invalid_config(config: RerankerConfig) -> (String, String) {
    match RankProfiles::new(config) {
        Err(Error::Config { key, message }) => (key, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

fn with_weight(name: &str, w: f64) -> RankProfile {
    RankProfile {
        weights: BTreeMap::from([(name.to_owned(), w)]),
        ..RankProfile::default()
    }
}

#[test]
fn validation_names_the_wrong_key() {
    let (key, message) = invalid(with_weight("simlarity", 1.0));
    assert_eq!(key, "profiles.p.weights.simlarity");
    assert!(message.starts_with("unknown feature `simlarity`; expected one of: similarity, "));

    let (key, message) = invalid(with_weight("popularity", f64::NAN));
    assert_eq!(key, "profiles.p.weights.popularity");
    assert_eq!(message, "expected a finite weight, got NaN");
    assert_eq!(
        invalid(with_weight("price_fit", f64::INFINITY)).0,
        "profiles.p.weights.price_fit"
    );
    let (key, message) = invalid(with_weight("in_cart", -2e6));
    assert_eq!(key, "profiles.p.weights.in_cart");
    assert_eq!(message, "expected a weight in [-1e6, 1e6], got -2000000");

    let lambda = |l: f64| RankProfile {
        diversity: DiversityConfig {
            mmr_lambda: Some(l),
            max_per_category: None,
        },
        ..RankProfile::default()
    };
    for bad in [1.5, -0.1, f64::NAN] {
        assert_eq!(
            invalid(lambda(bad)).0,
            "profiles.p.diversity.mmr_lambda",
            "{bad}"
        );
    }
    assert!(
        RankProfiles::new(RerankerConfig {
            profiles: BTreeMap::from([
                ("zero".to_owned(), lambda(0.0)),
                ("one".to_owned(), lambda(1.0))
            ]),
            ..RerankerConfig::default()
        })
        .is_ok()
    );

    let cap0 = RankProfile {
        diversity: DiversityConfig {
            mmr_lambda: None,
            max_per_category: Some(0),
        },
        ..RankProfile::default()
    };
    assert_eq!(invalid(cap0).0, "profiles.p.diversity.max_per_category");

    let pins = |pins: Vec<(&str, usize)>| RankProfile {
        pins: pins
            .into_iter()
            .map(|(id, position)| Pin {
                id: id.into(),
                position,
            })
            .collect(),
        ..RankProfile::default()
    };
    assert_eq!(
        invalid(pins(vec![("a", 0)])).0,
        "profiles.p.pins[0].position"
    );
    assert_eq!(
        invalid(pins(vec![("a", 1001)])).0,
        "profiles.p.pins[0].position"
    );
    let (key, message) = invalid(pins(vec![("a", 1), ("b", 1)]));
    assert_eq!(
        (key.as_str(), message.as_str()),
        ("profiles.p.pins[1].position", "position 1 is pinned twice")
    );
    assert_eq!(
        invalid(pins(vec![("a", 1), ("a", 2)])).0,
        "profiles.p.pins[1].id"
    );
    assert_eq!(invalid(pins(vec![("", 1)])).0, "profiles.p.pins[0].id");

    let rule = |amount: f64, field: &str, value: &str| FieldRule {
        field: field.into(),
        value: value.into(),
        amount,
    };
    let boost = |r: FieldRule| RankProfile {
        boost: vec![r],
        ..RankProfile::default()
    };
    let bury = |r: FieldRule| RankProfile {
        bury: vec![r],
        ..RankProfile::default()
    };
    assert_eq!(
        invalid(boost(rule(-1.0, "brand", "x"))).0,
        "profiles.p.boost[0].amount"
    );
    assert_eq!(
        invalid(bury(rule(f64::NAN, "brand", "x"))).0,
        "profiles.p.bury[0].amount"
    );
    assert_eq!(
        invalid(bury(rule(1e7, "brand", "x"))).0,
        "profiles.p.bury[0].amount"
    );
    assert_eq!(
        invalid(bury(rule(1.0, " ", "x"))).0,
        "profiles.p.bury[0].field"
    );
    assert_eq!(
        invalid(boost(rule(1.0, "brand", ""))).0,
        "profiles.p.boost[0].value"
    );

    let (key, _) = invalid_config(RerankerConfig {
        profiles: BTreeMap::from([("has space".to_owned(), RankProfile::default())]),
        ..RerankerConfig::default()
    });
    assert_eq!(key, "profiles.has space");
    let (key, _) = invalid_config(RerankerConfig {
        popularity_max: Some(0.0),
        ..RerankerConfig::default()
    });
    assert_eq!(key, "popularity_max");
    let (key, _) = invalid_config(RerankerConfig {
        freshness: Some(redrec_reranker::FreshnessConfig {
            field: "created_at".into(),
            half_life_hours: -1.0,
        }),
        ..RerankerConfig::default()
    });
    assert_eq!(key, "freshness.half_life_hours");
}

#[test]
fn config_errors_render_the_key() {
    let err = RankProfiles::new(RerankerConfig {
        profiles: BTreeMap::from([("p".to_owned(), with_weight("nope", 1.0))]),
        ..RerankerConfig::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "invalid reranker config at `profiles.p.weights.nope`: unknown feature `nope`"
        ),
        "{err}"
    );
}

fn extending(base: &str, profile: RankProfile) -> RankProfile {
    RankProfile {
        extends: Some(base.into()),
        ..profile
    }
}

fn profiles(list: Vec<(&str, RankProfile)>) -> redrec_reranker::Result<RankProfiles> {
    RankProfiles::new(RerankerConfig {
        profiles: list.into_iter().map(|(n, p)| (n.to_owned(), p)).collect(),
        ..RerankerConfig::default()
    })
}

#[test]
fn extends_merges_weights_and_inherits_unset_settings() {
    let bury = FieldRule {
        field: "department".into(),
        value: "KIOSK-GAS".into(),
        amount: 1.0,
    };
    let set = profiles(vec![
        // the built-in default plus one rule: `default` extending itself means the built-in
        (
            "default",
            extending(
                "default",
                RankProfile {
                    bury: vec![bury.clone()],
                    ..RankProfile::default()
                },
            ),
        ),
        // a chain: seasonal -> discovery (built-in)
        (
            "seasonal",
            extending("discovery", with_weight("freshness", 0.5)),
        ),
        // and one more level, overriding a list and an option
        (
            "seasonal_all_stock",
            extending(
                "seasonal",
                RankProfile {
                    drop_out_of_stock: Some(false),
                    pins: vec![Pin {
                        id: "x".into(),
                        position: 1,
                    }],
                    ..with_weight("similarity", 2.0)
                },
            ),
        ),
    ])
    .unwrap();

    let builtin = RankProfiles::builtin();
    let default = set.get("default").unwrap();
    assert_eq!(default.weights, builtin.get("default").unwrap().weights);
    assert_eq!(default.config.bury, [bury]);
    assert_eq!(default.mmr_lambda(), Some(0.8));

    let seasonal = set.get("seasonal").unwrap();
    assert_eq!(seasonal.weight(Feature::Freshness), 0.5);
    assert_eq!(seasonal.weight(Feature::Similarity), 1.0);
    assert_eq!(seasonal.weight(Feature::InCart), -0.5);
    assert_eq!(seasonal.max_per_category(), Some(3));
    assert!(seasonal.drop_out_of_stock());
    assert_eq!(seasonal.config.extends, None);

    let leaf = set.get("seasonal_all_stock").unwrap();
    assert_eq!(leaf.weight(Feature::Similarity), 2.0);
    assert_eq!(leaf.weight(Feature::Freshness), 0.5);
    assert!(!leaf.drop_out_of_stock());
    assert_eq!(leaf.mmr_lambda(), Some(0.5));
    assert_eq!(leaf.config.pins.len(), 1);
}

#[test]
fn extends_errors_name_the_profile_and_the_problem() {
    let err = |list| match profiles(list) {
        Err(Error::Config { key, message }) => (key, message),
        other => panic!("expected a config error, got {other:?}"),
    };
    let (key, message) = err(vec![("p", extending("nope", RankProfile::default()))]);
    assert_eq!(key, "profiles.p.extends");
    assert_eq!(
        message,
        "unknown profile `nope`; available profiles: default, discovery, p, repurchase"
    );
    let (key, message) = err(vec![
        ("a", extending("b", RankProfile::default())),
        ("b", extending("a", RankProfile::default())),
    ]);
    assert_eq!(key, "profiles.b.extends");
    assert_eq!(
        message,
        "profiles extend each other in a cycle: a -> b -> a"
    );
    let (key, message) = err(vec![("solo", extending("solo", RankProfile::default()))]);
    assert_eq!(key, "profiles.solo.extends");
    assert_eq!(
        message,
        "`solo` extends itself and there is no built-in `solo`"
    );
    // an invalid value is reported where it is written, not where it is inherited
    let (key, _) = err(vec![
        ("base", with_weight("similarity", f64::NAN)),
        ("a_child", extending("base", RankProfile::default())),
    ]);
    assert_eq!(key, "profiles.base.weights.similarity");
}
