//! Admission control: a bounded number of Redis queries in flight per gateway.
//!
//! One Redis thread answers every query; past a few queries in flight, more concurrency only
//! lengthens its queue, and a request whose query waits there cannot be told apart from one that
//! is slow. So the gateway keeps the queue on its own side: a query takes a [`Permit`] before it
//! is sent and gives it back when its reply arrives. A request that finds no permit free waits
//! for one, but only within its own deadline; when the expected wait (the queue ahead of it
//! times the recent query time, divided by the limit) already exceeds what is left of its
//! deadline, it is refused at once (a fast `503` with `Retry-After`) instead of failing late.
//!
//! The limit is fixed (`gateway.admission.max_in_flight`) or adaptive ([`Aimd`]): it grows by
//! one per limit's worth of queries that finish within `latency_target_ms` while the limiter was
//! full, and shrinks by a quarter, at most once per target interval, when a query is slower.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// `[gateway.admission]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Redis queries in flight at most; 0 = adaptive between `min_in_flight` and
    /// `max_adaptive`.
    pub max_in_flight: usize,
    /// Adaptive: the lowest limit.
    pub min_in_flight: usize,
    /// Adaptive: the highest limit (and where it starts).
    pub max_adaptive: usize,
    /// Adaptive: a query slower than this shrinks the limit.
    pub latency_target_ms: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_in_flight: 0,
            min_in_flight: 2,
            max_adaptive: 16,
            latency_target_ms: 25,
        }
    }
}

