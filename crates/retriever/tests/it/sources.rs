//! Candidate sources, merging, seen-exclusion and errors on a small catalog.

use std::collections::BTreeSet;

use redrec_core::candidate::SourceKind;
use redrec_core::filter::Filter;
use redrec_core::schema::ItemFields;
use redrec_core::user::UserFeatures;
use redrec_core::vector;
use redrec_retriever::{
    Error, FetchMode, FusionPath, PolicyName, RetrievalRequest, Retriever, RetrieverConfig, Source,
};
use redrec_testkit::TestSpace;

use crate::support::{self, Item, Rng};

const DIMS: usize = 16;

/// 300 items in 6 clusters; category = cluster, price = i % 10, popularity = i.
struct Catalog {
    items: Vec<Item>,
}

impl Catalog {
    fn new(seed: u64) -> Catalog {
        let mut rng = Rng::new(seed);
        let centers: Vec<Vec<f32>> = (0..6)
            .map(|_| support::random_unit(&mut rng, DIMS))
            .collect();
        let items = (0..300)
            .map(|i| {
                let c = i % 6;
                Item {
                    id: format!("sku-{i}"),
                    vector: support::near(&mut rng, &centers[c], 0.1),
                    fields: support::fields(&[
                        ("category", format!("CAT{c}")),
                        ("department", if c < 3 { "FOOD" } else { "HOME" }.into()),
                        ("price", (i % 10).to_string()),
                        ("popularity", i.to_string()),
                        ("text", format!("item {i} of cluster{c}")),
                        ("in_stock", "1".into()),
                    ]),
                }
            })
            .collect();
        Catalog { items }
    }

    /// Exact nearest ids (cosine), best first, among items passing `keep`.
    fn nearest(&self, q: &[f32], keep: impl Fn(&Item) -> bool) -> Vec<String> {
        let mut scored: Vec<(f32, &str)> = self
            .items
            .iter()
            .filter(|i| keep(i))
            .map(|i| (vector::cosine(q, &i.vector), i.id.as_str()))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().map(|(_, id)| id.to_owned()).collect()
    }
}

async fn setup(label: &str) -> (TestSpace, Catalog, Retriever) {
    let space = TestSpace::new(label);
    let schema = support::schema(&space.ns, DIMS);
    support::create_index(&space, &schema).await;
    let catalog = Catalog::new(7);
    support::load(&space, &catalog.items, 100).await;
    let r = support::retriever(&space, &schema, RetrieverConfig::default());
    (space, catalog, r)
}

fn ids(r: &redrec_retriever::Retrieval) -> Vec<String> {
    r.candidates.iter().map(|c| c.id.clone()).collect()
}

#[tokio::test]
async fn query_vector_returns_the_exact_nearest_with_fields_and_filter() {
    let (_space, cat, r) = setup("qv").await;
    let q = cat.items[3].vector.clone();
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], 10);
    req.filter = Filter::tag_any("department", ["HOME"]);
    let got = r.retrieve(&req).await.unwrap();
    let want: Vec<String> = cat
        .nearest(&q, |i| i.fields["department"] == "HOME")
        .into_iter()
        .take(10)
        .collect();
    assert_eq!(ids(&got), want);
    assert_eq!(got.round_trips, 1);
    let first = &got.candidates[0];
    assert_eq!(first.id, "sku-3");
    assert_eq!(first.field("department"), Some("HOME"));
    assert!(first.numeric("price").is_some());
    assert!(!first.fields.contains_key("__dist") && !first.fields.contains_key("embedding"));
    assert_eq!(first.sources[0].source, SourceKind::QueryVector);
    assert!((first.sources[0].similarity - 1.0).abs() < 1e-4);
    assert!(first.vector.is_none());
}

