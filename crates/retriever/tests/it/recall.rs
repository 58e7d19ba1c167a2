//! Recall@10 of filtered KNN against exact brute force (ndarray) on a deterministic synthetic
//! catalog of 50,000 items x 128 dims, at filter selectivities of about 1%, 5%, 25% and 90%,
//! with the retriever's default EF_RUNTIME. The same catalog then serves two measurements:
//! RETURN-in-search vs ids-then-HMGET, and one shared multiplexed connection vs the pool.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{Array1, Array2};
use redrec_core::filter::Filter;
use redrec_core::schema::ItemFields;
use redrec_retriever::{FetchMode, RetrievalRequest, Retriever, RetrieverConfig, Source};
use redrec_testkit::TestSpace;

use crate::support::{self, Item, Rng};

const N: usize = 50_000;
const DIMS: usize = 128;
const CLUSTERS: usize = 100;
const QUERIES: usize = 25;
const K: usize = 10;

struct Catalog {
    items: Vec<Item>,
    matrix: Array2<f32>,
    category: Vec<u32>,
    price: Vec<f64>,
    centers: Vec<Vec<f32>>,
}

fn catalog() -> Catalog {
    let mut rng = Rng::new(20_261_126);
    let centers: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| support::random_unit(&mut rng, DIMS))
        .collect();
    let mut items = Vec::with_capacity(N);
    let mut matrix = Array2::<f32>::zeros((N, DIMS));
    let mut category = Vec::with_capacity(N);
    let mut price = Vec::with_capacity(N);
    for i in 0..N {
        let c = rng.below(CLUSTERS as u64) as usize;
        let v = support::near(&mut rng, &centers[c], 0.08);
        let cat = rng.below(100) as u32;
        let p = (rng.unit() * 10_000.0).floor() / 100.0; // 0.00 ..= 99.99
        matrix.row_mut(i).assign(&Array1::from(v.clone()));
        category.push(cat);
        price.push(p);
        items.push(Item {
            id: i.to_string(),
            vector: v,
            fields: support::fields(&[
                ("category", format!("C{cat}")),
                ("price", format!("{p:.2}")),
                ("popularity", (i % 1000).to_string()),
            ]),
        });
    }
    Catalog {
        items,
        matrix,
        category,
        price,
        centers,
    }
}

struct Case {
    name: &'static str,
    filter: Filter,
    keep: Box<dyn Fn(usize) -> bool>,
}

fn cases(cat: &Arc<Catalog>) -> Vec<Case> {
    let c1 = cat.clone();
    let c2 = cat.clone();
    let c3 = cat.clone();
    let c4 = cat.clone();
    vec![
        Case {
            name: "category = C7",
            filter: Filter::tag_any("category", ["C7"]),
            keep: Box::new(move |i| c1.category[i] == 7),
        },
        Case {
            name: "price < 5",
            filter: Filter::range(
                "price",
                std::ops::Bound::Unbounded,
                std::ops::Bound::Excluded(5.0),
            ),
            keep: Box::new(move |i| c2.price[i] < 5.0),
        },
        Case {
            name: "category in C0..C24",
            filter: Filter::tag_any("category", (0..25).map(|c| format!("C{c}"))),
            keep: Box::new(move |i| c3.category[i] < 25),
        },
        Case {
            name: "category not in C0..C9",
            filter: Filter::tag_not_any("category", (0..10).map(|c| format!("C{c}"))),
            keep: Box::new(move |i| c4.category[i] >= 10),
        },
    ]
}

