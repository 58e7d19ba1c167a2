//! The gateway with user state on a Redis Cluster (`[redis.user_state]`, three primaries from
//! `redrec_testkit::TestCluster`) and the catalog on the server under test: events, the user's
//! next list, deletion from every key, rate limits counted on the cluster, readiness.

use axum::http::{Method, StatusCode};
use redrec_core::config::UserStateRedisConfig;
use redrec_testkit::{TestCluster, TestSpace};
use serde_json::json;

use crate::{DIMS, KEY, call, fixture, router, settings};

async fn loaded(label: &str) -> (TestSpace, TestCluster, redrec_gateway::Settings) {
    let space = TestSpace::new(label);
    let cluster = TestCluster::new(&space.ns);
    let mut s = settings(&space, DIMS);
    fixture::load(&space, &s.index, &fixture::catalog(10, DIMS)).await;
    s.redis.user_state = Some(UserStateRedisConfig {
        cluster: cluster.urls.clone(),
    });
    (space, cluster, s)
}

/// The cluster's keys of the namespace (node URL, key).
fn user_keys(cluster: &TestCluster, user: &str) -> Vec<(String, String)> {
    cluster
        .keys()
        .into_iter()
        .filter(|(_, k)| k.contains(&format!(":user:{{{user}}}")))
        .collect()
}

#[tokio::test]
async fn events_and_features_live_on_the_cluster_and_a_deleted_user_is_gone_from_every_key() {
    let (space, cluster, s) = loaded("gw_cl_events").await;
    let app = router(s);
    let user = "u-cl";
    let batch: Vec<_> = (0..3)
        .map(|i| json!({"type": "click", "user_id": user, "item_id": format!("apple-{i}"), "event_id": format!("e{i}")}))
        .chain([json!({"type": "cart_add", "user_id": user, "item_id": "bread-1", "event_id": "e3"})])
        .collect();
    let r = call(
        &app,
        Method::POST,
        "/v1/events",
        Some(KEY),
        Some(&json!(batch).to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["applied"], 4);
    let r = call(
        &app,
        Method::POST,
        "/v1/events",
        Some(KEY),
        Some(&batch[0].to_string()),
    )
    .await;
    assert_eq!(r.json["duplicates"], json!([0]), "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/v1/events",
        Some(KEY),
        Some(&json!({"type": "click", "user_id": user, "item_id": "ghost"}).to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.error(), ("unknown_item", Some("item_id")));

    // the user's keys: on one primary, none on the catalog's server (which has the popularity)
    let keys = user_keys(&cluster, user);
    let nodes: std::collections::BTreeSet<&String> = keys.iter().map(|(n, _)| n).collect();
    assert_eq!(nodes.len(), 1, "{keys:?}");
    assert_eq!(
        keys.len(),
        6,
        "features, session, seen, recent, cart, markers: {keys:?}"
    );
    let mut con = space.conn().await;
    let on_catalog: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:user:*", space.ns.name()))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(on_catalog, Vec::<String>::new());
    let pop: f64 = redis::cmd("ZSCORE")
        .arg(space.ns.popularity())
        .arg("apple-0")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(pop, 1.0, "one click counted once");

    let r = call(&app, Method::GET, &format!("/v1/users/{user}"), None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["counters"]["click"], 3);
    assert!(r.json["category_affinity"]["FRUIT"].as_f64().unwrap() > 0.0);

    // the next list reads the features from the cluster: seen items are left out
    let r = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&json!({"user_id": user, "k": 8}).to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["cold_start"], false);
    let ids = r.ids();
    assert!(
        !ids.iter().any(|id| id == "apple-0" || id == "apple-1"),
        "{ids:?}"
    );

    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/users/{user}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(user_keys(&cluster, user), Vec::<(String, String)>::new());
    let r = call(&app, Method::GET, &format!("/v1/users/{user}"), None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rate_limits_count_on_the_cluster() {
    let (space, cluster, mut s) = loaded("gw_cl_rate").await;
    s.gateway.rate_limit.enabled = true;
    s.gateway.rate_limit.requests = 3;
    s.gateway.rate_limit.window_ms = 60_000;
    let app = router(s);
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(
            call(&app, Method::GET, "/v1/items/none", Some(KEY), None)
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(codes, [404, 404, 404, 429, 429]);
    let counters: Vec<(String, String)> = cluster
        .keys()
        .into_iter()
        .filter(|(_, k)| k.contains(":rl:"))
        .collect();
    assert_eq!(counters.len(), 1, "{counters:?}");
    let mut con = space.conn().await;
    let on_catalog: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:rl:*", space.ns.name()))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(on_catalog, Vec::<String>::new());
}

#[tokio::test]
async fn readiness_reports_the_cluster_and_a_cluster_store_refuses_a_durability_wait() {
    let (_space, _cluster, s) = loaded("gw_cl_ready").await;
    let mut aof = s.clone();
    aof.user_state.ack = redrec_userstate::AckMode::Aof;
    let err = redrec_gateway::AppState::new(aof, None)
        .err()
        .expect("ack = aof with a cluster is refused")
        .to_string();
    assert!(err.contains("user_state.ack"), "{err}");
    let mut empty = s.clone();
    empty.redis.user_state = Some(UserStateRedisConfig { cluster: vec![] });
    let err = redrec_gateway::AppState::new(empty, None)
        .err()
        .expect("an empty cluster list is refused")
        .to_string();
    assert!(err.contains("redis.user_state.cluster"), "{err}");

    let app = router(s);
    let r = call(&app, Method::GET, "/readyz", None, None).await;
    let checks = r.json["checks"].as_object().expect("checks");
    let (name, value) = checks
        .iter()
        .find(|(k, _)| k.starts_with("redis user-state cluster"))
        .unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(value, "ok", "{name}: {}", r.text);
}
