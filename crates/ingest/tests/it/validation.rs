//! Bad input: every validation error names file, row and field; strict mode writes nothing;
//! skip mode writes the valid rows and records the rejects; re-running is idempotent.

use std::sync::Arc;

use redrec_ingest::{
    Error,
    load::{self, OnInvalid},
    source::SourceSpec,
    validate::{Mapping, Reject},
};
use redrec_testkit::TestSpace;

use crate::common::{conn, keys, quiet, schema, tmp_dir};

const JSONL: &str = r#"{"id": "ok1", "text": "red apple", "category": "fruit", "price": 1.5, "embedding": [1, 0, 0, 0]}
{"id": "dim", "text": "x", "category": "fruit", "price": 1, "embedding": [1, 0, 0]}
{"id": "nan", "text": "x", "category": "fruit", "price": 1, "embedding": [1, "NaN", 0, 0]}
{"text": "no id", "category": "fruit", "price": 1, "embedding": [1, 0, 0, 0]}
{"id": "price", "text": "x", "category": "fruit", "price": "cheap", "embedding": [0, 1, 0, 0]}
{"id": "cat", "text": "x", "category": {"name": "fruit"}, "price": 2, "embedding": [0, 0, 1, 0]}

{"id": "ok2", "text": "green pear", "category": ["fruit", "green"], "brand": "Acme", "price": "2.25", "embedding": [0, 0, 0, 1]}
not json
{"id": "inf", "text": "x", "price": "inf", "embedding": [0, 0, 0, 1]}
{"id": "sep", "text": "x", "category": ["a,b"], "price": 1, "embedding": [0, 0, 0, 1]}
"#;

/// (row, field, words the message must contain)
const EXPECTED: &[(u64, &str, &str)] = &[
    (2, "embedding", "has 3 dimensions, expected 4"),
    (
        3,
        "embedding",
        "component 1 is NaN, expected a finite number",
    ),
    (4, "id", "missing id (column `id`)"),
    (5, "price", "expected a number, got `cheap`"),
    (
        6,
        "category",
        "expected a string or a list of strings, got an object",
    ),
    (9, "-", "not valid JSON"),
    (10, "price", "expected a finite number"),
    (11, "category", "contains the tag separator `,`"),
];

fn check_rejects(rejects: &[Reject], file: &str) {
    for (row, field, words) in EXPECTED {
        let hit = rejects.iter().find(|r| r.row == *row && r.field == *field);
        let r =
            hit.unwrap_or_else(|| panic!("no reject for row {row} field {field} in {rejects:#?}"));
        assert!(
            r.message.contains(words),
            "row {row}: `{}` lacks `{words}`",
            r.message
        );
        assert!(r.file.ends_with(file), "{} is not {file}", r.file);
        assert!(
            r.to_string()
                .contains(&format!("row {row}: field `{field}`")),
            "{r}"
        );
    }
    assert_eq!(rejects.len(), EXPECTED.len(), "{rejects:#?}");
}

