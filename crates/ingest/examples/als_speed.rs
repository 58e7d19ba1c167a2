//! Times implicit ALS on an interaction file with each solver, without Redis:
//! `cargo run --release -p redrec-ingest --example als_speed -- [transactions.parquet] [cg|exact|both]`
//! (Complete Journey's transactions by default; every line before 2017-12-01). Prints wall and
//! CPU seconds of training and the share of each solver's top-10 item neighbours that agree.

use std::time::Instant;

use redrec_ingest::cf::{self, AlsParams, Solver};

/// CPU seconds of this process (user + system), from /proc (Linux); 0 elsewhere.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // fields after the command: state is 0, utime 11, stime 12; 100 ticks per second on Linux
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> redrec_ingest::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "target/redrec/data/complete-journey/transactions.parquet".to_owned());
    let which = args.next().unwrap_or_else(|| "both".to_owned());
    let t = Instant::now();
    // 2017-12-01 in the file's unit (pandas nanoseconds)
    let (rows, names) = cf::basket_counts_from_parquet(
        std::path::Path::new(&path),
        ["household_id", "product_id", "basket_id"],
        Some("quantity"),
        Some(("transaction_timestamp", 1_512_086_400e9)),
    )?;
    let nnz: usize = rows.iter().map(Vec::len).sum();
    println!(
        "read {} users, {} items, {nnz} user-item pairs in {:.1} s",
        rows.len(),
        names.len(),
        t.elapsed().as_secs_f64()
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut models = Vec::new();
    for solver in [Solver::default(), Solver::Exact] {
        let name = if solver == Solver::Exact {
            "exact"
        } else {
            "cg"
        };
        if which != "both" && which != name {
            continue;
        }
        let p = AlsParams {
            threads,
            solver,
            ..AlsParams::default()
        };
        let (t, cpu) = (Instant::now(), cpu_secs());
        let m = cf::train(&rows, names.len(), &p);
        println!(
            "{solver:?}: {}-d x {} iterations, {} items with a vector: {:.1} s wall, {:.1} s CPU ({threads} threads)",
            p.factors,
            p.iterations,
            m.item_ids.len(),
            t.elapsed().as_secs_f64(),
            cpu_secs() - cpu
        );
        models.push(cf::item_vectors(&m, &names));
    }
    if let [a, b] = &models[..] {
        // agreement of the 10 nearest items (cosine) of 200 items, between the two solvers
        let top = |vs: &[(String, Vec<f32>)], q: usize| {
            let mut s: Vec<(f32, usize)> = vs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != q)
                .map(|(j, (_, v))| (v.iter().zip(&vs[q].1).map(|(x, y)| x * y).sum(), j))
                .collect();
            s.sort_by(|x, y| y.0.total_cmp(&x.0));
            s.into_iter().take(10).map(|(_, j)| j).collect::<Vec<_>>()
        };
        let step = (a.len() / 200).max(1);
        let (mut same, mut total) = (0, 0);
        for q in (0..a.len()).step_by(step) {
            let (ta, tb) = (top(a, q), top(b, q));
            same += ta.iter().filter(|j| tb.contains(j)).count();
            total += 10;
        }
        println!(
            "top-10 neighbour agreement cg vs exact: {:.2}",
            same as f64 / total as f64
        );
    }
    Ok(())
}
