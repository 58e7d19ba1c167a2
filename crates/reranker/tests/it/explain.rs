//! Explanations: contributions plus adjustment lines sum to the score; the worked example of
//! docs/RANKING.md is this file's snapshot.

use redrec_core::{
    candidate::{Candidate, SourceKind},
    schema::ItemFields,
    user::{Interaction, PriceBand, UserFeatures},
};
use redrec_reranker::{Feature, FieldRule, RankProfile, RerankRequest, Reranker, RerankerConfig};

use crate::support::{item, items};

/// The shopper and catalogue slice of the worked example in docs/RANKING.md.
pub fn worked_example() -> (Vec<Candidate>, UserFeatures) {
    let candidates = items(vec![
        item("tea-green-20")
            .text(0.82)
            .sim(SourceKind::Session, 0.64)
            .category("tea")
            .field("brand", "leafy")
            .field("price", "3.49")
            .field("popularity", "120")
            .field("in_stock", "1")
            .vector(&[0.9, 0.1, 0.0]),
        item("tea-green-40")
            .text(0.81)
            .category("tea")
            .field("brand", "leafy")
            .field("price", "5.99")
            .field("popularity", "40")
            .field("in_stock", "1")
            .vector(&[0.89, 0.12, 0.0]),
        item("coffee-beans")
            .text(0.55)
            .sim(SourceKind::Session, 0.71)
            .category("coffee")
            .field("brand", "roastco")
            .field("price", "8.99")
            .field("popularity", "300")
            .field("in_stock", "1")
            .vector(&[0.2, 0.9, 0.1]),
        item("tea-mug")
            .text(0.60)
            .category("kitchen")
            .field("brand", "potter")
            .field("price", "12.00")
            .field("popularity", "15")
            .field("in_stock", "0")
            .vector(&[0.5, 0.0, 0.8]),
    ]);
    let user = UserFeatures {
        user_id: "u42".into(),
        known: true,
        category_affinity: [("tea".to_owned(), 3.2), ("coffee".to_owned(), 1.6)].into(),
        brand_affinity: [("leafy".to_owned(), 2.0)].into(),
        price_band: Some(PriceBand {
            mean: 4.5,
            std_dev: 2.0,
            count: 14,
        }),
        cart: ["tea-green-40".to_owned()].into(),
        recent: vec![Interaction {
            item_id: "coffee-filter".into(),
            event: "click".into(),
            category: Some("coffee".into()),
            at_ms: 1_764_140_000_000,
        }],
        ..UserFeatures::default()
    };
    (candidates, user)
}

#[test]
fn contributions_and_adjustments_sum_to_the_score_for_every_profile() {
    let (candidates, user) = worked_example();
    let fields = ItemFields::default();
    let reranker = Reranker::from_config(RerankerConfig {
        profiles: [(
            "promo".to_owned(),
            RankProfile {
                boost: vec![FieldRule {
                    field: "brand".into(),
                    value: "roastco".into(),
                    amount: 0.3,
                }],
                bury: vec![FieldRule {
                    field: "category".into(),
                    value: "tea".into(),
                    amount: 0.1,
                }],
                pins: vec![redrec_reranker::Pin {
                    id: "tea-mug".into(),
                    position: 2,
                }],
                ..redrec_reranker::profile::builtin_profiles()["default"].clone()
            },
        )]
        .into(),
        ..RerankerConfig::default()
    })
    .unwrap();
    for profile in reranker.profiles().names() {
        let ranked = reranker
            .rerank(
                &RerankRequest::new(&candidates, &user, &fields)
                    .profile(&profile)
                    .k(10)
                    .explain(true),
            )
            .unwrap();
        assert!(!ranked.is_empty());
        for (pos, r) in ranked.iter().enumerate() {
            let why = r.explanation.as_ref().unwrap();
            assert!(
                (why.total() - r.score).abs() < 1e-6,
                "{profile}/{}: {} vs {}",
                r.id,
                why.total(),
                r.score
            );
            assert_eq!(why.position, pos + 1);
            assert_eq!(why.features.len(), Feature::ALL.len());
            for line in &why.features {
                assert_eq!(line.contribution, line.value * line.weight + 0.0);
            }
        }
    }
    // and without explain, the same order and scores with no explanation attached
    let plain = reranker
        .rerank(
            &RerankRequest::new(&candidates, &user, &fields)
                .profile("promo")
                .k(10),
        )
        .unwrap();
    let explained = reranker
        .rerank(
            &RerankRequest::new(&candidates, &user, &fields)
                .profile("promo")
                .k(10)
                .explain(true),
        )
        .unwrap();
    assert!(plain.iter().all(|r| r.explanation.is_none()));
    assert_eq!(
        plain.iter().map(|r| (&r.id, r.score)).collect::<Vec<_>>(),
        explained
            .iter()
            .map(|r| (&r.id, r.score))
            .collect::<Vec<_>>()
    );
    assert_eq!(explained[1].id, "tea-mug");
}

