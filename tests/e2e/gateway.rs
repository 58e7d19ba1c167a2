//! The gateway over a real socket against the real Redis, with the real MiniLM embedder and a
//! small embedded catalog: every endpoint, the error paths, read-your-writes, fast 503s when
//! Redis hangs, and graceful shutdown draining an in-flight request.

use std::time::Duration;

use redrec_testkit::{
    TestSpace,
    proxy::{Fault, FaultProxy},
};
use serde_json::json;

use crate::{
    fixture,
    http::{self, json as call},
    support::{KEY, Running, catalog_gateway, settings},
};

fn categories(r: &http::Response) -> Vec<String> {
    r.json()["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", r.text()))
        .iter()
        .map(|i| i["fields"]["category"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_endpoint_over_a_socket() {
    let (_space, gw) = catalog_gateway("e2e_gw_all").await;
    let a = gw.addr.as_str();

    let r = call(a, "GET", "/healthz", None, None).await;
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ok")));
    assert!(r.header("x-request-id").is_some());
    let r = call(a, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ready"], true);
    let r = call(a, "GET", "/", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("/v1/recommendations"));
    let r = call(a, "GET", "/openapi.json", None, None).await;
    let doc = r.json();
    for p in [
        "/v1/recommendations",
        "/v1/search",
        "/v1/items/{id}/similar",
        "/v1/events",
        "/v1/users/{id}",
        "/v1/items/{id}",
        "/v1/index",
        "/v1/facets",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi misses {p}");
    }
    let r = call(a, "GET", "/v1/facets", None, None).await;
    assert_eq!(
        r.json()["departments"]["PRODUCE"],
        json!(["FRUIT", "VEGETABLES"])
    );
    let r = call(a, "GET", "/v1/index", Some(KEY), None).await;
    assert_eq!(r.json()["num_docs"], 48, "{}", r.text());

    // Search: text (embedded + BM25) with a department filter.
    let r = call(a, "POST", "/v1/search", None, Some(&json!({"text": "cheese", "k": 3, "filter": {"tag": {"field": "department", "any": ["GROCERY"]}}}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(categories(&r), ["DAIRY", "DAIRY", "DAIRY"], "{}", r.text());
    let stages: Vec<String> = r.json()["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["stage"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stages, ["embed", "retrieve", "rerank"]);
    assert!(r.header("server-timing").unwrap().contains("embed;dur="));

    // Recommendations by text with price filter and explanations.
    let r = call(a, "POST", "/v1/recommendations", None, Some(&json!({"query": {"text": "fresh fruit"}, "k": 4, "explain": true, "filter": {"range": {"field": "price", "lte": 6}}}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cats = categories(&r);
    assert!(
        cats.iter().filter(|c| *c == "FRUIT").count() >= 3,
        "{cats:?}"
    );
    assert!(r.json()["items"][0]["explanation"]["features"].is_array());

    let r = call(a, "GET", "/v1/items/shampoo-0/similar?k=3", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(categories(&r), ["SHAMPOO", "SHAMPOO", "SHAMPOO"]);

    // Admin item upsert without a vector: the text is embedded.
    let r = call(a, "PUT", "/v1/items/dairy-99", Some(KEY), Some(&json!({"fields": {"text": "chocolate milk", "category": "DAIRY", "department": "GROCERY", "price": 2.0}}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["vector_source"], "embedded");
    let r = call(a, "GET", "/v1/items/dairy-99", Some(KEY), None).await;
    assert_eq!(r.json()["fields"]["text"], "chocolate milk");
    let r = call(a, "DELETE", "/v1/items/dairy-99", Some(KEY), None).await;
    assert_eq!(r.status, 204);

    let r = call(
        a,
        "POST",
        "/v1/events",
        Some(KEY),
        Some(&json!({"type": "view", "user_id": "e2e-u", "item_id": "fruit-1"})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = call(a, "GET", "/v1/users/e2e-u", None, None).await;
    assert_eq!(r.json()["counters"]["view"], 1, "{}", r.text());
    let r = call(a, "DELETE", "/v1/users/e2e-u", Some(KEY), None).await;
    assert_eq!(r.status, 204);

    let r = call(a, "GET", "/metrics", None, None).await;
    let text = r.text();
    for needle in [
        "redrec_http_requests_total{method=\"POST\",route=\"/v1/search\",status=\"200\"} 1",
        "redrec_stage_duration_seconds_count{stage=\"embed\"}",
        "redrec_stage_duration_seconds_count{stage=\"retrieve\"}",
        "redrec_stage_duration_seconds_count{stage=\"rerank\"}",
        "redrec_redis_pool_connections{state=\"open\"}",
    ] {
        assert!(text.contains(needle), "metrics miss {needle}:\n{text}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn error_paths_over_a_socket() {
    let space = TestSpace::new("e2e_gw_errors");
    let mut s = settings(&space, 8);
    s.gateway.body_limit = 1024;
    fixture::load(&space, &s.index, &fixture::catalog(2, 8)).await;
    let gw = Running::start(s, None).await;
    let a = gw.addr.as_str();
    let raw = |body: &'static str| async move {
        http::request(
            a,
            "POST",
            "/v1/recommendations",
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
        .await
    };
    let r = raw("{\"k\":").await;
    assert_eq!((r.status, r.error().0.as_str()), (400, "malformed_json"));
    let r = raw("{\"k\":\"3\"}").await;
    assert_eq!(
        (r.status, r.error()),
        (422, ("invalid_field".into(), Some("k".into())))
    );
    let r = raw("{\"k\":0}").await;
    assert_eq!(r.error(), ("invalid_field".into(), Some("k".into())));
    let r = raw("{\"k\":100000}").await;
    assert_eq!(r.error(), ("invalid_field".into(), Some("k".into())));
    let r = raw("{\"filter\":{\"tag\":{\"field\":\"nope\",\"any\":[\"x\"]}}}").await;
    assert_eq!(
        r.error(),
        ("invalid_field".into(), Some("filter.tag.field".into()))
    );
    let r = raw("{\"query\":{\"vector\":[0.1,0.2]}}").await;
    assert_eq!(
        r.error(),
        ("invalid_field".into(), Some("query.vector".into()))
    );
    let r = raw("{\"query\":{\"vector\":[NaN,0,0,0,0,0,0,0]}}").await;
    assert_eq!(r.status, 400);
    let big = format!("{{\"query\":{{\"text\":\"{}\"}}}}", "a".repeat(4096));
    let r = http::request(
        a,
        "POST",
        "/v1/recommendations",
        &[("Content-Type", "application/json")],
        Some(big.as_bytes()),
    )
    .await;
    assert_eq!((r.status, r.error().0.as_str()), (413, "payload_too_large"));
    let r = call(
        a,
        "PUT",
        "/v1/items/x1",
        None,
        Some(&json!({"fields": {}, "vector": vec![0.0f32; 8]})),
    )
    .await;
    assert_eq!((r.status, r.error().0.as_str()), (401, "unauthorized"));
    let r = call(a, "DELETE", "/v1/items/x1", Some("bad-key"), None).await;
    assert_eq!(r.status, 401);
    let r = call(
        a,
        "PUT",
        "/v1/items/x1",
        Some(KEY),
        Some(&json!({"fields": {}, "vector": [1.0, 2.0]})),
    )
    .await;
    assert_eq!(r.error(), ("invalid_field".into(), Some("vector".into())));
    gw.shutdown().await;
}

#[tokio::test]
async fn clicks_raise_the_share_of_their_category_in_the_next_list() {
    let (_space, gw) = catalog_gateway("e2e_gw_ryw").await;
    let a = gw.addr.as_str();
    let user = "ryw-user";
    let k = 10;
    let share = |r: &http::Response| {
        let cats = categories(r);
        cats.iter().filter(|c| *c == "VITAMINS").count() as f64 / cats.len().max(1) as f64
    };
    let before = call(
        a,
        "POST",
        "/v1/recommendations",
        None,
        Some(&json!({"user_id": user, "k": k})),
    )
    .await;
    assert_eq!(before.status, 200, "{}", before.text());
    let before_share = share(&before);
    for item in ["vitamins-2", "vitamins-5"] {
        let r = call(
            a,
            "POST",
            "/v1/events",
            Some(KEY),
            Some(&json!({"type": "click", "user_id": user, "item_id": item})),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    // No sleep: the very next request must see the clicks.
    let after = call(
        a,
        "POST",
        "/v1/recommendations",
        None,
        Some(&json!({"user_id": user, "k": k})),
    )
    .await;
    assert_eq!(after.status, 200, "{}", after.text());
    let after_share = share(&after);
    assert!(
        after_share > before_share,
        "share of VITAMINS in the top {k}: before {before_share:.2} {:?}, after {after_share:.2} {:?}",
        categories(&before),
        categories(&after)
    );
    assert!(
        after_share >= 0.5,
        "after {after_share:.2}: {:?}",
        categories(&after)
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn hanging_redis_gives_a_fast_503_and_shutdown_drains_in_flight_requests() {
    let space = TestSpace::new("e2e_gw_hang");
    let mut s = settings(&space, 8);
    // Redis hanging: connections are accepted, nothing is ever answered
    let (hole, through) = FaultProxy::in_front_of(&s.redis.url, Fault::BlackHole).await;
    s.redis.url = through;
    s.redis.command_timeout_ms = 300;
    s.redis.connect_timeout_ms = 300;
    let gw = Running::start(s, None).await;
    let addr = gw.addr.clone();

    let started = std::time::Instant::now();
    let r = call(
        &addr,
        "POST",
        "/v1/recommendations",
        None,
        Some(&json!({"user_id": "u1"})),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(took < Duration::from_secs(2), "503 took {took:?}");
    let r = call(&addr, "GET", "/readyz", None, None).await;
    assert_eq!((r.status, r.json()["ready"].clone()), (503, json!(false)));

    // An in-flight request (waiting on the hanging Redis) still gets its answer after shutdown
    // starts, and the server stops once it is done.
    let inflight = tokio::spawn({
        let addr = addr.clone();
        async move { call(&addr, "GET", "/v1/items/x", Some(KEY), None).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.shutdown().await;
    let r = inflight.await.unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    // New connections are refused after shutdown.
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
    drop(hole);
}

#[tokio::test]
async fn no_rerank_budget_degrades_to_retrieval_order_over_a_socket() {
    let space = TestSpace::new("e2e_gw_deadline");
    let mut s = settings(&space, 8);
    // Generous budgets elsewhere (the shared test Redis can be slow), none for reranking.
    s.gateway.budgets.rerank_ms = 0;
    fixture::load(&space, &s.index, &fixture::catalog(5, 8)).await;
    let gw = Running::start(s, None).await;
    let mut v = vec![0.0f32; 8];
    v[3] = 1.0;
    let r = call(
        &gw.addr,
        "POST",
        "/v1/recommendations",
        None,
        Some(&json!({"query": {"vector": v}, "k": 3})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["degraded"], true);
    assert_eq!(categories(&r), ["SHAMPOO", "SHAMPOO", "SHAMPOO"]);
    gw.shutdown().await;
}
