//! Purchase history (`{ns}:user:{id}:buys`) and events applied at their own time.

use redrec_userstate::{Event, EventKind, UserStateConfig};

use crate::support::{Fixture, T0, axis};

const WEEK: i64 = 7 * 24 * 3600 * 1000;

fn weekly() -> UserStateConfig {
    UserStateConfig {
        history_half_life_ms: WEEK as u64,
        affinity_half_life_ms: WEEK as u64,
        ..UserStateConfig::default()
    }
}

fn buy(item: &str, at: i64) -> Event {
    Event::new(EventKind::Purchase, "u1", item).at(at)
}

fn scores(f: &redrec_core::user::UserFeatures) -> Vec<(&str, f64)> {
    f.purchases
        .iter()
        .map(|p| (p.item_id.as_str(), p.score))
        .collect()
}

fn close(got: &[(&str, f64)], want: &[(&str, f64)]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for ((gi, gs), (wi, ws)) in got.iter().zip(want) {
        assert_eq!(gi, wi, "{got:?} vs {want:?}");
        assert!(
            (gs - ws).abs() < 1e-9 * ws.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

#[tokio::test]
async fn purchase_counts_decay_from_each_events_own_time() {
    let fx = Fixture::new("hist_decay", weekly()).await;
    for (id, a) in [("i1", 0), ("i2", 1), ("i3", 2)] {
        fx.item(id, &axis(a), "milk", "acme", 1.0).await;
    }
    let mut con = fx.conn().await;
    // the batch clock (T0 + 2 weeks) is not the events' time
    let batch = [
        buy("i1", T0),
        buy("i1", T0 + WEEK),
        buy("i2", T0 + 2 * WEEK),
        Event::new(EventKind::View, "u1", "i3").at(T0),
    ];
    let r = fx
        .store
        .apply(&mut con, &batch, T0 + 2 * WEEK)
        .await
        .unwrap();
    assert_eq!(r.applied, 4);
    let f = fx.store.read(&mut con, "u1", T0 + 2 * WEEK).await.unwrap();
    // i1: 2^-2 + 2^-1; i2: 1; a view is not a purchase
    close(&scores(&f), &[("i2", 1.0), ("i1", 0.75)]);
    // another week later everything halves, the order stays
    let f = fx.store.read(&mut con, "u1", T0 + 3 * WEEK).await.unwrap();
    close(&scores(&f), &[("i2", 0.5), ("i1", 0.375)]);
    // affinities use the event times too: 5 * (0.25 + 0.5 + 1) + 0.25 * 0.25 at T0 + 2 weeks
    let f = fx.store.read(&mut con, "u1", T0 + 2 * WEEK).await.unwrap();
    let milk = f.category_affinity["milk"];
    assert!((milk - (5.0 * 1.75 + 0.0625)).abs() < 1e-9, "{milk}");
    // the recent list and the seen set carry the event times
    assert!(
        f.recent
            .iter()
            .any(|i| i.item_id == "i1" && i.at_ms == T0 + WEEK)
    );
}

#[tokio::test]
async fn the_order_events_arrive_in_does_not_change_the_counts() {
    let fx = Fixture::new("hist_order", weekly()).await;
    fx.item("i1", &axis(0), "milk", "acme", 1.0).await;
    fx.item("i2", &axis(1), "milk", "acme", 1.0).await;
    let mut con = fx.conn().await;
    let events = [
        buy("i1", T0 + 3 * WEEK),
        buy("i2", T0),
        buy("i1", T0 + WEEK),
    ];
    for e in events {
        fx.store.apply(&mut con, &[e], T0 + 3 * WEEK).await.unwrap();
    }
    let f = fx.store.read(&mut con, "u1", T0 + 3 * WEEK).await.unwrap();
    close(&scores(&f), &[("i1", 1.25), ("i2", 0.125)]);
}

#[tokio::test]
async fn history_is_capped_and_rescaled_far_from_its_reference() {
    let config = UserStateConfig {
        history_half_life_ms: 1000,
        history_cap: 2,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("hist_cap", config).await;
    for (id, a) in [("i1", 0), ("i2", 1), ("i3", 2)] {
        fx.item(id, &axis(a), "milk", "acme", 1.0).await;
    }
    let mut con = fx.conn().await;
    let batch = [
        Event::new(EventKind::Purchase, "u1", "i1").at(T0),
        Event::new(EventKind::Purchase, "u1", "i1").at(T0),
        Event::new(EventKind::Purchase, "u1", "i2").at(T0),
        Event::new(EventKind::Purchase, "u1", "i3").at(T0),
    ];
    fx.store.apply(&mut con, &batch, T0).await.unwrap();
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    // cap 2: one of the single purchases is dropped (the smallest score; ties by member order)
    assert_eq!(f.purchases.len(), 2);
    assert_eq!(f.purchases[0].item_id, "i1");
    assert!((f.purchases[0].score - 2.0).abs() < 1e-12);
    // 100 half-lives later (past the rescale point): finite scores, right proportions
    fx.store
        .apply(
            &mut con,
            &[Event::new(EventKind::Purchase, "u1", "i3").at(T0 + 100_000)],
            T0,
        )
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0 + 100_000).await.unwrap();
    assert_eq!(f.purchases[0].item_id, "i3");
    assert!(f.purchases[0].score >= 1.0 && f.purchases[0].score < 1.0 + 1e-12);
    let old = f
        .purchases
        .iter()
        .find(|p| p.item_id == "i1")
        .unwrap()
        .score;
    assert!((old / 2.0 - (-100f64).exp2()).abs() < 1e-40, "{old}");
    let stored: Option<String> = redis::cmd("HGET")
        .arg(fx.space.ns.user("u1"))
        .arg("buys_ref_ms")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stored, Some((T0 + 100_000).to_string()));
}

#[tokio::test]
async fn delete_removes_the_history_and_bad_times_are_rejected() {
    let fx = Fixture::new("hist_delete", UserStateConfig::default()).await;
    fx.item("i1", &axis(0), "milk", "acme", 1.0).await;
    let mut con = fx.conn().await;
    fx.store
        .apply(&mut con, &[buy("i1", T0)], T0)
        .await
        .unwrap();
    let key = fx.space.ns.user_buys("u1");
    let n: usize = redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(fx.store.delete(&mut con, "u1").await.unwrap());
    let n: usize = redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let err = fx
        .store
        .apply(&mut con, &[buy("i1", -5)], T0)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("field `at_ms`: is -5"), "{err}");
    // a user id must not name another user's history key
    let err = fx
        .store
        .apply(
            &mut con,
            &[Event::new(EventKind::View, "u1:buys", "i1")],
            T0,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("reserved"), "{err}");
}
