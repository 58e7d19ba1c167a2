//! User state on a Redis Cluster (three primaries, `redrec_testkit::TestCluster`) with the
//! catalog on the single server under test: the race of `concurrency.rs` with exact sums, batches
//! of several users, unknown items, deletion of every key of a user, the function on every
//! primary.

use redrec_testkit::TestCluster;
use redrec_userstate::{Error, Event, EventKind, UserStateStore};

use crate::{
    concurrency::{EVENTS, ITEMS, READ_AT, TASKS, assert_totals, fixture, race_event},
    support::{Fixture, T0},
};

/// The fixture's store for a cluster, and the test's keys on the cluster.
fn on_cluster(fx: &Fixture) -> (UserStateStore, TestCluster) {
    let store = fx.store.clone().for_cluster().expect("store for a cluster");
    (store, TestCluster::new(&fx.space.ns))
}

/// `events` from `TASKS` tasks, each with its own catalog and cluster connections, one event
/// per call, all released at once; (applied, duplicates) summed.
async fn race(
    fx: &Fixture,
    store: &UserStateStore,
    cluster: &TestCluster,
    events: Vec<(Event, i64)>,
) -> (usize, usize) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let mine: Vec<_> = events.iter().skip(t).step_by(TASKS).cloned().collect();
        let store = store.clone();
        let mut catalog = fx.conn().await;
        let mut users = cluster.conn().await;
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let (mut applied, mut dups) = (0, 0);
            for (e, at) in mine {
                let r = store
                    .apply_clustered(&mut catalog, &mut users, &[e], at)
                    .await
                    .unwrap();
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

async fn check_totals(
    fx: &Fixture,
    store: &UserStateStore,
    cluster: &TestCluster,
    unique: &[(Event, i64)],
) {
    let f = store
        .read(&mut cluster.conn().await, "racer", READ_AT)
        .await
        .unwrap();
    let ids: Vec<&str> = ITEMS.iter().map(|(id, ..)| *id).collect();
    // popularity is catalog data: counted on the catalog's server
    let pending = store
        .pending_popularity(&mut fx.conn().await, &ids)
        .await
        .unwrap();
    assert_totals(store.config(), &f, &ids, &pending, unique);

    // every key of the user on one node, under the user's tag; none on the catalog's server
    let keys = cluster.keys();
    assert!(!keys.is_empty());
    let nodes: std::collections::BTreeSet<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes.len(), 1, "{keys:?}");
    assert!(
        keys.iter().all(|(_, k)| k.contains(":user:{racer}")),
        "{keys:?}"
    );
    let catalog_keys = fx.keys().await;
    assert!(
        catalog_keys
            .iter()
            .all(|k| k.contains(":item:") || k.ends_with(":pop")),
        "user state written to the catalog: {catalog_keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_events_on_a_cluster_lose_no_update() {
    let fx = fixture("cl_race").await;
    let (store, cluster) = on_cluster(&fx);
    let events: Vec<_> = (0..EVENTS).map(race_event).collect();
    let (applied, dups) = race(&fx, &store, &cluster, events.clone()).await;
    assert_eq!((applied, dups), (EVENTS, 0));
    check_totals(&fx, &store, &cluster, &events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_on_a_cluster_count_once() {
    let fx = fixture("cl_race_dup").await;
    let (store, cluster) = on_cluster(&fx);
    let unique: Vec<_> = (0..EVENTS / 2)
        .map(|i| {
            let (e, at) = race_event(i);
            (e.with_event_id(&format!("race-{i}")), at)
        })
        .collect();
    let mut events = unique.clone();
    events.extend(unique.iter().cloned());
    let (applied, dups) = race(&fx, &store, &cluster, events).await;
    assert_eq!((applied, dups), (EVENTS / 2, EVENTS / 2));
    check_totals(&fx, &store, &cluster, &unique).await;
}

#[tokio::test]
async fn a_batch_of_several_users_is_applied_per_user_and_deduplicated_by_index() {
    let fx = fixture("cl_users").await;
    let (store, cluster) = on_cluster(&fx);
    let mut catalog = fx.conn().await;
    let mut users = cluster.conn().await;
    let batch = vec![
        Event::new(EventKind::Click, "ann", "i0").with_event_id("b-0"),
        Event::new(EventKind::Click, "bob", "i1").with_event_id("b-1"),
        Event::new(EventKind::View, "ann", "i2").with_event_id("b-2"),
        Event::new(EventKind::Purchase, "cyd", "i3"),
    ];
    let r = store
        .apply_clustered(&mut catalog, &mut users, &batch, T0)
        .await
        .unwrap();
    assert_eq!((r.applied, r.duplicates.clone()), (4, vec![]));
    let ann = store.read(&mut users, "ann", T0).await.unwrap();
    assert_eq!(ann.counters.get("click"), Some(&1));
    assert_eq!(ann.counters.get("view"), Some(&1));
    // i0 and i2: one category, two brands, read from the catalog
    assert_eq!(ann.category_affinity.len(), 1, "{ann:?}");
    assert_eq!(ann.brand_affinity.len(), 2, "{ann:?}");
    let bob = store.read(&mut users, "bob", T0).await.unwrap();
    assert_eq!(bob.counters.get("click"), Some(&1));
    let cyd = store.read(&mut users, "cyd", T0).await.unwrap();
    assert_eq!(cyd.purchases.len(), 1);
    assert!(cyd.price_band.is_some(), "the price came from the catalog");

    // resent: the three with ids are duplicates, reported by their index in the batch
    let r = store
        .apply_clustered(&mut catalog, &mut users, &batch, T0 + 1)
        .await
        .unwrap();
    assert_eq!((r.applied, r.duplicates), (1, vec![0, 1, 2]));
    let pending = store
        .pending_popularity(&mut catalog, &["i0", "i1", "i2", "i3"])
        .await
        .unwrap();
    let w = &store.config().weights;
    assert_eq!(pending, [w.click, w.click, w.view, 2.0 * w.purchase]);
}

#[tokio::test]
async fn an_unknown_item_on_a_cluster_writes_nothing() {
    let fx = fixture("cl_unknown").await;
    let (store, cluster) = on_cluster(&fx);
    let batch = vec![
        Event::new(EventKind::Click, "dan", "i0"),
        Event::new(EventKind::Click, "eve", "nope"),
    ];
    let err = store
        .apply_clustered(&mut fx.conn().await, &mut cluster.conn().await, &batch, T0)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownItem { index: 1, item_id } if item_id == "nope"),
        "{err}"
    );
    assert_eq!(cluster.keys(), Vec::<(String, String)>::new());
    assert!(fx.keys().await.iter().all(|k| k.contains(":item:")));
    // the single-node entry point refuses a cluster store instead of writing plain keys
    let err = store
        .apply(&mut fx.conn().await, &batch[..1], T0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("apply_clustered"), "{err}");
}

#[tokio::test]
async fn a_user_deleted_on_a_cluster_is_gone_from_every_key() {
    let fx = fixture("cl_delete").await;
    let (store, cluster) = on_cluster(&fx);
    let mut catalog = fx.conn().await;
    let mut users = cluster.conn().await;
    let kinds = [
        EventKind::Click,
        EventKind::CartAdd,
        EventKind::Purchase,
        EventKind::View,
    ];
    for who in ["gone", "kept"] {
        let batch: Vec<Event> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| Event::new(*k, who, ITEMS[i].0).with_event_id(&format!("{who}-{i}")))
            .collect();
        let r = store
            .apply_clustered(&mut catalog, &mut users, &batch, T0)
            .await
            .unwrap();
        assert_eq!(r.applied, kinds.len());
    }
    let keys_of = |who: &str| -> Vec<String> {
        cluster
            .keys()
            .into_iter()
            .map(|(_, k)| k)
            .filter(|k| k.contains(&format!("{{{who}}}")))
            .collect()
    };
    let gone = keys_of("gone");
    // long-term, session, seen, recent, cart, purchase history, idempotency markers
    let mut want = store.user_keys("gone");
    want.sort();
    assert_eq!(gone, want);
    assert!(store.delete(&mut users, "gone").await.unwrap());
    assert_eq!(keys_of("gone"), Vec::<String>::new());
    assert_eq!(keys_of("kept").len(), 7, "the other user keeps everything");
    assert!(!store.delete(&mut users, "gone").await.unwrap());
    // the markers went too: the same event ids apply again
    let again = Event::new(EventKind::Click, "gone", "i0").with_event_id("gone-0");
    let r = store
        .apply_clustered(&mut catalog, &mut users, &[again], T0 + 1)
        .await
        .unwrap();
    assert_eq!((r.applied, r.duplicates.len()), (1, 0));
}

