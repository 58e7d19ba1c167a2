//! Text + vector fusion through the client-side path (the embedded server has no FT.HYBRID),
//! on a hand-checked example.

use redrec_core::candidate::SourceKind;
use redrec_core::filter::Filter;
use redrec_core::hybrid::Fusion;
use redrec_core::vector;
use redrec_retriever::{FusionPath, RetrievalRequest, RetrieverConfig, Source};
use redrec_testkit::TestSpace;

use crate::support::{self, Item};

/// Five items. Query "apple" ranks A > B > D by BM25 (C and E lack the word); the query
/// vector [0, 1, 0, 0] ranks C > E > D > B > A by cosine. The BM25 order comes from the term
/// counts (3, 2, 1): RediSearch 2.10's BM25 normalises by the average document length only, so
/// equal counts would tie and the server breaks ties in no guaranteed order.
fn items() -> Vec<Item> {
    let item = |id: &str, text: &str, v: [f32; 4], cat: &str| {
        let mut v = v.to_vec();
        vector::normalize(&mut v).unwrap();
        Item {
            id: id.into(),
            vector: v,
            fields: support::fields(&[
                ("text", text.into()),
                ("category", cat.into()),
                ("popularity", "1".into()),
            ]),
        }
    };
    vec![
        item("A", "apple apple apple pie", [1.0, 0.1, 0.0, 0.0], "X"),
        item("B", "apple apple cherry pie", [1.0, 0.5, 0.0, 0.0], "Y"),
        item("C", "banana split pie", [0.2, 1.0, 0.0, 0.0], "Y"),
        item("D", "apple banana split pie", [1.0, 1.0, 0.0, 0.0], "Y"),
        item("E", "cherry tart", [0.0, 1.0, 0.5, 0.0], "Y"),
    ]
}

#[tokio::test]
async fn rrf_fuses_bm25_and_knn_in_the_hand_checked_order() {
    let space = TestSpace::new("rrf");
    let schema = support::schema(&space.ns, 4);
    support::create_index(&space, &schema).await;
    support::load(&space, &items(), 10).await;
    let mut r = support::retriever(&space, &schema, RetrieverConfig::default());
    assert_eq!(
        r.detect_hybrid().await.unwrap(),
        None,
        "RediSearch 2.10 has no FT.HYBRID"
    );

    let text = Source::Text {
        text: "apple".into(),
        vector: vec![0.0, 1.0, 0.0, 0.0],
    };
    let got = r
        .retrieve(&RetrievalRequest::new(vec![text.clone()], 5))
        .await
        .unwrap();
    assert_eq!(got.fusion, FusionPath::Client);
    assert_eq!(got.round_trips, 1);
    let order: Vec<&str> = got.candidates.iter().map(|c| c.id.as_str()).collect();
    // RRF, constant 60, ranks from 1:
    // A 1/61 + 1/65 = .031778 ; B 1/62 + 1/64 = .031754 ; D 1/63 + 1/63 = .031746
    // C 1/61 = .016393 ; E 1/62 = .016129
    assert_eq!(order, ["A", "B", "D", "C", "E"]);
    let a = &got.candidates[0];
    let lexical = a
        .sources
        .iter()
        .find(|s| s.source == SourceKind::Lexical)
        .unwrap();
    let semantic = a
        .sources
        .iter()
        .find(|s| s.source == SourceKind::QueryText)
        .unwrap();
    assert_eq!((lexical.rank, semantic.rank), (0, 4));
    assert!(lexical.similarity > 0.0);
    assert!((semantic.similarity - 0.0995).abs() < 1e-3, "{semantic:?}");
    assert_eq!(
        got.candidates[3].sources.len(),
        1,
        "C only matched the vector side"
    );

    // vectors asked for (MMR): fused text entries carry none from the search, so the winners'
    // vectors are read in a second round trip, and they are the stored ones
    let mut req = RetrievalRequest::new(vec![text.clone()], 5);
    req.with_vectors = true;
    let with = r.retrieve(&req).await.unwrap();
    assert_eq!(with.round_trips, 2);
    for c in &with.candidates {
        let stored = &items().into_iter().find(|i| i.id == c.id).unwrap().vector;
        assert_eq!(c.vector.as_ref(), Some(stored), "{}", c.id);
    }

    // the filter applies to both sides: without A, B leads
    let mut req = RetrievalRequest::new(vec![text.clone()], 5);
    req.filter = Filter::tag_not_any("category", ["X"]);
    let got = r.retrieve(&req).await.unwrap();
    let order: Vec<&str> = got.candidates.iter().map(|c| c.id.as_str()).collect();
    // Without A both sides list B and D, C and E only the vector side. The BM25 order of B
    // (two "apple" in four words) and D (one) is not fixed on RediSearch 2.10: under concurrent
    // load on the same server its length normalisation was seen to rank D first (CI and a local
    // stress loop), so the order is checked against RRF of the ranks the server returned.
    assert!(order.iter().all(|id| *id != "A"), "{order:?}");
    assert_eq!(&order[2..], ["C", "E"], "{:#?}", got.candidates);
    let rrf = |c: &redrec_core::candidate::Candidate| -> f64 {
        c.sources
            .iter()
            .map(|s| 1.0 / (61.0 + f64::from(s.rank)))
            .sum()
    };
    assert!(
        rrf(&got.candidates[0]) > rrf(&got.candidates[1]),
        "{:#?}",
        got.candidates
    );
    assert!(
        got.candidates[..2].iter().all(|c| c.sources.len() == 2),
        "{:#?}",
        got.candidates
    );

    // a window of 1 keeps only each side's best: A (text) and C (vector), tied, A by id
    let narrow = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            fusion: Fusion::Rrf {
                constant: 60.0,
                window: 1,
            },
            ..RetrieverConfig::default()
        },
    );
    let got = narrow
        .retrieve(&RetrievalRequest::new(vec![text], 1))
        .await
        .unwrap();
    assert_eq!(got.candidates.len(), 1);
    assert!(["A", "C"].contains(&got.candidates[0].id.as_str()));
}

#[tokio::test]
async fn linear_fusion_orders_by_weighted_scores() {
    let space = TestSpace::new("linear");
    let schema = support::schema(&space.ns, 4);
    support::create_index(&space, &schema).await;
    support::load(&space, &items(), 10).await;
    let (alpha, beta) = (0.7, 0.3);
    let r = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            fusion: Fusion::Linear {
                alpha,
                beta,
                window: 20,
            },
            ..RetrieverConfig::default()
        },
    );
    let got = r
        .retrieve(&RetrievalRequest::new(
            vec![Source::Text {
                text: "apple".into(),
                vector: vec![0.0, 1.0, 0.0, 0.0],
            }],
            5,
        ))
        .await
        .unwrap();
    let max_text = got
        .candidates
        .iter()
        .flat_map(|c| c.sources.iter())
        .filter(|s| s.source == SourceKind::Lexical)
        .map(|s| f64::from(s.similarity))
        .fold(0.0, f64::max);
    let score = |c: &redrec_core::candidate::Candidate| {
        c.sources
            .iter()
            .map(|s| match s.source {
                SourceKind::Lexical => alpha * f64::from(s.similarity) / max_text,
                _ => beta * f64::from(s.similarity).clamp(0.0, 1.0),
            })
            .sum::<f64>()
    };
    let scores: Vec<f64> = got.candidates.iter().map(score).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1] - 1e-6), "{scores:?}");
    // text-heavy weights put the best BM25 match first
    assert_eq!(got.candidates[0].id, "A");
    assert_eq!(got.candidates.len(), 5);
}
