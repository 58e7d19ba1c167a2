//! Concurrent events for one user from many tasks on separate connections: no lost update. The
//! expected totals are computed independently from the event list and compared exactly (up to
//! float summation order). The same race runs on a Redis Cluster in `cluster.rs`.

use std::collections::BTreeMap;

use redrec_core::user::UserFeatures;
use redrec_userstate::{Event, EventKind, UserStateConfig, decay};

use crate::support::{Fixture, T0, axis};

pub const EVENTS: usize = 200;
pub const TASKS: usize = 20;
/// (item id, category, brand, price)
pub const ITEMS: [(&str, &str, &str, f64); 4] = [
    ("i0", "bread", "acme", 1.5),
    ("i1", "milk", "acme", 2.25),
    ("i2", "bread", "bolt", 3.0),
    ("i3", "cheese", "bolt", 7.5),
];
const KINDS: [EventKind; 6] = [
    EventKind::Click,
    EventKind::View,
    EventKind::CartAdd,
    EventKind::Dwell,
    EventKind::Purchase,
    EventKind::Skip,
];

/// Event `i` of the race (a timestamp per event, deliberately not in submission order).
pub fn race_event(i: usize) -> (Event, i64) {
    let kind = KINDS[i % KINDS.len()];
    let (item, ..) = ITEMS[i % ITEMS.len()];
    let mut e = Event::new(kind, "racer", item);
    if kind == EventKind::Dwell {
        e = e.with_dwell_ms(1000 * (i as i64 % 9));
    }
    let at = T0 + ((i * 7919) % 1000) as i64 * 60_000;
    (e, at)
}

fn weight(config: &UserStateConfig, e: &Event) -> f64 {
    let w = &config.weights;
    match e.event_type.as_str() {
        "click" => w.click,
        "view" => w.view,
        "cart_add" => w.cart_add,
        "purchase" => w.purchase,
        "skip" => w.skip,
        "dwell" => w.dwell * e.dwell_ms.unwrap() as f64 / 1000.0,
        other => panic!("{other}"),
    }
}

struct Expected {
    category: BTreeMap<String, f64>,
    brand: BTreeMap<String, f64>,
    counters: BTreeMap<String, u64>,
    popularity: BTreeMap<String, f64>,
    prices: Vec<f64>,
}

fn expected(config: &UserStateConfig, events: &[(Event, i64)], read_at: i64) -> Expected {
    let mut x = Expected {
        category: BTreeMap::new(),
        brand: BTreeMap::new(),
        counters: BTreeMap::new(),
        popularity: BTreeMap::new(),
        prices: Vec::new(),
    };
    let half_life = config.affinity_half_life_ms as f64;
    for (e, at) in events {
        let (_, cat, brand, price) = ITEMS.iter().find(|(id, ..)| *id == e.item_id).unwrap();
        let w = weight(config, e);
        let decayed = decay(w, (read_at - at) as f64, half_life);
        *x.category.entry(cat.to_string()).or_default() += decayed;
        *x.brand.entry(brand.to_string()).or_default() += decayed;
        *x.counters.entry(e.event_type.clone()).or_default() += 1;
        *x.popularity.entry(e.item_id.clone()).or_default() += w.max(0.0);
        if matches!(e.event_type.as_str(), "cart_add" | "purchase") {
            x.prices.push(*price);
        }
    }
    x
}

fn assert_close(label: &str, actual: &BTreeMap<String, f64>, expected: &BTreeMap<String, f64>) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{label}"
    );
    for (k, want) in expected {
        let got = actual[k];
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{label} {k}: got {got}, expected {want}"
        );
    }
}

