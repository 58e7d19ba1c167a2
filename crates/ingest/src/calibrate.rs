//! `redrec-ingest calibrate`: recall@k of unfiltered KNN on the serving index at several
//! `EF_RUNTIME` values, against exact brute force over every stored vector; the curve is stored
//! next to the index ([`Namespace::ef_curve`]) for the retriever's `recall_target`.
//!
//! Queries are the normalised mean of two random stored vectors (what a session or long-term
//! profile vector looks like: near the data, not an indexed point). The truth is computed here,
//! so the whole catalog's vectors are read once (`SCAN` + pipelined reads, `dims x 4` bytes per
//! item in memory: 512 MB for 1M x 128); the server only runs the KNN queries, one at a time.

use std::collections::BinaryHeap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redrec_core::calibration::{EfCurve, EfPoint};
use redrec_core::keys::Namespace;
use redrec_core::query::{KnnQuery, Projection};
use redrec_core::reply::{Shape, parse_search};
use redrec_core::schema::{DistanceMetric, StorageType};
use redrec_core::synthetic::Rng;
use redrec_core::vector;

use crate::keyscan::KeyScan;
use crate::progress::{Progress, ProgressMode};
use crate::{Error, Result, index};

/// What to measure.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// Queries per EF value.
    pub queries: usize,
    /// The k of recall@k and of the KNN queries (the gateway fetches 50 candidates by default).
    pub k: usize,
    /// `EF_RUNTIME` values, ascending.
    pub efs: Vec<u32>,
    /// Seed of the query draw.
    pub seed: u64,
    /// Name of the vector attribute in the index (`index.fields.vector`).
    pub vector_field: String,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            queries: 50,
            k: 50,
            efs: vec![50, 100, 200, 400, 800, 1600, 3200],
            seed: 7,
            vector_field: "embedding".into(),
        }
    }
}

impl CalibrateOptions {
    fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::Usage { message });
        if self.queries < 5 {
            return bad(format!(
                "--queries must be at least 5 (got {})",
                self.queries
            ));
        }
        if self.k == 0 || self.k > 1000 {
            return bad(format!("--k must be within 1..=1000 (got {})", self.k));
        }
        if self.efs.is_empty() || self.efs.contains(&0) {
            return bad("--ef needs one or more positive EF_RUNTIME values".into());
        }
        if self.efs.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!("--ef values must ascend (got {:?})", self.efs));
        }
        Ok(())
    }
}

/// Every stored vector of the catalog, row-major.
struct Vectors {
    dims: usize,
    keys: Vec<String>,
    data: Vec<f32>,
}

impl Vectors {
    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }
}

