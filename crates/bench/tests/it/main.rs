//! Integration tests of the bench's Redis-facing pieces against the real Redis: the loader, the
//! read-back, raw queries over both connection kinds, and recall against brute force.

use std::sync::Arc;
use std::time::Duration;

use redrec_bench::{
    catalog,
    driver::{closed_loop, open_loop},
    raw::{RawConn, RawTarget},
    recall,
    workload::{self, BenchQuery, Kind, Mix},
};
use redrec_core::{
    filter::Filter,
    synthetic::{Synthetic, SyntheticParams},
};
use redrec_testkit::{TestSpace, redis_url};

const SPEC: SyntheticParams = SyntheticParams {
    items: 2_000,
    dims: 16,
    seed: 7,
};

#[tokio::test]
async fn loads_reads_back_and_answers_the_mix_exactly() {
    let space = TestSpace::new("bench_load");
    let url = redis_url();
    let mut con = catalog::connect(&url).await.unwrap();
    let ingest = catalog::load(&con, &space.ns, SPEC, catalog::HnswBuild::default(), 300, 3)
        .await
        .unwrap();
    assert_eq!(ingest.items as u64, SPEC.items);
    assert!(ingest.items_per_sec > 0.0 && ingest.indexed_secs >= ingest.write_secs);
    let info = catalog::index_info(&mut con, &space.ns.alias())
        .await
        .unwrap();
    assert_eq!((info.num_docs, info.percent_indexed), (SPEC.items, 1.0));

    let cat = catalog::read_back(&mut con, &space.ns, SPEC.dims)
        .await
        .unwrap();
    assert_eq!(cat.len() as u64, SPEC.items);
    let generator = Synthetic::new(SPEC);
    let i = cat.ids.iter().position(|id| id == "s17").unwrap();
    assert_eq!(cat.vector(i), generator.item(17).vector.as_slice());

    // Below a few thousand documents RediSearch answers KNN exactly: recall must be 1.
    for conn in [
        RawConn::mux(&url).await.unwrap(),
        RawConn::pool(&url, 4).unwrap(),
    ] {
        let raw = RawTarget::new(conn, space.ns.clone(), SPEC.dims, 100);
        for (label, _, filter) in workload::selectivity_ladder(&cat) {
            let q = BenchQuery {
                kind: Kind::Vector,
                vector: generator.item(3).vector,
                user_id: None,
                text: None,
                filter: filter.clone(),
                k: 10,
            };
            let got = raw.run(&q).await.unwrap();
            let truth = recall::exact_top_k(&cat, &q.vector, 10, |i| {
                workload::ladder_matches(&cat, &filter, i)
            });
            assert_eq!(recall::recall(&truth, &got), 1.0, "rung {label}");
        }
    }

    // Every kind of the mix runs, including text and personalised queries.
    let users = workload::make_users(&generator, &cat, 5, 1);
    let queries = workload::make_queries(&generator, &cat, &users, Mix::default(), 60, 10, 3);
    let raw = RawTarget::new(
        RawConn::mux(&url).await.unwrap(),
        space.ns.clone(),
        SPEC.dims,
        100,
    );
    for q in &queries {
        let ids = raw.run(q).await.unwrap_or_else(|e| panic!("{q:?}: {e:#}"));
        assert!(ids.len() <= 10);
    }
    let cat01 = Filter::tag_any("category", ["cat01"]);
    let q = BenchQuery {
        kind: Kind::Vector,
        vector: generator.item(0).vector,
        user_id: None,
        text: None,
        filter: cat01.clone(),
        k: 10,
    };
    let ids = raw.run(&q).await.unwrap();
    assert!(!ids.is_empty());
    for id in &ids {
        let i = cat.ids.iter().position(|x| x == id).unwrap();
        assert_eq!(cat.categories[i], "cat01");
    }

    // A vector write lands and is searchable.
    let v = generator.item(1).vector;
    raw.write_vector("s5", &v).await.unwrap();
    let q = BenchQuery {
        filter: Filter::All,
        vector: v,
        ..q
    };
    let top = raw.run(&q).await.unwrap();
    assert!(
        top.iter().take(2).any(|id| id == "s5" || id == "s1"),
        "{top:?}"
    );

    // Both drivers run against it without errors.
    let raw = Arc::new(raw);
    let queries = Arc::new(queries);
    let closed = closed_loop(
        raw.clone(),
        queries.clone(),
        4,
        Duration::from_millis(100),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(closed.errors, 0, "{:?}", closed.first_error);
    assert!(closed.ok > 10);
    let open = open_loop(raw, queries, 100.0, Duration::from_millis(500), 16).await;
    assert_eq!((open.ok, open.errors), (50, 0));

    catalog::drop_namespace(&mut con, &space.ns).await.unwrap();
    assert!(
        catalog::read_back(&mut con, &space.ns, SPEC.dims)
            .await
            .unwrap()
            .is_empty()
    );
}
