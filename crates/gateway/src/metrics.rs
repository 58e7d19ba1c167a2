//! A small Prometheus registry: counters and fixed-bucket histograms keyed by label values,
//! rendered in the text exposition format (version 0.0.4). Hand-rolled because the gateway
//! needs a handful of metric families and the `prometheus` crate would add a protobuf build.
//!
//! No global lock on the request path: each family is a map from label values to cells of
//! atomics behind its own `RwLock`. An observation takes the read lock (shared: requests never
//! wait for each other) and adds atomically; the write lock is taken only the first time a
//! label set is seen, and label sets are bounded (route templates, stages, fixed reasons).
//! Durations are summed as integer nanoseconds, so sums are exact and need no CAS loop.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{cpu::Stage, error::ErrorMetric};

/// Histogram bucket bounds in seconds: 0.5 ms .. 2.5 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(nanos(elapsed), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

type Labels = Vec<(&'static str, String)>;

/// Cells of one family by label values.
struct Family<K, C> {
    cells: RwLock<BTreeMap<K, C>>,
}

impl<K: Ord, C: Default> Default for Family<K, C> {
    fn default() -> Self {
        Family {
            cells: RwLock::new(BTreeMap::new()),
        }
    }
}

impl<K: Ord, C: Default> Family<K, C> {
    /// Runs `f` on the cell of `key` (created on first use).
    fn with<Q>(&self, key: &Q, owned: impl FnOnce() -> K, f: impl FnOnce(&C))
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        {
            let cells = self.cells.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cells.get(key) {
                f(c);
                return;
            }
        }
        let mut cells = self.cells.write().unwrap_or_else(|p| p.into_inner());
        f(cells.entry(owned()).or_default());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<K, C>> {
        self.cells.read().unwrap_or_else(|p| p.into_inner())
    }
}

type Counters = Family<Labels, AtomicU64>;

fn inc(family: &Counters, labels: Labels) {
    family.with(
        &labels,
        || labels.clone(),
        |c| {
            c.fetch_add(1, Ordering::Relaxed);
        },
    );
}

/// Pool occupancy read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// The gateway's metrics. Cheap to update: a shared read lock and atomic adds.
#[derive(Default)]
pub struct Metrics {
    requests: Counters,
    request_duration: Family<Labels, Histogram>,
    stage_duration: Family<Labels, Histogram>,
    redis_errors: Counters,
    degraded: Counters,
    stage_timeouts: Counters,
    admission_refused: Counters,
    rate_limited: AtomicU64,
    /// CPU nanoseconds per route template, by stage (`cpu::Stage::ALL` order).
    request_cpu: Family<String, [AtomicU64; Stage::ALL.len()]>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One finished HTTP request. `route` is the matched route template, never the raw path.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        inc(
            &self.requests,
            vec![
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ],
        );
        let labels = vec![("route", route.to_owned())];
        self.request_duration
            .with(&labels, || labels.clone(), |h| h.observe(elapsed));
    }

    /// The CPU time one request of `route` used, by stage (see `cpu.rs`).
    pub fn observe_cpu(&self, route: &str, spent: &[Duration; Stage::ALL.len()]) {
        self.request_cpu.with(
            route,
            || route.to_owned(),
            |totals| {
                for (total, s) in totals.iter().zip(spent) {
                    total.fetch_add(nanos(*s), Ordering::Relaxed);
                }
            },
        );
    }

    /// One pipeline stage (`embed`, `features`, `retrieve`, `rerank`, ...).
    pub fn observe_stage(&self, stage: &str, elapsed: Duration) {
        let labels = vec![("stage", stage.to_owned())];
        self.stage_duration
            .with(&labels, || labels.clone(), |h| h.observe(elapsed));
    }

    /// The metric of one error behind a response. Called only by the metrics middleware
    /// (`observe` in `lib.rs`), which reads them off the response (`ErrorMetrics`).
    pub fn error(&self, metric: ErrorMetric) {
        match metric {
            ErrorMetric::Redis(failure) => inc(
                &self.redis_errors,
                vec![("kind", failure.label().to_owned())],
            ),
            ErrorMetric::StageTimeout(stage) => {
                inc(&self.stage_timeouts, vec![("stage", stage.to_owned())])
            }
            ErrorMetric::RateLimited => {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A response served in degraded mode.
    pub fn degraded(&self, reason: &'static str) {
        inc(&self.degraded, vec![("reason", reason.to_owned())]);
    }

    /// A Redis stage refused by admission control (the request failed with 503).
    pub fn admission_refused(&self, stage: &str, why: crate::admission::Refused) {
        let why = match why {
            crate::admission::Refused::Overloaded => "overloaded",
            crate::admission::Refused::Deadline => "deadline",
        };
        inc(
            &self.admission_refused,
            vec![("stage", stage.to_owned()), ("reason", why.to_owned())],
        );
    }

    /// The text exposition of every family.
    pub fn render(&self, pool: PoolGauges) -> String {
        let mut out = String::with_capacity(4096);
        {
            let f = self;
            counter(
                &mut out,
                "redrec_http_requests_total",
                "HTTP requests by method, route template and status.",
                &f.requests.read(),
            );
            histogram(
                &mut out,
                "redrec_http_request_duration_seconds",
                "End-to-end HTTP request latency by route template.",
                &f.request_duration.read(),
            );
            histogram(
                &mut out,
                "redrec_stage_duration_seconds",
                "Latency of each request pipeline stage.",
                &f.stage_duration.read(),
            );
            counter(
                &mut out,
                "redrec_redis_errors_total",
                "Failed Redis calls by kind (timeout, connection, command).",
                &f.redis_errors.read(),
            );
            counter(
                &mut out,
                "redrec_degraded_responses_total",
                "Responses served in degraded mode, by reason.",
                &f.degraded.read(),
            );
            counter(
                &mut out,
                "redrec_stage_timeouts_total",
                "Requests failed with 503 because the deadline passed during a stage, by stage.",
                &f.stage_timeouts.read(),
            );
            counter(
                &mut out,
                "redrec_admission_refused_total",
                "Requests refused with 503 by admission control, by stage and reason \
                 (overloaded: refused at once; deadline: waited until the deadline).",
                &f.admission_refused.read(),
            );
            let _ = writeln!(
                out,
                "# HELP redrec_request_cpu_seconds_total CPU time of requests on the threads \
                 that polled them or ran their blocking work, by route template and stage \
                 (HTTP I/O, Redis connection tasks and the runtime are not included).\n\
                 # TYPE redrec_request_cpu_seconds_total counter"
            );
            for (route, totals) in f.request_cpu.read().iter() {
                for (stage, ns) in Stage::ALL.iter().zip(totals) {
                    let seconds = ns.load(Ordering::Relaxed) as f64 / 1e9;
                    let _ = writeln!(
                        out,
                        "redrec_request_cpu_seconds_total{{route=\"{}\",stage=\"{}\"}} {seconds}",
                        escape(route),
                        stage.name()
                    );
                }
            }
            let _ = writeln!(
                out,
                "# HELP redrec_rate_limited_total Requests refused by the rate limiter.\n\
                 # TYPE redrec_rate_limited_total counter\nredrec_rate_limited_total {}",
                f.rate_limited.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP redrec_redis_pool_connections Redis connection pool occupancy.\n\
             # TYPE redrec_redis_pool_connections gauge\n\
             redrec_redis_pool_connections{{state=\"max\"}} {}\n\
             redrec_redis_pool_connections{{state=\"open\"}} {}\n\
             redrec_redis_pool_connections{{state=\"idle\"}} {}\n\
             redrec_redis_pool_connections{{state=\"in_use\"}} {}\n\
             # HELP redrec_redis_pool_waiting Requests waiting for a Redis connection.\n\
             # TYPE redrec_redis_pool_waiting gauge\nredrec_redis_pool_waiting {}",
            pool.max_size,
            pool.size,
            pool.available,
            pool.size.saturating_sub(pool.available),
            pool.waiting
        );
        out
    }
}

/// Appends the admission limiter's gauges and counters.
pub fn render_admission(out: &mut String, a: &crate::admission::AdmissionStats) {
    let _ = writeln!(
        out,
        "# HELP redrec_admission_limit Redis queries the gateway admits in flight now.\n\
         # TYPE redrec_admission_limit gauge\nredrec_admission_limit {}\n\
         # HELP redrec_admission_in_flight Redis queries in flight.\n\
         # TYPE redrec_admission_in_flight gauge\nredrec_admission_in_flight {}\n\
         # HELP redrec_admission_waiting Requests waiting for an admission slot.\n\
         # TYPE redrec_admission_waiting gauge\nredrec_admission_waiting {}\n\
         # HELP redrec_admission_admitted_total Redis stages admitted (queued: after waiting).\n\
         # TYPE redrec_admission_admitted_total counter\n\
         redrec_admission_admitted_total{{waited=\"false\"}} {}\n\
         redrec_admission_admitted_total{{waited=\"true\"}} {}",
        a.limit,
        a.in_flight,
        a.waiting,
        a.admitted - a.queued,
        a.queued
    );
}

/// Appends hit, miss, eviction counters, entries and hit ratio of each serving cache.
pub fn render_caches(out: &mut String, caches: &[(&str, redrec_core::lru::CacheStats)]) {
    let mut family =
        |name: &str,
         kind: &str,
         help: &str,
         value: &dyn Fn(&redrec_core::lru::CacheStats) -> String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (cache, s) in caches {
                let _ = writeln!(out, "{name}{{cache=\"{cache}\"}} {}", value(s));
            }
        };
    family(
        "redrec_cache_hits_total",
        "counter",
        "Cache lookups answered from the cache.",
        &|s| s.hits.to_string(),
    );
    family(
        "redrec_cache_misses_total",
        "counter",
        "Cache lookups that went to Redis or the embedder.",
        &|s| s.misses.to_string(),
    );
    family(
        "redrec_cache_evictions_total",
        "counter",
        "Entries dropped to stay within the cache's bound.",
        &|s| s.evictions.to_string(),
    );
    family("redrec_cache_entries", "gauge", "Entries held now.", &|s| {
        s.entries.to_string()
    });
    family(
        "redrec_cache_hit_ratio",
        "gauge",
        "Hits over lookups since start.",
        &|s| format!("{:.4}", s.hit_rate()),
    );
}

fn label_text(labels: &Labels, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn counter(out: &mut String, name: &str, help: &str, values: &BTreeMap<Labels, AtomicU64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in values {
        let v = v.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
    }
}

fn histogram(out: &mut String, name: &str, help: &str, values: &BTreeMap<Labels, Histogram>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (labels, h) in values {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += h.counts[i].load(Ordering::Relaxed);
            let le = format!("{bound}");
            let _ = writeln!(
                out,
                "{name}_bucket{} {cumulative}",
                label_text(labels, Some(("le", &le)))
            );
        }
        cumulative += h.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{} {cumulative}",
            label_text(labels, Some(("le", "+Inf")))
        );
        let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let count = h.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_sum{} {sum}", label_text(labels, None));
        let _ = writeln!(out, "{name}_count{} {count}", label_text(labels, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets() {
        let m = Metrics::new();
        m.observe_stage("rerank", Duration::from_micros(300));
        m.observe_stage("rerank", Duration::from_millis(30));
        m.observe_stage("rerank", Duration::from_secs(10));
        let text = m.render(PoolGauges::default());
        assert!(
            text.contains("redrec_stage_duration_seconds_bucket{stage=\"rerank\",le=\"0.0005\"} 1")
        );
        assert!(
            text.contains("redrec_stage_duration_seconds_bucket{stage=\"rerank\",le=\"0.05\"} 2")
        );
        assert!(
            text.contains("redrec_stage_duration_seconds_bucket{stage=\"rerank\",le=\"+Inf\"} 3")
        );
        assert!(text.contains("redrec_stage_duration_seconds_count{stage=\"rerank\"} 3"));
    }

    #[test]
    fn error_metrics_land_in_their_families() {
        use crate::error::RedisFailure;
        let m = Metrics::new();
        m.error(ErrorMetric::Redis(RedisFailure::Timeout));
        m.error(ErrorMetric::Redis(RedisFailure::Timeout));
        m.error(ErrorMetric::StageTimeout("features"));
        m.error(ErrorMetric::RateLimited);
        let text = m.render(PoolGauges::default());
        assert!(
            text.contains("redrec_redis_errors_total{kind=\"timeout\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("redrec_stage_timeouts_total{stage=\"features\"} 1"),
            "{text}"
        );
        assert!(text.contains("redrec_rate_limited_total 1"), "{text}");
    }

    #[test]
    fn adds_up_request_cpu_by_route_and_stage() {
        let m = Metrics::new();
        let mut spent = [Duration::ZERO; Stage::ALL.len()];
        spent[Stage::Retrieve as usize] = Duration::from_micros(250);
        spent[Stage::Rerank as usize] = Duration::from_micros(100);
        m.observe_cpu("/v1/recommendations", &spent);
        m.observe_cpu("/v1/recommendations", &spent);
        let text = m.render(PoolGauges::default());
        assert!(
            text.contains(
                "redrec_request_cpu_seconds_total{route=\"/v1/recommendations\",stage=\"retrieve\"} 0.0005"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "redrec_request_cpu_seconds_total{route=\"/v1/recommendations\",stage=\"rerank\"} 0.0002"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "redrec_request_cpu_seconds_total{route=\"/v1/recommendations\",stage=\"request\"} 0"
            ),
            "{text}"
        );
    }

    #[test]
    fn concurrent_observations_all_count() {
        let m = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        // a label set seen first by several threads at once, and shared ones
                        m.observe_request(
                            "GET",
                            &format!("/r{}", i % 3),
                            200,
                            Duration::from_micros(100),
                        );
                        m.observe_stage("retrieve", Duration::from_micros(t + 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = m.render(PoolGauges::default());
        let total: u64 = (0..3)
            .map(|r| {
                let prefix = format!(
                    "redrec_http_requests_total{{method=\"GET\",route=\"/r{r}\",status=\"200\"}} "
                );
                let line = text.lines().find(|l| l.starts_with(&prefix)).expect("line");
                line[prefix.len()..].parse::<u64>().unwrap()
            })
            .sum();
        assert_eq!(total, 8000, "{text}");
        assert!(text.contains("redrec_stage_duration_seconds_count{stage=\"retrieve\"} 8000"));
        // 1000 observations each of 1..=8 us: 36 ms exactly
        assert!(
            text.contains("redrec_stage_duration_seconds_sum{stage=\"retrieve\"} 0.036\n"),
            "{text}"
        );
    }

    #[test]
    fn escapes_label_values() {
        let m = Metrics::new();
        m.observe_request("GET", "/a\"b", 200, Duration::from_millis(1));
        assert!(
            m.render(PoolGauges::default())
                .contains("route=\"/a\\\"b\"")
        );
    }
}
