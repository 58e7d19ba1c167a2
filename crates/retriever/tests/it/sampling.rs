//! The `auto` policy's background selectivity sample: never taken inside a request, taken by the
//! background sampler at start and after catalog changes, single-flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redrec_core::filter::Filter;
use redrec_core::query::HybridPolicy;
use redrec_retriever::{PolicyName, RetrievalRequest, Retriever, RetrieverConfig, Source};
use redrec_testkit::TestSpace;

use crate::support::{self, Item, Rng};

const DIMS: usize = 8;

/// `n` items from `from`: department HOME for even ids, FOOD for odd ones.
fn items(from: usize, n: usize) -> Vec<Item> {
    let mut rng = Rng::new(from as u64 + 1);
    (from..from + n)
        .map(|i| Item {
            id: format!("s{i}"),
            vector: support::random_unit(&mut rng, DIMS),
            fields: support::fields(&[
                ("category", format!("CAT{}", i % 5)),
                (
                    "department",
                    if i % 2 == 0 { "HOME" } else { "FOOD" }.into(),
                ),
                ("price", (i % 10).to_string()),
                ("popularity", i.to_string()),
                ("in_stock", "1".into()),
            ]),
        })
        .collect()
}

fn broad_request() -> RetrievalRequest {
    let mut req = RetrievalRequest::new(vec![Source::Vector(vec![1.0; DIMS])], 5);
    req.filter = Filter::tag_any("department", ["HOME"]);
    req
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn auto_is_the_default_and_requests_never_sample() {
    let space = TestSpace::new("sample_none");
    let schema = support::schema(&space.ns, DIMS);
    support::create_index(&space, &schema).await;
    support::load(&space, &items(0, 100), 100).await;
    let r = support::retriever(&space, &schema, RetrieverConfig::default());
    assert!(r.samples_selectivity(), "auto is the default policy");
    // No sample yet: the request is answered with the server's choice and takes none itself.
    let got = r.retrieve(&broad_request()).await.unwrap();
    assert_eq!(got.policy, None);
    assert_eq!(got.candidates.len(), 5);
    assert_eq!(r.sample_status(), None, "a request took a sample");
    // Once the sample exists, the broad filter (half the catalog) of this KNN-only request is
    // checked on unfiltered hits (`post_filter_above`, 0.5 by default)...
    assert_eq!(r.refresh_sample().await.unwrap(), 100);
    let got = r.retrieve(&broad_request()).await.unwrap();
    assert!(got.post_filtered);
    assert_eq!(got.policy, None);
    // ...and, with that off, searched with BATCHES.
    let batches = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            post_filter_above: 0.0,
            ..RetrieverConfig::default()
        },
    );
    batches.refresh_sample().await.unwrap();
    let got = batches.retrieve(&broad_request()).await.unwrap();
    assert!(!got.post_filtered);
    assert!(
        matches!(got.policy, Some(HybridPolicy::Batches { .. })),
        "{:?}",
        got.policy
    );
    // `server` sends no policy at all and never samples.
    let server = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            hybrid_policy: Some(PolicyName::Server),
            ..RetrieverConfig::default()
        },
    );
    assert!(!server.samples_selectivity());
    assert_eq!(
        server.retrieve(&broad_request()).await.unwrap().policy,
        None
    );
    tokio::time::timeout(Duration::from_millis(100), server.keep_sample_fresh())
        .await
        .expect("the sampler returns at once for other policies");
}

#[tokio::test]
async fn concurrent_refreshes_take_one_sample() {
    let space = TestSpace::new("sample_flight");
    let schema = support::schema(&space.ns, DIMS);
    support::create_index(&space, &schema).await;
    support::load(&space, &items(0, 200), 100).await;
    let r = support::retriever(&space, &schema, RetrieverConfig::default());
    let (a, b, c, d) = tokio::join!(
        r.refresh_sample(),
        r.refresh_sample(),
        r.refresh_sample(),
        r.refresh_sample()
    );
    for n in [a, b, c, d] {
        assert_eq!(n.unwrap(), 200, "every caller sees the one sample");
    }
    assert_eq!(r.sample_status().unwrap().taken, 1, "single-flight");
    // a later call takes a new one
    r.refresh_sample().await.unwrap();
    assert_eq!(r.sample_status().unwrap().taken, 2);
}

