//! Routing to partitioned indexes: a request whose filter lies inside a ready partition searches
//! the partition's index (unfiltered when the filter keeps exactly its items) and gets the same
//! candidates as from the serving index; other requests, partitions that are not ready, and
//! `partitions = false` leave the serving index in charge.

use std::ops::Bound;

use redrec_core::filter::Filter;
use redrec_core::partition::{self, Partition, PartitionSet};
use redrec_retriever::{RetrievalRequest, Retriever, RetrieverConfig, Source};
use redrec_testkit::TestSpace;

use crate::support::{self, Item, Rng};

async fn create_partition(
    space: &TestSpace,
    schema: &redrec_core::schema::IndexSchema,
    name: &str,
    filter: &Filter,
) -> Partition {
    let mut con = space.conn().await;
    let base = space.ns.index(1);
    let index = partition::index_name(&base, name);
    let expr = partition::expression(name, filter, schema).unwrap();
    let args = partition::create_args(&schema.ft_create_args(), &index, &expr).unwrap();
    let _: () = redis::cmd("FT.CREATE")
        .arg(&args)
        .query_async(&mut con)
        .await
        .unwrap();
    let mut docs = 0;
    for _ in 0..500 {
        let info: redis::Value = redis::cmd("FT.INFO")
            .arg(&index)
            .query_async(&mut con)
            .await
            .unwrap();
        let info = redrec_core::reply::parse_info(&info).unwrap();
        if info.percent_indexed >= 1.0 {
            docs = info.num_docs;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Partition {
        name: name.into(),
        filter: filter.clone(),
        index,
        docs,
    }
}

async fn record(space: &TestSpace, partitions: Vec<Partition>) {
    let mut con = space.conn().await;
    let set = PartitionSet {
        index: space.ns.index(1),
        items: 400,
        partitions,
    };
    let _: () = redis::cmd("SET")
        .arg(space.ns.partitions(&space.ns.index(1)))
        .arg(set.to_json())
        .query_async(&mut con)
        .await
        .unwrap();
}

async fn ids(r: &Retriever, q: &[f32], filter: &Filter) -> (Vec<String>, Option<String>, bool) {
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.to_vec())], 10);
    req.filter = filter.clone();
    let got = r.retrieve(&req).await.unwrap();
    (
        got.candidates.iter().map(|c| c.id.clone()).collect(),
        got.partition,
        got.policy.is_some(),
    )
}

#[tokio::test]
async fn filters_inside_a_partition_search_its_index_with_the_same_results() {
    let space = TestSpace::new("partition_route");
    let schema = support::schema(&space.ns, 8);
    support::create_index(&space, &schema).await;
    let mut rng = Rng::new(9);
    let items: Vec<Item> = (0..400)
        .map(|i| Item {
            id: format!("i{i}"),
            vector: support::random_unit(&mut rng, 8),
            fields: support::fields(&[
                (
                    "category",
                    if i % 10 == 0 { "Shoes" } else { "bags" }.into(),
                ),
                ("price", format!("{}", i + 1)),
            ]),
        })
        .collect();
    support::load(&space, &items, 100).await;
    let shoes = Filter::tag_any("category", ["shoes"]);
    let part = create_partition(&space, &schema, "shoes", &shoes).await;
    assert_eq!(part.docs, 40);
    let ghost = Partition {
        name: "ghost".into(),
        filter: Filter::tag_any("category", ["bags"]),
        index: partition::index_name(&space.ns.index(1), "ghost"),
        docs: 1,
    };
    record(&space, vec![part, ghost]).await;

    let routed = support::retriever(&space, &schema, RetrieverConfig::default());
    let plain = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            partitions: false,
            ..RetrieverConfig::default()
        },
    );
    assert!(
        routed.routable_partitions().is_empty(),
        "nothing before the first lookup"
    );
    routed.look_up_index().await.unwrap();
    plain.look_up_index().await.unwrap();
    assert_eq!(routed.refresh_sample().await.unwrap(), 400);
    // the partition without an index is never routed to
    assert_eq!(routed.routable_partitions(), ["shoes"]);
    assert!(plain.routable_partitions().is_empty());

    let q = support::random_unit(&mut rng, 8);
    // exactly the partition's items: its index, unfiltered, no hybrid policy
    let (a, on, policy) = ids(&routed, &q, &shoes).await;
    assert_eq!((on.as_deref(), policy), (Some("shoes"), false));
    let (b, off, _) = ids(&plain, &q, &shoes).await;
    assert_eq!(off, None);
    assert_eq!(a, b);
    assert_eq!(a.len(), 10);
    // inside it: its index with the whole filter
    let cheap_shoes = Filter::and(vec![
        Filter::tag_any("category", ["SHOES"]),
        Filter::range("price", Bound::Unbounded, Bound::Excluded(200.0)),
    ]);
    let (a, on, _) = ids(&routed, &q, &cheap_shoes).await;
    assert_eq!(on.as_deref(), Some("shoes"));
    // half of the partition's items: searched unfiltered on its index, checked on the hits
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], 10);
    req.filter = cheap_shoes.clone();
    assert!(routed.retrieve(&req).await.unwrap().post_filtered);
    let (b, _, _) = ids(&plain, &q, &cheap_shoes).await;
    assert_eq!(a, b);
    assert_eq!(a.len(), 10);
    for id in &a {
        let n: usize = id[1..].parse().unwrap();
        assert!(n.is_multiple_of(10) && n < 199, "{id}");
    }
    // outside it: the serving index
    let (_, on, _) = ids(&routed, &q, &Filter::tag_any("category", ["bags"])).await;
    assert_eq!(on, None);
    let (_, on, _) = ids(&routed, &q, &Filter::All).await;
    assert_eq!(on, None);

    // a collaborative field added to the serving index after the partition was created: a
    // request searching it stays on the serving index (the partition has no such field)
    let mut con = space.conn().await;
    support::add_cf_field(&space, &schema.index.name, 4).await;
    routed.look_up_index().await.unwrap();
    assert!(routed.detect_cf().await.unwrap().is_some());
    let mut req = RetrievalRequest::new(
        vec![
            Source::Vector(q.clone()),
            Source::CfLongTerm(vec![0.5, 0.5, 0.5, 0.5]),
        ],
        10,
    );
    req.filter = shoes.clone();
    let got = routed.retrieve(&req).await.unwrap();
    assert_eq!(got.partition, None);
    // without the collaborative source it still goes to the partition
    let (_, on, _) = ids(&routed, &q, &shoes).await;
    assert_eq!(on.as_deref(), Some("shoes"));

    // a registry that disappears stops the routing at the next lookup
    let _: () = redis::cmd("DEL")
        .arg(space.ns.partitions(&space.ns.index(1)))
        .query_async(&mut con)
        .await
        .unwrap();
    routed.look_up_index().await.unwrap();
    assert!(routed.routable_partitions().is_empty());
    let (_, on, _) = ids(&routed, &q, &shoes).await;
    assert_eq!(on, None);
}
