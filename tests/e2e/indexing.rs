//! An index still being built: `FT.CREATE` over thousands of items that already exist, with a
//! gateway serving the alias. While `FT.INFO` says `percent_indexed < 1`, `/readyz` is 503 with
//! `indexing: N%` and results served anyway say `degraded: true, degraded_reason:
//! "index_building"`; both clear soon after the build ends (the gateway learns it from its
//! background `FT.INFO`, no request pays a round trip for it).

use std::time::{Duration, Instant};

use redrec_testkit::TestSpace;
use serde_json::json;

use crate::{
    fixture,
    http::json as call,
    support::{Running, settings},
};

const DIMS: usize = 32;

/// `FT.INFO percent_indexed` of the alias, 0..=1.
async fn percent_indexed(space: &TestSpace) -> f64 {
    let mut con = fixture::conn(space).await;
    redrec_store::index::info(&mut con, &space.ns.alias())
        .await
        .expect("FT.INFO")
        .expect("the alias exists")
        .percent_indexed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_building_index_is_flagged_until_it_is_complete() {
    let space = TestSpace::new("e2e_building");
    let mut s = settings(&space, DIMS);
    s.retriever.index_check_ms = 100;
    // 8,000 items: a few seconds of background indexing on the test server
    let items = fixture::catalog(2_000, DIMS);
    fixture::write_items(&space, &items).await;
    // no embedder: /readyz stays 503 for it, so its `index` check is what this test reads
    let gw = Running::start(s.clone(), None).await;

    let mut axis = vec![0.0f32; DIMS];
    axis[0] = 1.0;
    let body = json!({"query": {"vector": axis}, "k": 5});
    fixture::create_index(&space, &s.index).await;
    let started = Instant::now();
    let (mut readyz_indexing, mut flagged) = (None::<String>, 0usize);
    let mut complete_at = None::<Instant>;
    let recovered = loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the index was not built within 180 s"
        );
        let ready = call(&gw.addr, "GET", "/readyz", None, None).await;
        let index_check = ready.json()["checks"]["index"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let r = call(&gw.addr, "POST", "/v1/recommendations", None, Some(&body)).await;
        assert_eq!(r.status, 200, "served while building: {}", r.text());
        let j = r.json();
        let degraded = j["degraded"] == true;
        if degraded {
            assert_eq!(j["degraded_reason"], "index_building", "{j}");
            flagged += 1;
        }
        if let Some(rest) = index_check.strip_prefix("indexing: ") {
            assert_eq!(ready.status, 503, "{}", ready.text());
            assert_eq!(ready.json()["ready"], false);
            let pct: f64 = rest
                .split('%')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no percentage in {index_check:?}"));
            assert!((0.0..100.0).contains(&pct), "{index_check}");
            readyz_indexing.get_or_insert(index_check.clone());
        }
        match complete_at {
            None if percent_indexed(&space).await >= 1.0 => complete_at = Some(Instant::now()),
            Some(at) if index_check == "ok" && !degraded => break at.elapsed(),
            Some(at) => assert!(
                at.elapsed() < Duration::from_secs(2),
                "still flagged {:?} after the index was complete: readyz {index_check:?}, degraded {degraded}",
                at.elapsed()
            ),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let readyz_indexing =
        readyz_indexing.expect("/readyz never said `indexing: N%` during the build");
    println!(
        "build took {:?}; readyz said {readyz_indexing:?}; {flagged} responses flagged index_building; cleared {recovered:?} after FT.INFO said 100%",
        started.elapsed()
    );
    assert!(
        flagged > 0,
        "no response carried degraded: index_building during the build"
    );
    // after the build: ready, and results from the whole catalog without the flag
    let ready = call(&gw.addr, "GET", "/readyz", None, None).await;
    assert_eq!(ready.json()["checks"]["index"], "ok", "{}", ready.text());
    gw.shutdown().await;
}
