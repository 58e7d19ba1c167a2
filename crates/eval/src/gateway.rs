//! The system under test, over HTTP: with `--import http`, the training baskets go in as
//! `POST /v1/events` purchase batches (each user's events in time order); every evaluated user is asked
//! `POST /v1/recommendations {user_id, k[, profile]}` concurrently.
//!
//! The evaluation owns its namespace: before importing, it deletes the namespace's user state,
//! idempotency markers and pending event popularity (never items), so every run starts from the
//! same catalog with no users.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, stream};
use redis::aio::MultiplexedConnection;
use redrec_bench::http::{HttpClient, parse_response};
use redrec_core::keys::Namespace;
use redrec_ingest::keyscan::KeyScan;
use serde_json::json;

use crate::import::{ImportStats, ImportVia};

/// Deletes `{ns}:user:*`, `{ns}:evt:*` and `{ns}:pop`; returns how many keys went.
pub async fn reset_users(con: &mut MultiplexedConnection, ns: &Namespace) -> Result<u64> {
    let mut deleted = 0u64;
    for pattern in [
        format!("{}:user:*", ns.name()),
        format!("{}:evt:*", ns.name()),
    ] {
        let mut scan = KeyScan::new(pattern, 5000);
        while let Some(keys) = scan.next_batch(con).await.context("scanning user keys")? {
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(con).await?;
                deleted += n;
            }
        }
    }
    let n: u64 = redis::cmd("UNLINK")
        .arg(ns.popularity())
        .query_async(con)
        .await?;
    Ok(deleted + n)
}

/// One user's training purchases, oldest first: (event id, item id).
pub struct UserEvents {
    pub user: String,
    pub events: Vec<(String, String)>,
}

/// Sends every user's events as purchase batches of at most `batch` events, `workers` batches
/// in flight; one user's events always travel through the same worker, in order.
pub async fn import(
    client: Arc<HttpClient>,
    users: Vec<UserEvents>,
    batch: usize,
    workers: usize,
) -> Result<ImportStats> {
    let started = Instant::now();
    let workers = workers.max(1);
    let mut partitions: Vec<Vec<UserEvents>> = (0..workers).map(|_| Vec::new()).collect();
    let n_users = users.len();
    for (i, u) in users.into_iter().enumerate() {
        partitions[i % workers].push(u);
    }
    let results = futures::future::join_all(partitions.into_iter().map(|part| {
        let client = client.clone();
        async move {
            let mut sent = (0usize, 0usize);
            let mut body = Vec::with_capacity(batch);
            let all = part.iter().flat_map(|u| {
                u.events.iter().map(move |(eid, item)| {
                    json!({"type": "purchase", "user_id": u.user, "item_id": item, "event_id": eid})
                })
            });
            let mut all = all.peekable();
            while all.peek().is_some() {
                body.clear();
                body.extend(all.by_ref().take(batch));
                send_events(&client, &body).await?;
                sent.0 += body.len();
                sent.1 += 1;
            }
            anyhow::Ok(sent)
        }
    }))
    .await;
    let mut stats = ImportStats {
        via: ImportVia::Http,
        users: n_users,
        ..Default::default()
    };
    for r in results {
        let (events, batches) = r?;
        stats.events += events;
        stats.batches += batches;
    }
    stats.secs = started.elapsed().as_secs_f64();
    stats.events_per_sec = stats.events as f64 / stats.secs.max(1e-9);
    Ok(stats)
}

async fn send_events(client: &HttpClient, events: &[serde_json::Value]) -> Result<()> {
    let body = serde_json::Value::Array(events.to_vec());
    let mut attempt = 0;
    loop {
        let (status, reply) = client.post_json("/v1/events", &body).await?;
        match status {
            200..=299 => return Ok(()),
            // Overloaded: back off and retry (event ids make a repeated batch count once).
            429 | 503 if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            _ => bail!(
                "POST /v1/events answered {status}: {}",
                String::from_utf8_lossy(&reply[..reply.len().min(300)])
            ),
        }
    }
}

/// Lists of one arm, in the order of `users`; `None` for a user whose request failed.
pub struct Served {
    pub lists: Vec<Option<Vec<String>>>,
    pub failed: usize,
    /// The first few error messages.
    pub errors: Vec<String>,
    pub secs: f64,
    /// Client-side latency percentiles (p50, p95, p99) in ms.
    pub latency_ms: (f64, f64, f64),
}

/// One household's request: who, and when (`x-redrec-as-of`, epoch ms) when the gateway replays.
#[derive(Debug, Clone)]
pub struct UserRequest {
    pub user: String,
    pub as_of_ms: Option<i64>,
}

/// Asks for `k` recommendations for each user, `concurrency` requests in flight.
pub async fn recommend_all(
    client: Arc<HttpClient>,
    users: &[UserRequest],
    k: usize,
    profile: Option<&str>,
    exclude_seen: Option<bool>,
    concurrency: usize,
) -> Served {
    let started = Instant::now();
    let results: Vec<(usize, Result<Vec<String>>, f64)> =
        stream::iter(users.iter().enumerate().map(|(i, u)| {
            let client = client.clone();
            let mut body = json!({"user_id": u.user, "k": k});
            if let Some(p) = profile {
                body["profile"] = json!(p);
            }
            if let Some(x) = exclude_seen {
                body["exclude_seen"] = json!(x);
            }
            async move {
                let t = Instant::now();
                let r = recommend_one(&client, &body, u.as_of_ms).await;
                (i, r, t.elapsed().as_secs_f64() * 1e3)
            }
        }))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut lists = vec![None; users.len()];
    let mut errors = Vec::new();
    let mut failed = 0;
    let mut lat = Vec::with_capacity(results.len());
    for (i, r, ms) in results {
        lat.push(ms);
        match r {
            Ok(ids) => lists[i] = Some(ids),
            Err(e) => {
                failed += 1;
                if errors.len() < 5 {
                    errors.push(format!("user {}: {e:#}", users[i].user));
                }
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        lat.get(((q * lat.len() as f64) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Served {
        lists,
        failed,
        errors,
        secs: started.elapsed().as_secs_f64(),
        latency_ms: (pct(0.5), pct(0.95), pct(0.99)),
    }
}

/// One request, no retry: a failure (a 503 over budget included) counts against the arm.
async fn recommend_one(
    client: &HttpClient,
    body: &serde_json::Value,
    as_of_ms: Option<i64>,
) -> Result<Vec<String>> {
    let as_of = as_of_ms.map(|ms| ms.to_string());
    let headers: Vec<(&str, &str)> = as_of
        .as_deref()
        .map(|v| ("x-redrec-as-of", v))
        .into_iter()
        .collect();
    let (status, reply) = client
        .send_with(
            "POST",
            "/v1/recommendations",
            Some(serde_json::to_vec(body)?),
            &headers,
        )
        .await?;
    if status != 200 {
        bail!(
            "POST /v1/recommendations answered {status}: {}",
            String::from_utf8_lossy(&reply[..reply.len().min(300)])
        );
    }
    Ok(parse_response(&reply)?.0)
}
