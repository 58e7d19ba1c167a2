//! Integration tests of the bench's Redis-facing pieces against the real Redis: the loader, the
//! read-back, raw queries over both connection kinds, recall against brute force, and the plan
//! sweep with its retriever row.

use std::sync::Arc;
use std::time::Duration;

use redrec_bench::{
    catalog,
    driver::{closed_loop, open_loop},
    raw::{RawConn, RawTarget},
    recall, suite, sweep,
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

/// The `CLIENT LIST` line of the connection named `name`.
async fn client_line(con: &mut redis::aio::MultiplexedConnection, name: &str) -> String {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(con)
        .await
        .unwrap();
    list.lines()
        .find(|l| l.split(' ').any(|f| f == format!("name={name}")))
        .unwrap_or_else(|| panic!("no client named {name} in {list}"))
        .to_owned()
}

/// The last command of the connection named `name`, lower case.
async fn last_cmd(con: &mut redis::aio::MultiplexedConnection, name: &str) -> String {
    let line = client_line(con, name).await;
    line.split(' ')
        .find_map(|f| f.strip_prefix("cmd="))
        .unwrap()
        .to_lowercase()
}

/// `--capacity-only --read-urls`: searches go to the search nodes in turn, the acting user's
/// features to the primary, and the answers are those of a target without replicas.
#[tokio::test]
async fn a_spread_target_searches_on_its_nodes_in_turn_and_reads_users_on_the_primary() {
    let space = TestSpace::new("bench_spread");
    let url = redis_url();
    let mut admin = catalog::connect(&url).await.unwrap();
    catalog::load(
        &admin,
        &space.ns,
        SPEC,
        catalog::HnswBuild::default(),
        300,
        3,
    )
    .await
    .unwrap();
    let cat = catalog::read_back(&mut admin, &space.ns, SPEC.dims)
        .await
        .unwrap();
    let generator = Synthetic::new(SPEC);
    let users = workload::make_users(&generator, &cat, 3, 1);

    let tag = space.ns.name().replace(':', "-");
    let mut named = Vec::new();
    for role in ["primary", "s1", "s2"] {
        let mut c = catalog::connect(&url).await.unwrap();
        let name = format!("{tag}-{role}");
        let _: () = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&name)
            .query_async(&mut c)
            .await
            .unwrap();
        named.push((name, c));
    }
    let mut spread = RawTarget::new(
        RawConn::Mux(named[0].1.clone()),
        space.ns.clone(),
        SPEC.dims,
        100,
    );
    spread.searches =
        Some(RawConn::spread_over(vec![named[1].1.clone(), named[2].1.clone()]).unwrap());
    let plain = RawTarget::new(
        RawConn::mux(&url).await.unwrap(),
        space.ns.clone(),
        SPEC.dims,
        100,
    );
    assert!(RawConn::spread_over(vec![]).is_err());

    // a personalised query: the user's features from the primary, the KNN on the first node
    let personal = BenchQuery {
        kind: Kind::Personal,
        vector: generator.item(5).vector,
        user_id: Some(users[0].id.clone()),
        text: None,
        filter: Filter::All,
        k: 10,
    };
    let got = spread.run(&personal).await.unwrap();
    assert_eq!(got, plain.run(&personal).await.unwrap());
    assert_eq!(got.len(), 10);
    assert_eq!(last_cmd(&mut admin, &named[0].0).await, "smembers");
    assert_eq!(last_cmd(&mut admin, &named[1].0).await, "ft.search");
    assert_ne!(last_cmd(&mut admin, &named[2].0).await, "ft.search");

    // the next search takes the second node
    let vector = BenchQuery {
        kind: Kind::Vector,
        user_id: None,
        ..personal
    };
    assert_eq!(
        spread.run(&vector).await.unwrap(),
        plain.run(&vector).await.unwrap()
    );
    assert_eq!(last_cmd(&mut admin, &named[2].0).await, "ft.search");
    assert_eq!(last_cmd(&mut admin, &named[0].0).await, "smembers");

    catalog::drop_namespace(&mut admin, &space.ns)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_sweep_measures_the_retriever_on_the_plan_its_raw_twin_measures() {
    let space = TestSpace::new("bench_sweep");
    let url = redis_url();
    let con = catalog::connect(&url).await.unwrap();
    catalog::load(&con, &space.ns, SPEC, catalog::HnswBuild::default(), 500, 2)
        .await
        .unwrap();
    let opts = suite::Options {
        redis_url: url,
        gateway_url: None,
        gateway_pid: None,
        gateway_api_key: None,
        raw_candidates: 50,
        namespace: space.ns.name().to_owned(),
        items: SPEC.items as usize,
        dim: SPEC.dims,
        seed: SPEC.seed,
        duration_secs: 1.0,
        warmup_secs: 0.0,
        quick: true,
        reuse: true,
        ef_runtime: 100,
        hnsw: catalog::HnswBuild::default(),
        k: 10,
        concurrency: vec![1],
        max_in_flight: 1,
        users: 0,
        mix: Mix::default(),
        drop_namespaces: Vec::new(),
        out: std::env::temp_dir(),
    };
    let report = sweep::run(
        &opts,
        &sweep::SweepOptions {
            efs: vec![100],
            queries: 10,
            recall_target: 0.95,
            // the `auto` policy is under test here, not the broad filters' post-filter
            post_filter_above: Some(0.0),
        },
    )
    .await
    .unwrap();
    let rungs: Vec<&str> = report.cells.iter().map(|c| c.rung.as_str()).collect();
    for rung in rungs
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
    {
        let cells: Vec<_> = report.cells.iter().filter(|c| c.rung == rung).collect();
        let last = cells.last().unwrap();
        assert_eq!(
            last.plan, "retriever",
            "rung {rung}: the retriever row is last"
        );
        assert_eq!(
            last.measured.errors, 0,
            "rung {rung}: {:?}",
            last.measured.first_error
        );
        // no curve for this index: --ef-runtime (above the 50 candidates asked)
        assert_eq!(last.ef_runtime, Some(100), "rung {rung}");
        // the same queries on the same plan give the same answers
        let policy = last.policy.as_deref().unwrap();
        let twin = cells
            .iter()
            .find(|c| c.plan == policy && c.ef_runtime == last.ef_runtime)
            .unwrap_or_else(|| panic!("rung {rung}: no raw row for {policy}"));
        assert_eq!(
            last.measured.mean_recall, twin.measured.mean_recall,
            "rung {rung}"
        );
    }
    // `auto`: the server's choice unfiltered and for a filter keeping 1% of the items (under
    // `auto_batches_above`), BATCHES for one keeping 90%
    let policy = |rung: &str| {
        let c = report.cells.iter().rfind(|c| c.rung == rung).unwrap();
        c.policy.clone().unwrap()
    };
    assert_eq!(
        (policy("none"), policy("1%"), policy("90%")),
        ("server".into(), "server".into(), "batches".into())
    );
    assert!(sweep::render(&report).contains("| retriever (batches) | 100 |"));
}
