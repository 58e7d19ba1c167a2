//! Rerank latency: 500 candidates with 384-dimensional vectors down to k = 20.
//!
//! Vectors are clustered like real item embeddings: 25 categories, each a random centroid plus
//! per-item noise, so items of a category are near-duplicates (cosine ~0.9) and MMR has work to
//! do. Retrieval similarity falls with the candidate's rank, as it would from a KNN list.
//!
//! `cargo bench -p redrec-reranker --bench rerank` prints the median per configuration
//! (criterion's "time: [low median high]" line), then the CPU time per call of each case.
//! Target: MMR case under 2 ms on 2 cores.

use std::{collections::BTreeMap, hint::black_box};

use criterion::{Criterion, criterion_group};
use redrec_core::{
    candidate::{Candidate, SourceHit, SourceKind},
    schema::ItemFields,
    user::{Interaction, PriceBand, UserFeatures},
};
use redrec_reranker::{
    DiversityConfig, RankProfile, RerankRequest, Reranker, RerankerConfig,
    profile::builtin_profiles,
};

const N: usize = 500;
const DIMS: usize = 384;

/// Deterministic pseudo-random numbers (xorshift), so every run ranks the same data.
struct Xorshift(u64);

impl Xorshift {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn candidates() -> Vec<Candidate> {
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    let centroids: Vec<Vec<f32>> = (0..25)
        .map(|_| (0..DIMS).map(|_| rng.next_f32()).collect())
        .collect();
    (0..N)
        .map(|i| {
            let fields = BTreeMap::from([
                ("category".to_owned(), format!("cat{}", i % 25)),
                ("brand".to_owned(), format!("brand{}", i % 40)),
                (
                    "price".to_owned(),
                    format!("{:.2}", 1.0 + (i % 50) as f64 * 0.7),
                ),
                ("popularity".to_owned(), ((i * 37) % 1000).to_string()),
                (
                    "in_stock".to_owned(),
                    if i % 17 == 0 { "0" } else { "1" }.to_owned(),
                ),
            ]);
            Candidate {
                id: format!("item{i:04}"),
                fields,
                vector: Some(
                    centroids[i % 25]
                        .iter()
                        .map(|c| c + 0.35 * rng.next_f32())
                        .collect(),
                ),
                sources: vec![SourceHit {
                    source: SourceKind::QueryText,
                    rank: i as u32,
                    similarity: 0.9 - i as f32 * 0.001,
                }],
            }
        })
        .collect()
}

fn user() -> UserFeatures {
    UserFeatures {
        user_id: "bench".into(),
        known: true,
        category_affinity: (0..10).map(|c| (format!("cat{c}"), c as f64)).collect(),
        brand_affinity: (0..10).map(|b| (format!("brand{b}"), 1.0)).collect(),
        price_band: Some(PriceBand {
            mean: 12.0,
            std_dev: 5.0,
            count: 30,
        }),
        cart: ["item0003".to_owned()].into(),
        recent: (0..20)
            .map(|i| Interaction {
                item_id: format!("item{i:04}"),
                event: "click".into(),
                category: Some(format!("cat{}", i % 7)),
                at_ms: 1_700_000_000_000 - i * 1000,
            })
            .collect(),
        ..UserFeatures::default()
    }
}

/// The reranker and the cases every measurement runs: (name, profile, explain).
fn setup() -> (Reranker, Vec<(&'static str, &'static str, bool)>) {
    let mut profiles = builtin_profiles();
    let mut mmr = profiles["default"].clone();
    mmr.diversity = DiversityConfig {
        mmr_lambda: Some(0.7),
        max_per_category: None,
    };
    profiles.insert("mmr".into(), mmr.clone());
    mmr.diversity.mmr_lambda = Some(0.3);
    profiles.insert("mmr_low_lambda".into(), mmr);
    profiles.insert(
        "no_diversity".into(),
        RankProfile {
            diversity: DiversityConfig::default(),
            ..profiles["default"].clone()
        },
    );
    let reranker = Reranker::from_config(RerankerConfig {
        profiles,
        ..RerankerConfig::default()
    })
    .expect("bench profiles are valid");
    let cases = vec![
        ("mmr", "mmr", false),
        ("mmr_explain", "mmr", true),
        ("mmr_lambda_0.3", "mmr_low_lambda", false),
        ("discovery_mmr_cap", "discovery", false),
        ("no_diversity", "no_diversity", false),
    ];
    (reranker, cases)
}

fn bench(c: &mut Criterion) {
    let (candidates, user, fields) = (candidates(), user(), ItemFields::default());
    let (reranker, cases) = setup();
    let mut group = c.benchmark_group("rerank_500x384_k20");
    for (name, profile, explain) in cases {
        let req = RerankRequest::new(&candidates, &user, &fields)
            .profile(profile)
            .k(20)
            .explain(explain);
        group.bench_function(name, |b| {
            b.iter(|| reranker.rerank(black_box(&req)).expect("rerank succeeds"))
        });
    }
    group.finish();
}

/// CPU time this thread has run, from Linux's `/proc/thread-self/schedstat` (None elsewhere).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Wall-clock medians suffer when other processes share the cores; CPU time per call does not
/// (much), so it is printed as well: median of 30 batches of 50 calls.
fn cpu_time_report() {
    if thread_cpu_ns().is_none() {
        return;
    }
    let (candidates, user, fields) = (candidates(), user(), ItemFields::default());
    let (reranker, cases) = setup();
    println!("CPU time per call (median of 30 batches of 50):");
    for (name, profile, explain) in cases {
        let req = RerankRequest::new(&candidates, &user, &fields)
            .profile(profile)
            .k(20)
            .explain(explain);
        for _ in 0..100 {
            black_box(reranker.rerank(black_box(&req)).expect("rerank succeeds"));
        }
        let mut batches: Vec<f64> = (0..30)
            .map(|_| {
                let start = thread_cpu_ns().unwrap_or(0);
                for _ in 0..50 {
                    black_box(reranker.rerank(black_box(&req)).expect("rerank succeeds"));
                }
                (thread_cpu_ns().unwrap_or(0) - start) as f64 / 50.0 / 1000.0
            })
            .collect();
        batches.sort_by(f64::total_cmp);
        println!("  {name:<20} {:>6.0} us", batches[15]);
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    cpu_time_report();
}
