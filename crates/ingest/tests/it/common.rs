//! Shared helpers: small schemas, temp files, a quiet load.

use std::{path::PathBuf, sync::Arc};

use redis::aio::MultiplexedConnection;
use redrec_core::schema::{IndexSchema, ItemFields, VectorAlgorithm, VectorSettings, items_schema};
use redrec_ingest::{
    load::{LoadOptions, OnInvalid},
    progress::ProgressMode,
    source::{SourceRow, Value},
};
use redrec_testkit::TestSpace;

pub fn schema(space: &TestSpace, dims: usize) -> IndexSchema {
    items_schema(
        &space.ns.index(1),
        &space.ns.item_prefix(),
        &ItemFields::default(),
        &VectorSettings {
            dims,
            algorithm: VectorAlgorithm::Hnsw,
            ..VectorSettings::default()
        },
    )
}

pub async fn conn() -> MultiplexedConnection {
    redrec_ingest::connect(&redrec_testkit::redis_url())
        .await
        .expect("connect to the redis under test")
}

pub fn quiet(on_invalid: OnInvalid) -> LoadOptions {
    LoadOptions {
        on_invalid,
        progress: ProgressMode::Quiet,
        ..LoadOptions::default()
    }
}

/// A fresh temp directory for one test's files.
pub fn tmp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("redrec-ingest-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Keys of the namespace.
pub async fn keys(space: &TestSpace) -> Vec<String> {
    let mut c = space.conn().await;
    let mut k: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", space.ns.name()))
        .query_async(&mut c)
        .await
        .unwrap();
    k.sort();
    k
}

/// Ids of a KNN query through the alias.
pub async fn knn(
    con: &mut MultiplexedConnection,
    alias: &str,
    v: &[f32],
    k: usize,
) -> redis::RedisResult<Vec<String>> {
    let reply: redis::Value = redis::cmd("FT.SEARCH")
        .arg(alias)
        .arg(format!("*=>[KNN {k} @embedding $v AS score]"))
        .arg("PARAMS")
        .arg(2)
        .arg("v")
        .arg(redrec_core::vector::encode(v))
        .arg("SORTBY")
        .arg("score")
        .arg("NOCONTENT")
        .arg("DIALECT")
        .arg(2)
        .query_async(con)
        .await?;
    let redis::Value::Array(items) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    Ok(items
        .iter()
        .skip(1)
        .filter_map(|v| match v {
            redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect())
}

/// Rows of (id, vector) in memory.
pub fn vector_rows(items: &[(String, Vec<f32>)]) -> Arc<redrec_ingest::load::MemoryRows> {
    Arc::new(redrec_ingest::load::MemoryRows {
        label: "memory".into(),
        rows: Arc::new(
            items
                .iter()
                .enumerate()
                .map(|(i, (id, v))| SourceRow {
                    row: i as u64 + 1,
                    columns: vec![
                        ("id".into(), Value::Str(id.clone())),
                        ("embedding".into(), Value::Vector(v.clone())),
                    ],
                })
                .collect(),
        ),
    })
}
