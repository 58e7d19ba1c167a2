//! Zero downtime: a background task queries the alias continuously while (a) vectors are
//! refreshed in place and (b) a migration to another dimension runs, is rolled back and cleaned
//! up. No query may fail.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use redrec_ingest::{
    Error,
    dataset::synthetic::{Synthetic, SyntheticParams, SyntheticRows},
    index,
    load::{self, OnInvalid, RowFactory},
    migrate::{self, Step, Target},
    refresh,
    source::{Rows, SourceSpec, write_npy},
    validate::Mapping,
};
use redrec_testkit::TestSpace;

use crate::common::{conn, knn, quiet, schema, tmp_dir, vector_rows};

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Queries that raced the alias switch with the other model's vector and were re-sent.
    dim_retries: AtomicU64,
}

/// Queries the alias in a loop. The client holds a query vector per model dimension and uses
/// the dimension it last saw on the alias; a query that races a switch gets RediSearch's size
/// error, re-reads the dimension and is re-sent (counted), as a gateway holding both models
/// during a migration would do. A query failing otherwise, or twice, counts as failed.
fn spawn_queries(
    alias: String,
    vectors: HashMap<usize, Vec<f32>>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut con = conn().await;
        let mut errors = Vec::new();
        let dims_of = |info: Option<index::IndexInfo>| {
            info.and_then(|i| i.vector_dims("embedding")).unwrap_or(0)
        };
        let mut dims = dims_of(index::info(&mut con, &alias).await.unwrap());
        while !stop.load(Ordering::Relaxed) {
            let v = &vectors[&dims];
            match knn(&mut con, &alias, v, 5).await {
                Ok(hits) if !hits.is_empty() => {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    errors.push("empty result".to_owned());
                }
                Err(e)
                    if e.to_string()
                        .contains("does not match index's expected size") =>
                {
                    counts.dim_retries.fetch_add(1, Ordering::Relaxed);
                    dims = dims_of(index::info(&mut con, &alias).await.unwrap());
                    match knn(&mut con, &alias, &vectors[&dims], 5).await {
                        Ok(h) if !h.is_empty() => counts.ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            errors.push(format!("after retry: {other:?}"));
                            counts.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                Err(e) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    errors.push(e.to_string());
                }
            }
        }
        errors
    })
}

