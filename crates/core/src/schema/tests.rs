//! Unit tests of the schema module: FT.CREATE rendering, field round trips, defaults.
use super::*;
use expect_test::expect;

fn default_schema() -> IndexSchema {
    items_schema(
        "redrec:items:v1",
        "redrec:item:",
        &ItemFields::default(),
        &VectorSettings::default(),
    )
}

#[test]
fn renders_ft_create_for_hash() {
    expect![[r#"redrec:items:v1 ON HASH PREFIX 1 redrec:item: SCHEMA text TEXT category TAG department TAG brand TAG price NUMERIC SORTABLE popularity NUMERIC SORTABLE in_stock TAG embedding VECTOR HNSW 12 TYPE FLOAT32 DIM 384 DISTANCE_METRIC COSINE M 16 EF_CONSTRUCTION 200 EF_RUNTIME 100"#]]
        .assert_eq(&default_schema().ft_create_args().join(" "));
}

#[test]
fn renders_ft_create_with_storage_names() {
    let mut s = default_schema();
    s.fields
        .retain(|f| f.name == "category" || f.name == "embedding");
    let stored = [("embedding".to_owned(), "embedding__v2".to_owned())].into();
    expect![[r#"redrec:items:v2 ON HASH PREFIX 1 redrec:item: SCHEMA category TAG embedding__v2 AS embedding VECTOR HNSW 12 TYPE FLOAT32 DIM 384 DISTANCE_METRIC COSINE M 16 EF_CONSTRUCTION 200 EF_RUNTIME 100"#]]
        .assert_eq(&s.ft_create_args_stored("redrec:items:v2", &stored).join(" "));
    s.index.storage_type = StorageType::Json;
    expect![[r#"redrec:items:v2 ON JSON PREFIX 1 redrec:item: SCHEMA $.category AS category TAG $.embedding__v2 AS embedding VECTOR HNSW 12 TYPE FLOAT32 DIM 384 DISTANCE_METRIC COSINE M 16 EF_CONSTRUCTION 200 EF_RUNTIME 100"#]]
        .assert_eq(&s.ft_create_args_stored("redrec:items:v2", &stored).join(" "));
}

#[test]
fn renders_ft_create_for_json_and_flat() {
    let mut s = default_schema();
    s.index.storage_type = StorageType::Json;
    s.fields = vec![
        FieldDef {
            name: "category".into(),
            path: Some("$.meta.cat".into()),
            kind: FieldKind::Tag(TagAttrs {
                separator: Some("|".into()),
                case_sensitive: true,
                ..Default::default()
            }),
        },
        FieldDef::vector(
            "v",
            VectorAttrs {
                block_size: Some(512),
                ..VectorAttrs::new(4, VectorAlgorithm::Flat, DistanceMetric::L2)
            },
        ),
    ];
    expect![[r#"redrec:items:v1 ON JSON PREFIX 1 redrec:item: SCHEMA $.meta.cat AS category TAG SEPARATOR | CASESENSITIVE $.v AS v VECTOR FLAT 8 TYPE FLOAT32 DIM 4 DISTANCE_METRIC L2 BLOCK_SIZE 512"#]]
        .assert_eq(&s.ft_create_args().join(" "));
}

#[test]
fn yaml_roundtrips_in_redisvl_shape() {
    let s = default_schema();
    let yaml = s.to_yaml();
    assert!(yaml.contains("storage_type: hash"), "{yaml}");
    assert!(yaml.contains("type: vector"), "{yaml}");
    assert_eq!(IndexSchema::from_yaml(&yaml).unwrap(), s);
}

#[test]
fn reads_a_redisvl_schema() {
    let yaml = r#"
version: '0.1.0'
index:
  name: user-idx
  prefix: user
  storage_type: hash
fields:
  - name: user
    type: tag
  - name: age
    type: numeric
  - name: job
    type: text
  - name: user_embedding
    type: vector
    attrs:
      algorithm: flat
      dims: 3
      distance_metric: cosine
      datatype: float32
"#;
    let s = IndexSchema::from_yaml(yaml).unwrap();
    assert_eq!(s.index.key_prefix(), "user:");
    assert_eq!(s.vector_field("user_embedding").unwrap().dims, 3);
}

#[test]
fn reports_bad_schemas_with_the_field() {
    let check = |yaml: &str, want: &str| {
        let err = IndexSchema::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains(want), "{err} does not mention {want}");
    };
    let head = "index: {name: i, prefix: p}\nfields:\n";
    check(
        &format!("{head}  - {{name: v, type: vector}}\n"),
        "field `v`: vector fields need attrs",
    );
    check(
        &format!("{head}  - {{name: c, type: tags}}\n"),
        "unknown type `tags`",
    );
    check(
        &format!("{head}  - {{name: c, type: tag, attrs: {{sperator: x}}}}\n"),
        "field `c` attrs: unknown field `sperator`",
    );
    check(
        &format!("{head}  - {{name: c, type: tag}}\n  - {{name: c, type: text}}\n"),
        "schema field `c`: appears twice",
    );
    check(
        &format!("{head}  - {{name: 'a b', type: tag}}\n"),
        "schema field `a b`",
    );
    let s = default_schema();
    assert!(matches!(
        s.vector_field("price"),
        Err(Error::FieldType { .. })
    ));
    assert!(matches!(s.field("nope"), Err(Error::UnknownField { .. })));
}

#[test]
fn maps_distance_to_similarity() {
    assert_eq!(DistanceMetric::Cosine.similarity(0.25), 0.75);
    assert_eq!(DistanceMetric::L2.similarity(1.0), 0.5);
}
