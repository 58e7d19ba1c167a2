//! RedisVL YAML: a fixture in RedisVL's exact format creates an index through redrec, and the
//! index redrec created exports back to the same schema (file round trip and `FT.INFO`).

use redrec_core::schema::{FieldKind, IndexSchema};
use redrec_ingest::index;
use redrec_testkit::TestSpace;

const FIXTURE: &str = include_str!("../fixtures/redisvl_schema.yaml");

#[tokio::test]
async fn redisvl_yaml_round_trips_through_a_live_index() {
    let space = TestSpace::new("yaml");
    // The fixture's names, moved into this test's namespace.
    let yaml = FIXTURE
        .replace(
            "name: redisvl-products",
            &format!("name: {}", space.ns.index(1)),
        )
        .replace(
            "prefix: redisvl-product",
            &format!("prefix: {}:item", space.ns.name()),
        );
    let schema = IndexSchema::from_yaml(&yaml).unwrap();
    assert_eq!(schema.fields.len(), 6);
    let v = schema.vector_field("embedding").unwrap();
    assert_eq!(
        (v.dims, v.m, v.ef_runtime, v.epsilon),
        (4, Some(16), Some(10), Some(0.01))
    );

    let mut con = crate::common::conn().await;
    let created = index::create_if_missing(
        &mut con,
        &space.ns,
        &schema,
        &schema.index.name,
        &Default::default(),
    )
    .await
    .unwrap();
    assert!(created);
    index::point_alias(&mut con, &space.ns.alias(), &schema.index.name)
        .await
        .unwrap();
    assert!(
        !index::create_if_missing(
            &mut con,
            &space.ns,
            &schema,
            &schema.index.name,
            &Default::default()
        )
        .await
        .unwrap(),
        "second create must be a no-op"
    );

    // Export (through the alias) -> file -> read back: the same schema.
    let exported = index::live_schema(&mut con, &space.ns, &space.ns.alias())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exported, schema);
    let dir = crate::common::tmp_dir("yaml");
    let path = dir.join("schema.yaml");
    std::fs::write(&path, exported.to_yaml()).unwrap();
    let back = IndexSchema::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back, schema);
    let text = exported.to_yaml();
    for key in [
        "version:",
        "index:",
        "key_separator:",
        "storage_type: hash",
        "type: vector",
        "distance_metric: cosine",
        "ef_construction: 200",
    ] {
        assert!(text.contains(key), "exported YAML lacks `{key}`:\n{text}");
    }

    // What Redis itself reports matches too (FT.INFO omits ef_runtime / epsilon).
    let info = index::info(&mut con, &space.ns.alias())
        .await
        .unwrap()
        .unwrap();
    let mut from_info = info.to_schema();
    from_info.version = schema.version.clone();
    let mut expected = schema.clone();
    for f in &mut expected.fields {
        if let FieldKind::Vector(v) = &mut f.kind {
            v.ef_runtime = None;
            v.epsilon = None;
        }
    }
    assert_eq!(from_info, expected);
}
