//! Criterion benches of the in-process MiniLM: one short query (the gateway's path) and a batch
//! of 64 product-like texts (ingest's path). Needs the model (`cargo xtask fetch model`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redrec_embedder::{Embedder, MiniLm, default_model_dir};

#[path = "common.rs"]
mod common;

fn bench_embed(c: &mut Criterion) {
    let model =
        MiniLm::load(&default_model_dir()).expect("model loads (run `cargo xtask fetch model`)");
    c.bench_function("minilm/query", |b| {
        b.iter(|| model.embed(&[common::QUERY]).unwrap())
    });
    let owned = common::product_texts(64);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("minilm/batch64");
    group.throughput(Throughput::Elements(texts.len() as u64));
    group.sample_size(20);
    group.bench_function("products", |b| b.iter(|| model.embed(&texts).unwrap()));
    group.finish();
}

criterion_group!(benches, bench_embed);
criterion_main!(benches);
