//! Latency budgets: a per-request [`Deadline`] and the [`Timings`] of each stage, which end up in
//! the response body, the `Server-Timing` header and the stage histograms.

use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use crate::metrics::Metrics;

/// The end-to-end deadline of one request.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    end: Instant,
}

impl Deadline {
    pub fn after(budget: Duration) -> Deadline {
        let start = Instant::now();
        Deadline {
            start,
            end: start + budget,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// When the deadline passes.
    pub fn end(&self) -> Instant {
        self.end
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The budget of a stage with a budget of its own (reranking): that budget, cut to what is
    /// left of the deadline.
    pub fn stage_budget(&self, stage_ms: u64) -> Duration {
        Duration::from_millis(stage_ms).min(self.remaining())
    }
}

/// How long one stage took, in milliseconds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageTiming {
    pub stage: String,
    pub ms: f64,
}

/// Stage timings of one request, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub stages: Vec<StageTiming>,
}

impl Timings {
    pub fn record(&mut self, metrics: &Metrics, stage: &'static str, elapsed: Duration) {
        metrics.observe_stage(stage, elapsed);
        self.stages.push(StageTiming {
            stage: stage.to_owned(),
            ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        });
    }

    /// The `Server-Timing` value of these stages (`retrieve;dur=3.2, rerank;dur=0.4`).
    pub fn server_timing(&self) -> String {
        self.stages
            .iter()
            .map(|s| format!("{};dur={}", s.stage, s.ms))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Response extension carrying stage timings to the `Server-Timing` middleware.
#[derive(Debug, Clone)]
pub struct ServerTiming(pub String);
