//! Applying events and reading features back: vectors, affinities, counters, cart, price band,
//! recent and seen, validation, idempotency, session TTL and decay.

use redrec_userstate::{Error, Event, EventKind, UserStateConfig};

use crate::support::{DIMS, Fixture, T0, axis};

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn click_is_visible_to_the_next_read() {
    let fx = Fixture::new("feat_ryw", UserStateConfig::default()).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut con = fx.conn().await;

    let before = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert!(!before.known);
    assert!(before.category_affinity.is_empty());

    let report = fx
        .store
        .apply(&mut con, &[Event::new(EventKind::Click, "u1", "i1")], T0)
        .await
        .unwrap();
    assert_eq!(report.applied, 1);

    // no sleep: the next read sees the click
    let after = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert!(after.known);
    assert_eq!(after.category_affinity.get("bread"), Some(&1.0));
    assert_eq!(after.brand_affinity.get("acme"), Some(&1.0));
    assert_eq!(after.counters.get("click"), Some(&1));
    assert_eq!(after.session_vector.as_deref(), Some(axis(0).as_slice()));
    assert_eq!(after.long_term_vector.as_deref(), Some(axis(0).as_slice()));
    assert!(after.seen.contains("i1"));
    assert_eq!(after.recent.len(), 1);
    assert_eq!(after.recent[0].item_id, "i1");
    assert_eq!(after.recent[0].event, "click");
    assert_eq!(after.recent[0].category.as_deref(), Some("bread"));
    assert_eq!(after.recent[0].at_ms, T0);
}

