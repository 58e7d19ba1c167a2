//! A small Prometheus registry: counters and fixed-bucket histograms keyed by label values,
//! rendered in the text exposition format (version 0.0.4). Hand-rolled because the gateway
//! needs five metric families and the `prometheus` crate would add a protobuf build.

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex, time::Duration};

use crate::{cpu::Stage, error::ErrorMetric};

/// Histogram bucket bounds in seconds: 0.5 ms .. 2.5 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Families {
    requests: BTreeMap<Labels, u64>,
    request_duration: BTreeMap<Labels, Histogram>,
    stage_duration: BTreeMap<Labels, Histogram>,
    redis_errors: BTreeMap<Labels, u64>,
    degraded: BTreeMap<Labels, u64>,
    stage_timeouts: BTreeMap<Labels, u64>,
    admission_refused: BTreeMap<Labels, u64>,
    rate_limited: u64,
    /// CPU seconds per route template, by stage (`cpu::Stage::ALL` order).
    request_cpu: BTreeMap<String, [f64; Stage::ALL.len()]>,
}

/// Pool occupancy read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// The gateway's metrics. Cheap to update (one short mutex hold per observation).
#[derive(Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Families) -> R) -> R {
        let mut guard = self.families.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// One finished HTTP request. `route` is the matched route template, never the raw path.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.with(|f| {
            *f.requests
                .entry(vec![
                    ("method", method.to_owned()),
                    ("route", route.to_owned()),
                    ("status", status.to_string()),
                ])
                .or_default() += 1;
            f.request_duration
                .entry(vec![("route", route.to_owned())])
                .or_default()
                .observe(elapsed.as_secs_f64());
        });
    }

    /// The CPU time one request of `route` used, by stage (see `cpu.rs`).
    pub fn observe_cpu(&self, route: &str, spent: &[Duration; Stage::ALL.len()]) {
        self.with(|f| {
            // the route is known after the first request: no allocation per request
            if !f.request_cpu.contains_key(route) {
                f.request_cpu.insert(route.to_owned(), Default::default());
            }
            if let Some(totals) = f.request_cpu.get_mut(route) {
                for (total, s) in totals.iter_mut().zip(spent) {
                    *total += s.as_secs_f64();
                }
            }
        });
    }

    /// One pipeline stage (`embed`, `features`, `retrieve`, `rerank`, ...).
    pub fn observe_stage(&self, stage: &str, elapsed: Duration) {
        self.with(|f| {
            f.stage_duration
                .entry(vec![("stage", stage.to_owned())])
                .or_default()
                .observe(elapsed.as_secs_f64());
        });
    }

    /// The metric of one error behind a response. Called only by the metrics middleware
    /// (`observe` in `lib.rs`), which reads them off the response (`ErrorMetrics`).
    pub fn error(&self, metric: ErrorMetric) {
        self.with(|f| match metric {
            ErrorMetric::Redis(failure) => {
                *f.redis_errors
                    .entry(vec![("kind", failure.label().to_owned())])
                    .or_default() += 1
            }
            ErrorMetric::StageTimeout(stage) => {
                *f.stage_timeouts
                    .entry(vec![("stage", stage.to_owned())])
                    .or_default() += 1
            }
            ErrorMetric::RateLimited => f.rate_limited += 1,
        });
    }

    /// A response served in degraded mode.
    pub fn degraded(&self, reason: &'static str) {
        self.with(|f| {
            *f.degraded
                .entry(vec![("reason", reason.to_owned())])
                .or_default() += 1
        });
    }

    /// A Redis stage refused by admission control (the request failed with 503).
    pub fn admission_refused(&self, stage: &str, why: crate::admission::Refused) {
        let why = match why {
            crate::admission::Refused::Overloaded => "overloaded",
            crate::admission::Refused::Deadline => "deadline",
        };
        self.with(|f| {
            *f.admission_refused
                .entry(vec![
                    ("stage", stage.to_owned()),
                    ("reason", why.to_owned()),
                ])
                .or_default() += 1
        });
    }

    /// The text exposition of every family.
    pub fn render(&self, pool: PoolGauges) -> String {
        let mut out = String::with_capacity(4096);
        self.with(|f| {
            counter(
                &mut out,
                "redrec_http_requests_total",
                "HTTP requests by method, route template and status.",
                &f.requests,
            );
            histogram(
                &mut out,
                "redrec_http_request_duration_seconds",
                "End-to-end HTTP request latency by route template.",
                &f.request_duration,
            );
            histogram(
                &mut out,
                "redrec_stage_duration_seconds",
                "Latency of each request pipeline stage.",
                &f.stage_duration,
            );
            counter(
                &mut out,
                "redrec_redis_errors_total",
                "Failed Redis calls by kind (timeout, connection, command).",
                &f.redis_errors,
            );
            counter(
                &mut out,
                "redrec_degraded_responses_total",
                "Responses served in degraded mode, by reason.",
                &f.degraded,
            );
            counter(
                &mut out,
                "redrec_stage_timeouts_total",
                "Requests failed with 503 because the deadline passed during a stage, by stage.",
                &f.stage_timeouts,
            );
            counter(
                &mut out,
                "redrec_admission_refused_total",
                "Requests refused with 503 by admission control, by stage and reason \
                 (overloaded: refused at once; deadline: waited until the deadline).",
                &f.admission_refused,
            );
            let _ = writeln!(
                out,
                "# HELP redrec_request_cpu_seconds_total CPU time of requests on the threads \
                 that polled them or ran their blocking work, by route template and stage \
                 (HTTP I/O, Redis connection tasks and the runtime are not included).\n\
                 # TYPE redrec_request_cpu_seconds_total counter"
            );
            for (route, totals) in &f.request_cpu {
                for (stage, seconds) in Stage::ALL.iter().zip(totals) {
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
                f.rate_limited
            );
        });
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

fn counter(out: &mut String, name: &str, help: &str, values: &BTreeMap<Labels, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in values {
        let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
    }
}

fn histogram(out: &mut String, name: &str, help: &str, values: &BTreeMap<Labels, Histogram>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (labels, h) in values {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += h.counts[i];
            let le = format!("{bound}");
            let _ = writeln!(
                out,
                "{name}_bucket{} {cumulative}",
                label_text(labels, Some(("le", &le)))
            );
        }
        cumulative += h.counts[BUCKETS.len()];
        let _ = writeln!(
            out,
            "{name}_bucket{} {cumulative}",
            label_text(labels, Some(("le", "+Inf")))
        );
        let _ = writeln!(out, "{name}_sum{} {}", label_text(labels, None), h.sum);
        let _ = writeln!(out, "{name}_count{} {}", label_text(labels, None), h.count);
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
    fn escapes_label_values() {
        let m = Metrics::new();
        m.observe_request("GET", "/a\"b", 200, Duration::from_millis(1));
        assert!(
            m.render(PoolGauges::default())
                .contains("route=\"/a\\\"b\"")
        );
    }
}
