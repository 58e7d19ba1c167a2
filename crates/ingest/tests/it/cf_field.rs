//! The collaborative vector field on a live index: first publication adds it with
//! `FT.ALTER ... SCHEMA ADD`, a re-train rewrites it in place, items without a vector stay out
//! of it, and the text-space field keeps serving throughout.

use std::sync::Arc;

use redrec_ingest::{
    cf_field::{self, CF_FIELD},
    dataset::synthetic::{Synthetic, SyntheticParams, SyntheticRows},
    index, load,
    load::OnInvalid,
    validate::Mapping,
};
use redrec_testkit::TestSpace;

use crate::common::{conn, knn, quiet, schema};

/// Item `s{i}`'s collaborative vector: the unit axis of group `(i + shift) % 4`, slightly tilted
/// by `i` so that ties are broken.
fn cf_vector(i: usize, shift: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; 4];
    v[(i + shift) % 4] = 1.0;
    v[(i + shift + 1) % 4] = 0.001 * (i % 7) as f32;
    v
}

async fn cf_knn(
    con: &mut redis::aio::MultiplexedConnection,
    alias: &str,
    v: &[f32],
) -> Vec<String> {
    let reply: Vec<redis::Value> = redis::cmd("FT.SEARCH")
        .arg(alias)
        .arg(format!("*=>[KNN 20 @{CF_FIELD} $v AS d]"))
        .arg("PARAMS")
        .arg(2)
        .arg("v")
        .arg(redrec_core::vector::encode(v))
        .arg("SORTBY")
        .arg("d")
        .arg("NOCONTENT")
        .arg("LIMIT")
        .arg(0)
        .arg(20)
        .arg("DIALECT")
        .arg(2)
        .query_async(con)
        .await
        .unwrap();
    reply
        .into_iter()
        .skip(1)
        .map(|v| redis::from_redis_value(v).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_the_field_to_the_live_index_then_retrains_in_place() {
    let space = TestSpace::new("cf-field");
    let generator = Synthetic::new(SyntheticParams {
        items: 200,
        dims: 8,
        seed: 3,
    });
    let mut con = conn().await;
    load::load(
        &con,
        &space.ns,
        &schema(&space, 8),
        Arc::new(SyntheticRows(Arc::new(generator.clone()))),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    let alias = space.ns.alias();
    let before = knn(&mut con, &alias, &generator.query_vector(0), 5)
        .await
        .unwrap();

    // Items s150..s199 have too few interactions: no collaborative vector.
    let vectors = |shift| -> Vec<(String, Vec<f32>)> {
        (0..150)
            .map(|i| (format!("s{i}"), cf_vector(i, shift)))
            .chain([("not-an-item".to_owned(), cf_vector(0, shift))])
            .collect()
    };
    let first = cf_field::publish(&mut con, &space.ns, vectors(0), 40, 2)
        .await
        .unwrap();
    assert!(first.added_field);
    assert_eq!((first.written, first.missing), (150, 1));
    let schema = index::live_schema(&mut con, &space.ns, &alias)
        .await
        .unwrap()
        .unwrap();
    assert!(
        schema.vector_field(CF_FIELD).is_ok(),
        "recorded schema has the field"
    );

    // Group 2 under shift 0: items i with i % 4 == 2, all below 150.
    let hits = cf_knn(&mut con, &alias, &[0.0, 0.0, 1.0, 0.0]).await;
    assert_eq!(hits.len(), 20);
    for key in &hits {
        let i: usize = space.ns.item_id(key).unwrap()[1..].parse().unwrap();
        assert!(i < 150 && i % 4 == 2, "{key}");
    }
    // The text-space field serves as before.
    assert_eq!(
        knn(&mut con, &alias, &generator.query_vector(0), 5)
            .await
            .unwrap(),
        before
    );

    // Re-train: same field, rewritten in place; the very next query sees the new vectors.
    let again = cf_field::publish(&mut con, &space.ns, vectors(1), 40, 2)
        .await
        .unwrap();
    assert!(!again.added_field);
    assert_eq!((again.written, again.cleared), (150, 0));
    for key in cf_knn(&mut con, &alias, &[0.0, 0.0, 1.0, 0.0]).await {
        let i: usize = space.ns.item_id(&key).unwrap()[1..].parse().unwrap();
        assert!(i < 150 && (i + 1) % 4 == 2, "{key}");
    }

    // A re-train that leaves items out replaces the field: s100..s149 lose their old vectors
    // (no vector from other training data survives), the text-space field is untouched.
    let fewer: Vec<(String, Vec<f32>)> = vectors(1).into_iter().take(100).collect();
    let third = cf_field::publish(&mut con, &space.ns, fewer, 40, 2)
        .await
        .unwrap();
    assert_eq!((third.written, third.cleared), (100, 50));
    for i in [0, 99, 100, 149, 199] {
        let has: bool = redis::cmd("HEXISTS")
            .arg(space.ns.item(&format!("s{i}")))
            .arg(CF_FIELD)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(has, i < 100, "s{i}");
    }
    for key in cf_knn(&mut con, &alias, &[0.0, 0.0, 1.0, 0.0]).await {
        let i: usize = space.ns.item_id(&key).unwrap()[1..].parse().unwrap();
        assert!(i < 100, "{key}");
    }
    assert_eq!(
        knn(&mut con, &alias, &generator.query_vector(0), 5)
            .await
            .unwrap(),
        before
    );

    // Another dimension is a migration, not a re-train.
    let err = cf_field::publish(
        &mut con,
        &space.ns,
        vec![("s1".into(), vec![1.0; 8])],
        40,
        2,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("4 dimensions") && err.contains("migration"),
        "{err}"
    );
}