#[tokio::test]
async fn session_vector_is_a_weighted_normalised_ema() {
    let config = UserStateConfig {
        session_alpha: 0.5,
        long_term_alpha: 0.1,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("feat_ema", config).await;
    fx.item("a", &axis(0), "c", "b", 1.0).await;
    // not normalised in the item hash: the EMA normalises item vectors first
    fx.item(
        "b",
        &[0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "c",
        "b",
        1.0,
    )
    .await;
    let mut con = fx.conn().await;
    let ev = |kind, item: &str| Event::new(kind, "u1", item);
    fx.store
        .apply(
            &mut con,
            &[ev(EventKind::Click, "a"), ev(EventKind::Click, "b")],
            T0,
        )
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    let s = f.session_vector.unwrap();
    // 0.5*a + 0.5*b normalised
    let h = std::f32::consts::FRAC_1_SQRT_2;
    assert!((s[0] - h).abs() < 1e-6 && (s[1] - h).abs() < 1e-6, "{s:?}");
    let norm: f32 = s.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-5);
    // long-term moves slower: 0.9*a + 0.1*b normalised
    let l = f.long_term_vector.unwrap();
    let n = (0.81f32 + 0.01).sqrt();
    assert!(
        (l[0] - 0.9 / n).abs() < 1e-5 && (l[1] - 0.1 / n).abs() < 1e-5,
        "{l:?}"
    );

    // purchase (weight 5) moves the session further towards b than a click (weight 1) would:
    // rate 1 - 0.5^5
    fx.store
        .apply(&mut con, &[ev(EventKind::Purchase, "b")], T0 + 1)
        .await
        .unwrap();
    let s2 = fx
        .store
        .read(&mut con, "u1", T0 + 1)
        .await
        .unwrap()
        .session_vector
        .unwrap();
    assert!(cosine(&s2, &axis(1)) > 0.99, "{s2:?}");

    // a skip pushes away from the item
    fx.store
        .apply(&mut con, &[ev(EventKind::Skip, "b")], T0 + 2)
        .await
        .unwrap();
    let s3 = fx
        .store
        .read(&mut con, "u1", T0 + 2)
        .await
        .unwrap()
        .session_vector
        .unwrap();
    assert!(cosine(&s3, &axis(1)) < cosine(&s2, &axis(1)));
    assert_eq!(s3.len(), DIMS);
}

#[tokio::test]
async fn cart_price_band_and_counters() {
    let fx = Fixture::new("feat_cart", UserStateConfig::default()).await;
    fx.item("p2", &axis(0), "c", "b", 2.0).await;
    fx.item("p4", &axis(1), "c", "b", 4.0).await;
    fx.item("p9", &axis(2), "c", "b", 9.0).await;
    let mut con = fx.conn().await;
    let ev = |kind, item: &str| Event::new(kind, "u1", item);
    fx.store
        .apply(
            &mut con,
            &[
                ev(EventKind::CartAdd, "p2"),
                ev(EventKind::CartAdd, "p4"),
                ev(EventKind::View, "p9"),
                ev(EventKind::Purchase, "p4"),
            ],
            T0,
        )
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert_eq!(f.cart.iter().collect::<Vec<_>>(), ["p2"]);
    let pb = f.price_band.unwrap();
    // prices 2, 4, 4 (cart_add p2, cart_add p4, purchase p4); views do not count
    assert_eq!(pb.count, 3);
    assert!((pb.mean - 10.0 / 3.0).abs() < 1e-12, "{pb:?}");
    let var = ((2.0f64 - 10.0 / 3.0).powi(2) + 2.0 * (4.0f64 - 10.0 / 3.0).powi(2)) / 3.0;
    assert!((pb.std_dev - var.sqrt()).abs() < 1e-12, "{pb:?}");
    assert_eq!(f.counters.get("cart_add"), Some(&2));
    assert_eq!(f.counters.get("purchase"), Some(&1));
    assert_eq!(f.counters.get("view"), Some(&1));
    // newest first
    let order: Vec<_> = f
        .recent
        .iter()
        .map(|r| (r.event.as_str(), r.item_id.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("purchase", "p4"),
            ("view", "p9"),
            ("cart_add", "p4"),
            ("cart_add", "p2")
        ]
    );
}

#[tokio::test]
async fn a_bad_event_rejects_the_whole_batch_by_index() {
    let fx = Fixture::new("feat_validate", UserStateConfig::default()).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut con = fx.conn().await;
    let keys_before = fx.keys().await;
    let good = || Event::new(EventKind::Click, "u1", "i1").with_event_id("e-good");

    let bad_type = Event {
        event_type: "like".into(),
        ..good()
    };
    let err = fx
        .store
        .apply(&mut con, &[good(), good(), bad_type], T0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Invalid {
                index: 2,
                field: "type",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_client_error());

    let neg_dwell = Event::new(EventKind::Dwell, "u1", "i1").with_dwell_ms(-1);
    let err = fx
        .store
        .apply(&mut con, &[good(), neg_dwell], T0)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Invalid {
                index: 1,
                field: "dwell_ms",
                ..
            }
        ),
        "{err}"
    );

    let bad_user = Event::new(EventKind::View, "u 1", "i1");
    let err = fx.store.apply(&mut con, &[bad_user], T0).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Invalid {
                index: 0,
                field: "user_id",
                ..
            }
        ),
        "{err}"
    );

    // unknown item: only Redis knows, checked inside the atomic step before any write
    let unknown = Event::new(EventKind::Click, "u1", "nope");
    let err = fx
        .store
        .apply(&mut con, &[good(), good(), good(), unknown], T0)
        .await
        .unwrap_err();
    match &err {
        Error::UnknownItem { index, item_id } => {
            assert_eq!((*index, item_id.as_str()), (3, "nope"));
        }
        other => panic!("expected UnknownItem, got {other}"),
    }
    assert!(err.to_string().contains("event 3"), "{err}");

    let too_many = vec![good(); fx.store.config().max_batch + 1];
    let err = fx.store.apply(&mut con, &too_many, T0).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::BatchTooLarge {
                size: 101,
                max: 100
            }
        ),
        "{err}"
    );

    // nothing was half-applied: no user keys, no marker, no popularity
    assert_eq!(fx.keys().await, keys_before);
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert!(!f.known);

    // and the same good events apply fine afterwards (the marker was not burnt)
    let report = fx.store.apply(&mut con, &[good()], T0).await.unwrap();
    assert_eq!(report.applied, 1);
}

#[tokio::test]
async fn items_without_vectors_or_with_other_dims_update_what_they_can() {
    let fx = Fixture::new("feat_novec", UserStateConfig::default()).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    fx.item("wide", &[1.0; DIMS * 2], "bread", "acme", 2.0)
        .await;
    let mut con = fx.conn().await;
    let _: () = redis::cmd("HSET")
        .arg(fx.space.ns.item("bare"))
        .arg("category")
        .arg("milk")
        .query_async(&mut con)
        .await
        .unwrap();
    let ev = |kind, item: &str| Event::new(kind, "u1", item);

    // no vector: affinities and counters move, the vectors do not appear
    fx.store
        .apply(&mut con, &[ev(EventKind::Click, "bare")], T0)
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert_eq!(f.category_affinity.get("milk"), Some(&1.0));
    assert!(f.brand_affinity.is_empty() && f.price_band.is_none());
    assert!(f.session_vector.is_none() && f.long_term_vector.is_none());

    // a skip before any positive event creates no vector
    fx.store
        .apply(&mut con, &[ev(EventKind::Skip, "i1")], T0)
        .await
        .unwrap();
    assert!(
        fx.store
            .read(&mut con, "u1", T0)
            .await
            .unwrap()
            .session_vector
            .is_none()
    );

    // a vector of other dimensions (a re-embedded catalogue) restarts the EMA from that item
    fx.store
        .apply(
            &mut con,
            &[ev(EventKind::Click, "i1"), ev(EventKind::Click, "wide")],
            T0,
        )
        .await
        .unwrap();
    let s = fx
        .store
        .read(&mut con, "u1", T0)
        .await
        .unwrap()
        .session_vector
        .unwrap();
    assert_eq!(s.len(), DIMS * 2);
    assert!(
        (s[0] - 1.0 / (2.0 * DIMS as f32).sqrt()).abs() < 1e-6,
        "{s:?}"
    );

    // a price that is not a finite number stays out of the price band
    let _: () = redis::cmd("HSET")
        .arg(fx.space.ns.item("odd"))
        .arg("price")
        .arg("nan")
        .query_async(&mut con)
        .await
        .unwrap();
    fx.store
        .apply(&mut con, &[ev(EventKind::CartAdd, "odd")], T0)
        .await
        .unwrap();
    let f = fx.store.read(&mut con, "u1", T0).await.unwrap();
    assert!(f.price_band.is_none() && f.cart.contains("odd"));

    let err = fx.store.read(&mut con, "not valid", T0).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUserId { .. }), "{err}");
}

