//! Measures micro-batching: `threads` callers each embed `per_thread` distinct short query texts
//! one at a time, (a) straight into the model, concurrently, and (b) through a `MicroBatcher`.
//! Prints texts/s, mean and p99 latency, CPU time of the process, and the batch sizes. Release:
//!
//! ```text
//! cargo run --release -p redrec-embedder --example batching [threads] [per_thread] [wait_us]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use redrec_embedder::{Embedder, MicroBatcher, MiniLm, default_model_dir};

/// utime + stime of this process in seconds (`/proc/self/stat`, clock ticks of 1/100 s).
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn run(label: &str, e: Arc<dyn Embedder>, threads: usize, per_thread: usize) {
    let cpu0 = process_cpu();
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                for i in 0..per_thread {
                    let text = format!("organic whole milk {t} brand {i} low fat");
                    let s = Instant::now();
                    e.embed_one(&text).expect("embedding");
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let wall = started.elapsed().as_secs_f64();
    lat.sort();
    let n = lat.len();
    let mean = lat.iter().map(Duration::as_secs_f64).sum::<f64>() / n as f64 * 1e3;
    let p99 = lat[(n - 1) * 99 / 100].as_secs_f64() * 1e3;
    println!(
        "{label:<12} {:>7.0} texts/s  mean {mean:6.2} ms  p99 {p99:6.2} ms  CPU {:.2} ms/text",
        n as f64 / wall,
        (process_cpu() - cpu0) / n as f64 * 1e3
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(Ok(8), |a| a.parse())?;
    let per_thread: usize = args.next().map_or(Ok(40), |a| a.parse())?;
    let wait_us: u64 = args.next().map_or(Ok(0), |a| a.parse())?;
    let model: Arc<dyn Embedder> = Arc::new(MiniLm::load(&default_model_dir())?.with_threads(1));
    model.embed_one("warm up")?;
    println!("{threads} concurrent callers x {per_thread} distinct texts each");
    run("direct", model.clone(), threads, per_thread);
    let batcher = Arc::new(MicroBatcher::new(
        model,
        16,
        Duration::from_micros(wait_us),
    )?);
    run("batched", batcher.clone(), threads, per_thread);
    let s = batcher.stats();
    println!(
        "batches {} for {} texts (mean {:.1}, largest {})",
        s.batches,
        s.texts,
        s.texts as f64 / s.batches.max(1) as f64,
        s.largest
    );
    Ok(())
}