#[tokio::test]
async fn the_background_sampler_follows_catalog_changes() {
    let space = TestSpace::new("sample_bg");
    let schema = support::schema(&space.ns, DIMS);
    support::create_index(&space, &schema).await;
    support::load(&space, &items(0, 100), 100).await;
    let r = Arc::new(support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            sample_check_secs: 1,
            ..RetrieverConfig::default()
        },
    ));
    let task = tokio::spawn({
        let r: Arc<Retriever> = r.clone();
        async move { r.keep_sample_fresh().await }
    });
    // at start
    wait_for("the first sample", Duration::from_secs(10), || {
        r.sample_status().is_some_and(|s| s.items == 100)
    })
    .await;
    let first = r.sample_status().unwrap().taken;
    // items written by another process: the index's document count changes
    support::load(&space, &items(100, 50), 50).await;
    wait_for("a sample after the load", Duration::from_secs(15), || {
        r.sample_status().is_some_and(|s| s.items == 150)
    })
    .await;
    let after_load = r.sample_status().unwrap().taken;
    assert!(after_load > first);
    // nothing changed: no new sample within a few checks
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        r.sample_status().unwrap().taken,
        after_load,
        "resampled without a change"
    );
    // an explicit notice (the gateway's item routes) resamples even when the count is the same
    r.catalog_changed();
    wait_for("a sample after the notice", Duration::from_secs(10), || {
        r.sample_status().is_some_and(|s| s.taken > after_load)
    })
    .await;
    task.abort();
}

/// A profile's exclusion that removes few items is checked on the candidates (the search stays a
/// plain KNN) and still never lets one through; one that removes many stays in the search; and
/// without a sample it stays in the search.
#[tokio::test]
async fn a_small_exclusion_is_checked_on_the_candidates_a_large_one_in_the_search() {
    let space = TestSpace::new("sample_exclusion");
    let schema = support::schema(&space.ns, DIMS);
    support::create_index(&space, &schema).await;
    let mut catalog = items(0, 200);
    // two "fuel" items of 200 (1%), one of them the nearest to the query vector
    for (i, item) in catalog.iter_mut().enumerate().take(2) {
        item.fields.insert("department", "FUEL".into());
        if i == 0 {
            item.vector = vec![1.0 / (DIMS as f32).sqrt(); DIMS];
        }
    }
    support::load(&space, &catalog, 200).await;
    let r = support::retriever(&space, &schema, RetrieverConfig::default());
    let request = |exclusion: Filter| {
        let mut req = RetrievalRequest::new(vec![Source::Vector(vec![1.0; DIMS])], 20);
        req.exclusion = exclusion;
        req
    };
    let fuel = Filter::tag_not_any("department", ["FUEL"]);
    let department = |c: &redrec_core::candidate::Candidate| c.fields["department"].clone();

    // no sample yet: in the search
    let got = r.retrieve(&request(fuel.clone())).await.unwrap();
    assert!(!got.exclusion_after_search);
    assert!(got.candidates.iter().all(|c| department(c) != "FUEL"));

    r.refresh_sample().await.unwrap();
    let got = r.retrieve(&request(fuel.clone())).await.unwrap();
    assert!(
        got.exclusion_after_search,
        "1% removed: checked on the candidates"
    );
    assert_eq!(got.policy, None, "the search is a plain KNN");
    assert_eq!(got.candidates.len(), 20);
    assert!(
        got.candidates.iter().all(|c| department(c) != "FUEL"),
        "an excluded item was returned"
    );
    assert!(got.excluded >= 1, "the nearest item was a fuel item");

    // half the catalog (HOME) is no small exclusion: it goes into the search
    let home = Filter::tag_not_any("department", ["HOME"]);
    let got = r.retrieve(&request(home)).await.unwrap();
    assert!(!got.exclusion_after_search);
    assert_eq!(got.candidates.len(), 20);
    assert!(got.candidates.iter().all(|c| department(c) != "HOME"));

    // post_filter_below = 0 keeps every exclusion in the search
    let never = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            post_filter_below: 0.0,
            ..RetrieverConfig::default()
        },
    );
    never.refresh_sample().await.unwrap();
    let got = never.retrieve(&request(fuel)).await.unwrap();
    assert!(!got.exclusion_after_search);
    assert!(got.candidates.iter().all(|c| department(c) != "FUEL"));
}
