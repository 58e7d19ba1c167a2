//! Loaders end to end: Parquet metadata + NPY vectors keyed by an id file (two loads joined on
//! the key), raw f32 files, JSON storage, and the synthetic dataset.

use std::{fs::File, sync::Arc};

use parquet::{
    data_type::{ByteArray, ByteArrayType, DoubleType},
    file::{properties::WriterProperties, writer::SerializedFileWriter},
    schema::parser::parse_message_type,
};
use redrec_core::schema::StorageType;
use redrec_ingest::{
    dataset::synthetic::{Synthetic, SyntheticParams, SyntheticRows},
    load::{self, OnInvalid},
    source::{Format, SourceSpec, write_npy},
    validate::Mapping,
};
use redrec_testkit::TestSpace;

use crate::common::{conn, knn, quiet, schema, tmp_dir};

fn write_parquet(path: &std::path::Path) {
    let schema = Arc::new(
        parse_message_type(
            "message items { required binary sku (UTF8); optional double price; optional binary category (UTF8); }",
        )
        .unwrap(),
    );
    let mut w = SerializedFileWriter::new(
        File::create(path).unwrap(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut i = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        match i {
            0 => {
                let ids: Vec<ByteArray> = ["p1", "p2", "p3"]
                    .iter()
                    .map(|s| ByteArray::from(*s))
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&ids, None, None)
                    .unwrap();
            }
            1 => {
                col.typed::<DoubleType>()
                    .write_batch(&[9.99, 5.0], Some(&[1, 0, 1]), None)
                    .unwrap();
            }
            _ => {
                let cats: Vec<ByteArray> = ["toys", "games", "toys"]
                    .iter()
                    .map(|s| ByteArray::from(*s))
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&cats, Some(&[1, 1, 1]), None)
                    .unwrap();
            }
        }
        col.close().unwrap();
        i += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

#[tokio::test]
async fn parquet_metadata_then_npy_vectors_then_raw_f32() {
    let space = TestSpace::new("parquet_npy");
    let dir = tmp_dir("parquet_npy");
    let pq = dir.join("items.parquet");
    write_parquet(&pq);
    let con = conn().await;
    let mapping = Mapping {
        id: "sku".into(),
        require_vector: false,
        ..Mapping::default()
    };
    let spec = SourceSpec::new(&pq).unwrap();
    assert_eq!(spec.known_len(), Some(3));
    let r = load::load(
        &con,
        &space.ns,
        &schema(&space, 3),
        Arc::new(spec),
        &mapping,
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    assert_eq!((r.rows_read, r.written, r.rejected), (3, 3, 0));

    // Vectors from an .npy file keyed by an id file.
    let npy = dir.join("vecs.npy");
    write_npy(
        &npy,
        &[
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ],
    )
    .unwrap();
    std::fs::write(dir.join("ids.txt"), "p1\np2\np3\n").unwrap();
    let mut vspec = SourceSpec::new(&npy).unwrap();
    vspec.ids = Some(dir.join("ids.txt"));
    let vmapping = Mapping::default();
    vspec.id_column = vmapping.id.clone();
    let r = load::load(
        &con,
        &space.ns,
        &schema(&space, 3),
        Arc::new(vspec),
        &vmapping,
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    assert_eq!(r.written, 3);
    let mut c = space.conn().await;
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &[0.0, 0.9, 0.1], 1)
            .await
            .unwrap(),
        vec![space.ns.item("p2")]
    );
    let (price, cat): (Option<String>, String) = redis::cmd("HMGET")
        .arg(space.ns.item("p1"))
        .arg("price")
        .arg("category")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((price.as_deref(), cat.as_str()), (Some("9.99"), "toys"));
    let p2_price: Option<String> = redis::cmd("HGET")
        .arg(space.ns.item("p2"))
        .arg("price")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(p2_price, None, "a null price must not be written");

    // Raw f32 with a mismatching id file is a file-level error, before anything is read.
    let raw = dir.join("vecs.f32");
    std::fs::write(
        &raw,
        redrec_core::vector::encode(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
    )
    .unwrap();
    let mut rspec = SourceSpec::new(&raw).unwrap();
    assert_eq!(rspec.format, Format::F32);
    rspec.ids = Some(dir.join("ids.txt"));
    rspec.dims = Some(3);
    let err = load::load(
        &con,
        &space.ns,
        &schema(&space, 3),
        Arc::new(rspec.clone()),
        &vmapping,
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("has 2 vectors but the id file"), "{err}");
    std::fs::write(dir.join("ids2.txt"), "p3\np1\n").unwrap();
    rspec.ids = Some(dir.join("ids2.txt"));
    let r = load::load(
        &con,
        &space.ns,
        &schema(&space, 3),
        Arc::new(rspec),
        &vmapping,
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    assert_eq!(r.written, 2);
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &[1.0, 0.0, 0.0], 1)
            .await
            .unwrap(),
        vec![space.ns.item("p3")]
    );
}

#[tokio::test]
async fn json_storage_and_vector_dimension_guard() {
    let space = TestSpace::new("json_storage");
    let dir = tmp_dir("json_storage");
    let file = dir.join("items.jsonl");
    std::fs::write(
        &file,
        "{\"id\": \"j1\", \"text\": \"blue mug\", \"category\": \"kitchen\", \"price\": 7, \"embedding\": [1, 0]}\n\
         {\"id\": \"j2\", \"text\": \"red mug\", \"category\": \"kitchen\", \"price\": 8, \"embedding\": [0, 1]}\n",
    )
    .unwrap();
    let mut s = schema(&space, 2);
    s.index.storage_type = StorageType::Json;
    let con = conn().await;
    let r = load::load(
        &con,
        &space.ns,
        &s,
        Arc::new(SourceSpec::new(&file).unwrap()),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    assert_eq!(r.written, 2);
    let mut c = space.conn().await;
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &[0.1, 1.0], 1)
            .await
            .unwrap(),
        vec![space.ns.item("j2")]
    );
    let doc: String = redis::cmd("JSON.GET")
        .arg(space.ns.item("j1"))
        .arg("$.price")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(doc, "[7]");
    // The live index has 2 dims: a config asking for 3 is refused with a pointer to migrate.
    let err = load::load(
        &con,
        &space.ns,
        &schema(&space, 3),
        Arc::new(SourceSpec::new(&file).unwrap()),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("has 2 dims but the configured schema has 3") && err.contains("migrate"),
        "{err}"
    );
}