async fn seed(space: &TestSpace, items: u64, dims: usize, seed: u64) -> Synthetic {
    let generator = Synthetic::new(SyntheticParams { items, dims, seed });
    let con = conn().await;
    load::load(
        &con,
        &space.ns,
        &schema(space, dims),
        Arc::new(SyntheticRows(Arc::new(generator.clone()))),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    generator
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_refresh_while_serving() {
    let space = TestSpace::new("refresh");
    let old = seed(&space, 400, 8, 1).await;
    let fresh = Synthetic::new(SyntheticParams {
        items: 400,
        dims: 8,
        seed: 2,
    });
    let dir = tmp_dir("refresh");
    let vectors: Vec<Vec<f32>> = (0..400).map(|i| fresh.item(i).vector).collect();
    write_npy(&dir.join("v.npy"), &vectors).unwrap();
    let mut ids: String = (0..400).map(|i| format!("s{i}\n")).collect();
    ids = ids.replacen("s399\n", "unknown-item\n", 1);
    std::fs::write(dir.join("ids.txt"), ids).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let task = spawn_queries(
        space.ns.alias(),
        HashMap::from([(8, old.query_vector(0))]),
        Arc::clone(&stop),
        Arc::clone(&counts),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = counts.ok.load(Ordering::Relaxed);

    let mut spec = SourceSpec::new(dir.join("v.npy")).unwrap();
    spec.ids = Some(dir.join("ids.txt"));
    let con = conn().await;
    let mut opts = quiet(OnInvalid::Strict);
    opts.write.batch_size = 50;
    let report = refresh::refresh(
        &con,
        &space.ns,
        "embedding",
        Arc::new(spec),
        &Mapping::default(),
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.refreshed, report.missing, report.rejected),
        (399, 1, 0),
        "{report}"
    );
    // The very next query sees a refreshed vector.
    let mut c = space.conn().await;
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &vectors[17], 1)
            .await
            .unwrap(),
        vec![space.ns.item("s17")]
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(space.ns.item("unknown-item"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!exists, "refresh must not create items");

    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let errors = task.await.unwrap();
    let (ok, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "refresh while serving: {ok} queries ok ({} during the refresh window), {failed} failed",
        ok - before
    );
    assert_eq!(failed, 0, "{errors:?}");
    assert!(ok > before && ok > 20, "the query loop barely ran: {ok}");
}

/// Rows that fail after `fail_after` rows on the second open (the first open is strict
/// validation): a crash in the middle of a backfill.
struct Crashing {
    inner: Arc<dyn RowFactory>,
    opens: AtomicU64,
    fail_after: usize,
}

impl RowFactory for Crashing {
    fn open(&self) -> redrec_ingest::Result<Rows> {
        let n = self.opens.fetch_add(1, Ordering::Relaxed);
        let rows = self.inner.open()?;
        if n == 1 {
            let fail_after = self.fail_after;
            Ok(Box::new(rows.enumerate().map(move |(i, r)| {
                if i == fail_after {
                    Err(Error::Internal {
                        message: "simulated crash".into(),
                    })
                } else {
                    r
                }
            })))
        } else {
            Ok(rows)
        }
    }
    fn label(&self) -> String {
        self.inner.label()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_to_another_dimension_while_serving_with_resume_rollback_and_cleanup() {
    let space = TestSpace::new("migrate");
    let items = 300u64;
    let old = seed(&space, items, 8, 1).await;
    let new = Synthetic::new(SyntheticParams {
        items,
        dims: 12,
        seed: 7,
    });
    let new_vectors: Vec<(String, Vec<f32>)> = (0..items)
        .map(|i| (format!("s{i}"), new.item(i).vector))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let task = spawn_queries(
        space.ns.alias(),
        HashMap::from([(8, old.query_vector(0)), (12, new.query_vector(0))]),
        Arc::clone(&stop),
        Arc::clone(&counts),
    );
    let con = conn().await;
    let mut opts = quiet(OnInvalid::Strict);
    opts.write.batch_size = 20;
    opts.write.in_flight = 2;
    let target = Target {
        field: "embedding".into(),
        dims: 12,
        attrs: None,
    };

    // First attempt crashes in the middle of the backfill; the state keeps the resume point.
    let crashing = Arc::new(Crashing {
        inner: vector_rows(&new_vectors),
        opens: AtomicU64::new(0),
        fail_after: 130,
    });
    let err = migrate::run(
        &con,
        &space.ns,
        &target,
        crashing,
        &Mapping::default(),
        &opts,
        30,
        10,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");
    let mut c = space.conn().await;
    let st = migrate::state(&mut c, &space.ns).await.unwrap().unwrap();
    assert_eq!(st.step, Step::Planned);
    assert_eq!(
        st.rows_done, 120,
        "resume point after 3 full rounds of 40 rows"
    );
    assert_eq!(
        index::alias_target(&mut c, &space.ns.alias())
            .await
            .unwrap()
            .unwrap(),
        space.ns.index(1)
    );

    // Resume: the same command finishes the backfill, shadow-compares and switches.
    let st = migrate::run(
        &con,
        &space.ns,
        &target,
        vector_rows(&new_vectors),
        &Mapping::default(),
        &opts,
        30,
        10,
    )
    .await
    .unwrap();
    assert_eq!(st.step, Step::Switched);
    assert_eq!(
        (st.rows_done, st.vectors_written, st.missing_items),
        (items, items, 0)
    );
    assert_eq!((st.from_dims, st.to_dims), (8, 12));
    let shadow = st.shadow.clone().unwrap();
    assert_eq!((shadow.queries, shadow.k), (30, 10));
    assert!((0.0..=1.0).contains(&shadow.mean_overlap));
    assert_eq!(
        index::alias_target(&mut c, &space.ns.alias())
            .await
            .unwrap()
            .unwrap(),
        space.ns.index(2)
    );
    // After the switch, queries with the new model's vectors find the new vectors.
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &new_vectors[42].1, 1)
            .await
            .unwrap(),
        vec![space.ns.item("s42")]
    );
    // A load now writes the new field the serving index reads.
    let loaded = load::load(
        &con,
        &space.ns,
        &schema(&space, 12),
        vector_rows(&new_vectors[..5]),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    assert_eq!(loaded.index, space.ns.index(2));
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(space.ns.item("s1"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        fields.contains(&"embedding__v2".to_owned()) && fields.contains(&"embedding".to_owned()),
        "{fields:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Rollback: the alias is back on the old index; queries keep succeeding.
    let st = migrate::rollback(&con, &space.ns).await.unwrap();
    assert_eq!(st.step, Step::RolledBack);
    assert_eq!(
        index::alias_target(&mut c, &space.ns.alias())
            .await
            .unwrap()
            .unwrap(),
        space.ns.index(1)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &old.item(42).vector, 1)
            .await
            .unwrap(),
        vec![space.ns.item("s42")]
    );

    // Cleanup after rollback drops the new index and the new field.
    let (st, touched) = migrate::cleanup(&con, &space.ns).await.unwrap();
    assert_eq!(st.step, Step::CleanedUp);
    assert_eq!(touched, items);
    assert!(
        index::info(&mut c, &space.ns.index(2))
            .await
            .unwrap()
            .is_none()
    );
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(space.ns.item("s1"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!fields.contains(&"embedding__v2".to_owned()), "{fields:?}");

    // A second full migration, switched and cleaned up: the alias ends on the new index and
    // the old vectors are gone.
    let st = migrate::run(
        &con,
        &space.ns,
        &target,
        vector_rows(&new_vectors),
        &Mapping::default(),
        &opts,
        10,
        5,
    )
    .await
    .unwrap();
    assert_eq!(st.step, Step::Switched);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (st, touched) = migrate::cleanup(&con, &space.ns).await.unwrap();
    assert_eq!((st.step, touched), (Step::CleanedUp, items));
    assert_eq!(
        index::alias_target(&mut c, &space.ns.alias())
            .await
            .unwrap()
            .unwrap(),
        space.ns.index(2)
    );
    assert!(
        index::info(&mut c, &space.ns.index(1))
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    stop.store(true, Ordering::Relaxed);
    let errors = task.await.unwrap();
    let (ok, failed, retries) = (
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        counts.dim_retries.load(Ordering::Relaxed),
    );
    eprintln!(
        "migration while serving: {ok} queries ok, {failed} failed, {retries} re-sent after racing a switch"
    );
    assert_eq!(failed, 0, "{errors:?}");
    assert!(ok > 50, "the query loop barely ran: {ok}");
    assert!(
        retries <= 4,
        "each of the 3 switches costs at most one re-sent query: {retries}"
    );
}

/// A deterministic stand-in for a new model (6 dims, from the text's bytes). It is test data
/// for the re-embedding path, not a mock of Redis: the migration itself runs on the real server.
struct ToyModel;

impl redrec_embedder::Embedder for ToyModel {
    fn dims(&self) -> usize {
        6
    }
    fn model_id(&self) -> &str {
        "toy-6d"
    }
    fn embed(&self, texts: &[&str]) -> redrec_embedder::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.1f32; 6];
                for (i, b) in t.bytes().enumerate() {
                    v[i % 6] += f32::from(b) / 255.0;
                }
                v
            })
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_by_re_embedding_item_texts() {
    let space = TestSpace::new("reembed");
    let old = seed(&space, 120, 8, 3).await;
    let con = conn().await;
    let texts = migrate::item_texts(&con, &space.ns, "text").await.unwrap();
    assert_eq!(texts.len(), 120);
    assert_eq!(texts[0].1, old.item(0).text);
    let rows = migrate::embed_rows(
        &texts,
        &ToyModel,
        16,
        redrec_ingest::progress::ProgressMode::Quiet,
    )
    .unwrap();
    let target = Target {
        field: "embedding".into(),
        dims: 6,
        attrs: None,
    };
    let st = migrate::run(
        &con,
        &space.ns,
        &target,
        Arc::new(rows),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
        20,
        5,
    )
    .await
    .unwrap();
    assert_eq!(
        (st.step, st.vectors_written, st.to_dims),
        (Step::Switched, 120, 6)
    );
    let probe = redrec_embedder::Embedder::embed_one(&ToyModel, &old.item(9).text).unwrap();
    let mut c = space.conn().await;
    let hits = knn(&mut c, &space.ns.alias(), &probe, 3).await.unwrap();
    assert!(hits.contains(&space.ns.item("s9")), "{hits:?}");
}

#[tokio::test]
async fn json_storage_refresh_and_migration() {
    let space = TestSpace::new("json_migrate");
    let mut s = schema(&space, 4);
    s.index.storage_type = redrec_core::schema::StorageType::Json;
    let old = Synthetic::new(SyntheticParams {
        items: 60,
        dims: 4,
        seed: 11,
    });
    let con = conn().await;
    load::load(
        &con,
        &space.ns,
        &s,
        Arc::new(SyntheticRows(Arc::new(old.clone()))),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    let mut c = space.conn().await;

    // Refresh one vector in place.
    let v = vec![0.0, 0.0, 0.0, 1.0];
    let r = refresh::refresh(
        &con,
        &space.ns,
        "embedding",
        vector_rows(&[("s5".into(), v.clone())]),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    assert_eq!(r.refreshed, 1);
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &v, 1).await.unwrap(),
        vec![space.ns.item("s5")]
    );

    // Migrate to 6 dims; the new vectors live in `$.embedding__v2`.
    let new = Synthetic::new(SyntheticParams {
        items: 60,
        dims: 6,
        seed: 12,
    });
    let rows: Vec<(String, Vec<f32>)> = (0..60)
        .map(|i| (format!("s{i}"), new.item(i).vector))
        .collect();
    let target = Target {
        field: "embedding".into(),
        dims: 6,
        attrs: None,
    };
    let st = migrate::run(
        &con,
        &space.ns,
        &target,
        vector_rows(&rows),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
        10,
        5,
    )
    .await
    .unwrap();
    assert_eq!(
        (st.step, st.vectors_written, st.to_storage.as_str()),
        (Step::Switched, 60, "embedding__v2")
    );
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &rows[7].1, 1).await.unwrap(),
        vec![space.ns.item("s7")]
    );
    // Loads and refreshes after the switch write the new path.
    let v6 = vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    refresh::refresh(
        &con,
        &space.ns,
        "embedding",
        vector_rows(&[("s8".into(), v6.clone())]),
        &Mapping::default(),
        &quiet(OnInvalid::Strict),
    )
    .await
    .unwrap();
    let stored: String = redis::cmd("JSON.GET")
        .arg(space.ns.item("s8"))
        .arg("$.embedding__v2")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(stored, "[[0.0,0.0,0.0,0.0,0.0,1.0]]");
    assert_eq!(
        knn(&mut c, &space.ns.alias(), &v6, 1).await.unwrap(),
        vec![space.ns.item("s8")]
    );
    let (st, touched) = migrate::cleanup(&con, &space.ns).await.unwrap();
    assert_eq!((st.step, touched), (Step::CleanedUp, 60));
    let gone: String = redis::cmd("JSON.GET")
        .arg(space.ns.item("s8"))
        .arg("$.embedding")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(gone, "[]");
}
