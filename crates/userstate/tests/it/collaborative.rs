//! User vectors in the collaborative space: the event function reads the item's `cf_vector`
//! (when it has one) and keeps `cf_vec` (session) and `cf_lt_vec` (long-term) next to the
//! text-space vectors, with their own EMA rates.

use redrec_core::vector;
use redrec_userstate::{Event, EventKind, UserStateConfig};

use crate::support::{Fixture, T0, axis};

const CF_DIMS: usize = 4;

fn cf_axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; CF_DIMS];
    v[i] = 1.0;
    v
}

impl Fixture {
    async fn cf(&self, id: &str, v: &[f32]) {
        let mut con = self.conn().await;
        let _: () = redis::cmd("HSET")
            .arg(self.space.ns.item(id))
            .arg("cf_vector")
            .arg(vector::encode(v))
            .query_async(&mut con)
            .await
            .unwrap();
    }
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

#[tokio::test]
async fn cf_vectors_follow_items_that_have_one_with_their_own_rates() {
    let config = UserStateConfig {
        cf_session_alpha: 0.5,
        cf_long_term_alpha: 0.1,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("cf_ema", config).await;
    fx.item("a", &axis(0), "milk", "acme", 1.0).await;
    fx.item("b", &axis(1), "milk", "acme", 1.0).await;
    fx.item("plain", &axis(2), "milk", "acme", 1.0).await;
    // a collaborative vector that is not unit length: the function normalises it
    fx.cf("a", &[2.0, 0.0, 0.0, 0.0]).await;
    fx.cf("b", &cf_axis(1)).await;
    let mut con = fx.conn().await;

    // an item without cf_vector changes the text-space vectors only
    fx.store
        .apply(&mut con, &[Event::new(EventKind::Click, "u1", "plain")], T0)
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert!(f.session_vector.is_some() && f.long_term_vector.is_some());
    assert_eq!(f.cf_session_vector, None);
    assert_eq!(f.cf_long_term_vector, None);
    assert_eq!(f.last_event_ms, Some(T0));

    // the first item with a cf vector sets both cf vectors
    fx.store
        .apply(&mut con, &[Event::new(EventKind::Click, "u1", "a")], T0 + 1)
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0 + 1).await.unwrap();
    close(f.cf_session_vector.as_deref().unwrap(), &cf_axis(0));
    close(f.cf_long_term_vector.as_deref().unwrap(), &cf_axis(0));

    // a click (weight 1) on b moves the session by 0.5 and the long-term vector by 0.1
    fx.store
        .apply(&mut con, &[Event::new(EventKind::Click, "u1", "b")], T0 + 2)
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0 + 2).await.unwrap();
    let unit = |x: f32, y: f32| {
        let n = (x * x + y * y).sqrt();
        vec![x / n, y / n, 0.0, 0.0]
    };
    close(f.cf_session_vector.as_deref().unwrap(), &unit(0.5, 0.5));
    close(f.cf_long_term_vector.as_deref().unwrap(), &unit(0.9, 0.1));
    // the text-space vectors keep their own dimension and rates
    assert_eq!(
        f.session_vector.as_ref().unwrap().len(),
        crate::support::DIMS
    );

    // a skip pushes the cf vectors away from the item, as it does the text ones
    fx.store
        .apply(&mut con, &[Event::new(EventKind::Skip, "u1", "b")], T0 + 3)
        .await
        .unwrap();
    let g = fx.store.read(&mut con, "u1", T0 + 3).await.unwrap();
    let before = f.cf_session_vector.unwrap()[1];
    assert!(g.cf_session_vector.unwrap()[1] < before);

    // stored layout: LE f32 blobs in the session and user hashes
    let blob: Vec<u8> = redis::cmd("HGET")
        .arg(fx.space.ns.user("u1"))
        .arg("cf_lt_vec")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(blob.len(), CF_DIMS * 4);
    let blob: Vec<u8> = redis::cmd("HGET")
        .arg(fx.space.ns.user_session("u1"))
        .arg("cf_vec")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(blob.len(), CF_DIMS * 4);

    // deleting the user removes the cf vectors with everything else
    assert!(fx.store.delete(&mut con, "u1").await.unwrap());
    let f = fx.store.read(&mut con, "u1", T0 + 4).await.unwrap();
    assert_eq!(f.cf_long_term_vector, None);
}

#[tokio::test]
async fn purchase_counts_are_read_as_of_the_users_latest_event() {
    const DAY: i64 = 24 * 3600 * 1000;
    let config = UserStateConfig {
        history_half_life_ms: (10 * DAY) as u64,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("cf_count", config).await;
    fx.item("a", &axis(0), "milk", "acme", 1.0).await;
    let mut con = fx.conn().await;
    let buys = [
        Event::new(EventKind::Purchase, "u1", "a").at(T0),
        Event::new(EventKind::Purchase, "u1", "a").at(T0 + 10 * DAY),
    ];
    fx.store
        .apply(&mut con, &buys, T0 + 10 * DAY)
        .await
        .unwrap();
    // read 20 days after the last purchase: the score has decayed by 4, the count has not
    let f = fx.store.read(&mut con, "u1", T0 + 30 * DAY).await.unwrap();
    let p = &f.purchases[0];
    assert!((p.count - 1.5).abs() < 1e-9, "{p:?}");
    assert!((p.score - 0.375).abs() < 1e-9, "{p:?}");
}