#[tokio::test]
async fn synthetic_catalog_loads_and_is_searchable() {
    let space = TestSpace::new("synthetic");
    let generator = Synthetic::new(SyntheticParams {
        items: 500,
        dims: 16,
        seed: 42,
    });
    let probe = generator.item(123);
    let con = conn().await;
    let r = load::load(
        &con,
        &space.ns,
        &schema(&space, 16),
        Arc::new(SyntheticRows(Arc::new(generator))),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    assert_eq!((r.rows_read, r.written, r.rejected), (500, 500, 0));
    assert!(r.created_index && r.index_secs >= 0.0);
    let mut c = space.conn().await;
    let hits = knn(&mut c, &space.ns.alias(), &probe.vector, 1)
        .await
        .unwrap();
    assert_eq!(hits, vec![space.ns.item("s123")]);
    let (cat, stock): (String, String) = redis::cmd("HMGET")
        .arg(space.ns.item("s123"))
        .arg("category")
        .arg("in_stock")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(cat, probe.category);
    assert_eq!(stock, if probe.in_stock { "true" } else { "false" });
}

/// A Parquet file as offline pipelines write it: id, a float, and the vector as `list<float>`.
fn write_parquet_with_vectors(path: &std::path::Path, rows: &[(&str, f64, [f32; 2])]) {
    use parquet::data_type::FloatType;
    let schema = Arc::new(
        parse_message_type(
            "message items {
               required binary id (UTF8);
               required double price;
               optional group embedding (LIST) { repeated group list { optional float element; } }
             }",
        )
        .unwrap(),
    );
    let mut w = SerializedFileWriter::new(
        File::create(path).unwrap(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut i = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        match i {
            0 => {
                let ids: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.0)).collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&ids, None, None)
                    .unwrap();
            }
            1 => {
                let prices: Vec<f64> = rows.iter().map(|r| r.1).collect();
                col.typed::<DoubleType>()
                    .write_batch(&prices, None, None)
                    .unwrap();
            }
            _ => {
                // Two elements per row: definition level 3 (all levels present), repetition 0
                // starts a row and 1 continues the list.
                let values: Vec<f32> = rows.iter().flat_map(|r| r.2).collect();
                let def = vec![3i16; values.len()];
                let rep: Vec<i16> = (0..values.len()).map(|j| (j % 2) as i16).collect();
                col.typed::<FloatType>()
                    .write_batch(&values, Some(&def), Some(&rep))
                    .unwrap();
            }
        }
        col.close().unwrap();
        i += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

#[tokio::test]
async fn parquet_list_column_carries_vectors() {
    let space = TestSpace::new("parquet_vec");
    let dir = tmp_dir("parquet_vec");
    let pq = dir.join("items.parquet");
    write_parquet_with_vectors(
        &pq,
        &[
            ("v1", 1.0, [1.0, 0.0]),
            ("v2", 2.0, [0.0, 1.0]),
            ("v3", 3.0, [0.7, 0.7]),
        ],
    );
    let con = conn().await;
    let r = load::load(
        &con,
        &space.ns,
        &schema(&space, 2),
        Arc::new(SourceSpec::new(&pq).unwrap()),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    assert_eq!((r.rows_read, r.written), (3, 3));
    let mut c = space.conn().await;
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &[0.1, 1.0], 1)
            .await
            .unwrap(),
        vec![space.ns.item("v2")]
    );

    // Problems in Parquet rows are reported with file, row and field like any other source.
    write_parquet_with_vectors(&pq, &[("w1", 1.0, [1.0, 0.0])]);
    let err = load::load(
        &con,
        &space.ns,
        &schema(&space, 2),
        Arc::new(SourceSpec::new(&pq).unwrap()),
        &Mapping {
            id: "nope".into(),
            ..Mapping::default()
        },
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("items.parquet row 1: field `id`: missing id (column `nope`)"),
        "{err}"
    );
}
