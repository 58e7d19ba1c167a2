//! The gateway's metrics on `prometheus-client` (the Prometheus project's Rust client), rendered
//! in the OpenMetrics text format at `/metrics`.
//!
//! No lock on the request path that requests wait on: each family is a `prometheus-client`
//! `Family` (label sets to metrics behind a read-write lock: an observation takes the shared
//! read lock and adds atomically; the write lock is taken only the first time a label set is
//! seen, and label sets are bounded: route templates, stages, fixed reasons). The crate's own
//! histogram keeps its buckets behind a mutex that every observation takes, so latencies go into
//! [`Latency`], a histogram of atomics encoded through the crate's encoder; durations are summed
//! as integer nanoseconds, so sums are exact and need no compare-and-swap loop.
//!
//! Figures owned by other components (connection pool, admission limiter, caches, online
//! evaluation) are read at scrape time into a [`Scrape`] and encoded after the request-path
//! families.

use std::{
    borrow::Cow,
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric, counter::Counter, family::Family},
    registry::Registry,
};

use crate::{cpu::Stage, error::ErrorMetric};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Histogram bucket bounds in seconds: 0.5 ms .. 5 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0,
];

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A label value. Static values (stages, reasons) are not copied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelValue(Cow<'static, str>);

impl From<&'static str> for LabelValue {
    fn from(v: &'static str) -> Self {
        LabelValue(Cow::Borrowed(v))
    }
}

impl From<String> for LabelValue {
    fn from(v: String) -> Self {
        LabelValue(Cow::Owned(v))
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        // the encoder escapes `\`, `"` and newlines
        encoder.write_str(&self.0)
    }
}

