//! Time-dependent behaviour: session TTL, affinity decay with an injected clock, seen-set age and
//! caps, idempotency markers, user deletion and the popularity fold.

use std::time::Duration;

use redrec_userstate::{Event, EventKind, UserStateConfig};

use crate::support::{Fixture, T0, axis};

async fn popularity(fx: &Fixture, id: &str) -> f64 {
    let mut con = fx.conn().await;
    redis::cmd("HGET")
        .arg(fx.space.ns.item(id))
        .arg("popularity")
        .query_async(&mut con)
        .await
        .unwrap()
}

async fn pttl(fx: &Fixture, key: &str) -> i64 {
    let mut con = fx.conn().await;
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap()
}

#[tokio::test]
async fn session_expires_and_long_term_state_stays() {
    let config = UserStateConfig {
        session_ttl_ms: 1000,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("feat_session_ttl", config).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut con = fx.conn().await;
    fx.store
        .apply(&mut con, &[Event::new(EventKind::Click, "u1", "i1")], T0)
        .await
        .unwrap();
    let ns = &fx.space.ns;
    let ttl = pttl(&fx, &ns.user_session("u1")).await;
    assert!(ttl > 0 && ttl <= 1000, "session PTTL {ttl}");
    assert_eq!(
        pttl(&fx, &ns.user("u1")).await,
        -1,
        "long-term hash has no TTL"
    );
    assert!(
        fx.store
            .read(&mut con, "u1", T0)
            .await
            .unwrap()
            .session_vector
            .is_some()
    );

    // the caller's clock alone retires an idle session, even before Redis expires the key
    let f = fx.store.read(&mut con, "u1", T0 + 1001).await.unwrap();
    assert!(f.session_vector.is_none());

    // and Redis drops the key on its own clock
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(ns.user_session("u1"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert!(f.known);
    assert!(f.session_vector.is_none());
    assert!(f.long_term_vector.is_some());
    assert_eq!(f.category_affinity.get("bread"), Some(&1.0));
    assert_eq!(f.counters.get("click"), Some(&1));

    // a new event starts a fresh session
    fx.store
        .apply(
            &mut con,
            &[Event::new(EventKind::View, "u1", "i1")],
            T0 + 10_000,
        )
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0 + 10_000).await.unwrap();
    assert_eq!(f.session_vector.as_deref(), Some(axis(0).as_slice()));
}

#[tokio::test]
async fn affinities_decay_by_half_life_on_read_and_write() {
    let config = UserStateConfig {
        affinity_half_life_ms: 1000,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("feat_decay", config).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut con = fx.conn().await;
    let click = || [Event::new(EventKind::Click, "u1", "i1")];
    let bread = |f: &redrec_core::user::UserFeatures| f.category_affinity["bread"];
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;

    fx.store.apply(&mut con, &click(), T0).await.unwrap();
    // decay on read: one half-life later half is left, three half-lives an eighth
    let f = fx.store.read(&mut con, "u1", T0 + 1000).await.unwrap();
    assert!(close(bread(&f), 0.5), "{}", bread(&f));
    assert!(close(f.brand_affinity["acme"], 0.5));
    let f = fx.store.read(&mut con, "u1", T0 + 3000).await.unwrap();
    assert!(close(bread(&f), 0.125), "{}", bread(&f));

    // decay on write: a click one half-life later makes 0.5 + 1
    fx.store.apply(&mut con, &click(), T0 + 1000).await.unwrap();
    let f = fx.store.read(&mut con, "u1", T0 + 1000).await.unwrap();
    assert!(close(bread(&f), 1.5), "{}", bread(&f));
    let f = fx.store.read(&mut con, "u1", T0 + 2000).await.unwrap();
    assert!(close(bread(&f), 0.75), "{}", bread(&f));

    // an event older than the stored stamp counts with its own age (order does not matter)
    fx.store.apply(&mut con, &click(), T0 + 500).await.unwrap();
    let f = fx.store.read(&mut con, "u1", T0 + 1000).await.unwrap();
    assert!(close(bread(&f), 1.5 + 0.5f64.sqrt()), "{}", bread(&f));

    // a skip lowers the affinity
    fx.store
        .apply(
            &mut con,
            &[Event::new(EventKind::Skip, "u1", "i1")],
            T0 + 1000,
        )
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0 + 1000).await.unwrap();
    assert!(close(bread(&f), 1.0 + 0.5f64.sqrt()), "{}", bread(&f));
}

#[tokio::test]
async fn seen_and_recent_are_capped_and_aged() {
    let config = UserStateConfig {
        seen_cap: 3,
        seen_ttl_ms: 10_000,
        recent_cap: 2,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("feat_caps", config).await;
    for i in 0..5 {
        fx.item(&format!("i{i}"), &axis(i), "c", "b", 1.0).await;
    }
    let mut con = fx.conn().await;
    for i in 0..5 {
        let e = Event::new(EventKind::View, "u1", &format!("i{i}"));
        fx.store.apply(&mut con, &[e], T0 + i as i64).await.unwrap();
    }
    let f = fx.store.read(&mut con, "u1", T0 + 5).await.unwrap();
    assert_eq!(f.seen.iter().collect::<Vec<_>>(), ["i2", "i3", "i4"]);
    let recent: Vec<_> = f.recent.iter().map(|r| r.item_id.as_str()).collect();
    assert_eq!(recent, ["i4", "i3"]);
    // items older than seen_ttl_ms drop out at read time and on the next write
    let f = fx.store.read(&mut con, "u1", T0 + 10_003).await.unwrap();
    assert_eq!(f.seen.iter().collect::<Vec<_>>(), ["i3", "i4"]);
    let e = Event::new(EventKind::View, "u1", "i0");
    fx.store.apply(&mut con, &[e], T0 + 20_000).await.unwrap();
    let card: i64 = redis::cmd("ZCARD")
        .arg(fx.space.ns.user_seen("u1"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(card, 1);
    assert!(pttl(&fx, &fx.space.ns.user_seen("u1")).await > 0);
}

#[tokio::test]
async fn event_ids_make_retries_count_once() {
    let config = UserStateConfig {
        idempotency_ttl_ms: 1000,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("feat_idem", config).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut con = fx.conn().await;
    let e = || Event::new(EventKind::Click, "u1", "i1").with_event_id("evt-1");

    let r = fx.store.apply(&mut con, &[e()], T0).await.unwrap();
    assert_eq!((r.applied, r.duplicates.clone()), (1, vec![]));
    // a retry, and a duplicate inside one batch
    let r = fx.store.apply(&mut con, &[e()], T0).await.unwrap();
    assert_eq!((r.applied, r.duplicates.clone()), (0, vec![0]));
    let other = Event::new(EventKind::Click, "u1", "i1").with_event_id("evt-2");
    let r = fx
        .store
        .apply(&mut con, &[other.clone(), other, e()], T0)
        .await
        .unwrap();
    assert_eq!((r.applied, r.duplicates.clone()), (1, vec![1, 2]));
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert_eq!(f.counters.get("click"), Some(&2));
    assert_eq!(f.category_affinity.get("bread"), Some(&2.0));
    let ttl = pttl(&fx, &fx.space.ns.event_marker("evt-1")).await;
    assert!(ttl > 0 && ttl <= 1000, "marker PTTL {ttl}");

    // once the marker expires the same id counts again
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = fx.store.apply(&mut con, &[e()], T0).await.unwrap();
    assert_eq!(r.applied, 1);
}

#[tokio::test]
async fn delete_removes_every_user_key() {
    let fx = Fixture::new("feat_delete", UserStateConfig::default()).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut con = fx.conn().await;
    let events = [
        Event::new(EventKind::CartAdd, "u1", "i1"),
        Event::new(EventKind::Click, "u2", "i1"),
    ];
    fx.store.apply(&mut con, &events, T0).await.unwrap();
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert!(f.known && f.cart.contains("i1"));

    assert!(fx.store.delete(&mut con, "u1").await.unwrap());
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert!(!f.known && f.cart.is_empty() && f.seen.is_empty());
    let left: Vec<String> = fx
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains(":user:u1"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // other users are untouched; deleting twice reports nothing to delete
    assert!(fx.store.read(&mut con, "u2", T0).await.unwrap().known);
    assert!(!fx.store.delete(&mut con, "u1").await.unwrap());
    let err = fx.store.delete(&mut con, "bad id").await.unwrap_err();
    assert!(
        err.is_client_error() && err.to_string().contains("bad id"),
        "{err}"
    );
}

#[tokio::test]
async fn popularity_folds_into_item_hashes_in_batches() {
    let fx = Fixture::new("feat_fold", UserStateConfig::default()).await;
    for i in 0..3 {
        fx.item(&format!("i{i}"), &axis(i), "c", "b", 1.0).await;
    }
    fx.item("gone", &axis(3), "c", "b", 1.0).await;
    let mut con = fx.conn().await;
    let ev = |kind, item: &str| Event::new(kind, "u1", item);
    let events = [
        ev(EventKind::Click, "i0"),
        ev(EventKind::Purchase, "i0"),
        ev(EventKind::View, "i1"),
        ev(EventKind::Skip, "i2"), // negative weights add no popularity
        ev(EventKind::CartAdd, "gone"),
    ];
    fx.store.apply(&mut con, &events, T0).await.unwrap();
    // the item hashes are not touched by events
    assert_eq!(popularity(&fx, "i0").await, 0.0);
    let pending = fx
        .store
        .pending_popularity(&mut con, &["i0", "i1", "i2", "gone"])
        .await
        .unwrap();
    assert_eq!(pending, [6.0, 0.25, 0.0, 3.0]);

    let _: () = redis::cmd("DEL")
        .arg(fx.space.ns.item("gone"))
        .query_async(&mut con)
        .await
        .unwrap();
    let report = fx.store.fold_popularity(&mut con, 2).await.unwrap();
    assert_eq!((report.folded, report.dropped, report.batches), (2, 1, 2));
    assert_eq!(popularity(&fx, "i0").await, 6.0);
    assert_eq!(popularity(&fx, "i1").await, 0.25);
    let left: i64 = redis::cmd("ZCARD")
        .arg(fx.space.ns.popularity())
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(left, 0);
    // a second fold has nothing to do; new events accumulate again
    assert_eq!(
        fx.store.fold_popularity(&mut con, 2).await.unwrap().batches,
        0
    );
    fx.store.apply(&mut con, &events[..1], T0).await.unwrap();
    fx.store.fold_popularity(&mut con, 100).await.unwrap();
    assert_eq!(popularity(&fx, "i0").await, 7.0);

    // the gateway's paced fold: one batch at a time, a backlog to bound it, false when done
    fx.store.apply(&mut con, &events[..3], T0).await.unwrap();
    assert_eq!(fx.store.popularity_backlog(&mut con).await.unwrap(), 2);
    let mut report = redrec_userstate::FoldReport::default();
    assert!(
        fx.store
            .fold_popularity_batch(&mut con, 1, &mut report)
            .await
            .unwrap()
    );
    assert_eq!((report.folded, report.batches), (1, 1));
    assert_eq!(fx.store.popularity_backlog(&mut con).await.unwrap(), 1);
    assert!(
        fx.store
            .fold_popularity_batch(&mut con, 1, &mut report)
            .await
            .unwrap()
    );
    assert!(
        !fx.store
            .fold_popularity_batch(&mut con, 1, &mut report)
            .await
            .unwrap()
    );
    assert_eq!((report.folded, report.batches), (2, 2));
    assert_eq!(popularity(&fx, "i0").await, 13.0);
    assert_eq!(popularity(&fx, "i1").await, 0.5);
}

#[tokio::test]
async fn reloads_the_library_when_it_is_missing() {
    let fx = Fixture::new("feat_reload", UserStateConfig::default()).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut con = fx.conn().await;
    // drop only our own library (other suites share this Redis), as a restart without
    // persistence would
    let _: redis::Value = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg(fx.store.library_name())
        .query_async(&mut con)
        .await
        .unwrap();
    let r = fx
        .store
        .apply(&mut con, &[Event::new(EventKind::Click, "u1", "i1")], T0)
        .await
        .unwrap();
    assert_eq!(r.applied, 1);
}

/// `ack = aof` / `replica` wait for durability after applying; on a server that cannot give it
/// (the test server runs without an append-only file and without replicas) the batch is applied
/// but reported as not durable, with what to do, and resending it is a no-op.
#[tokio::test]
async fn acknowledgement_modes_report_unconfirmed_durability() {
    use redrec_userstate::{AckMode, Error};
    let probe = Fixture::new("feat_ack_probe", UserStateConfig::default()).await;
    let appendonly: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut probe.conn().await)
        .await
        .unwrap();
    let persistent = appendonly.last().is_some_and(|v| v == "yes");
    for (mode, label, needle) in [
        (AckMode::Aof, "feat_ack_aof", "appendonly"),
        (AckMode::Replica, "feat_ack_replica", "no replica"),
    ] {
        let confirms = mode == AckMode::Aof && persistent;
        let fx = Fixture::new(
            label,
            UserStateConfig {
                ack: mode,
                // an everysec fsync can take up to a second
                ack_timeout_ms: if confirms { 3_000 } else { 50 },
                ..UserStateConfig::default()
            },
        )
        .await;
        fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
        let c = &mut fx.conn().await;
        let event = Event::new(EventKind::Click, "u1", "i1").with_event_id(label);
        if confirms {
            // a persistent server confirms (the restart test kills it and counts the events)
            let r = fx
                .store
                .apply_acknowledged(c, std::slice::from_ref(&event), T0)
                .await
                .unwrap();
            assert_eq!(r.applied, 1);
            continue;
        }
        let started = std::time::Instant::now();
        let err = fx
            .store
            .apply_acknowledged(c, std::slice::from_ref(&event), T0)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotDurable { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // applied all the same, and a retry with the same id changes nothing
        let f = fx.store.read(c, "u1", T0).await.unwrap();
        assert_eq!(f.counters.get("click"), Some(&1));
        let again = fx.store.apply(c, &[event], T0).await.unwrap();
        assert_eq!((again.applied, again.duplicates), (0, vec![0]));
        assert_eq!(fx.store.ack_wait(), std::time::Duration::from_millis(50));
    }
    let fx = Fixture::new("feat_ack_memory", UserStateConfig::default()).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut c = fx.conn().await;
    let r = fx
        .store
        .apply_acknowledged(&mut c, &[Event::new(EventKind::Click, "u1", "i1")], T0)
        .await
        .unwrap();
    assert_eq!(r.applied, 1);
    assert_eq!(fx.store.ack_wait(), std::time::Duration::ZERO);
}
