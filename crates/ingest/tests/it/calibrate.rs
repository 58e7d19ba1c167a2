//! `redrec-ingest calibrate` on a real index: the curve it stores is measured against exact
//! brute force, rises with EF_RUNTIME, and a bad request or a missing index writes nothing.

use std::sync::Arc;

use redrec_core::calibration::EfCurve;
use redrec_ingest::{
    calibrate::{CalibrateOptions, calibrate},
    dataset::synthetic::{Synthetic, SyntheticParams, SyntheticRows},
    load,
    load::OnInvalid,
    progress::ProgressMode,
    validate::Mapping,
};
use redrec_testkit::TestSpace;

use crate::common::{conn, quiet, schema};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_a_recall_curve_measured_against_brute_force() {
    let space = TestSpace::new("calibrate");
    let generator = Synthetic::new(SyntheticParams {
        items: 3_000,
        dims: 32,
        seed: 11,
    });
    let mut con = conn().await;
    load::load(
        &con,
        &space.ns,
        &schema(&space, 32),
        Arc::new(SyntheticRows(Arc::new(generator))),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    let opts = CalibrateOptions {
        queries: 20,
        k: 10,
        efs: vec![10, 40, 400],
        ..CalibrateOptions::default()
    };
    let curve = calibrate(&mut con, &space.ns, &opts, ProgressMode::Quiet)
        .await
        .unwrap();
    assert_eq!(curve.index, space.ns.index(1));
    assert_eq!((curve.items, curve.k, curve.queries), (3_000, 10, 20));
    let efs: Vec<u32> = curve.points.iter().map(|p| p.ef).collect();
    assert_eq!(efs, [10, 40, 400]);
    let recalls: Vec<f64> = curve.points.iter().map(|p| p.recall).collect();
    // a wide beam over 3,000 items finds (nearly) every true neighbour; a narrow one fewer
    assert!(recalls[2] >= 0.97, "{recalls:?}");
    assert!(recalls[0] <= recalls[2], "{recalls:?}");

    // stored next to the concrete index, readable by the retriever
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(space.ns.ef_curve(&space.ns.index(1)))
        .query_async(&mut con)
        .await
        .unwrap();
    // JSON text round-trips each recall to within one ulp (serde_json's default float parser)
    let back = EfCurve::parse(&stored).unwrap();
    assert_eq!(
        (
            &back.index,
            back.items,
            back.k,
            back.queries,
            back.measured_at_ms
        ),
        (
            &curve.index,
            curve.items,
            curve.k,
            curve.queries,
            curve.measured_at_ms
        )
    );
    assert_eq!(back.points.len(), curve.points.len());
    for (b, c) in back.points.iter().zip(&curve.points) {
        assert_eq!(b.ef, c.ef);
        assert!((b.recall - c.recall).abs() < 1e-12, "{b:?} vs {c:?}");
    }
}

#[tokio::test]
async fn bad_options_and_a_missing_index_write_nothing() {
    let space = TestSpace::new("calibrate-bad");
    let mut con = conn().await;
    let e = calibrate(
        &mut con,
        &space.ns,
        &CalibrateOptions {
            efs: vec![200, 100],
            ..CalibrateOptions::default()
        },
        ProgressMode::Quiet,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--ef values must ascend"), "{e}");
    let e = calibrate(
        &mut con,
        &space.ns,
        &CalibrateOptions::default(),
        ProgressMode::Quiet,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("load a catalog first"), "{e}");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", space.ns.name()))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