#[tokio::test]
async fn several_sources_go_in_one_round_trip_and_merge() {
    let (space, cat, r) = setup("multi").await;
    // a retriever on one shared connection, so the server's per-connection counter
    // (CLIENT INFO tot-cmds) shows exactly what this request sent
    let schema = support::schema(&space.ns, DIMS);
    let con = space.conn().await;
    let shared = Retriever::with_connection(
        con.clone(),
        space.ns.clone(),
        schema,
        ItemFields::default(),
        RetrieverConfig::default(),
    )
    .unwrap();
    let user = UserFeatures {
        user_id: "u1".into(),
        known: true,
        session_vector: Some(cat.items[0].vector.clone()),
        long_term_vector: Some(cat.items[1].vector.clone()),
        ..UserFeatures::default()
    };
    let mut sources = Source::from_user(&user);
    sources.push(Source::Vector(cat.items[0].vector.clone()));
    sources.push(Source::Text {
        text: "cluster2".into(),
        vector: cat.items[2].vector.clone(),
    });
    sources.push(Source::Popular);
    let req = RetrievalRequest::new(sources, 100);
    let tot_cmds = |info: String| -> u64 {
        info.split_whitespace()
            .find_map(|kv| kv.strip_prefix("tot-cmds="))
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut probe = con.clone();
    let before: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut probe)
        .await
        .unwrap();
    let got = shared.retrieve(&req).await.unwrap();
    let after: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut probe)
        .await
        .unwrap();
    assert_eq!(got.round_trips, 1, "one pipeline for five sources");
    // session, long-term, query vector, popular, text = BM25 + KNN: 6 searches (+1 CLIENT INFO)
    assert_eq!(tot_cmds(after) - tot_cmds(before), 7);
    assert_eq!(got.fusion, FusionPath::Client);
    assert_eq!(got.candidates.len(), 100);
    let unique: BTreeSet<&str> = got.candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(unique.len(), 100, "deduplicated");
    // sku-0 is the session vector's and the query vector's own item: both sources, best first
    let zero = got.candidates.iter().find(|c| c.id == "sku-0").unwrap();
    let kinds: BTreeSet<SourceKind> = zero.sources.iter().map(|s| s.source).collect();
    assert!(
        kinds.contains(&SourceKind::Session) && kinds.contains(&SourceKind::QueryVector),
        "{kinds:?}"
    );
    assert!(
        zero.sources
            .windows(2)
            .all(|w| w[0].similarity >= w[1].similarity)
    );
    let all_kinds: BTreeSet<SourceKind> = got
        .candidates
        .iter()
        .flat_map(|c| c.sources.iter().map(|s| s.source))
        .collect();
    for k in [
        SourceKind::Session,
        SourceKind::LongTerm,
        SourceKind::QueryVector,
        SourceKind::Lexical,
        SourceKind::QueryText,
    ] {
        assert!(all_kinds.contains(&k), "{k:?} missing from {all_kinds:?}");
    }
    // the pooled retriever works the same way (BM25 ties may order differently)
    let pooled = r.retrieve(&req).await.unwrap();
    assert_eq!((pooled.round_trips, pooled.candidates.len()), (1, 100));
}

#[tokio::test]
async fn seen_exclusion_still_yields_k() {
    let (_space, cat, r) = setup("seen").await;
    let q = cat.items[10].vector.clone();
    let exact = cat.nearest(&q, |_| true);
    // a small seen set (the 8 nearest): handled by over-fetching, no retry
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], 10);
    req.exclude = exact[..8].iter().cloned().collect();
    let got = r.retrieve(&req).await.unwrap();
    assert_eq!(ids(&got), exact[8..18].to_vec());
    assert!(!got.retried);
    assert_eq!(got.round_trips, 1);
    assert_eq!(got.excluded, 8);
    // a seen set larger than the over-fetch (the 45 nearest): one retry with a larger k
    req.exclude = exact[..45].iter().cloned().collect();
    let got = r.retrieve(&req).await.unwrap();
    assert_eq!(ids(&got), exact[45..55].to_vec());
    assert!(got.retried);
    assert_eq!(got.round_trips, 2);
    // seen ids come straight from the user's features
    let user = UserFeatures {
        seen: exact[..3].iter().cloned().collect(),
        ..UserFeatures::default()
    };
    req.exclude = user.seen.clone();
    let got = r.retrieve(&req).await.unwrap();
    assert_eq!(ids(&got), exact[3..13].to_vec());
}