/// A compact rendering of an explained list: the worked example of docs/RANKING.md.
fn render(ranked: &[redrec_reranker::RankedItem]) -> String {
    let mut out = String::new();
    for r in ranked {
        let why = r.explanation.as_ref().unwrap();
        out += &format!(
            "#{} {} score={:.4} (relevance rank {})\n",
            why.position, r.id, r.score, why.relevance_rank
        );
        for f in why
            .features
            .iter()
            .filter(|f| f.weight != 0.0 || f.value != 0.0)
        {
            out += &format!(
                "  {:<18} value={:>7.4} weight={:>5.2} -> {:+.4}\n",
                f.feature.name(),
                f.value,
                f.weight,
                f.contribution
            );
        }
        for a in &why.adjustments {
            out += &format!("  {:?}: {} -> {:+.4}\n", a.kind, a.reason, a.amount);
        }
        if let Some(m) = why.diversity {
            out += &format!(
                "  mmr: lambda={} normalized_relevance={:.4} max_similarity={:.4} mmr_value={:.4}\n",
                m.lambda, m.normalized_relevance, m.max_similarity, m.mmr_value
            );
        }
    }
    out
}

#[test]
fn worked_example_default_profile() {
    let (candidates, user) = worked_example();
    let fields = ItemFields::default();
    let ranked = Reranker::default()
        .rerank(
            &RerankRequest::new(&candidates, &user, &fields)
                .profile("default")
                .k(3)
                .explain(true),
        )
        .unwrap();
    expect_test::expect![[r#"
        #1 tea-green-20 score=1.6221 (relevance rank 1)
          similarity         value= 0.8200 weight= 1.00 -> +0.8200
          sim_query_text     value= 0.8200 weight= 0.00 -> +0.0000
          sim_session        value= 0.6400 weight= 0.00 -> +0.0000
          source_agreement   value= 1.0000 weight= 0.10 -> +0.1000
          popularity         value= 0.8403 weight= 0.15 -> +0.1260
          category_affinity  value= 1.0000 weight= 0.30 -> +0.3000
          brand_affinity     value= 1.0000 weight= 0.15 -> +0.1500
          price_fit          value= 0.7606 weight= 0.10 -> +0.0761
          freshness          value= 0.0000 weight= 0.05 -> +0.0000
          in_stock           value= 1.0000 weight= 0.05 -> +0.0500
          in_cart            value= 0.0000 weight=-0.20 -> +0.0000
          category_recency   value= 0.0000 weight= 0.20 -> +0.0000
          purchased_before   value= 0.0000 weight= 2.00 -> +0.0000
          purchase_frequency value= 0.0000 weight=20.00 -> +0.0000
          seen               value= 0.0000 weight=-0.05 -> +0.0000
          Diversity: mmr lambda 0.8: relevance rank 1 placed at position 1 (max similarity to earlier results 0.000) -> +0.0000
          mmr: lambda=0.8 normalized_relevance=1.0000 max_similarity=0.0000 mmr_value=0.8000
        #2 coffee-beans score=1.2761 (relevance rank 3)
          similarity         value= 0.7100 weight= 1.00 -> +0.7100
          sim_query_text     value= 0.5500 weight= 0.00 -> +0.0000
          sim_session        value= 0.7100 weight= 0.00 -> +0.0000
          source_agreement   value= 1.0000 weight= 0.10 -> +0.1000
          popularity         value= 1.0000 weight= 0.15 -> +0.1500
          category_affinity  value= 0.5000 weight= 0.30 -> +0.1500
          brand_affinity     value= 0.0000 weight= 0.15 -> +0.0000
          price_fit          value=-0.8391 weight= 0.10 -> -0.0839
          freshness          value= 0.0000 weight= 0.05 -> +0.0000
          in_stock           value= 1.0000 weight= 0.05 -> +0.0500
          in_cart            value= 0.0000 weight=-0.20 -> +0.0000
          category_recency   value= 1.0000 weight= 0.20 -> +0.2000
          purchased_before   value= 0.0000 weight= 2.00 -> +0.0000
          purchase_frequency value= 0.0000 weight=20.00 -> +0.0000
          seen               value= 0.0000 weight=-0.05 -> +0.0000
          Diversity: mmr lambda 0.8: relevance rank 3 placed at position 2 (max similarity to earlier results 0.322) -> +0.0000
          mmr: lambda=0.8 normalized_relevance=0.6702 max_similarity=0.3215 mmr_value=0.4718
        #3 tea-green-40 score=1.3091 (relevance rank 2)
          similarity         value= 0.8100 weight= 1.00 -> +0.8100
          sim_query_text     value= 0.8100 weight= 0.00 -> +0.0000
          source_agreement   value= 0.5000 weight= 0.10 -> +0.0500
          popularity         value= 0.6507 weight= 0.15 -> +0.0976
          category_affinity  value= 1.0000 weight= 0.30 -> +0.3000
          brand_affinity     value= 1.0000 weight= 0.15 -> +0.1500
          price_fit          value= 0.5153 weight= 0.10 -> +0.0515
          freshness          value= 0.0000 weight= 0.05 -> +0.0000
          in_stock           value= 1.0000 weight= 0.05 -> +0.0500
          in_cart            value= 1.0000 weight=-0.20 -> -0.2000
          category_recency   value= 0.0000 weight= 0.20 -> +0.0000
          purchased_before   value= 0.0000 weight= 2.00 -> +0.0000
          purchase_frequency value= 0.0000 weight=20.00 -> +0.0000
          seen               value= 0.0000 weight=-0.05 -> +0.0000
          Diversity: mmr lambda 0.8: relevance rank 2 placed at position 3 (max similarity to earlier results 1.000) -> +0.0000
          mmr: lambda=0.8 normalized_relevance=0.7017 max_similarity=0.9997 mmr_value=0.3614
    "#]]
    .assert_eq(&render(&ranked));
}

#[test]
fn worked_example_json_shape() {
    let (candidates, user) = worked_example();
    let fields = ItemFields::default();
    let ranked = Reranker::default()
        .rerank(
            &RerankRequest::new(&candidates, &user, &fields)
                .profile("discovery")
                .k(1)
                .explain(true),
        )
        .unwrap();
    let json = serde_json::to_value(&ranked[0]).unwrap();
    assert_eq!(json["id"], "tea-green-20");
    let why = &json["explanation"];
    assert_eq!(why["profile"], "discovery");
    assert_eq!(why["features"][0]["feature"], "similarity");
    assert_eq!(why["adjustments"][0]["kind"], "diversity");
    assert!(why["diversity"]["mmr_value"].is_number());
    // round-trips for clients written in Rust
    let back: redrec_reranker::RankedItem = serde_json::from_value(json).unwrap();
    assert_eq!(back, ranked[0]);
}

/// The fenced block of `lang` that follows `heading` in docs/RANKING.md.
fn doc_block(heading: &str, lang: &str) -> &'static str {
    let doc = include_str!("../../../../docs/RANKING.md");
    let after = &doc[doc.find(heading).expect("heading in docs/RANKING.md")..];
    let fence = format!("```{lang}\n");
    let start = after.find(&fence).expect("fenced block") + fence.len();
    let len = after[start..].find("```").expect("closed block");
    &after[start..start + len]
}

#[test]
fn docs_show_the_real_worked_example() {
    let (candidates, user) = worked_example();
    let fields = ItemFields::default();
    let ranked = Reranker::default()
        .rerank(
            &RerankRequest::new(&candidates, &user, &fields)
                .profile("default")
                .k(3)
                .explain(true),
        )
        .unwrap();
    assert_eq!(doc_block("### Worked example", "text"), render(&ranked));

    // the JSON block is the second result, with an abbreviated feature list
    let doc: serde_json::Value =
        serde_json::from_str(doc_block("### Worked example", "json")).unwrap();
    // through text, as a client sees it (f32 similarities print short)
    let mut actual: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&ranked[1]).unwrap()).unwrap();
    let shown: Vec<serde_json::Value> = doc["explanation"]["features"].as_array().unwrap().clone();
    let all = actual["explanation"]["features"]
        .as_array()
        .unwrap()
        .clone();
    for f in &shown {
        assert!(all.contains(f), "{f} is not in the real explanation");
    }
    actual["explanation"]["features"] = serde_json::Value::Array(shown);
    assert_eq!(doc, actual);
}
