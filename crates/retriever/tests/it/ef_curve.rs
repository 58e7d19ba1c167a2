//! `retriever.recall_target`: the EF_RUNTIME sent comes from the serving index's measured curve
//! (stored by `redrec-ingest calibrate`), read with the background index lookups; without a
//! target, or without a curve of the serving index, the configured `ef_runtime` is used.

use redrec_core::calibration::{EfCurve, EfPoint};
use redrec_retriever::{RetrievalRequest, RetrieverConfig, Source};
use redrec_testkit::TestSpace;

use crate::support::{self, Item, Rng};

fn curve(index: &str, points: &[(u32, f64)]) -> EfCurve {
    EfCurve {
        index: index.to_owned(),
        items: 40,
        k: 10,
        queries: 20,
        measured_at_ms: 0,
        points: points
            .iter()
            .map(|&(ef, recall)| EfPoint { ef, recall })
            .collect(),
    }
}

async fn store(space: &TestSpace, key_index: &str, c: &EfCurve) {
    let mut con = space.conn().await;
    let _: () = redis::cmd("SET")
        .arg(space.ns.ef_curve(key_index))
        .arg(c.to_json())
        .query_async(&mut con)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_recall_target_takes_the_ef_of_the_serving_index_curve() {
    let space = TestSpace::new("ef_curve");
    let schema = support::schema(&space.ns, 8);
    support::create_index(&space, &schema).await;
    let mut rng = Rng::new(5);
    let items: Vec<Item> = (0..40)
        .map(|i| Item {
            id: format!("i{i}"),
            vector: support::random_unit(&mut rng, 8),
            fields: support::fields(&[("category", "c".into()), ("price", "1".into())]),
        })
        .collect();
    support::load(&space, &items, 20).await;
    let serving = space.ns.index(1);
    let targeted = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            recall_target: Some(0.95),
            ef_runtime: 100,
            ..RetrieverConfig::default()
        },
    );

    targeted.look_up_index().await.unwrap();
    assert_eq!(targeted.ef_runtime_for(10), 100, "no curve: ef_runtime");

    // a curve measured on another index is not used, even under this index's key
    store(&space, &serving, &curve("elsewhere:v9", &[(50, 0.99)])).await;
    targeted.look_up_index().await.unwrap();
    assert_eq!(targeted.ef_runtime_for(10), 100);

    store(
        &space,
        &serving,
        &curve(&serving, &[(50, 0.8), (200, 0.96), (800, 0.99)]),
    )
    .await;
    targeted.look_up_index().await.unwrap();
    assert_eq!(
        targeted.ef_runtime_for(10),
        200,
        "smallest EF reaching 0.95"
    );
    assert_eq!(targeted.ef_runtime_for(500), 500, "never below k");
    // searches run with it
    let got = targeted
        .retrieve(&RetrievalRequest::new(
            vec![Source::Vector(items[3].vector.clone())],
            5,
        ))
        .await
        .unwrap();
    assert_eq!(got.candidates[0].id, "i3");

    // an unreadable curve is ignored (logged), the configured EF comes back
    let mut con = space.conn().await;
    let _: () = redis::cmd("SET")
        .arg(space.ns.ef_curve(&serving))
        .arg("{not json")
        .query_async(&mut con)
        .await
        .unwrap();
    targeted.look_up_index().await.unwrap();
    assert_eq!(targeted.ef_runtime_for(10), 100);

    // without a target the curve is never read
    store(
        &space,
        &serving,
        &curve(&serving, &[(50, 0.8), (400, 0.99)]),
    )
    .await;
    let plain = support::retriever(&space, &schema, RetrieverConfig::default());
    plain.look_up_index().await.unwrap();
    assert_eq!(
        plain.ef_runtime_for(10),
        RetrieverConfig::default().ef_runtime
    );
}