#[tokio::test]
async fn feature_reads_share_a_callers_pipeline() {
    let fx = Fixture::new("feat_pipe", UserStateConfig::default()).await;
    fx.item("i1", &axis(0), "bread", "acme", 2.0).await;
    let mut con = fx.conn().await;
    fx.store
        .apply(&mut con, &[Event::new(EventKind::CartAdd, "u1", "i1")], T0)
        .await
        .unwrap();
    // other work before and after the feature read, one round trip in all
    let mut pipe = redis::pipe();
    pipe.cmd("ZCARD").arg(fx.space.ns.popularity());
    fx.store.queue_read(&mut pipe, "u1", T0).unwrap();
    pipe.cmd("EXISTS").arg(fx.space.ns.item("i1"));
    let replies: Vec<redis::Value> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(replies.len(), redrec_userstate::READ_COMMANDS + 2);
    let f = fx
        .store
        .decode_read("u1", T0, &replies[1..1 + redrec_userstate::READ_COMMANDS])
        .unwrap();
    assert_eq!(f, fx.store.read(&mut con, "u1", T0).await.unwrap());
    assert!(f.cart.contains("i1"));
    let err = fx.store.decode_read("u1", T0, &replies[..2]).unwrap_err();
    assert!(err.to_string().contains("expected 6 replies"), "{err}");
}

/// The function keeps a batch's vectors decoded and writes each back once: a batch must store
/// what the same events applied one by one store, repeated items and weights included (vectors
/// up to f32 rounding: one by one rounds to f32 after every step, a batch only at its end).
#[tokio::test]
async fn a_batch_stores_the_same_state_as_its_events_one_by_one() {
    let config = UserStateConfig {
        session_alpha: 0.3,
        long_term_alpha: 0.05,
        ..UserStateConfig::default()
    };
    let fx = Fixture::new("feat_batch_eq", config).await;
    fx.item("a", &axis(0), "c1", "b1", 1.0).await;
    fx.item(
        "b",
        &[0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "c2",
        "b2",
        2.0,
    )
    .await;
    fx.item("c", &axis(3), "c1", "b2", 3.0).await;
    let events = |user: &str| {
        ["a", "b", "a", "c", "b", "a"]
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let kind = [EventKind::Click, EventKind::Purchase, EventKind::CartAdd][i % 3];
                Event::new(kind, user, item).at(T0 + i as i64 * 1000)
            })
            .collect::<Vec<_>>()
    };
    let mut con = fx.conn().await;
    let now = T0 + 10_000;
    fx.store
        .apply(&mut con, &events("batched"), now)
        .await
        .unwrap();
    for e in events("single") {
        fx.store
            .apply(&mut con, std::slice::from_ref(&e), now)
            .await
            .unwrap();
    }
    let a = fx.store.read(&mut con, "batched", now).await.unwrap();
    let b = fx.store.read(&mut con, "single", now).await.unwrap();
    for (name, x, y) in [
        ("session", &a.session_vector, &b.session_vector),
        ("long-term", &a.long_term_vector, &b.long_term_vector),
    ] {
        let (x, y) = (x.as_ref().unwrap(), y.as_ref().unwrap());
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y) {
            assert!((p - q).abs() < 1e-6, "{name}: {x:?} vs {y:?}");
        }
    }
    assert_eq!(a.purchases, b.purchases);
    assert_eq!(a.category_affinity, b.category_affinity);
    assert_eq!(a.brand_affinity, b.brand_affinity);
    assert_eq!(a.price_band, b.price_band);
    assert_eq!(a.counters, b.counters);
    assert_eq!(a.recent, b.recent);
}
