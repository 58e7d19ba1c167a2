//! Load drivers. Closed loop: `concurrency` workers send back to back (finds the maximum
//! throughput). Open loop: requests are due on a constant-rate [`Schedule`] and latency runs from
//! the intended send time, so queueing anywhere (server, client, pool) is counted (no coordinated
//! omission).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::{
    schedule::Schedule,
    stats::{LatencySummary, new_histogram, record},
    workload::{BenchQuery, Kind},
};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that answers the query mix: raw Redis or the gateway.
pub trait Target: Send + Sync {
    fn send<'a>(&'a self, q: &'a BenchQuery) -> BoxFut<'a, anyhow::Result<()>>;

    /// Server-side stage timings collected since the last call (the gateway reports them in
    /// each response); empty for targets that have none.
    fn take_stages(&self) -> Vec<StageLatency> {
        Vec::new()
    }

    /// The server's cumulative CPU seconds by stage (the gateway exports them in `/metrics`);
    /// `None` for targets that report none.
    fn cpu_counters(&self) -> BoxFut<'_, Option<Vec<(String, f64)>>> {
        Box::pin(async { None })
    }
}

/// CPU time of one server-side stage per completed request over a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageCpu {
    pub stage: String,
    pub us_per_request: f64,
}

/// Per-stage CPU per request from two [`Target::cpu_counters`] readings `seconds` apart, while
/// requests completed at `completed_per_sec` (the same basis as the process CPU per request:
/// share of a core over the interval, divided by the request rate). Stages absent from either
/// reading are left out.
pub fn stage_cpu(
    before: &[(String, f64)],
    after: &[(String, f64)],
    seconds: f64,
    completed_per_sec: f64,
) -> Vec<StageCpu> {
    if !(seconds > 0.0 && completed_per_sec > 0.0 && completed_per_sec.is_finite()) {
        return Vec::new();
    }
    after
        .iter()
        .filter_map(|(stage, total)| {
            let start = before.iter().find(|(s, _)| s == stage)?.1;
            Some(StageCpu {
                stage: stage.clone(),
                us_per_request: (total - start).max(0.0) / seconds * 1e6 / completed_per_sec,
            })
        })
        .collect()
}

/// Latency of one server-side stage over a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageLatency {
    pub stage: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Target for crate::raw::RawTarget {
    fn send<'a>(&'a self, q: &'a BenchQuery) -> BoxFut<'a, anyhow::Result<()>> {
        Box::pin(async move { self.run(q).await.map(|_| ()) })
    }
}

/// Latencies of one run, overall and per query kind.
struct Hists {
    all: Histogram<u64>,
    by_kind: [Histogram<u64>; 3],
    errors: u64,
    first_error: Option<String>,
}

impl Hists {
    fn new() -> Hists {
        Hists {
            all: new_histogram(),
            by_kind: [new_histogram(), new_histogram(), new_histogram()],
            errors: 0,
            first_error: None,
        }
    }

