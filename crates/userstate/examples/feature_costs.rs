//! Measures what the feature store costs against the running Redis, and why hot counters stay
//! out of indexed item hashes:
//!
//! - round-trip latency of one event applied through the Redis Function, a batch of 10, and a
//!   feature read (client-side percentiles);
//! - an indexed item hash rewritten per event (`HINCRBYFLOAT` on a hash RediSearch indexes, with
//!   a 384-d HNSW vector) against the same increment on an unindexed hash and on the popularity
//!   zset (client percentiles, server `usec_per_call` from `INFO commandstats`, pipelined ops/s).
//!
//! Run: `cargo run -p redrec-userstate --example feature_costs [items] [dims]` (default 10000
//! items of 384 dimensions).
//! Everything is written under a throwaway namespace that is removed at the end.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redrec_core::{
    schema::{ItemFields, VectorSettings, items_schema},
    vector,
};
use redrec_testkit::TestSpace;
use redrec_userstate::{Event, EventKind, UserStateConfig, UserStateStore};

const SAMPLES: usize = 2000;

/// Deterministic pseudo-random numbers (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// (calls, usec) of one command from `INFO commandstats`.
async fn cmdstat(con: &mut MultiplexedConnection, name: &str) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{name}:");
    for line in info.lines() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let field = |k: &str| -> u64 {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            return (field("calls"), field("usec"));
        }
    }
    (0, 0)
}

struct Row {
    name: String,
    p50: f64,
    p99: f64,
    server_usec: Option<f64>,
}

async fn timed<F, Fut>(
    con: &mut MultiplexedConnection,
    name: &str,
    stat: Option<&str>,
    mut op: F,
) -> Row
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = match stat {
        Some(s) => cmdstat(con, s).await,
        None => (0, 0),
    };
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let t = Instant::now();
        op(i).await;
        samples.push(t.elapsed());
    }
    let server_usec = match stat {
        Some(s) => {
            let after = cmdstat(con, s).await;
            let calls = after.0.saturating_sub(before.0).max(1);
            Some(after.1.saturating_sub(before.1) as f64 / calls as f64)
        }
        None => None,
    };
    samples.sort();
    Row {
        name: name.to_owned(),
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        server_usec,
    }
}