/// Measures the curve of the index behind the namespace's alias and stores it. Nothing is
/// written when a step fails.
pub async fn calibrate(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    opts: &CalibrateOptions,
    progress: ProgressMode,
) -> Result<EfCurve> {
    opts.validate()?;
    let alias = ns.alias();
    let info = index::info(con, &alias)
        .await?
        .ok_or_else(|| Error::Index {
            index: alias.clone(),
            message: "no such index: load a catalog first (`redrec-ingest load` or `seed`)".into(),
        })?;
    if info.percent_indexed < 1.0 {
        return Err(Error::Index {
            index: info.name.clone(),
            message: format!(
                "still being indexed ({:.0}%): calibrate once indexing is complete",
                info.percent_indexed * 100.0
            ),
        });
    }
    let schema = info.to_schema();
    let field = schema
        .vector_field(&opts.vector_field)
        .map_err(Error::Core)?;
    let (dims, metric) = (field.dims, field.distance_metric);
    let stored = info
        .attribute(&opts.vector_field)
        .map_or_else(|| opts.vector_field.clone(), |a| a.identifier.clone());
    let vectors = read_vectors(con, ns, info.storage, &stored, dims, progress).await?;
    if vectors.keys.len() < opts.k.max(2) {
        return Err(Error::Index {
            index: info.name.clone(),
            message: format!(
                "holds {} readable vectors: at least k = {} are needed to calibrate",
                vectors.keys.len(),
                opts.k
            ),
        });
    }
    let queries = draw_queries(&vectors, opts.queries, opts.seed, metric);
    let started = Instant::now();
    let truths: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| exact_top_k(&vectors, q, opts.k, metric))
        .collect();
    tracing::info!(
        queries = queries.len(),
        secs = started.elapsed().as_secs_f64(),
        "exact top-k computed"
    );
    let bar = Progress::new(
        progress,
        "KNN queries",
        Some((opts.efs.len() * queries.len()) as u64),
    );
    let mut points = Vec::with_capacity(opts.efs.len());
    for &ef in &opts.efs {
        let mut sum = 0.0;
        for (q, truth) in queries.iter().zip(&truths) {
            let got = knn(con, &alias, &opts.vector_field, q, opts.k, ef).await?;
            let hits = truth
                .iter()
                .filter(|&&i| got.contains(&vectors.keys[i]))
                .count();
            sum += hits as f64 / truth.len() as f64;
            bar.inc(1);
        }
        points.push(EfPoint {
            ef,
            recall: sum / queries.len() as f64,
        });
    }
    bar.finish();
    let curve = EfCurve {
        index: info.name.clone(),
        items: info.num_docs,
        k: opts.k,
        queries: queries.len(),
        measured_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        points,
    };
    curve
        .validate()
        .map_err(|message| Error::Internal { message })?;
    let _: () = redis::cmd("SET")
        .arg(ns.ef_curve(&info.name))
        .arg(curve.to_json())
        .query_async(con)
        .await?;
    Ok(curve)
}

/// Reads every item's vector (items without a readable one are skipped).
async fn read_vectors(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    storage: StorageType,
    stored: &str,
    dims: usize,
    progress: ProgressMode,
) -> Result<Vectors> {
    let mut out = Vectors {
        dims,
        keys: Vec::new(),
        data: Vec::new(),
    };
    let bar = Progress::new(progress, "reading vectors", None);
    let mut scan = KeyScan::new(format!("{}*", ns.item_prefix()), 1000);
    while let Some(keys) = scan.next_batch(con).await? {
        if keys.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            match storage {
                StorageType::Hash => pipe.cmd("HGET").arg(key).arg(stored),
                StorageType::Json => pipe.cmd("JSON.GET").arg(key).arg(stored),
            };
        }
        let values: Vec<Option<Vec<u8>>> = pipe.query_async(con).await?;
        for (key, value) in keys.into_iter().zip(values) {
            let Some(raw) = value else { continue };
            let v = match storage {
                StorageType::Hash => vector::decode(&raw).ok(),
                StorageType::Json => json_vector(&raw),
            };
            if let Some(v) = v.filter(|v| v.len() == dims) {
                out.keys.push(key);
                out.data.extend_from_slice(&v);
            }
        }
        bar.inc(out.keys.len() as u64 - bar.done());
    }
    bar.finish();
    Ok(out)
}

/// A vector from `JSON.GET key $.path` (`[[x, y, ...]]`) or `JSON.GET key path` (`[x, y]`).
fn json_vector(raw: &[u8]) -> Option<Vec<f32>> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let arr = match &v {
        serde_json::Value::Array(a) if a.first().is_some_and(|x| x.is_array()) => {
            a[0].as_array()?
        }
        serde_json::Value::Array(a) => a,
        _ => return None,
    };
    arr.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
}

/// `count` query vectors: the mean of two random stored vectors, normalised for cosine.
fn draw_queries(v: &Vectors, count: usize, seed: u64, metric: DistanceMetric) -> Vec<Vec<f32>> {
    let mut rng = Rng::stream(seed, 0xCA11);
    let n = v.keys.len();
    (0..count)
        .map(|_| {
            let (a, b) = (v.row(rng.below(n)), v.row(rng.below(n)));
            let mut q: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect();
            if metric == DistanceMetric::Cosine && vector::normalize(&mut q).is_err() {
                q = a.to_vec();
            }
            q
        })
        .collect()
}

