//! `redrec-ingest partitions` on a real index: each partition holds exactly the items its filter
//! keeps, stays current as items are written, and a bad request creates nothing.

use std::{sync::Arc, time::Duration};

use redis::aio::MultiplexedConnection;
use redrec_core::{filter::Filter, partition::PartitionSet};
use redrec_ingest::{
    dataset::synthetic::{Synthetic, SyntheticParams, SyntheticRows},
    load,
    load::OnInvalid,
    partitions::{self, PartitionSpec},
    validate::Mapping,
};
use redrec_testkit::TestSpace;

use crate::common::{conn, keys, quiet, schema};

const WAIT: Duration = Duration::from_secs(60);

async fn seeded(label: &str, items: u64) -> (TestSpace, MultiplexedConnection) {
    let space = TestSpace::new(label);
    let generator = Synthetic::new(SyntheticParams {
        items,
        dims: 16,
        seed: 5,
    });
    let con = conn().await;
    load::load(
        &con,
        &space.ns,
        &schema(&space, 16),
        Arc::new(SyntheticRows(Arc::new(generator))),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    (space, con)
}

async fn num_docs(con: &mut MultiplexedConnection, index: &str) -> Option<u64> {
    redrec_ingest::index::info(con, index)
        .await
        .unwrap()
        .map(|i| i.num_docs)
}

async fn indexes(con: &mut MultiplexedConnection) -> Vec<String> {
    redis::cmd("FT._LIST").query_async(con).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bands_and_tag_values_hold_exactly_their_items() {
    let (space, mut con) = seeded("partitions", 2_000).await;
    let ns = &space.ns;
    let bands = partitions::numeric_bands(&mut con, ns, "price", 4, true)
        .await
        .unwrap();
    // 4 equal-share bands and 3 centred on their boundaries
    assert_eq!(bands.len(), 7, "{bands:?}");
    let tags = partitions::tag_values(&mut con, ns, "category", 50, 0.5, 2)
        .await
        .unwrap();
    assert_eq!(tags.len(), 2, "{tags:?}");
    let specs: Vec<PartitionSpec> = bands.iter().chain(&tags).cloned().collect();
    let set = partitions::create(&mut con, ns, &specs, WAIT)
        .await
        .unwrap();
    assert_eq!(set.index, ns.index(1));
    assert_eq!(set.items, 2_000);
    assert_eq!(set.partitions.len(), 9);
    // the four plain bands split the catalog; each holds about a quarter
    let plain: Vec<u64> = set.partitions[..4].iter().map(|p| p.docs).collect();
    assert_eq!(plain.iter().sum::<u64>(), 2_000, "{plain:?}");
    assert!(plain.iter().all(|d| (450..=550).contains(d)), "{plain:?}");
    for p in &set.partitions {
        // `create` checked the count against the base index; the live index agrees
        assert_eq!(
            num_docs(&mut con, &p.index).await,
            Some(p.docs),
            "{}",
            p.name
        );
    }
    // the registry is what the retriever reads
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(ns.partitions(&ns.index(1)))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(PartitionSet::parse(&stored).unwrap(), set);

    // a write moves an item into a partition without any refresh: give an item the first tag
    // value's category
    let tag_part = &set.partitions[7];
    let Filter::Tag(t) = &tag_part.filter else {
        panic!("{:?}", tag_part.filter)
    };
    let mut outsider = None;
    for key in keys(&space).await {
        let cat: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("category")
            .query_async(&mut con)
            .await
            .unwrap();
        if cat.as_deref() != Some(t.values[0].as_str()) {
            outsider = Some(key);
            break;
        }
    }
    let _: () = redis::cmd("HSET")
        .arg(outsider.unwrap())
        .arg("category")
        .arg(&t.values[0])
        .query_async(&mut con)
        .await
        .unwrap();
    let mut held = 0;
    for _ in 0..100 {
        held = num_docs(&mut con, &tag_part.index).await.unwrap();
        if held == tag_part.docs + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held, tag_part.docs + 1);

    // dropping: the registry first, then the index; the items stay
    let gone = partitions::drop(&mut con, ns, std::slice::from_ref(&tag_part.name))
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(num_docs(&mut con, &tag_part.index).await, None);
    let (_, listed) = partitions::list(&mut con, ns).await.unwrap();
    assert_eq!(listed.len(), 8);
    assert_eq!(num_docs(&mut con, &ns.index(1)).await, Some(2_000));
    partitions::drop(&mut con, ns, &[]).await.unwrap();
    let left: Option<Vec<u8>> = redis::cmd("GET")
        .arg(ns.partitions(&ns.index(1)))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(left, None);
    let prefix = format!("{}:part:", ns.index(1));
    assert!(
        !indexes(&mut con)
            .await
            .iter()
            .any(|i| i.starts_with(&prefix))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_creates_nothing() {
    let (space, mut con) = seeded("partitions_bad", 300).await;
    let ns = &space.ns;
    let before = indexes(&mut con).await;
    let good = PartitionSpec {
        name: "cheap".into(),
        filter: Filter::range(
            "price",
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(10.0),
        ),
    };
    let bad = [
        (
            PartitionSpec {
                name: "Not A Name".into(),
                filter: good.filter.clone(),
            },
            "1-48 characters",
        ),
        (
            PartitionSpec {
                name: "neg".into(),
                filter: Filter::tag_not_any("category", ["x"]),
            },
            "not negated",
        ),
        (
            PartitionSpec {
                name: "quote".into(),
                filter: Filter::tag_any("category", ["a\") || (1"]),
            },
            "without",
        ),
        (good.clone(), "given twice"),
    ];
    for (spec, want) in bad {
        let e = partitions::create(&mut con, ns, &[good.clone(), spec], WAIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
        assert_eq!(indexes(&mut con).await, before, "{e}");
    }
    // the same name again with another filter is refused; with the same filter it is checked again
    partitions::create(&mut con, ns, std::slice::from_ref(&good), WAIT)
        .await
        .unwrap();
    let other = PartitionSpec {
        name: "cheap".into(),
        filter: Filter::range(
            "price",
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(20.0),
        ),
    };
    let e = partitions::create(&mut con, ns, &[other], WAIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists with another filter"), "{e}");
    let again = partitions::create(&mut con, ns, &[good], WAIT)
        .await
        .unwrap();
    assert_eq!(again.partitions.len(), 1);
    // no serving index: a clear error
    let empty = TestSpace::new("partitions_none");
    let e = partitions::list(&mut con, &empty.ns)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("seed a catalog first"), "{e}");
}