async fn pipelined(con: &mut MultiplexedConnection, keys: &[String], zset: Option<&str>) -> f64 {
    let total = 20_000;
    let t = Instant::now();
    for chunk in (0..total).collect::<Vec<_>>().chunks(200) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            match zset {
                Some(z) => pipe
                    .cmd("ZINCRBY")
                    .arg(z)
                    .arg(1)
                    .arg(i % keys.len())
                    .ignore(),
                None => pipe
                    .cmd("HINCRBYFLOAT")
                    .arg(&keys[i * 7919 % keys.len()])
                    .arg("popularity")
                    .arg(1)
                    .ignore(),
            };
        }
        let _: () = pipe.query_async(con).await.unwrap();
    }
    total as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("item count"))
        .unwrap_or(10_000);
    let dims: usize = std::env::args()
        .nth(2)
        .map(|a| a.parse().expect("dimensions"))
        .unwrap_or(384);
    let space = TestSpace::new("feature_costs");
    let ns = space.ns.clone();
    // loading 384-d vectors into HNSW takes longer than the client's default 500 ms timeout
    let mut con = space
        .client()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(60))),
        )
        .await
        .unwrap();
    let fields = ItemFields::default();

    let settings = VectorSettings {
        dims,
        ..VectorSettings::default()
    };
    let schema = items_schema(&ns.index(1), &ns.item_prefix(), &fields, &settings);
    let _: () = schema.ft_create_cmd().query_async(&mut con).await.unwrap();

    // items: indexed hashes, plus the same content under an unindexed prefix
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = Instant::now();
    let plain = |i: usize| format!("{}:plain:{i}", ns.name());
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let mut v: Vec<f32> = (0..dims).map(|_| rng.unit()).collect();
            vector::normalize(&mut v).unwrap();
            let blob = vector::encode(&v);
            for key in [ns.item(&i.to_string()), plain(i)] {
                pipe.cmd("HSET")
                    .arg(key)
                    .arg(&fields.vector)
                    .arg(&blob)
                    .arg(&fields.text)
                    .arg(format!("item {i}"))
                    .arg(&fields.category)
                    .arg(format!("cat{}", i % 50))
                    .arg(&fields.brand)
                    .arg(format!("brand{}", i % 200))
                    .arg(&fields.price)
                    .arg(1.0 + (i % 100) as f64)
                    .arg(&fields.popularity)
                    .arg(0)
                    .arg(&fields.in_stock)
                    .arg(1)
                    .ignore();
            }
        }
        let _: () = pipe.query_async(&mut con).await.unwrap();
    }
    println!(
        "loaded {n} items ({dims}-d HNSW index) in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let store =
        UserStateStore::new(ns.clone(), fields.clone(), UserStateConfig::default()).unwrap();
    store.ensure_loaded(&mut con).await.unwrap();
    let item_keys: Vec<String> = (0..n).map(|i| ns.item(&i.to_string())).collect();
    let plain_keys: Vec<String> = (0..n).map(plain).collect();
    let pop = ns.popularity();
    let mut rows = Vec::new();

    let c = con.clone();
    rows.push(
        timed(&mut con, "ZINCRBY popularity zset", Some("zincrby"), |i| {
            let mut c = c.clone();
            let pop = pop.clone();
            async move {
                let _: f64 = redis::cmd("ZINCRBY")
                    .arg(pop)
                    .arg(1)
                    .arg((i * 7919) % n)
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        })
        .await,
    );
    for (label, keys) in [
        ("HINCRBYFLOAT unindexed hash", &plain_keys),
        ("HINCRBYFLOAT indexed item hash", &item_keys),
    ] {
        rows.push(
            timed(&mut con, label, Some("hincrbyfloat"), |i| {
                let mut c = c.clone();
                let key = keys[(i * 7919) % n].clone();
                async move {
                    let _: f64 = redis::cmd("HINCRBYFLOAT")
                        .arg(key)
                        .arg("popularity")
                        .arg(1)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                }
            })
            .await,
        );
    }
    let t0 = now_ms();
    rows.push(
        timed(&mut con, "apply: 1 event (FCALL)", Some("fcall"), |i| {
            let mut c = c.clone();
            let store = store.clone();
            async move {
                let kind = [EventKind::Click, EventKind::View, EventKind::CartAdd][i % 3];
                let e = Event::new(
                    kind,
                    &format!("u{}", i % 100),
                    &((i * 7919) % n).to_string(),
                );
                store.apply(&mut c, &[e], t0 + i as i64).await.unwrap();
            }
        })
        .await,
    );
    rows.push(
        timed(&mut con, "apply: batch of 10 (FCALL)", Some("fcall"), |i| {
            let mut c = c.clone();
            let store = store.clone();
            async move {
                let events: Vec<Event> = (0..10)
                    .map(|j| {
                        Event::new(
                            EventKind::Click,
                            &format!("u{}", i % 100),
                            &((i * 10 + j) % n).to_string(),
                        )
                    })
                    .collect();
                store.apply(&mut c, &events, t0 + i as i64).await.unwrap();
            }
        })
        .await,
    );
    rows.push(
        timed(&mut con, "read: features (pipeline of 5)", None, |i| {
            let mut c = c.clone();
            let store = store.clone();
            async move {
                let f = store
                    .read(&mut c, &format!("u{}", i % 100), t0 + 10_000)
                    .await
                    .unwrap();
                assert!(f.known);
            }
        })
        .await,
    );

    let raw_read = timed(&mut con, "read: the 5 commands only", None, |i| {
        let mut c = c.clone();
        let store = store.clone();
        async move {
            let mut pipe = redis::pipe();
            store
                .queue_read(&mut pipe, &format!("u{}", i % 100), t0 + 10_000)
                .unwrap();
            let _: Vec<redis::Value> = pipe.query_async(&mut c).await.unwrap();
        }
    })
    .await;
    rows.push(raw_read);
    {
        let mut pipe = redis::pipe();
        store.queue_read(&mut pipe, "u1", t0 + 10_000).unwrap();
        let replies: Vec<redis::Value> = pipe.query_async(&mut con).await.unwrap();
        let t = Instant::now();
        let mut f = None;
        for _ in 0..1000 {
            f = Some(store.decode_read("u1", t0 + 10_000, &replies).unwrap());
        }
        let f = f.unwrap();
        println!(
            "decode_read: {:.1} µs per call (user with {} categories, {} brands, {} recent, {} seen)",
            t.elapsed().as_secs_f64() * 1e3,
            f.category_affinity.len(),
            f.brand_affinity.len(),
            f.recent.len(),
            f.seen.len()
        );
    }

    println!("\n| operation | p50 µs (round trip) | p99 µs | server µs/call |");
    println!("|---|---|---|---|");
    for r in &rows {
        let server = r.server_usec.map_or("-".to_owned(), |u| format!("{u:.1}"));
        println!("| {} | {:.0} | {:.0} | {server} |", r.name, r.p50, r.p99);
    }

    let z = pipelined(&mut con, &item_keys, Some(&pop)).await;
    let p = pipelined(&mut con, &plain_keys, None).await;
    let h = pipelined(&mut con, &item_keys, None).await;
    println!("\npipelined throughput (20000 increments, pipelines of 200):");
    println!("| target | ops/s |\n|---|---|");
    println!("| ZINCRBY popularity zset | {z:.0} |");
    println!("| HINCRBYFLOAT unindexed hash | {p:.0} |");
    println!("| HINCRBYFLOAT indexed item hash | {h:.0} |");

    let t = Instant::now();
    let fold = store.fold_popularity(&mut con, 500).await.unwrap();
    println!(
        "\nfold_popularity: {} items folded in {} batches, {:.1} ms",
        fold.folded,
        fold.batches,
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(space);
}
