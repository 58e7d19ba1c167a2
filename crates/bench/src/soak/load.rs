//! The soak's load: the warm-up to steady-state users, the wait for the popularity fold, and the
//! click events and item vector updates that run next to the reads.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use redrec_core::{
    keys::Namespace,
    synthetic::{Rng, unit_vector},
};
use serde_json::json;

use super::log;
use crate::{
    catalog::StoredCatalog, http::GatewayTarget, raw::RawTarget, schedule::Schedule, workload,
};

/// Gives every user `per_user` clicks on random items (batches of 100 through
/// `POST /v1/events`), so the soak starts from steady-state user state.
pub(super) async fn warm_users(
    gw: &GatewayTarget,
    users: &[workload::BenchUser],
    items: &[String],
    per_user: usize,
    seed: u64,
) -> Result<()> {
    if per_user == 0 || users.is_empty() || items.is_empty() {
        return Ok(());
    }
    let total = per_user * users.len();
    log(&format!(
        "warming {} users to {per_user} clicks each ({total} events) before measuring",
        users.len()
    ));
    let mut rng = Rng::stream(seed, 0x3A7A);
    let mut sent = 0;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    let started = Instant::now();
    while sent < total {
        let batch: Vec<serde_json::Value> = (sent..(sent + 100).min(total))
            .map(|i| {
                json!({
                    "type": "click",
                    "user_id": users[i % users.len()].id,
                    "item_id": items[rng.below(items.len())],
                })
            })
            .collect();
        let n = batch.len();
        let (status, body) = gw
            .client
            .post_json("/v1/events", &serde_json::Value::Array(batch))
            .await?;
        if !(200..300).contains(&status) {
            bail!(
                "warming the users: POST /v1/events answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        sent += n;
        if Instant::now() > next_report {
            next_report += Duration::from_secs(5);
            log(&format!(
                "warmed {sent}/{total} events ({:.0}/s)",
                sent as f64 / started.elapsed().as_secs_f64()
            ));
        }
    }
    Ok(())
}

/// Waits (up to 3 minutes) until the gateway has folded the warm-up's popularity deltas into the
/// index (`{ns}:popularity` nearly empty). The warm-up touches every item; the paced fold takes
/// about half a minute of a fifth of Redis for that, and a first window measured during it is
/// slower than the steady state (run 2 of 2026-12-05: p99 30-41 ms in minutes 1-3, 24-29 after).
pub(super) async fn wait_for_fold(
    con: &mut redis::aio::MultiplexedConnection,
    ns: &Namespace,
) -> Result<()> {
    let key = ns.popularity();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last_log = Instant::now();
    loop {
        let pending: usize = redis::cmd("ZCARD").arg(&key).query_async(con).await?;
        if pending <= FOLD_SETTLED {
            log(&format!(
                "popularity fold settled ({pending} items pending)"
            ));
            return Ok(());
        }
        if Instant::now() > deadline {
            log(&format!(
                "popularity fold still has {pending} items pending after 3 minutes: measuring anyway"
            ));
            return Ok(());
        }
        if last_log.elapsed() > Duration::from_secs(10) {
            last_log = Instant::now();
            log(&format!(
                "waiting for the popularity fold: {pending} items pending"
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Pending popularity items below which the fold counts as settled (a minute of soak events
/// touches about a thousand items).
const FOLD_SETTLED: usize = 200;

/// Click events of random users on random items at `rate` per second for `duration`:
/// (accepted, failed, first failure).
pub(super) fn spawn_events(
    gw: Arc<GatewayTarget>,
    users: &[workload::BenchUser],
    items: &[String],
    rate: f64,
    duration: Duration,
    seed: u64,
) -> tokio::task::JoinHandle<(u64, u64, Option<String>)> {
    let users: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let items = items.to_vec();
    tokio::spawn(async move {
        let schedule = Schedule::for_duration(rate, duration);
        let mut rng = Rng::stream(seed, 0xE7E7);
        let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let first = Arc::new(std::sync::Mutex::new(None::<String>));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..schedule.count {
            tokio::time::sleep_until((start + schedule.offset(i)).into()).await;
            let body = json!({
                "type": "click",
                "user_id": users[rng.below(users.len().max(1))],
                "item_id": items[rng.below(items.len().max(1))],
            });
            let (gw, ok, errors, first) = (gw.clone(), ok.clone(), errors.clone(), first.clone());
            tasks.push(tokio::spawn(async move {
                match gw.client.post_json("/v1/events", &body).await {
                    Ok((202 | 200, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let msg = match other {
                            Ok((status, b)) => format!(
                                "POST /v1/events answered {status}: {}",
                                String::from_utf8_lossy(&b[..b.len().min(200)])
                            ),
                            Err(e) => format!("POST /v1/events: {e:#}"),
                        };
                        first.lock().expect("first error").get_or_insert(msg);
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let first = first.lock().expect("first error").take();
        (
            ok.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            first,
        )
    })
}

/// Item vector overwrites at `rate` per second for `duration`: (done, failed).
pub(super) fn spawn_updates(
    raw: Arc<RawTarget>,
    cat: Arc<StoredCatalog>,
    rate: f64,
    duration: Duration,
    seed: u64,
) -> tokio::task::JoinHandle<(u64, u64)> {
    let mut rng = Rng::stream(seed, 0x0DA7);
    tokio::spawn(async move {
        let schedule = Schedule::for_duration(rate, duration);
        let (mut ok, mut errors) = (0, 0);
        let start = Instant::now();
        for n in 0..schedule.count {
            tokio::time::sleep_until((start + schedule.offset(n)).into()).await;
            let i = rng.below(cat.len().max(1));
            // A refreshed embedding: the item's seeded vector moved a little (cosine ~0.95 to
            // it), drawn afresh each time, so the catalog keeps its distribution however long
            // the soak runs. (Recycling a few fixed vectors, as the first version did, filled
            // the index with identical vectors over the run and slowed every search.)
            let v = unit_vector(&mut rng, cat.dim, Some(cat.vector(i)), REFRESH_NOISE);
            match raw.write_vector(&cat.ids[i], &v).await {
                Ok(()) => ok += 1,
                Err(_) => errors += 1,
            }
        }
        (ok, errors)
    })
}

/// Noise of a refreshed item vector (see `unit_vector`): about 0.95 cosine to the old one.
const REFRESH_NOISE: f64 = 0.1;