impl AdmissionConfig {
    /// Rejects settings the limiter cannot run with, naming the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_in_flight == 0 {
            if self.min_in_flight == 0 {
                return Err((
                    "gateway.admission.min_in_flight",
                    "must be at least 1".into(),
                ));
            }
            if self.max_adaptive < self.min_in_flight {
                return Err((
                    "gateway.admission.max_adaptive",
                    format!(
                        "is {}, below min_in_flight {}",
                        self.max_adaptive, self.min_in_flight
                    ),
                ));
            }
            if self.latency_target_ms == 0 {
                return Err((
                    "gateway.admission.latency_target_ms",
                    "must be at least 1".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Additive-increase, multiplicative-decrease limit. Pure: the caller passes the clock, so the
/// rule is tested deterministically.
#[derive(Debug, Clone)]
pub struct Aimd {
    limit: f64,
    min: f64,
    max: f64,
    target: Duration,
    last_decrease: Option<Instant>,
}

/// Share of the limit kept on a slow query.
const BACKOFF: f64 = 0.75;

impl Aimd {
    /// Starts at `max`: an idle gateway admits freely until latency says otherwise.
    pub fn new(min: usize, max: usize, target: Duration) -> Aimd {
        Aimd {
            limit: max as f64,
            min: min as f64,
            max: max as f64,
            target,
            last_decrease: None,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.floor() as usize
    }

    /// One query finished at `now` after `latency`; `saturated`: every permit was taken when it
    /// started (only then does a fast answer say more concurrency would help).
    pub fn on_done(&mut self, latency: Duration, saturated: bool, now: Instant) {
        if latency > self.target {
            let recent = self
                .last_decrease
                .is_some_and(|t| now.saturating_duration_since(t) < self.target);
            if !recent {
                self.limit = (self.limit * BACKOFF).max(self.min);
                self.last_decrease = Some(now);
            }
        } else if saturated {
            self.limit = (self.limit + 1.0 / self.limit).min(self.max);
        }
    }
}

/// Why a query was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The expected wait exceeds the deadline: refused without waiting.
    Overloaded,
    /// Waited until the deadline without a permit.
    Deadline,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    waiting: usize,
    fixed: Option<usize>,
    aimd: Aimd,
    /// Recent query time, exponentially weighted (seconds).
    service: f64,
    admitted: u64,
    queued: u64,
    refused_overloaded: u64,
    refused_deadline: u64,
}

impl State {
    fn limit(&self) -> usize {
        self.fixed.unwrap_or_else(|| self.aimd.limit()).max(1)
    }
}

/// Limiter counters and the current limit, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AdmissionStats {
    pub limit: usize,
    pub in_flight: usize,
    pub waiting: usize,
    pub admitted: u64,
    /// Admitted after waiting for a permit.
    pub queued: u64,
    pub refused_overloaded: u64,
    pub refused_deadline: u64,
}

/// The gateway's limiter of Redis queries in flight.
pub struct Limiter {
    state: Mutex<State>,
    freed: tokio::sync::Notify,
}

/// Weight of the newest query time in the running mean.
const SERVICE_WEIGHT: f64 = 0.1;

impl Limiter {
    pub fn new(cfg: &AdmissionConfig) -> Limiter {
        let fixed = (cfg.max_in_flight > 0).then_some(cfg.max_in_flight);
        Limiter {
            state: Mutex::new(State {
                in_flight: 0,
                waiting: 0,
                fixed,
                aimd: Aimd::new(
                    cfg.min_in_flight.max(1),
                    cfg.max_adaptive.max(cfg.min_in_flight.max(1)),
                    Duration::from_millis(cfg.latency_target_ms.max(1)),
                ),
                service: 0.002,
                admitted: 0,
                queued: 0,
                refused_overloaded: 0,
                refused_deadline: 0,
            }),
            freed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit for one Redis query, waiting for one until `deadline` at most.
    pub async fn acquire(&self, deadline: Instant) -> Result<Permit<'_>, Refused> {
        // Set once this caller counts as waiting; dropping it (deadline, or the request itself
        // dropped while waiting) takes it out of the count again.
        let mut queued: Option<Queued<'_>> = None;
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            // registered before the check, so a permit freed in between is not missed
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                let limit = s.limit();
                if s.in_flight < limit {
                    s.in_flight += 1;
                    s.admitted += 1;
                    if let Some(mut q) = queued.take() {
                        q.active = false;
                        s.waiting -= 1;
                        s.queued += 1;
                    }
                    return Ok(Permit {
                        limiter: self,
                        started: Instant::now(),
                        saturated: s.in_flight >= limit,
                    });
                }
                if queued.is_none() {
                    // expected wait: everyone ahead, served `limit` at a time
                    let ahead = (s.waiting + 1) as f64;
                    let wait = Duration::from_secs_f64(ahead * s.service / limit as f64);
                    if Instant::now() + wait > deadline {
                        s.refused_overloaded += 1;
                        return Err(Refused::Overloaded);
                    }
                    s.waiting += 1;
                    queued = Some(Queued {
                        limiter: self,
                        active: true,
                    });
                }
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline.into()) => {
                    self.lock().refused_deadline += 1;
                    return Err(Refused::Deadline);
                }
            }
        }
    }

    /// Counters and the current limit.
    pub fn stats(&self) -> AdmissionStats {
        let s = self.lock();
        AdmissionStats {
            limit: s.limit(),
            in_flight: s.in_flight,
            waiting: s.waiting,
            admitted: s.admitted,
            queued: s.queued,
            refused_overloaded: s.refused_overloaded,
            refused_deadline: s.refused_deadline,
        }
    }

    fn release(&self, latency: Duration, saturated: bool) {
        {
            let mut s = self.lock();
            s.in_flight -= 1;
            s.service += SERVICE_WEIGHT * (latency.as_secs_f64() - s.service);
            s.aimd.on_done(latency, saturated, Instant::now());
        }
        self.freed.notify_one();
    }
}

/// A caller counted as waiting.
struct Queued<'a> {
    limiter: &'a Limiter,
    active: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.active {
            self.limiter.lock().waiting -= 1;
        }
    }
}

