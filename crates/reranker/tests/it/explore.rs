//! The explore rule: never-bought candidates of the collaborative sources take the places of
//! weak repeat purchases (decayed count below `below_count`), at most `slots` of them.

use redrec_core::{
    candidate::SourceKind,
    user::{PurchaseFrequency, UserFeatures},
};
use redrec_reranker::{
    AdjustmentKind, ExploreConfig, Feature, RankProfile, RankProfiles, RerankerConfig,
};

use crate::support::{assert_close, ids, item, items, rank, reranker_with, weighted};

fn user() -> UserFeatures {
    let bought = |id: &str, count: f64| PurchaseFrequency {
        item_id: id.into(),
        // read a while after the latest event: the score has decayed, the count has not
        score: count / 2.0,
        count,
    };
    UserFeatures {
        user_id: "u".into(),
        known: true,
        purchases: vec![
            bought("h1", 5.0),
            bought("h2", 3.0),
            bought("h3", 0.5),
            bought("h4", 0.2),
        ],
        ..UserFeatures::default()
    }
}

fn candidates() -> Vec<redrec_core::candidate::Candidate> {
    let h = |id: &str, s: f32| item(id).sim(SourceKind::History, s);
    items(vec![
        h("h1", 1.0),
        h("h2", 0.6).sim(SourceKind::CfLongTerm, 0.99),
        h("h3", 0.1),
        h("h4", 0.04),
        item("c1").sim(SourceKind::CfLongTerm, 0.9),
        item("c2").sim(SourceKind::CfSession, 0.8),
        item("c3").sim(SourceKind::CfLongTerm, 0.7),
        // popular and never bought: an explore candidate, ordered by its popularity only
        // when the rule weighs popularity
        item("p1")
            .sim(SourceKind::Popular, 0.95)
            .field("popularity", "100"),
    ])
}

fn profile(slots: Option<usize>, below: Option<f64>) -> RankProfile {
    RankProfile {
        explore: ExploreConfig {
            slots,
            below_count: below,
            popularity_weight: None,
        },
        ..weighted(&[
            (Feature::Similarity, 1.0),
            (Feature::PurchasedBefore, 2.0),
            (Feature::PurchaseFrequency, 4.0),
        ])
    }
}

#[test]
fn explore_items_take_the_places_of_weak_repeats() {
    let r = reranker_with(&[
        ("ex", profile(Some(2), Some(1.0))),
        ("ex_low", profile(Some(2), Some(0.3))),
        ("off", profile(None, Some(1.0))),
        (
            "ex_pop",
            RankProfile {
                explore: ExploreConfig {
                    popularity_weight: Some(1.0),
                    ..profile(Some(2), Some(1.0)).explore
                },
                ..profile(None, None)
            },
        ),
    ]);
    let (c, u) = (candidates(), user());
    // without the rule: every repeat purchase first
    assert_eq!(
        ids(&rank(&r, "off", &c, &u, 6)),
        ["h1", "h2", "h3", "h4", "p1", "c1"]
    );
    // h3 (count 0.5) and h4 (0.2) are weak: the two best explore items go before h3
    let ranked = rank(&r, "ex", &c, &u, 6);
    assert_eq!(ids(&ranked), ["h1", "h2", "c1", "c2", "h3", "h4"]);
    // a short list: the explore item still takes the first weak place
    assert_eq!(ids(&rank(&r, "ex", &c, &u, 3)), ["h1", "h2", "c1"]);
    // weighing popularity: p1 (popularity 1.0) beats c1 (similarity 0.9)
    assert_eq!(
        ids(&rank(&r, "ex_pop", &c, &u, 6)),
        ["h1", "h2", "p1", "c1", "h3", "h4"]
    );
    // only h4 is below 0.3
    assert_eq!(
        ids(&rank(&r, "ex_low", &c, &u, 6)),
        ["h1", "h2", "h3", "c1", "c2", "h4"]
    );

    // the lift is an explanation line, and the explanation still adds up to the score
    let c1 = &ranked[2];
    let why = c1.explanation.as_ref().unwrap();
    let lift = why
        .adjustments
        .iter()
        .find(|a| a.kind == AdjustmentKind::Explore)
        .expect("explore line");
    assert!(lift.amount > 0.0);
    assert!(
        lift.reason.contains("`h3`") && lift.reason.contains("0.500"),
        "{}",
        lift.reason
    );
    assert_close(why.total(), c1.score, "explanation total");
    assert!(c1.score > ranked[4].score && c1.score > ranked[3].score);
    // h2 was bought: a cf hit does not make it an explore item
    assert!(
        ranked[1]
            .explanation
            .as_ref()
            .unwrap()
            .adjustments
            .is_empty()
    );
}

