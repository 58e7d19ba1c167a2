//! The foundation check: an index built from redrec-core's schema, items written as hashes with
//! the core vector codec, and a hand-written KNN query with a TAG and a NUMERIC pre-filter give
//! back the expected order from the real server.

use redrec_core::{
    schema::{ItemFields, VectorSettings, items_schema},
    vector,
};
use redrec_testkit::TestSpace;

#[tokio::test]
async fn knn_with_tag_and_numeric_prefilter_returns_expected_order() {
    let space = TestSpace::new("foundation_knn");
    let mut con = space.conn().await;
    let settings = VectorSettings {
        dims: 3,
        ..VectorSettings::default()
    };
    let schema = items_schema(
        &space.ns.index(1),
        &space.ns.item_prefix(),
        &ItemFields::default(),
        &settings,
    );
    let () = schema
        .ft_create_cmd()
        .query_async(&mut con)
        .await
        .expect("FT.CREATE");

    // (id, category, price, vector): the query is [1, 0, 0].
    let items: &[(&str, &str, f64, [f32; 3])] = &[
        ("a", "bread", 2.0, [1.0, 0.0, 0.0]),   // best match, in filter
        ("b", "bread", 3.0, [0.9, 0.1, 0.0]),   // second, in filter
        ("c", "bread", 4.0, [0.0, 1.0, 0.0]),   // far, in filter
        ("d", "milk", 2.0, [1.0, 0.0, 0.01]),   // very close but wrong category
        ("e", "bread", 50.0, [1.0, 0.0, 0.02]), // very close but too expensive
    ];
    for (id, cat, price, v) in items {
        let () = redis::cmd("HSET")
            .arg(space.ns.item(id))
            .arg("category")
            .arg(*cat)
            .arg("price")
            .arg(*price)
            .arg("embedding")
            .arg(vector::encode(v))
            .query_async(&mut con)
            .await
            .expect("HSET");
    }

    let reply: redis::Value = redis::cmd("FT.SEARCH")
        .arg(space.ns.index(1))
        .arg("(@category:{bread} @price:[0 10])=>[KNN 3 @embedding $vec AS dist]")
        .arg("PARAMS")
        .arg(2)
        .arg("vec")
        .arg(vector::encode(&[1.0, 0.0, 0.0]))
        .arg("SORTBY")
        .arg("dist")
        .arg("RETURN")
        .arg(1)
        .arg("dist")
        .arg("DIALECT")
        .arg(2)
        .query_async(&mut con)
        .await
        .expect("FT.SEARCH");
    let redis::Value::Array(parts) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    let ids: Vec<String> = parts
        .iter()
        .skip(1)
        .step_by(2)
        .map(|v| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("unexpected key {other:?}"),
        })
        .collect();
    let want: Vec<String> = ["a", "b", "c"].iter().map(|id| space.ns.item(id)).collect();
    assert_eq!(ids, want);
}