/// Labels of one series, in the order they are written.
pub type Labels = Vec<(&'static str, LabelValue)>;

/// A label (`key="value"`).
pub fn label(key: &'static str, value: impl Into<LabelValue>) -> (&'static str, LabelValue) {
    (key, value.into())
}

/// A latency histogram of atomics (see the module comment): non-cumulative counts per bucket,
/// the last slot `+Inf`.
#[derive(Debug, Default)]
pub struct Latency {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(nanos(elapsed), Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        let mut buckets = [(0.0, 0); BUCKETS.len() + 1];
        for (i, slot) in buckets.iter_mut().enumerate() {
            // the encoder writes an infinite upper bound as `+Inf`
            *slot = (
                BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                self.counts[i].load(Ordering::Relaxed),
            );
        }
        // the count is the buckets' total, so the two always agree in one scrape
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A counter of seconds, added up as integer nanoseconds.
#[derive(Debug, Default)]
pub struct Seconds(AtomicU64);

impl Seconds {
    fn add(&self, d: Duration) {
        self.0.fetch_add(nanos(d), Ordering::Relaxed);
    }
}

impl TypedMetric for Seconds {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Seconds {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        let seconds = self.0.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_counter::<NoLabelSet, f64, f64>(&seconds, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Pool occupancy read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

type Counters<const N: usize> = Family<[(&'static str, LabelValue); N], Counter>;

/// The gateway's request-path metrics. Cheap to update: a shared read lock and atomic adds.
pub struct Metrics {
    registry: Registry,
    requests: Counters<3>,
    request_duration: Family<[(&'static str, LabelValue); 1], Latency>,
    stage_duration: Family<[(&'static str, LabelValue); 1], Latency>,
    redis_errors: Counters<1>,
    degraded: Counters<1>,
    stage_timeouts: Counters<1>,
    admission_refused: Counters<2>,
    rate_limited: Counter,
    events: Counters<1>,
    /// CPU time per route template and stage (`cpu::Stage`).
    request_cpu: Family<[(&'static str, LabelValue); 2], Seconds>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            request_duration: Family::default(),
            stage_duration: Family::default(),
            redis_errors: Family::default(),
            degraded: Family::default(),
            stage_timeouts: Family::default(),
            admission_refused: Family::default(),
            rate_limited: Counter::default(),
            events: Family::default(),
            request_cpu: Family::default(),
        };
        let mut registry = Registry::default();
        // counters are registered without `_total`: the encoder appends it to each sample
        registry.register(
            "redrec_http_requests",
            "HTTP requests by method, route template and status",
            m.requests.clone(),
        );
        registry.register(
            "redrec_http_request_duration_seconds",
            "End-to-end HTTP request latency by route template",
            m.request_duration.clone(),
        );
        registry.register(
            "redrec_stage_duration_seconds",
            "Latency of each request pipeline stage",
            m.stage_duration.clone(),
        );
        registry.register(
            "redrec_redis_errors",
            "Failed Redis calls by kind (timeout, connection, command)",
            m.redis_errors.clone(),
        );
        registry.register(
            "redrec_degraded_responses",
            "Responses served in degraded mode, by reason",
            m.degraded.clone(),
        );
        registry.register(
            "redrec_stage_timeouts",
            "Requests failed with 503 because the deadline passed during a stage, by stage",
            m.stage_timeouts.clone(),
        );
        registry.register(
            "redrec_admission_refused",
            "Requests refused with 503 by admission control, by stage and reason \
             (overloaded: refused at once; deadline: waited until the deadline)",
            m.admission_refused.clone(),
        );
        registry.register(
            "redrec_rate_limited",
            "Requests refused by the rate limiter",
            m.rate_limited.clone(),
        );
        registry.register(
            "redrec_events_accepted",
            "Events applied to user state by POST /v1/events, by type (duplicates not counted)",
            m.events.clone(),
        );
        registry.register(
            "redrec_request_cpu_seconds",
            "CPU time of requests on the threads that polled them or ran their blocking work, \
             by route template and stage (HTTP I/O, Redis connection tasks and the runtime are \
             not included)",
            m.request_cpu.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One finished HTTP request. `route` is the matched route template, never the raw path.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let route = LabelValue::from(route.to_owned());
        self.requests
            .get_or_create(&[
                ("method", method_label(method)),
                ("route", route.clone()),
                ("status", LabelValue::from(status.to_string())),
            ])
            .inc();
        self.request_duration
            .get_or_create(&[("route", route)])
            .observe(elapsed);
    }

    /// The CPU time one request of `route` used, by stage (see `cpu.rs`).
    pub fn observe_cpu(&self, route: &str, spent: &[Duration; Stage::ALL.len()]) {
        let mut key = [
            ("route", LabelValue::from(route.to_owned())),
            ("stage", LabelValue::from("")),
        ];
        for (stage, s) in Stage::ALL.iter().zip(spent) {
            key[1].1 = LabelValue::from(stage.name());
            self.request_cpu.get_or_create(&key).add(*s);
        }
    }

    /// One pipeline stage (`features`, `embed`, `retrieve`, `rerank`).
    pub fn observe_stage(&self, stage: &'static str, elapsed: Duration) {
        self.stage_duration
            .get_or_create(&[("stage", stage.into())])
            .observe(elapsed);
    }

    /// The metric of one error behind a response. Called only by the metrics middleware
    /// (`observe` in `lib.rs`), which reads them off the response (`ErrorMetrics`).
    pub fn error(&self, metric: ErrorMetric) {
        match metric {
            ErrorMetric::Redis(failure) => {
                self.redis_errors
                    .get_or_create(&[("kind", failure.label().into())])
                    .inc();
            }
            ErrorMetric::StageTimeout(stage) => {
                self.stage_timeouts
                    .get_or_create(&[("stage", stage.into())])
                    .inc();
            }
            ErrorMetric::RateLimited => {
                self.rate_limited.inc();
            }
        }
    }

    /// A response served in degraded mode.
    pub fn degraded(&self, reason: &'static str) {
        self.degraded
            .get_or_create(&[("reason", reason.into())])
            .inc();
    }

    /// A Redis stage refused by admission control (the request failed with 503).
    pub fn admission_refused(&self, stage: &'static str, why: crate::admission::Refused) {
        let why = match why {
            crate::admission::Refused::Overloaded => "overloaded",
            crate::admission::Refused::Deadline => "deadline",
        };
        self.admission_refused
            .get_or_create(&[("stage", stage.into()), ("reason", why.into())])
            .inc();
    }

    /// `n` events of one type applied to user state (`type` is one of the fixed event types).
    pub fn events_accepted(&self, event_type: &'static str, n: u64) {
        self.events
            .get_or_create(&[("type", event_type.into())])
            .inc_by(n);
    }

    /// The OpenMetrics text of the request-path families, then of `scrape`'s.
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut out = String::with_capacity(8192);
        // writing to a String cannot fail
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &scrape.registry);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// The label value of an HTTP method without copying the usual ones.
fn method_label(method: &str) -> LabelValue {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
    match KNOWN.iter().find(|m| **m == method) {
        Some(m) => LabelValue::from(*m),
        None => LabelValue::from(method.to_owned()),
    }
}

/// Families whose figures other components own, read at scrape time (one registry per scrape,
/// so a series that no longer exists, such as an experiment removed by a reload, disappears).
#[derive(Default)]
pub struct Scrape {
    registry: Registry,
}

/// One sample's value.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// A counter's total.
    Total(u64),
    /// A gauge's integer value.
    Int(i64),
    /// A gauge's value.
    Float(f64),
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

#[derive(Debug)]
struct Samples {
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

fn encode_value(encoder: &mut MetricEncoder<'_>, v: Value) -> std::fmt::Result {
    match v {
        Value::Total(n) => encoder.encode_counter::<NoLabelSet, u64, u64>(&n, None),
        Value::Int(n) => encoder.encode_gauge(&n),
        Value::Float(x) => encoder.encode_gauge(&x),
    }
}

impl EncodeMetric for Samples {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        for (labels, v) in &self.samples {
            if labels.is_empty() {
                encode_value(&mut encoder, *v)?;
            } else {
                encode_value(&mut encoder.encode_family(labels)?, *v)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

impl Scrape {
    pub fn new() -> Scrape {
        Scrape::default()
    }

    /// A counter family (`name` without `_total`, `help` without a final period) with one
    /// sample per label set.
    pub fn counter(&mut self, name: &str, help: &str, samples: Vec<(Labels, u64)>) {
        debug_assert!(!name.ends_with("_total"), "{name}: the encoder adds _total");
        let samples = samples
            .into_iter()
            .map(|(l, n)| (l, Value::Total(n)))
            .collect();
        self.registry.register(
            name,
            help,
            Samples {
                kind: MetricType::Counter,
                samples,
            },
        );
    }

    /// A gauge family with one sample per label set.
    pub fn gauge(&mut self, name: &str, help: &str, samples: Vec<(Labels, Value)>) {
        self.registry.register(
            name,
            help,
            Samples {
                kind: MetricType::Gauge,
                samples,
            },
        );
    }

    /// Connection pool occupancy.
    pub fn pool(&mut self, pool: PoolGauges) {
        self.gauge(
            "redrec_redis_pool_connections",
            "Redis connection pool occupancy",
            [
                ("max", pool.max_size),
                ("open", pool.size),
                ("idle", pool.available),
                ("in_use", pool.size.saturating_sub(pool.available)),
            ]
            .into_iter()
            .map(|(state, n)| (vec![label("state", state)], n.into()))
            .collect(),
        );
        self.gauge(
            "redrec_redis_pool_waiting",
            "Requests waiting for a Redis connection",
            vec![(vec![], pool.waiting.into())],
        );
    }

    /// The admission limiter's gauges and counters.
    pub fn admission(&mut self, a: &crate::admission::AdmissionStats) {
        self.gauge(
            "redrec_admission_limit",
            "Redis queries the gateway admits in flight now",
            vec![(vec![], a.limit.into())],
        );
        self.gauge(
            "redrec_admission_in_flight",
            "Redis queries in flight",
            vec![(vec![], a.in_flight.into())],
        );
        self.gauge(
            "redrec_admission_waiting",
            "Requests waiting for an admission slot",
            vec![(vec![], a.waiting.into())],
        );
        self.counter(
            "redrec_admission_admitted",
            "Redis stages admitted (queued: after waiting)",
            vec![
                (vec![label("waited", "false")], a.admitted - a.queued),
                (vec![label("waited", "true")], a.queued),
            ],
        );
    }

    /// Hits, misses, evictions, entries and hit ratio of each serving cache.
    pub fn caches(&mut self, caches: &[(&'static str, redrec_core::lru::CacheStats)]) {
        let by_cache = |value: &dyn Fn(&redrec_core::lru::CacheStats) -> u64| {
            caches
                .iter()
                .map(|(name, s)| (vec![label("cache", *name)], value(s)))
                .collect::<Vec<_>>()
        };
        self.counter(
            "redrec_cache_hits",
            "Cache lookups answered from the cache",
            by_cache(&|s| s.hits),
        );
        self.counter(
            "redrec_cache_misses",
            "Cache lookups that went to Redis or the embedder",
            by_cache(&|s| s.misses),
        );
        self.counter(
            "redrec_cache_evictions",
            "Entries dropped to stay within the cache's bound",
            by_cache(&|s| s.evictions),
        );
        self.gauge(
            "redrec_cache_entries",
            "Entries held now",
            caches
                .iter()
                .map(|(name, s)| (vec![label("cache", *name)], s.entries.into()))
                .collect(),
        );
        self.gauge(
            "redrec_cache_hit_ratio",
            "Hits over lookups since start",
            caches
                .iter()
                .map(|(name, s)| (vec![label("cache", *name)], Value::Float(s.hit_rate())))
                .collect(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &Metrics) -> String {
        m.render(&Scrape::new())
    }

    #[test]
    fn renders_cumulative_buckets() {
        let m = Metrics::new();
        m.observe_stage("rerank", Duration::from_micros(300));
        m.observe_stage("rerank", Duration::from_millis(30));
        m.observe_stage("rerank", Duration::from_secs(10));
        let text = render(&m);
        for line in [
            "redrec_stage_duration_seconds_bucket{le=\"0.0005\",stage=\"rerank\"} 1",
            "redrec_stage_duration_seconds_bucket{le=\"0.05\",stage=\"rerank\"} 2",
            "redrec_stage_duration_seconds_bucket{le=\"+Inf\",stage=\"rerank\"} 3",
            "redrec_stage_duration_seconds_count{stage=\"rerank\"} 3",
            "# TYPE redrec_stage_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn error_metrics_land_in_their_families() {
        use crate::error::RedisFailure;
        let m = Metrics::new();
        m.error(ErrorMetric::Redis(RedisFailure::Timeout));
        m.error(ErrorMetric::Redis(RedisFailure::Timeout));
        m.error(ErrorMetric::StageTimeout("features"));
        m.error(ErrorMetric::RateLimited);
        let text = render(&m);
        assert!(
            text.contains("redrec_redis_errors_total{kind=\"timeout\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("redrec_stage_timeouts_total{stage=\"features\"} 1"),
            "{text}"
        );
        assert!(text.contains("redrec_rate_limited_total 1"), "{text}");
        assert!(
            text.contains("# TYPE redrec_redis_errors counter"),
            "{text}"
        );
    }

    #[test]
    fn adds_up_request_cpu_by_route_and_stage() {
        let m = Metrics::new();
        let mut spent = [Duration::ZERO; Stage::ALL.len()];
        spent[Stage::Retrieve as usize] = Duration::from_micros(250);
        spent[Stage::Rerank as usize] = Duration::from_micros(100);
        m.observe_cpu("/v1/recommendations", &spent);
        m.observe_cpu("/v1/recommendations", &spent);
        let text = render(&m);
        for line in [
            "redrec_request_cpu_seconds_total{route=\"/v1/recommendations\",stage=\"retrieve\"} 0.0005\n",
            "redrec_request_cpu_seconds_total{route=\"/v1/recommendations\",stage=\"rerank\"} 0.0002\n",
            "redrec_request_cpu_seconds_total{route=\"/v1/recommendations\",stage=\"request\"} 0.0\n",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
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
        let text = render(&m);
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
        m.observe_request("GET", "/a\"b\\c", 200, Duration::from_millis(1));
        assert!(render(&m).contains("route=\"/a\\\"b\\\\c\""));
    }

    #[test]
    fn scrape_families_follow_the_request_path_ones() {
        let m = Metrics::new();
        let mut scrape = Scrape::new();
        scrape.pool(PoolGauges {
            max_size: 8,
            size: 3,
            available: 1,
            waiting: 0,
        });
        scrape.counter(
            "redrec_impressions_recorded",
            "Served lists written to Redis",
            vec![(vec![], 5)],
        );
        let text = m.render(&scrape);
        for line in [
            "redrec_redis_pool_connections{state=\"max\"} 8\n",
            "redrec_redis_pool_connections{state=\"in_use\"} 2\n",
            "redrec_redis_pool_waiting 0\n",
            "redrec_impressions_recorded_total 5\n",
            "# HELP redrec_impressions_recorded Served lists written to Redis.\n",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
