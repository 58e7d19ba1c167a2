//! Measures the in-process MiniLM: p50/p90/p99 latency of one short query (warm) and batch
//! throughput on product-like texts. Run in release mode:
//!
//! ```text
//! cargo run --release -p redrec-embedder --example latency [queries] [texts] [threads]
//! ```

use std::time::{Duration, Instant};

use redrec_embedder::{Embedder, MiniLm, default_model_dir};

#[path = "../benches/common.rs"]
mod common;

/// On-CPU time of the calling thread (Linux `/proc/thread-self/schedstat`, first field, ns);
/// unlike wall time it does not grow when other processes compete for the cores.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let queries: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let n_texts: usize = args.next().map_or(Ok(2048), |a| a.parse())?;
    let threads: usize = args.next().map_or(Ok(1), |a| a.parse())?;

    let started = Instant::now();
    let model = MiniLm::load(&default_model_dir())?.with_threads(threads);
    println!(
        "model load: {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    println!(
        "query {:?} -> {} tokens",
        common::QUERY,
        model.token_ids(common::QUERY).len()
    );
    for _ in 0..20 {
        model.embed(&[common::QUERY])?;
    }
    let mut times = Vec::with_capacity(queries);
    let mut cpu_times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let cpu = thread_cpu();
        let t = Instant::now();
        model.embed(&[common::QUERY])?;
        times.push(t.elapsed());
        if let (Some(before), Some(after)) = (cpu, thread_cpu()) {
            cpu_times.push(after.saturating_sub(before));
        }
    }
    times.sort();
    cpu_times.sort();
    println!(
        "single query ({queries} runs): wall p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99)
    );
    if !cpu_times.is_empty() {
        println!(
            "single query on-CPU time: p50 {:.2} ms, p90 {:.2} ms",
            percentile(&cpu_times, 0.5),
            percentile(&cpu_times, 0.9)
        );
    }

    if n_texts == 0 {
        return Ok(());
    }
    let owned = common::product_texts(n_texts);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let tokens: usize = texts.iter().map(|t| model.token_ids(t).len()).sum();
    let cpu = thread_cpu();
    let t = Instant::now();
    let vectors = model.embed(&texts)?;
    let secs = t.elapsed().as_secs_f64();
    let cpu_secs = match (cpu, thread_cpu()) {
        (Some(before), Some(after)) if threads == 1 => Some((after - before).as_secs_f64()),
        _ => None,
    };
    assert_eq!(vectors.len(), texts.len());
    println!(
        "batch: {} texts ({:.1} tokens avg) in {:.2} s = {:.0} texts/s (batch size 64, threads = {threads}, 0 = one per core)",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        secs,
        texts.len() as f64 / secs,
    );
    if let Some(cpu_secs) = cpu_secs {
        println!(
            "batch on-CPU: {:.2} s = {:.0} texts per CPU-second",
            cpu_secs,
            texts.len() as f64 / cpu_secs
        );
    }
    Ok(())
}