/// Submits `events` from `TASKS` tasks, each on its own connection, one event per call, all
/// released at once. Returns (applied, duplicates) summed over all calls.
async fn race(fx: &Fixture, events: Vec<(Event, i64)>) -> (usize, usize) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let mine: Vec<_> = events.iter().skip(t).step_by(TASKS).cloned().collect();
        let store = fx.store.clone();
        let mut con = fx.conn().await;
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let (mut applied, mut dups) = (0, 0);
            for (e, at) in mine {
                let r = store.apply(&mut con, &[e], at).await.unwrap();
                applied += r.applied;
                dups += r.duplicates.len();
            }
            (applied, dups)
        }));
    }
    let mut total = (0, 0);
    for h in handles {
        let (a, d) = h.await.unwrap();
        total.0 += a;
        total.1 += d;
    }
    total
}

/// When the race's totals are read.
pub const READ_AT: i64 = T0 + 1000 * 60_000;

async fn check_totals(fx: &Fixture, unique: &[(Event, i64)]) {
    let mut con = fx.conn().await;
    let f = fx.store.read(&mut con, "racer", READ_AT).await.unwrap();
    let ids: Vec<&str> = ITEMS.iter().map(|(id, ..)| *id).collect();
    let pending = fx.store.pending_popularity(&mut con, &ids).await.unwrap();
    assert_totals(fx.store.config(), &f, &ids, &pending, unique);
}

/// Checks the features read at [`READ_AT`] and the pending popularity of the items `ids`
/// against the totals computed from `unique`, the events applied once each.
pub fn assert_totals(
    config: &UserStateConfig,
    f: &UserFeatures,
    ids: &[&str],
    pending: &[f64],
    unique: &[(Event, i64)],
) {
    let want = expected(config, unique, READ_AT);

    assert_close("category", &f.category_affinity, &want.category);
    assert_close("brand", &f.brand_affinity, &want.brand);
    assert_eq!(f.counters, want.counters);
    assert_eq!(
        f.counters.values().sum::<u64>(),
        unique.len() as u64,
        "every event counted once"
    );

    let got: BTreeMap<String, f64> = ids
        .iter()
        .map(|s| s.to_string())
        .zip(pending.iter().copied())
        .collect();
    assert_close("popularity", &got, &want.popularity);

    let pb = f.price_band.expect("price band");
    assert_eq!(pb.count, want.prices.len() as u64);
    let mean = want.prices.iter().sum::<f64>() / want.prices.len() as f64;
    let var =
        want.prices.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / want.prices.len() as f64;
    assert!((pb.mean - mean).abs() < 1e-9, "{pb:?} vs mean {mean}");
    assert!(
        (pb.std_dev - var.sqrt()).abs() < 1e-9,
        "{pb:?} vs var {var}"
    );

    assert_eq!(f.recent.len(), config.recent_cap.min(unique.len()));
    assert_eq!(f.seen.len(), ITEMS.len());
    assert!(f.session_vector.is_some() && f.long_term_vector.is_some());
}

pub async fn fixture(label: &str) -> Fixture {
    // a long session so the injected clock (spread over ~17 hours) keeps it alive
    let config = UserStateConfig {
        session_ttl_ms: 48 * 3600 * 1000,
        affinity_half_life_ms: 6 * 3600 * 1000,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new(label, config).await;
    for (i, (id, cat, brand, price)) in ITEMS.iter().enumerate() {
        fx.item(id, &axis(i), cat, brand, *price).await;
    }
    fx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_events_lose_no_update() {
    let fx = fixture("feat_race").await;
    let events: Vec<_> = (0..EVENTS).map(race_event).collect();
    let (applied, dups) = race(&fx, events.clone()).await;
    assert_eq!((applied, dups), (EVENTS, 0));
    check_totals(&fx, &events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_count_once() {
    let fx = fixture("feat_race_dup").await;
    // 100 distinct events, each submitted twice (same event_id, same content) by different tasks
    let unique: Vec<_> = (0..EVENTS / 2)
        .map(|i| {
            let (e, at) = race_event(i);
            (e.with_event_id(&format!("race-{i}")), at)
        })
        .collect();
    let mut events = unique.clone();
    events.extend(unique.iter().cloned());
    let (applied, dups) = race(&fx, events).await;
    assert_eq!((applied, dups), (EVENTS / 2, EVENTS / 2));
    check_totals(&fx, &unique).await;
}