fn exact_top(cat: &Catalog, q: &[f32], keep: &dyn Fn(usize) -> bool) -> Vec<String> {
    let sims = cat.matrix.dot(&Array1::from(q.to_vec()));
    let mut scored: Vec<(f32, usize)> = sims
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, s)| (*s, i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(K)
        .map(|(_, i)| i.to_string())
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_at_10_meets_095_at_every_selectivity() {
    let space = TestSpace::new("recall");
    let schema = support::schema(&space.ns, DIMS);
    support::create_index(&space, &schema).await;
    let started = Instant::now();
    let cat = Arc::new(catalog());
    let generated = started.elapsed();
    support::load(&space, &cat.items, 500).await;
    let loaded = started.elapsed();
    println!(
        "catalog: {N} items x {DIMS} dims generated in {:.1}s, loaded (HSET + HNSW insert) in {:.1}s",
        generated.as_secs_f64(),
        (loaded - generated).as_secs_f64()
    );

    let config = RetrieverConfig::default();
    let ef = config.ef_runtime;
    let r = support::retriever(&space, &schema, config);
    let mut rng = Rng::new(99);
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|_| {
            let c = rng.below(CLUSTERS as u64) as usize;
            support::near(&mut rng, &cat.centers[c], 0.08)
        })
        .collect();

    println!("\nrecall@{K} vs exact brute force, EF_RUNTIME {ef}, {QUERIES} queries per row");
    println!("| filter | matching items | selectivity | recall@10 | p50 latency |");
    println!("|---|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for case in cases(&cat) {
        let matching = (0..N).filter(|i| (case.keep)(*i)).count();
        let mut hits = 0usize;
        let mut lat = Vec::new();
        for q in &queries {
            let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], K);
            req.filter = case.filter.clone();
            let t = Instant::now();
            let got = r.retrieve(&req).await.unwrap();
            lat.push(t.elapsed());
            assert!(!got.partial);
            let want: BTreeSet<String> = exact_top(&cat, q, &*case.keep).into_iter().collect();
            assert_eq!(got.candidates.len(), K);
            hits += got
                .candidates
                .iter()
                .filter(|c| want.contains(&c.id))
                .count();
        }
        lat.sort();
        let recall = hits as f64 / (QUERIES * K) as f64;
        println!(
            "| `{}` | {matching} | {:.1}% | {recall:.3} | {:.2} ms |",
            case.name,
            100.0 * matching as f64 / N as f64,
            percentile(&lat, 0.5).as_secs_f64() * 1e3
        );
        if recall < 0.95 {
            failures.push(format!("{}: recall {recall:.3}", case.name));
        }
    }
    assert!(failures.is_empty(), "recall below 0.95: {failures:?}");
    check_timeout_is_reported(&space, &schema, &queries[0]).await;

    // Measurement 1: RETURN fields in the search vs ids + distance, then HMGET.
    let hm = support::retriever(
        &space,
        &schema,
        RetrieverConfig {
            fetch: FetchMode::IdsThenHmget,
            ..RetrieverConfig::default()
        },
    );
    let filter = Filter::tag_not_any("category", ["C0"]);
    for (name, retr) in [("RETURN in FT.SEARCH", &r), ("ids, then HMGET", &hm)] {
        let mut lat = Vec::new();
        for round in 0..3 {
            for q in &queries {
                let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], 50);
                req.filter = filter.clone();
                let t = Instant::now();
                let got = retr.retrieve(&req).await.unwrap();
                if round > 0 {
                    lat.push(t.elapsed());
                }
                assert_eq!(got.candidates.len(), 50);
            }
        }
        lat.sort();
        println!(
            "fetch mode {name:<20} k=50: p50 {:.2} ms, p90 {:.2} ms",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.9).as_secs_f64() * 1e3
        );
    }

    // Measurement 2: one shared multiplexed connection vs the deadpool pool, 16 concurrent tasks.
    let shared = Arc::new(
        Retriever::with_connection(
            space.conn().await,
            space.ns.clone(),
            schema.clone(),
            ItemFields::default(),
            RetrieverConfig::default(),
        )
        .unwrap(),
    );
    let pooled = Arc::new(support::retriever(
        &space,
        &schema,
        RetrieverConfig::default(),
    ));
    let queries = Arc::new(queries);
    for (name, retr) in [
        ("shared multiplexed", shared),
        ("deadpool pool (4)", pooled),
    ] {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..16 {
            let retr = retr.clone();
            let queries = queries.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..15 {
                    let q = &queries[(w + i) % queries.len()];
                    let mut req = RetrievalRequest::new(vec![Source::Vector(q.clone())], K);
                    req.filter = Filter::tag_not_any("category", ["C0"]);
                    let s = Instant::now();
                    retr.retrieve(&req).await.unwrap();
                    lat.push(s.elapsed());
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let wall = t.elapsed();
        lat.sort();
        println!(
            "connection {name:<20} 16 tasks x 15 queries: {:.0} q/s, p50 {:.2} ms, p99 {:.2} ms",
            lat.len() as f64 / wall.as_secs_f64(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
    }
}

/// A deadline far below what the query needs: with the embedded server's `ON_TIMEOUT FAIL` the
/// retriever reports `Unavailable`; a server left at `ON_TIMEOUT return` yields a retrieval
/// flagged `partial` (from the RESP3 warning) instead. Either way the caller knows.
async fn check_timeout_is_reported(
    space: &TestSpace,
    schema: &redrec_core::schema::IndexSchema,
    q: &[f32],
) {
    let slow = support::retriever(
        space,
        schema,
        RetrieverConfig {
            query_timeout_ms: 1,
            hybrid_policy: Some(redrec_retriever::PolicyName::AdhocBf),
            ..RetrieverConfig::default()
        },
    );
    let mut req = RetrievalRequest::new(vec![Source::Vector(q.to_vec())], 1000);
    req.filter = Filter::tag_not_any("category", (0..10).map(|c| format!("C{c}")));
    match slow.retrieve(&req).await {
        Err(redrec_retriever::Error::Unavailable { message }) => {
            println!("1 ms deadline: error `{message}`");
            assert!(message.to_lowercase().contains("timeout"), "{message}");
        }
        Ok(r) => {
            println!("1 ms deadline: partial = {}", r.partial);
            assert!(
                r.partial,
                "a 1 ms deadline cannot complete a 45k-item brute force"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}