/// Smaller is nearer, as the index orders them.
fn distance(metric: DistanceMetric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        DistanceMetric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
        DistanceMetric::Ip => 1.0 - dot(a, b),
        DistanceMetric::Cosine => {
            let (na, nb) = (dot(a, a).sqrt(), dot(b, b).sqrt());
            if na == 0.0 || nb == 0.0 {
                1.0
            } else {
                1.0 - dot(a, b) / (na * nb)
            }
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rows of the `k` vectors nearest to `q`, by brute force.
fn exact_top_k(v: &Vectors, q: &[f32], k: usize, metric: DistanceMetric) -> Vec<usize> {
    // max-heap on distance: the root is the farthest of the best k so far
    let mut heap: BinaryHeap<(OrdF32, usize)> = BinaryHeap::with_capacity(k + 1);
    for i in 0..v.keys.len() {
        let d = OrdF32(distance(metric, v.row(i), q));
        if heap.len() < k {
            heap.push((d, i));
        } else if heap.peek().is_some_and(|top| d < top.0) {
            heap.pop();
            heap.push((d, i));
        }
    }
    heap.into_iter().map(|(_, i)| i).collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Keys of an unfiltered KNN at `ef`.
async fn knn(
    con: &mut MultiplexedConnection,
    alias: &str,
    field: &str,
    q: &[f32],
    k: usize,
    ef: u32,
) -> Result<std::collections::HashSet<String>> {
    let cmd = KnnQuery {
        index: alias.to_owned(),
        filter: "*".into(),
        vector_field: field.to_owned(),
        vector: q.to_vec(),
        k,
        ef_runtime: Some(ef),
        distance_alias: "__dist".into(),
        projection: Projection::IdsOnly,
        hybrid_policy: None,
        timeout_ms: Some(60_000),
    }
    .cmd()
    .map_err(Error::Core)?;
    let reply: redis::Value = cmd.query_async(con).await?;
    let page = parse_search(
        &reply,
        Shape {
            with_scores: false,
            with_content: true,
        },
    )
    .map_err(|e| Error::Internal {
        message: format!("FT.SEARCH reply: {e}"),
    })?;
    Ok(page.hits.into_iter().map(|h| h.key).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors(rows: &[[f32; 2]]) -> Vectors {
        Vectors {
            dims: 2,
            keys: (0..rows.len()).map(|i| format!("k{i}")).collect(),
            data: rows.iter().flatten().copied().collect(),
        }
    }

    #[test]
    fn exact_top_k_orders_by_the_index_metric() {
        let v = vectors(&[[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0], [10.0, 0.5]]);
        let mut cos = exact_top_k(&v, &[1.0, 0.1], 2, DistanceMetric::Cosine);
        cos.sort_unstable();
        assert_eq!(cos, [0, 4], "cosine ignores length");
        let mut l2 = exact_top_k(&v, &[1.0, 0.1], 2, DistanceMetric::L2);
        l2.sort_unstable();
        assert_eq!(l2, [0, 2], "L2 does not");
        let mut ip = exact_top_k(&v, &[1.0, 0.1], 1, DistanceMetric::Ip);
        ip.sort_unstable();
        assert_eq!(ip, [4], "inner product favours length");
    }

    #[test]
    fn options_are_checked_before_anything_is_read() {
        let ok = CalibrateOptions::default();
        assert!(ok.validate().is_ok());
        for (opts, needle) in [
            (
                CalibrateOptions {
                    efs: vec![400, 100],
                    ..ok.clone()
                },
                "ascend",
            ),
            (CalibrateOptions { k: 0, ..ok.clone() }, "--k"),
            (
                CalibrateOptions {
                    queries: 1,
                    ..ok.clone()
                },
                "--queries",
            ),
        ] {
            let e = opts.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn json_vectors_read_both_path_forms() {
        assert_eq!(json_vector(b"[[0.5,1]]"), Some(vec![0.5, 1.0]));
        assert_eq!(json_vector(b"[0.5,1]"), Some(vec![0.5, 1.0]));
        assert_eq!(json_vector(b"{\"a\":1}"), None);
    }
}