#[tokio::test]
async fn cold_start_falls_back_to_filtered_popularity() {
    let (_space, cat, r) = setup("cold").await;
    let cold = UserFeatures::default();
    let mut req = RetrievalRequest::new(Source::from_user(&cold), 5);
    assert!(req.sources.is_empty());
    req.filter = Filter::tag_any("category", ["CAT1"]);
    req.exclude = ["sku-295".to_owned()].into();
    let got = r.retrieve(&req).await.unwrap();
    // CAT1 holds i = 1, 7, 13, ...; most popular (largest i) first, 295 excluded
    assert_eq!(
        ids(&got),
        ["sku-289", "sku-283", "sku-277", "sku-271", "sku-265"]
    );
    let c = &got.candidates[0];
    assert_eq!(c.sources[0].source, SourceKind::Popular);
    assert_eq!(c.field("category"), Some("CAT1"));
    assert!(c.sources[0].similarity <= 1.0 && c.sources[0].similarity > 0.9);
    assert!(c.vector.is_none(), "vectors only when asked");

    // asked for vectors (an MMR profile): the popular page returns them, one round trip
    req.with_vectors = true;
    let with = r.retrieve(&req).await.unwrap();
    assert_eq!(ids(&with), ids(&got));
    assert_eq!(with.round_trips, 1);
    for c in &with.candidates {
        let stored = &cat.items.iter().find(|i| i.id == c.id).unwrap().vector;
        assert_eq!(c.vector.as_ref(), Some(stored), "{}", c.id);
    }
}

#[tokio::test]
async fn more_like_this_excludes_the_item_and_examples_steer() {
    let (_space, cat, r) = setup("mlt").await;
    let mut req = RetrievalRequest::new(vec![Source::SimilarItem("sku-42".into())], 5);
    req.with_vectors = true;
    let got = r.retrieve(&req).await.unwrap();
    let exact = cat.nearest(&cat.items[42].vector, |i| i.id != "sku-42");
    assert_eq!(ids(&got), exact[..5].to_vec());
    assert!(!ids(&got).contains(&"sku-42".to_owned()));
    // vector fetch, then the search, which returns the winners' vectors with their fields
    // (no HMGET round trip for them)
    assert_eq!(got.round_trips, 2);
    for c in &got.candidates {
        let stored = &cat.items.iter().find(|i| i.id == c.id).unwrap().vector;
        assert_eq!(c.vector.as_ref(), Some(stored), "{}", c.id);
        assert!(
            !c.fields.contains_key("__vec"),
            "the blob is not a text field"
        );
    }
    assert_eq!(got.candidates[0].sources[0].source, SourceKind::SimilarItem);

    // examples: like cluster 0 items, unlike cluster 1 items
    let req = RetrievalRequest::new(
        vec![Source::Examples {
            positive: vec!["sku-0".into(), "sku-6".into()],
            negative: vec!["sku-1".into()],
            negative_weight: 0.5,
        }],
        10,
    );
    let got = r.retrieve(&req).await.unwrap();
    assert_eq!(got.candidates.len(), 10);
    for c in &got.candidates {
        assert!(!["sku-0", "sku-6", "sku-1"].contains(&c.id.as_str()));
        assert_eq!(c.field("category"), Some("CAT0"), "{}", c.id);
        assert_eq!(c.sources[0].source, SourceKind::Examples);
    }
}

#[tokio::test]
async fn ids_then_hmget_gives_the_same_candidates() {
    let (space, cat, r) = setup("fetch").await;
    let schema = support::schema(&space.ns, DIMS);
    let hm = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            fetch: FetchMode::IdsThenHmget,
            ..RetrieverConfig::default()
        },
    );
    let req = RetrievalRequest::new(
        vec![Source::Vector(cat.items[5].vector.clone()), Source::Popular],
        12,
    );
    let a = r.retrieve(&req).await.unwrap();
    let b = hm.retrieve(&req).await.unwrap();
    assert_eq!(a.candidates, b.candidates);
    assert_eq!((a.round_trips, b.round_trips), (1, 2));
}

