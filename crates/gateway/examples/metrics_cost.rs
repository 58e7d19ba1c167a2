//! What recording one served list's metrics costs: the calls the pipeline and the metrics
//! middleware make for it (three stage latencies, the request counter and latency, its CPU by
//! stage), on one thread and on every core at once over a few routes (shared series).
//!
//! `cargo run --release -p redrec-gateway --example metrics_cost`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use redrec_gateway::{cpu::Stage, metrics::Metrics};

const ROUTES: [&str; 4] = [
    "/v1/recommendations",
    "/v1/search",
    "/v1/similar/{id}",
    "/v1/events",
];

fn one_request(m: &Metrics, route: &str, spent: &[Duration; Stage::ALL.len()]) {
    m.observe_stage("features", Duration::from_micros(300));
    m.observe_stage("retrieve", Duration::from_micros(900));
    m.observe_stage("rerank", Duration::from_micros(150));
    m.observe_request("POST", route, 200, Duration::from_micros(1500));
    m.observe_cpu(route, spent);
}

/// CPU nanoseconds per request with `threads` threads recording `per_thread` requests each.
fn run(m: &Arc<Metrics>, threads: usize, per_thread: usize) -> f64 {
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let spent = [Duration::from_micros(20); Stage::ALL.len()];
                for i in 0..per_thread {
                    one_request(&m, ROUTES[(i + t) % ROUTES.len()], &spent);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // every thread was busy the whole time: wall time x threads is the CPU time spent
    started.elapsed().as_nanos() as f64 * threads as f64 / (threads * per_thread) as f64
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let m = Arc::new(Metrics::new());
    run(&m, 1, 20_000); // warm-up: every series exists
    for threads in [1, cores] {
        let runs: Vec<String> = (0..5)
            .map(|_| format!("{:.0}", run(&m, threads, 200_000)))
            .collect();
        println!(
            "{threads} thread(s): ns of CPU per request, 5 runs: {}",
            runs.join(", ")
        );
    }
}
