//! Read-your-writes where it matters: clicks on category X make the very next KNN query with the
//! user's session vector return more X items (share of X in the top k rises), with no sleep.

use redrec_core::{
    schema::{ItemFields, VectorAlgorithm, VectorSettings, items_schema},
    vector,
};
use redrec_userstate::{Event, EventKind, UserStateConfig};

use crate::support::{DIMS, Fixture, T0};

const K: usize = 10;

/// Item `i` of a category: its axis plus a small deterministic offset on the other axes.
fn item_vector(axis: usize, i: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS)
        .map(|d| ((i * 31 + d * 17) % 13) as f32 / 100.0)
        .collect();
    v[axis] = 1.0;
    v
}

/// Categories of the top K items for a query vector, via FT.SEARCH KNN.
async fn top_k_categories(fx: &Fixture, query: &[f32]) -> Vec<String> {
    let mut con = fx.conn().await;
    let reply: redis::Value = redis::cmd("FT.SEARCH")
        .arg(fx.space.ns.index(1))
        .arg(format!("*=>[KNN {K} @embedding $v AS score]"))
        .arg("PARAMS")
        .arg(2)
        .arg("v")
        .arg(vector::encode(query))
        .arg("SORTBY")
        .arg("score")
        .arg("RETURN")
        .arg(1)
        .arg("category")
        .arg("LIMIT")
        .arg(0)
        .arg(K)
        .arg("DIALECT")
        .arg(2)
        .query_async(&mut con)
        .await
        .unwrap();
    // RESP2: [total, key, [field, value], key, [field, value], ...]
    let redis::Value::Array(items) = reply else {
        panic!("unexpected FT.SEARCH reply {reply:?}")
    };
    items
        .iter()
        .skip(2)
        .step_by(2)
        .map(|fields| {
            let pairs: Vec<String> = redis::from_redis_value_ref(fields).unwrap();
            pairs[1].clone()
        })
        .collect()
}

fn share(categories: &[String], wanted: &str) -> f64 {
    categories.iter().filter(|c| *c == wanted).count() as f64 / categories.len() as f64
}

#[tokio::test]
async fn clicks_on_a_category_raise_its_share_in_the_next_top_k() {
    let fx = Fixture::new("feat_rank", UserStateConfig::default()).await;
    let settings = VectorSettings {
        dims: DIMS,
        algorithm: VectorAlgorithm::Flat,
        ..VectorSettings::default()
    };
    let ns = &fx.space.ns;
    let schema = items_schema(
        &ns.index(1),
        &ns.item_prefix(),
        &ItemFields::default(),
        &settings,
    );
    let mut con = fx.conn().await;
    let _: () = schema.ft_create_cmd().query_async(&mut con).await.unwrap();
    for i in 0..20 {
        fx.item(&format!("x{i}"), &item_vector(0, i), "X", "bx", 1.0)
            .await;
        fx.item(&format!("y{i}"), &item_vector(1, i), "Y", "by", 1.0)
            .await;
    }

    // history: the user browsed Y
    let history: Vec<Event> = (0..5)
        .map(|i| Event::new(EventKind::Click, "u1", &format!("y{i}")))
        .collect();
    fx.store.apply(&mut con, &history, T0).await.unwrap();
    let before = fx.store.read(&mut con, "u1", T0).await.unwrap();
    let share_before = share(
        &top_k_categories(&fx, before.session_vector.as_ref().unwrap()).await,
        "X",
    );

    // three clicks on X, then immediately the next request
    let clicks: Vec<Event> = (0..3)
        .map(|i| Event::new(EventKind::Click, "u1", &format!("x{i}")))
        .collect();
    fx.store.apply(&mut con, &clicks, T0 + 1000).await.unwrap();
    let after = fx.store.read(&mut con, "u1", T0 + 1000).await.unwrap();
    let share_after = share(
        &top_k_categories(&fx, after.session_vector.as_ref().unwrap()).await,
        "X",
    );

    assert!(
        share_after > share_before,
        "share of X in top {K}: before {share_before}, after {share_after}"
    );
    assert_eq!(share_before, 0.0);
    assert!(share_after >= 0.5, "{share_after}");
    assert!(
        after.category_affinity["X"] > before.category_affinity.get("X").copied().unwrap_or(0.0)
    );
}