#[test]
fn a_user_without_weak_repeats_or_explore_candidates_is_unchanged() {
    let r = reranker_with(&[("ex", profile(Some(3), Some(1.0)))]);
    let u = user();
    let strong: Vec<_> = candidates()
        .into_iter()
        .filter(|c| c.id == "h1" || c.id == "h2" || c.id.starts_with('c'))
        .collect();
    assert_eq!(
        ids(&rank(&r, "ex", &strong, &u, 4)),
        ["h1", "h2", "c1", "c2"]
    );
    let no_cf: Vec<_> = candidates()
        .into_iter()
        .filter(|c| !c.id.starts_with('c'))
        .collect();
    // the popular item is the only explore candidate left: it takes weak h3's place
    assert_eq!(
        ids(&rank(&r, "ex", &no_cf, &u, 5)),
        ["h1", "h2", "p1", "h3", "h4"]
    );
    let no_candidates: Vec<_> = candidates()
        .into_iter()
        .filter(|c| c.id.starts_with('h'))
        .collect();
    assert_eq!(
        ids(&rank(&r, "ex", &no_candidates, &u, 5)),
        ["h1", "h2", "h3", "h4"]
    );
}

#[test]
fn profile_switches_and_validation() {
    let p = RankProfiles::builtin();
    let d = p.get("default").unwrap();
    assert!(d.history_source() && d.collaborative_sources());
    let disc = p.get("discovery").unwrap();
    assert!(
        !disc.history_source(),
        "exclude_purchased means no history source"
    );
    // a profile extending default inherits its explore rule and may switch sources off
    let p = RankProfiles::new(RerankerConfig {
        profiles: [(
            "text_only".to_owned(),
            RankProfile {
                extends: Some("default".into()),
                history_source: Some(false),
                collaborative_sources: Some(false),
                ..RankProfile::default()
            },
        )]
        .into(),
        ..RerankerConfig::default()
    })
    .unwrap();
    let t = p.get("text_only").unwrap();
    assert!(!t.history_source() && !t.collaborative_sources());
    assert_eq!(t.explore(), p.get("default").unwrap().explore());

    let bad = |explore: ExploreConfig| {
        RankProfiles::new(RerankerConfig {
            profiles: [(
                "p".to_owned(),
                RankProfile {
                    explore,
                    ..RankProfile::default()
                },
            )]
            .into(),
            ..RerankerConfig::default()
        })
        .unwrap_err()
        .to_string()
    };
    let e = bad(ExploreConfig {
        slots: Some(2),
        below_count: Some(-1.0),
        popularity_weight: None,
    });
    assert!(e.contains("profiles.p.explore.below_count"), "{e}");
    let e = bad(ExploreConfig {
        slots: Some(5000),
        below_count: Some(1.0),
        popularity_weight: None,
    });
    assert!(e.contains("profiles.p.explore.slots"), "{e}");
    let e = bad(ExploreConfig {
        popularity_weight: Some(f64::NAN),
        ..ExploreConfig::default()
    });
    assert!(e.contains("profiles.p.explore.popularity_weight"), "{e}");
}