#[tokio::test]
async fn errors_are_typed() {
    let (space, cat, r) = setup("errors").await;
    let q = cat.items[0].vector.clone();
    // user errors
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], 10);
    req.filter = Filter::tag_any("colour", ["red"]);
    let e = r.retrieve(&req).await.unwrap_err();
    assert!(matches!(e, Error::BadQuery(_)) && e.is_user_error(), "{e}");
    assert!(e.to_string().contains("unknown field `colour`"), "{e}");
    let e = r
        .retrieve(&RetrievalRequest::new(
            vec![Source::Vector(vec![1.0; 3])],
            10,
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("3 dimensions, expected 16"), "{e}");
    let e = r
        .retrieve(&RetrievalRequest::new(vec![Source::Vector(q.clone())], 0))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadQuery(_)), "{e}");
    let e = r
        .retrieve(&RetrievalRequest::new(
            vec![Source::SimilarItem("nope".into())],
            10,
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ItemNotFound { .. }), "{e}");
    let e = r
        .retrieve(&RetrievalRequest::new(
            vec![Source::SimilarItem("a b".into())],
            10,
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadQuery(_)), "{e}");
    // index missing: the alias of another namespace that has no index
    let other = TestSpace::new("noindex");
    let schema = support::schema(&other.ns, DIMS);
    let missing = support::retriever(&other, &schema, RetrieverConfig::default());
    let e = missing
        .retrieve(&RetrievalRequest::new(vec![Source::Vector(q.clone())], 10))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::IndexMissing { .. }) && !e.is_user_error(),
        "{e}"
    );
    // redis unavailable: nothing listens on port 1
    let mut cfg = support::redis_config();
    cfg.url = "redis://127.0.0.1:1".into();
    let down = Retriever::with_pool(
        redrec_retriever::create_pool(&cfg).unwrap(),
        space.ns.clone(),
        support::schema(&space.ns, DIMS),
        ItemFields::default(),
        RetrieverConfig::default(),
    )
    .unwrap();
    let e = down
        .retrieve(&RetrievalRequest::new(vec![Source::Vector(q)], 10))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
}

