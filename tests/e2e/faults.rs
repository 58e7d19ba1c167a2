//! Network faults between the gateway and Redis under a steady request load (a fault-injecting
//! TCP proxy from `redrec_testkit::proxy`): added latency, a black hole (hung server or network),
//! connection resets. Every answer is 200/202 or a 503 with `Retry-After`, none takes longer than
//! the deadline plus a small margin, and the first success after healing comes within 2 s.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redrec_testkit::{
    TestSpace,
    proxy::{Fault, FaultProxy},
};
use serde_json::json;

use crate::{
    fixture,
    http::json as call,
    support::{KEY, Running, settings},
};

/// One answered request: when it started (since the test's start), its status, how long it took,
/// whether a 503 carried Retry-After.
#[derive(Debug, Clone)]
struct Answer {
    at: Duration,
    status: u16,
    took: Duration,
    retry_after: bool,
    what: &'static str,
}

const DEADLINE_MS: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_give_fast_503s_and_recovery_within_2s() {
    let space = TestSpace::new("e2e_faults");
    let mut s = settings(&space, 8);
    let items = fixture::catalog(5, 8);
    fixture::load(&space, &s.index, &items).await;
    let ids: Arc<Vec<String>> = Arc::new(items.iter().map(|i| i.id.clone()).collect());
    let (proxy, through) = FaultProxy::in_front_of(&s.redis.url, Fault::Pass).await;
    s.redis.url = through;
    s.redis.command_timeout_ms = 300;
    s.redis.connect_timeout_ms = 300;
    s.gateway.deadline_ms = DEADLINE_MS;
    let gw = Running::start(s, None).await;

    let t0 = Instant::now();
    let answers: Arc<Mutex<Vec<Answer>>> = Default::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..3usize {
        let (addr, answers, stop, ids) =
            (gw.addr.clone(), answers.clone(), stop.clone(), ids.clone());
        let similar = format!("/v1/items/{}/similar?k=5", ids[1]);
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                let (what, r) = match w {
                    0 => ("recommend", call(&addr, "POST", "/v1/recommendations", None, Some(&json!({"user_id": "f-u1", "k": 5}))).await),
                    1 => ("similar", call(&addr, "GET", &similar, None, None).await),
                    _ => ("event", call(&addr, "POST", "/v1/events", Some(KEY), Some(&json!({"type": "click", "user_id": "f-u1", "item_id": ids[n as usize % ids.len()]}))).await),
                };
                answers.lock().unwrap().push(Answer {
                    at: started - t0,
                    status: r.status,
                    took: started.elapsed(),
                    retry_after: r.header("retry-after").is_some(),
                    what,
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // phase plan: (fault, how long)
    let plan = [
        (Fault::Pass, 1_000),
        (Fault::Latency(Duration::from_millis(40)), 1_500),
        (Fault::BlackHole, 2_000),
        (Fault::Pass, 2_500),
        (Fault::Reset, 1_500),
        (Fault::Pass, 2_500),
    ];
    let mut healed_at = Vec::new();
    let mut phases = Vec::new();
    for (fault, ms) in plan {
        phases.push((fault, t0.elapsed()));
        if fault == Fault::Pass && t0.elapsed() > Duration::from_millis(500) {
            healed_at.push(t0.elapsed());
        }
        proxy.set(fault);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    gw.shutdown().await;

    let answers = answers.lock().unwrap().clone();
    let count = |f: &dyn Fn(&Answer) -> bool| answers.iter().filter(|a| f(a)).count();
    println!(
        "{} answers: {} ok, {} 503, slowest {:?}",
        answers.len(),
        count(&|a| a.status < 300),
        count(&|a| a.status == 503),
        answers.iter().map(|a| a.took).max()
    );
    for (i, (fault, from)) in phases.iter().enumerate() {
        let to = phases.get(i + 1).map_or(Duration::MAX, |p| p.1);
        let during = |a: &Answer| a.at >= *from && a.at < to;
        let slowest = answers.iter().filter(|a| during(a)).map(|a| a.took).max();
        println!(
            "{fault:?} from {from:?}: {} ok, {} 503, slowest {slowest:?}",
            count(&|a| during(a) && a.status < 300),
            count(&|a| during(a) && a.status == 503),
        );
    }
    for a in &answers {
        assert!(
            matches!(a.status, 200 | 202 | 503),
            "only success or 503 under network faults: {a:?}"
        );
        if a.status == 503 {
            assert!(a.retry_after, "a 503 without Retry-After: {a:?}");
        }
        assert!(
            a.took < Duration::from_millis(DEADLINE_MS + 700),
            "an answer took longer than the deadline: {a:?}"
        );
    }
    assert!(count(&|a| a.status == 503) > 0, "the faults were not felt");
    for healed in healed_at {
        let first_ok = answers
            .iter()
            .filter(|a| a.at >= healed && a.status < 300)
            .map(|a| a.at + a.took)
            .min()
            .unwrap_or_else(|| panic!("no success after healing at {healed:?}"));
        println!(
            "healed at {healed:?}: first success after {:?}",
            first_ok - healed
        );
        assert!(
            first_ok - healed < Duration::from_secs(2),
            "recovery took {:?} after healing at {healed:?}",
            first_ok - healed
        );
        // every kind of request recovers, not just one
        for what in ["recommend", "similar", "event"] {
            assert!(
                answers
                    .iter()
                    .any(|a| a.at >= healed + Duration::from_millis(1_500)
                        && a.what == what
                        && a.status < 300),
                "{what} did not recover after healing at {healed:?}"
            );
        }
    }
}