/// One admitted Redis query; dropping it frees the slot and reports the query's time.
pub struct Permit<'a> {
    limiter: &'a Limiter,
    started: Instant,
    saturated: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limiter.release(self.started.elapsed(), self.saturated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn aimd_backs_off_once_per_interval_and_grows_only_when_saturated() {
        let t0 = Instant::now();
        let mut a = Aimd::new(2, 8, 20 * MS);
        assert_eq!(a.limit(), 8, "starts open");
        a.on_done(30 * MS, false, t0);
        assert_eq!(a.limit(), 6, "8 x 0.75");
        // a burst of slow replies within one target interval backs off once
        a.on_done(30 * MS, true, t0 + 5 * MS);
        a.on_done(30 * MS, true, t0 + 19 * MS);
        assert_eq!(a.limit(), 6);
        a.on_done(30 * MS, true, t0 + 20 * MS);
        assert_eq!(a.limit(), 4, "6 x 0.75 = 4.5");
        for i in 0..10 {
            a.on_done(30 * MS, false, t0 + (40 + 20 * i) * MS);
        }
        assert_eq!(a.limit(), 2, "never below the minimum");
        // fast replies while the limiter had room say nothing about more concurrency
        a.on_done(5 * MS, false, t0 + 500 * MS);
        assert_eq!(a.limit(), 2);
        // fast replies while full: +1/limit each, about +1 per limit's worth (2 -> 2.5 -> 2.9
        // -> 3.24, then 3.55 -> 3.83 -> 4.09)
        a.on_done(5 * MS, true, t0 + 501 * MS);
        a.on_done(5 * MS, true, t0 + 502 * MS);
        assert_eq!(a.limit(), 2);
        a.on_done(5 * MS, true, t0 + 502 * MS);
        assert_eq!(a.limit(), 3);
        for _ in 0..3 {
            a.on_done(5 * MS, true, t0 + 503 * MS);
        }
        assert_eq!(a.limit(), 4);
        for _ in 0..100 {
            a.on_done(5 * MS, true, t0 + 504 * MS);
        }
        assert_eq!(a.limit(), 8, "never above the maximum");
    }

    fn fixed(n: usize) -> Limiter {
        Limiter::new(&AdmissionConfig {
            max_in_flight: n,
            ..AdmissionConfig::default()
        })
    }

    #[tokio::test]
    async fn waits_for_a_slot_within_the_deadline() {
        let l = fixed(2);
        let far = Instant::now() + Duration::from_secs(10);
        let a = l.acquire(far).await.unwrap();
        let b = l.acquire(far).await.unwrap();
        assert_eq!(l.stats().in_flight, 2);
        // the third waits until one is released
        let third = l.acquire(far);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(20 * MS, &mut third).await.is_err(),
            "admitted over the limit"
        );
        assert_eq!(l.stats().waiting, 1);
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(5), &mut third)
            .await
            .expect("woken when a slot was freed")
            .unwrap();
        let s = l.stats();
        assert_eq!((s.in_flight, s.waiting, s.admitted, s.queued), (2, 0, 3, 1));
        drop((b, c));
        assert_eq!(l.stats().in_flight, 0);
    }

    #[tokio::test]
    async fn refuses_at_once_or_at_the_deadline() {
        let l = fixed(1);
        let _held = l
            .acquire(Instant::now() + Duration::from_secs(10))
            .await
            .unwrap();
        // expected wait (one query of ~2 ms) exceeds a deadline 1 ms away: refused without waiting
        let started = Instant::now();
        assert_eq!(
            l.acquire(Instant::now() + MS).await.err(),
            Some(Refused::Overloaded)
        );
        assert!(started.elapsed() < 50 * MS);
        // enough time in principle, but the slot is never freed: refused at the deadline
        let started = Instant::now();
        assert_eq!(
            l.acquire(Instant::now() + 60 * MS).await.err(),
            Some(Refused::Deadline)
        );
        assert!(started.elapsed() >= 60 * MS);
        // a waiter that is dropped (its request went away) leaves the queue
        let gone = l.acquire(Instant::now() + Duration::from_secs(10));
        assert!(tokio::time::timeout(10 * MS, gone).await.is_err());
        let s = l.stats();
        assert_eq!(
            (s.waiting, s.refused_overloaded, s.refused_deadline),
            (0, 1, 1)
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad = AdmissionConfig {
            min_in_flight: 0,
            ..AdmissionConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().0,
            "gateway.admission.min_in_flight"
        );
        let bad = AdmissionConfig {
            max_adaptive: 1,
            ..AdmissionConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().0,
            "gateway.admission.max_adaptive"
        );
        let bad = AdmissionConfig {
            latency_target_ms: 0,
            ..AdmissionConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().0,
            "gateway.admission.latency_target_ms"
        );
        AdmissionConfig::default().validate().unwrap();
        // a fixed limit ignores the adaptive settings
        AdmissionConfig {
            max_in_flight: 4,
            min_in_flight: 0,
            ..AdmissionConfig::default()
        }
        .validate()
        .unwrap();
    }
}