#[tokio::test]
async fn strict_mode_reports_each_error_with_row_and_field_and_writes_nothing() {
    let space = TestSpace::new("strict");
    let dir = tmp_dir("strict");
    let file = dir.join("items.jsonl");
    std::fs::write(&file, JSONL).unwrap();
    let con = conn().await;
    let err = load::load(
        &con,
        &space.ns,
        &schema(&space, 4),
        Arc::new(SourceSpec::new(&file).unwrap()),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap_err();
    let Error::Invalid { count, first } = err else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(count, 8);
    check_rejects(&first, "items.jsonl");
    assert!(
        keys(&space).await.is_empty(),
        "strict mode wrote {:?}",
        keys(&space).await
    );
    // the index is created before the first write, so only once validation has passed
    let mut c = con.clone();
    assert!(
        redrec_ingest::index::info(&mut c, &space.ns.index(1))
            .await
            .unwrap()
            .is_none(),
        "strict mode created the index of an invalid load"
    );
}

#[tokio::test]
async fn skip_mode_writes_valid_rows_records_rejects_and_is_idempotent() {
    let space = TestSpace::new("skip");
    let dir = tmp_dir("skip");
    let file = dir.join("items.jsonl");
    let rejects = dir.join("rejects.jsonl");
    std::fs::write(&file, JSONL).unwrap();
    let con = conn().await;
    let opts = quiet(OnInvalid::Skip {
        rejects: Some(rejects.clone()),
    });
    let run = || async {
        load::load(
            &con,
            &space.ns,
            &schema(&space, 4),
            Arc::new(SourceSpec::new(&file).unwrap()),
            &Mapping::default(),
            &opts,
        )
        .await
        .unwrap()
    };
    let first = run().await;
    assert_eq!((first.rows_read, first.written, first.rejected), (10, 2, 8));
    assert!(first.created_index);
    let recorded: Vec<Reject> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check_rejects(&recorded, "items.jsonl");

    let mut c = space.conn().await;
    let item: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(space.ns.item("ok2"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(item["category"], b"fruit,green");
    assert_eq!(item["price"], b"2.25");
    assert_eq!(item["brand"], b"Acme");
    assert_eq!(
        redrec_core::vector::decode(&item["embedding"]).unwrap(),
        vec![0.0, 0.0, 0.0, 1.0]
    );

    let before = keys(&space).await;
    let second = run().await;
    assert_eq!((second.written, second.rejected), (2, 8));
    assert!(!second.created_index);
    assert_eq!(keys(&space).await, before, "a re-run changed the key set");
    let again: std::collections::HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(space.ns.item("ok2"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(again, item);
}

#[tokio::test]
async fn csv_errors_name_the_data_row_and_field() {
    let space = TestSpace::new("csv_bad");
    let dir = tmp_dir("csv_bad");
    let file = dir.join("items.csv");
    std::fs::write(
        &file,
        "item_id,title,category,price,vec\n\
         a1,red apple,fruit,1.5,\"[1,0,0,0]\"\n\
         a2,pear,fruit,12 EUR,\"0 1 0 0\"\n\
         a3,fig,fruit,3,\"1,nan,0,0\"\n\
         a4,plum,\"bad\u{7}tag\",3,\"1,0,0,0\"\n\
         ,kiwi,fruit,3,\"1,0,0,0\"\n\
         a6,lime,fruit,3\n",
    )
    .unwrap();
    let mapping: Mapping = serde_json::from_value(serde_json::json!({
        "id": "item_id",
        "fields": {"text": "title", "embedding": "vec"}
    }))
    .unwrap();
    let con = conn().await;
    let err = load::load(
        &con,
        &space.ns,
        &schema(&space, 4),
        Arc::new(SourceSpec::new(&file).unwrap()),
        &mapping,
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap_err();
    let Error::Invalid { count, first } = err else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(count, 5, "{first:#?}");
    let find = |row: u64, field: &str| {
        first
            .iter()
            .find(|r| r.row == row && r.field == field)
            .unwrap_or_else(|| panic!("no reject row {row} field {field}: {first:#?}"))
            .message
            .clone()
    };
    assert!(find(2, "price").contains("expected a number, got `12 EUR`"));
    assert!(find(3, "embedding").contains("NaN"));
    assert!(find(4, "category").contains("control character"));
    assert!(find(5, "id").contains("missing id (column `item_id`)"));
    assert!(find(6, "-").contains("has 4 cells, the header has 5 columns"));
    assert!(keys(&space).await.is_empty());
}

#[tokio::test]
async fn mapping_must_name_schema_fields() {
    let space = TestSpace::new("bad_mapping");
    let dir = tmp_dir("bad_mapping");
    let file = dir.join("items.jsonl");
    std::fs::write(&file, "{\"id\": \"a\"}\n").unwrap();
    let mapping: Mapping =
        serde_json::from_value(serde_json::json!({"fields": {"colour": "c"}})).unwrap();
    let con = conn().await;
    let err = load::load(
        &con,
        &space.ns,
        &schema(&space, 4),
        Arc::new(SourceSpec::new(&file).unwrap()),
        &mapping,
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `colour`"), "{err}");
    let bad_ext = SourceSpec::new(dir.join("items.xlsx"))
        .unwrap_err()
        .to_string();
    assert!(
        bad_ext.contains("cannot tell the format from the extension `xlsx`"),
        "{bad_ext}"
    );
}