#[tokio::test]
async fn range_queries_and_hybrid_policies_run_on_the_server() {
    let (space, cat, r) = setup("range").await;
    let q = cat.items[4].vector.clone();
    let exact = cat.nearest(&q, |_| true);
    // VECTOR_RANGE: everything within cosine distance 0.1, nearest first
    let within: Vec<&str> = cat
        .items
        .iter()
        .filter(|i| 1.0 - vector::cosine(&q, &i.vector) <= 0.1)
        .map(|i| i.id.as_str())
        .collect();
    assert!(within.len() > 3, "the catalog is clustered tightly enough");
    let got = r.within_radius(&q, 0.1, &Filter::All, 1000).await.unwrap();
    let got_ids: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(got_ids.len(), within.len());
    assert_eq!(
        got_ids,
        exact[..within.len()]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let filtered = r
        .within_radius(&q, 0.1, &Filter::tag_any("category", ["CAT0"]), 1000)
        .await
        .unwrap();
    assert!(filtered.is_empty(), "item 4 is in CAT4, far from CAT0");

    // both HYBRID_POLICY settings return the exact answer on a small index
    let schema = support::schema(&space.ns, DIMS);
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], 10);
    req.filter = Filter::tag_any("department", ["HOME"]);
    let want = r.retrieve(&req).await.unwrap();
    for (policy, batch) in [(PolicyName::AdhocBf, None), (PolicyName::Batches, Some(20))] {
        let p = support::retriever(
            &space,
            &schema,
            RetrieverConfig {
                hybrid_policy: Some(policy),
                batch_size: batch,
                ..RetrieverConfig::default()
            },
        );
        assert_eq!(
            ids(&p.retrieve(&req).await.unwrap()),
            ids(&want),
            "{policy:?}"
        );
        // unfiltered: the policy is left out (the server rejects it without a filter)
        p.retrieve(&RetrievalRequest::new(vec![Source::Vector(q.clone())], 5))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn forcing_ft_hybrid_on_a_server_without_it_is_reported() {
    let (_space, cat, mut r) = setup("forcehybrid").await;
    r.set_hybrid_syntax(Some(redrec_core::hybrid::HybridSyntax::V8_4_3));
    let e = r
        .retrieve(&RetrievalRequest::new(
            vec![Source::Text {
                text: "cluster1".into(),
                vector: cat.items[1].vector.clone(),
            }],
            5,
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Rejected { .. }), "{e}");
    assert!(
        e.to_string().to_lowercase().contains("unknown command"),
        "{e}"
    );
    // detection puts it right
    assert_eq!(r.detect_hybrid().await.unwrap(), None);
}

#[tokio::test]
async fn flat_indexes_are_queried_without_ef_runtime() {
    let space = TestSpace::new("flat");
    let mut settings = support::settings(4);
    settings.algorithm = redrec_core::schema::VectorAlgorithm::Flat;
    let schema = redrec_core::schema::items_schema(
        &space.ns.index(1),
        &space.ns.item_prefix(),
        &ItemFields::default(),
        &settings,
    );
    support::create_index(&space, &schema).await;
    let items: Vec<support::Item> = (0..4)
        .map(|i| {
            let mut v = vec![0.0f32; 4];
            v[i] = 1.0;
            support::Item {
                id: format!("f{i}"),
                vector: v,
                fields: support::fields(&[("category", "c".into()), ("popularity", "1".into())]),
            }
        })
        .collect();
    support::load(&space, &items, 10).await;
    let r = support::retriever(&space, &schema, RetrieverConfig::default());
    let mut req = RetrievalRequest::new(vec![Source::Vector(vec![0.0, 0.0, 1.0, 0.1])], 2);
    req.filter = Filter::tag_any("category", ["c"]);
    let got = r
        .retrieve(&req)
        .await
        .expect("a FLAT index answers filtered KNN");
    assert_eq!(ids(&got), ["f2", "f3"]);
}

#[tokio::test]
async fn auto_policy_uses_batches_for_broad_filters_only() {
    let (space, cat, _) = setup("auto_policy").await;
    let schema = support::schema(&space.ns, DIMS);
    let config = RetrieverConfig {
        hybrid_policy: Some(redrec_retriever::PolicyName::Auto),
        auto_batches_above: 0.2,
        // the policy of filtered searches is under test, not the broad filter's post-filter
        post_filter_above: 0.0,
        ..RetrieverConfig::default()
    };
    let r = support::retriever(&space, &schema, config);
    assert_eq!(
        r.refresh_sample().await.unwrap(),
        300,
        "every item fits in the sample"
    );
    let q = cat.items[5].vector.clone();

    // department HOME keeps half of the catalog: BATCHES
    let mut broad = RetrievalRequest::new(vec![Source::Vector(q.clone())], 5);
    broad.filter = Filter::tag_any("department", ["HOME"]);
    let got = r.retrieve(&broad).await.unwrap();
    assert!(
        matches!(
            got.policy,
            Some(redrec_core::query::HybridPolicy::Batches { .. })
        ),
        "{:?}",
        got.policy
    );
    let want: Vec<String> = cat
        .nearest(&q, |i| i.fields["department"] == "HOME")
        .into_iter()
        .take(5)
        .collect();
    assert_eq!(ids(&got), want);

    // CAT5 at price 5 keeps 10 of 300 (3%): the server chooses
    let mut narrow = RetrievalRequest::new(vec![Source::Vector(q.clone())], 5);
    narrow.filter = Filter::and(vec![
        Filter::tag_any("category", ["CAT5"]),
        Filter::range(
            "price",
            std::ops::Bound::Included(5.0),
            std::ops::Bound::Included(5.0),
        ),
    ]);
    let got = r.retrieve(&narrow).await.unwrap();
    assert_eq!(got.policy, None);
    let want: Vec<String> = cat
        .nearest(&q, |i| {
            i.fields["category"] == "CAT5" && i.fields["price"] == "5"
        })
        .into_iter()
        .take(5)
        .collect();
    assert_eq!(ids(&got), want);

    // no filter: no policy at all
    let got = r
        .retrieve(&RetrievalRequest::new(vec![Source::Vector(q)], 5))
        .await
        .unwrap();
    assert_eq!(got.policy, None);
}