#[tokio::test]
async fn the_function_is_loaded_on_every_primary_and_reloaded_when_missing() {
    let fx = fixture("cl_function").await;
    let (store, cluster) = on_cluster(&fx);
    let mut users = cluster.conn().await;
    store.ensure_loaded(&mut users).await.unwrap();
    let libraries = |url: &str| -> String {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let list: redis::Value = redis::cmd("FUNCTION")
            .arg("LIST")
            .arg("LIBRARYNAME")
            .arg(store.library_name())
            .query(&mut con)
            .unwrap();
        format!("{list:?}")
    };
    for url in &cluster.urls {
        assert!(libraries(url).contains(store.library_name()), "{url}");
    }
    // gone from one primary (a node restarted without persistence): the call that lands there
    // loads it again and retries
    let user = "fn-user";
    let owner = {
        let e = Event::new(EventKind::Click, user, "i0");
        store
            .apply_clustered(&mut fx.conn().await, &mut users, &[e], T0)
            .await
            .unwrap();
        cluster
            .keys()
            .into_iter()
            .find(|(_, k)| k.contains("{fn-user}"))
            .expect("the user's keys")
            .0
    };
    let mut con = redis::Client::open(owner.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg(store.library_name())
        .query(&mut con)
        .unwrap();
    assert!(!libraries(&owner).contains(store.library_name()));
    let e = Event::new(EventKind::Click, user, "i1");
    let r = store
        .apply_clustered(&mut fx.conn().await, &mut users, &[e], T0 + 1)
        .await
        .unwrap();
    assert_eq!(r.applied, 1);
    assert!(libraries(&owner).contains(store.library_name()));
    let f = store.read(&mut users, user, T0 + 1).await.unwrap();
    assert_eq!(f.counters.get("click"), Some(&2));
}
