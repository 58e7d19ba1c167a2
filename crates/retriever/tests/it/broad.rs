//! Broad filters on KNN-only requests (`retriever.post_filter_above`): searched without the
//! filter, over-fetched by 1/share and checked on the hits, with the same results as the
//! filtered search; when the filter's items lie away from the query and too few pass, the
//! filtered search is sent after all.

use std::ops::Bound;

use redrec_core::filter::Filter;
use redrec_retriever::{RetrievalRequest, Retriever, RetrieverConfig, Source};
use redrec_testkit::TestSpace;

use crate::support::{self, Item, Rng};

async fn run(r: &Retriever, q: &[f32], filter: &Filter) -> redrec_retriever::Retrieval {
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.to_vec())], 10);
    req.filter = filter.clone();
    r.retrieve(&req).await.unwrap()
}

fn ids(r: &redrec_retriever::Retrieval) -> Vec<String> {
    r.candidates.iter().map(|c| c.id.clone()).collect()
}

#[tokio::test]
async fn broad_filters_are_checked_on_unfiltered_hits_with_the_same_results() {
    let space = TestSpace::new("broad_filter");
    let schema = support::schema(&space.ns, 8);
    support::create_index(&space, &schema).await;
    let mut rng = Rng::new(21);
    let q = support::random_unit(&mut rng, 8);
    // 100 items close to q, all cheap; 300 anywhere, all dear
    let items: Vec<Item> = (0..400)
        .map(|i| Item {
            id: format!("i{i}"),
            vector: if i < 100 {
                support::near(&mut rng, &q, 0.05)
            } else {
                support::random_unit(&mut rng, 8)
            },
            fields: support::fields(&[
                ("category", "c".into()),
                (
                    "department",
                    if i % 4 == 0 { "KIOSK" } else { "GROCERY" }.into(),
                ),
                (
                    "price",
                    format!("{}", if i < 100 { 1 + i % 50 } else { 100 + i }),
                ),
            ]),
        })
        .collect();
    support::load(&space, &items, 100).await;
    let broad = support::retriever(&space, &schema, RetrieverConfig::default());
    let filtered = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            post_filter_above: 0.0,
            ..RetrieverConfig::default()
        },
    );
    assert_eq!(broad.refresh_sample().await.unwrap(), 400);
    filtered.refresh_sample().await.unwrap();

    // keeps 90%: the cheapest tenth goes (prices 1..=10 among the close items, 80 remain close)
    let most = Filter::range("price", Bound::Excluded(10.0), Bound::Unbounded);
    let got = run(&broad, &q, &most).await;
    assert!(got.post_filtered);
    assert_eq!((got.round_trips, got.policy), (1, None));
    let want = run(&filtered, &q, &most).await;
    assert!(!want.post_filtered);
    assert_eq!(ids(&got), ids(&want));
    assert_eq!(got.candidates.len(), 10);
    for c in &got.candidates {
        let price: f64 = c.fields["price"].parse().unwrap();
        assert!(price > 10.0, "{} costs {price}", c.id);
    }

    // keeps 75% (the dear items), none of them near q: the unfiltered hits (and the larger
    // retry) are all cheap, so the filtered search is sent after all and finds them
    let dear = Filter::range("price", Bound::Included(100.0), Bound::Unbounded);
    let got = run(&broad, &q, &dear).await;
    assert!(!got.post_filtered);
    assert_eq!(got.round_trips, 3, "unfiltered, its retry, then filtered");
    assert_eq!(ids(&got), ids(&run(&filtered, &q, &dear).await));
    assert_eq!(got.candidates.len(), 10);

    // an exclusion large enough to stay in the search is checked on the hits as well: a
    // quarter of the items (every fourth, close ones included) are non-merchandise
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], 10);
    req.filter = most.clone();
    req.exclusion = Filter::tag_not_any("department", ["KIOSK"]);
    let got = broad.retrieve(&req).await.unwrap();
    assert!(got.post_filtered && !got.exclusion_after_search);
    let want = filtered.retrieve(&req).await.unwrap();
    assert_eq!(ids(&got), ids(&want));
    assert_eq!(got.candidates.len(), 10);
    for c in &got.candidates {
        assert_ne!(c.fields["department"], "KIOSK", "{} is excluded", c.id);
    }

    // narrow filters and text are never post-filtered
    let narrow = Filter::range("price", Bound::Unbounded, Bound::Excluded(5.0));
    assert!(!run(&broad, &q, &narrow).await.post_filtered);
    let text = Filter::and(vec![
        most.clone(),
        Filter::text(None, redrec_core::filter::TextMode::Match, "x"),
    ]);
    assert!(!run(&broad, &q, &text).await.post_filtered);
}
