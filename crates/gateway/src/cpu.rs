//! CPU time per request stage, measured on the threads that do the work.
//!
//! A request's future is polled on whichever worker thread tokio picks, and between polls that
//! thread runs other requests, so wall-clock stage timings say nothing about CPU. The metrics
//! middleware therefore runs every request as a [`metered`] future: each poll reads the thread's
//! CPU clock (`CLOCK_THREAD_CPUTIME_ID`) before and after and charges the difference to the
//! request's current [`Stage`], which the handler and the pipeline advance with [`enter`]. Work
//! handed to another thread (a large rerank, embedding on the blocking pool) is charged with
//! [`charge`] on that thread. The totals per route and stage are exported in `/metrics`
//! (`redrec_request_cpu_seconds_total`), which `cargo xtask bench` reads to report CPU per
//! request by stage.
//!
//! What no request future polls is not charged here: HTTP parsing and writing in hyper's
//! connection tasks, reading Redis replies in the Redis connections' own tasks, the runtime's
//! scheduling, and the embedding model running on the micro-batcher's thread. The bench reports
//! that remainder as the gap between the process's CPU time and the sum of the stages.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

/// Where a request's CPU time goes, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Routing, authentication, rate limiting, reading and validating the request body: all
    /// before the pipeline starts.
    Request,
    /// The pipeline's first stage: the user's features (commands out, replies decoded) and
    /// the query text's embedding-cache lookup.
    Features,
    /// Embedding a query text on the blocking pool (without the micro-batcher's model work).
    Embed,
    /// Candidate retrieval: searches built, replies decoded into candidates, merged.
    Retrieve,
    /// Reranking: on the request's task, or for a large job on the blocking pool (plus handing
    /// the candidates over).
    Rerank,
    /// The response: body serialisation, headers, metrics.
    Respond,
}

impl Stage {
    /// Every stage, in order (also the index of each in a [`Ledger`]).
    pub const ALL: [Stage; 6] = [
        Stage::Request,
        Stage::Features,
        Stage::Embed,
        Stage::Retrieve,
        Stage::Rerank,
        Stage::Respond,
    ];

    /// The `stage` label value.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Request => "request",
            Stage::Features => "features",
            Stage::Embed => "embed",
            Stage::Retrieve => "retrieve",
            Stage::Rerank => "rerank",
            Stage::Respond => "respond",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// CPU time charged to each stage of one request.
#[derive(Debug, Default)]
pub struct Ledger {
    current: AtomicU8,
    /// The polling thread's CPU clock (ns) when the running poll's uncharged time began.
    checkpoint: AtomicU64,
    nanos: [AtomicU64; Stage::ALL.len()],
}

impl Ledger {
    pub fn new() -> Arc<Ledger> {
        Arc::new(Ledger::default())
    }

    fn add(&self, stage: Stage, spent: Duration) {
        self.nanos[stage.index()].fetch_add(nanos(spent), Ordering::Relaxed);
    }

    fn current(&self) -> Stage {
        Stage::ALL[usize::from(self.current.load(Ordering::Relaxed)).min(Stage::ALL.len() - 1)]
    }

    /// Starts a poll's uncharged time at `now` (the polling thread's CPU clock).
    fn start(&self, now: Duration) {
        self.checkpoint.store(nanos(now), Ordering::Relaxed);
    }

    /// Charges the polling thread's CPU time since the checkpoint to the current stage and
    /// moves the checkpoint to `now`.
    fn settle(&self, now: Duration) {
        let now = nanos(now);
        let since = now.saturating_sub(self.checkpoint.swap(now, Ordering::Relaxed));
        self.nanos[self.current().index()].fetch_add(since, Ordering::Relaxed);
    }

    /// CPU time per stage so far, in [`Stage::ALL`] order.
    pub fn spent(&self) -> [Duration; Stage::ALL.len()] {
        std::array::from_fn(|i| Duration::from_nanos(self.nanos[i].load(Ordering::Relaxed)))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

tokio::task_local! {
    static LEDGER: Arc<Ledger>;
}

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Moves the current request to `stage`: what the running poll used so far is charged to the
/// stage it leaves (nothing happens outside a [`metered`] request).
pub fn enter(stage: Stage) {
    let _ = LEDGER.try_with(|l| {
        if l.current() != stage {
            l.settle(thread_cpu());
            l.current.store(stage as u8, Ordering::Relaxed);
        }
    });
}

/// The current request's ledger, to hand to work that runs on another thread.
pub fn ledger() -> Option<Arc<Ledger>> {
    LEDGER.try_with(Arc::clone).ok()
}

/// Runs `f` on the calling thread, charging its CPU time to `stage` of `ledger` (just runs it
/// without a ledger).
pub fn charge<T>(ledger: Option<&Ledger>, stage: Stage, f: impl FnOnce() -> T) -> T {
    let Some(ledger) = ledger else {
        return f();
    };
    let started = thread_cpu();
    let out = f();
    ledger.add(stage, thread_cpu().saturating_sub(started));
    out
}

/// Runs `fut` as one request charged to `ledger`: the CPU time of every poll goes to the stage
/// the request was in while it ran ([`enter`] splits a poll that changes stage).
pub async fn metered<F: Future>(ledger: Arc<Ledger>, fut: F) -> F::Output {
    let charged = ledger.clone();
    LEDGER
        .scope(ledger, async move {
            let mut fut = std::pin::pin!(fut);
            std::future::poll_fn(|cx| {
                charged.start(thread_cpu());
                let out = fut.as_mut().poll(cx);
                charged.settle(thread_cpu());
                out
            })
            .await
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns about `ms` of CPU on the calling thread.
    fn spin(ms: u64) {
        let until = thread_cpu() + Duration::from_millis(ms);
        let mut x = 0u64;
        while thread_cpu() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[tokio::test]
    async fn charges_each_stage_its_own_cpu_and_not_the_waiting() {
        let ledger = Ledger::new();
        metered(ledger.clone(), async {
            spin(4);
            enter(Stage::Retrieve);
            // waiting costs no CPU
            tokio::time::sleep(Duration::from_millis(30)).await;
            spin(6);
            let l = super::ledger().expect("inside a metered request");
            tokio::task::spawn_blocking(move || charge(Some(&l), Stage::Rerank, || spin(5)))
                .await
                .unwrap();
            enter(Stage::Respond);
        })
        .await;
        let spent = ledger.spent();
        let ms = |s: Stage| spent[s.index()].as_secs_f64() * 1e3;
        assert!((3.9..8.0).contains(&ms(Stage::Request)), "{spent:?}");
        assert!((5.9..10.0).contains(&ms(Stage::Retrieve)), "{spent:?}");
        assert!((4.9..9.0).contains(&ms(Stage::Rerank)), "{spent:?}");
        assert!(
            ms(Stage::Features) == 0.0 && ms(Stage::Embed) == 0.0,
            "{spent:?}"
        );
        assert!(ms(Stage::Respond) < 2.0, "{spent:?}");
        // outside a metered request nothing is recorded and nothing fails
        enter(Stage::Rerank);
        assert!(super::ledger().is_none());
        assert_eq!(charge(None, Stage::Rerank, || 7), 7);
    }
}