    fn record(&mut self, kind: Kind, outcome: &anyhow::Result<()>, latency: Duration) {
        match outcome {
            Ok(()) => {
                record(&mut self.all, latency);
                record(&mut self.by_kind[kind as usize], latency);
            }
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }

    fn merge(&mut self, other: &Hists) {
        self.all.add(&other.all).expect("same bounds");
        for (a, b) in self.by_kind.iter_mut().zip(&other.by_kind) {
            a.add(b).expect("same bounds");
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    fn finish(self, elapsed: Duration, offered_qps: Option<f64>) -> RunResult {
        let ok = self.all.len();
        RunResult {
            offered_qps,
            achieved_qps: ok as f64 / elapsed.as_secs_f64().max(1e-9),
            ok,
            errors: self.errors,
            first_error: self.first_error,
            elapsed_secs: elapsed.as_secs_f64(),
            latency: LatencySummary::from_histogram(&self.all),
            by_kind: Kind::ALL
                .iter()
                .map(|&k| KindLatency {
                    kind: k,
                    latency: LatencySummary::from_histogram(&self.by_kind[k as usize]),
                })
                .filter(|k| k.latency.count > 0)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KindLatency {
    pub kind: Kind,
    pub latency: LatencySummary,
}

/// What one measured run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The arrival rate asked for (open loop only).
    pub offered_qps: Option<f64>,
    pub achieved_qps: f64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed_secs: f64,
    pub latency: LatencySummary,
    pub by_kind: Vec<KindLatency>,
}

/// `concurrency` workers send back to back for `warmup` (not recorded) and then `duration`.
pub async fn closed_loop(
    target: Arc<dyn Target>,
    queries: Arc<Vec<BenchQuery>>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> RunResult {
    let next = Arc::new(AtomicU64::new(0));
    let measure_from = Instant::now() + warmup;
    let until = measure_from + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (target, queries, next) = (target.clone(), queries.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut h = Hists::new();
            loop {
                let start = Instant::now();
                if start >= until {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let q = &queries[i % queries.len()];
                let outcome = target.send(q).await;
                if start >= measure_from {
                    h.record(q.kind, &outcome, start.elapsed());
                }
            }
            h
        }));
    }
    let mut all = Hists::new();
    for w in workers {
        all.merge(&w.await.expect("closed-loop worker panicked"));
    }
    let end = Instant::now().max(until);
    all.finish(end - measure_from, None)
}

/// Requests due at `rate` per second for `duration`; at most `max_in_flight` outstanding (a
/// request that waits for a slot still counts its wait, from its intended time).
pub async fn open_loop(
    target: Arc<dyn Target>,
    queries: Arc<Vec<BenchQuery>>,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> RunResult {
    let schedule = Schedule::for_duration(rate, duration);
    let hists = Arc::new(Mutex::new(Hists::new()));
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let start = Instant::now() + Duration::from_millis(5);
    let mut tasks = Vec::with_capacity(schedule.count as usize);
    for i in 0..schedule.count {
        let intended = start + schedule.offset(i);
        tokio::time::sleep_until(intended.into()).await;
        let permit = slots.clone().acquire_owned().await.expect("semaphore open");
        let (target, queries, hists) = (target.clone(), queries.clone(), hists.clone());
        tasks.push(tokio::spawn(async move {
            let q = &queries[i as usize % queries.len()];
            let outcome = target.send(q).await;
            let latency = intended.elapsed();
            drop(permit);
            hists
                .lock()
                .expect("histogram lock")
                .record(q.kind, &outcome, latency);
        }));
    }
    for t in tasks {
        t.await.expect("open-loop request panicked");
    }
    let elapsed = start.elapsed().max(schedule.span());
    let hists = Arc::try_unwrap(hists)
        .ok()
        .expect("all requests finished")
        .into_inner()
        .expect("histogram lock");
    hists.finish(elapsed, Some(rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redrec_core::filter::Filter;

    /// A target that takes a fixed time, and stalls once for `stall` on request 0.
    struct Sleepy {
        service: Duration,
        stall: Duration,
        calls: AtomicU64,
    }

    impl Target for Sleepy {
        fn send<'a>(&'a self, _q: &'a BenchQuery) -> BoxFut<'a, anyhow::Result<()>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::Relaxed);
                let d = if n == 0 { self.stall } else { self.service };
                tokio::time::sleep(d).await;
                if n % 50 == 49 {
                    anyhow::bail!("every 50th request fails");
                }
                Ok(())
            })
        }
    }

    fn queries() -> Arc<Vec<BenchQuery>> {
        Arc::new(vec![BenchQuery {
            kind: Kind::Vector,
            vector: vec![1.0],
            user_id: None,
            text: None,
            filter: Filter::All,
            k: 10,
        }])
    }

    #[tokio::test]
    async fn open_loop_counts_queueing_behind_a_stall() {
        // One slot, 200 req/s, the first request stalls 300 ms: the ~60 requests due during the
        // stall wait for it, and their latency (from the intended time) shows it.
        let target = Arc::new(Sleepy {
            service: Duration::from_micros(100),
            stall: Duration::from_millis(300),
            calls: AtomicU64::new(0),
        });
        let r = open_loop(target, queries(), 200.0, Duration::from_secs(1), 1).await;
        assert_eq!(r.ok + r.errors, 200);
        assert_eq!(r.errors, 4);
        assert_eq!(r.offered_qps, Some(200.0));
        assert!(r.latency.p90_ms > 20.0, "{:?}", r.latency);
        assert!(r.latency.max_ms >= 299.0, "{:?}", r.latency);
        assert!(
            r.achieved_qps > 150.0 && r.achieved_qps < 205.0,
            "{}",
            r.achieved_qps
        );
    }

    #[test]
    fn per_request_stage_cpu_is_the_difference_over_completed_requests() {
        let before = vec![("retrieve".to_owned(), 1.0), ("rerank".to_owned(), 0.5)];
        let after = vec![
            ("retrieve".to_owned(), 1.2),
            ("rerank".to_owned(), 0.55),
            ("new".to_owned(), 3.0),
        ];
        // 2 s at 500 requests/s: 1,000 requests
        let got = stage_cpu(&before, &after, 2.0, 500.0);
        assert_eq!(got.len(), 2, "a stage missing before is left out: {got:?}");
        assert_eq!(got[0].stage, "retrieve");
        assert!((got[0].us_per_request - 200.0).abs() < 1e-6, "{got:?}");
        assert!((got[1].us_per_request - 50.0).abs() < 1e-6, "{got:?}");
        assert!(stage_cpu(&before, &after, 2.0, 0.0).is_empty());
    }

    #[tokio::test]
    async fn closed_loop_measures_throughput_after_warmup() {
        let target = Arc::new(Sleepy {
            service: Duration::from_millis(2),
            stall: Duration::from_millis(2),
            calls: AtomicU64::new(0),
        });
        let r = closed_loop(
            target,
            queries(),
            4,
            Duration::from_millis(100),
            Duration::from_millis(500),
        )
        .await;
        // 4 workers x ~2 ms per request: roughly 2000/s at best; timers make it less.
        assert!(
            r.achieved_qps > 500.0 && r.achieved_qps < 2100.0,
            "{}",
            r.achieved_qps
        );
        assert!(r.latency.p50_ms >= 2.0, "{:?}", r.latency);
        assert_eq!(r.by_kind.len(), 1);
        assert!(r.offered_qps.is_none());
    }
}
