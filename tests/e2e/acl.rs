//! The gateway run as the least-privilege Redis ACL user of docs/SECURITY.md
//! (`redrec_store::acl::gateway_rules`): every endpoint works, and the same user cannot touch
//! keys outside its namespace or run dangerous commands.

use redrec_testkit::{TestSpace, with_user};
use serde_json::json;

use crate::{
    fixture,
    http::json as call,
    support::{KEY, Running, embedder, settings},
};

#[tokio::test]
async fn the_gateway_runs_as_the_documented_least_privilege_user() {
    let space = TestSpace::new("e2e_acl");
    let e = embedder();
    let mut s = settings(&space, e.dims());
    // the catalog is loaded by an operator (the loader role has its own test rules)
    let items = tokio::task::spawn_blocking({
        let e = e.clone();
        move || fixture::text_catalog(e.as_ref())
    })
    .await
    .unwrap();
    fixture::load(&space, &s.index, &items).await;

    let user = space.acl_user(
        "gw",
        "acl-test-pw",
        &redrec_store::acl::gateway_rules(&space.ns),
    );
    s.redis.url = with_user(&s.redis.url, &user.name, &user.password);
    s.gateway.rate_limit.enabled = true;
    s.gateway.rate_limit.requests = 10_000;
    // impressions, attribution and experiment counters under the same rules
    s.online = redrec_gateway::online::OnlineConfig {
        impressions: true,
        experiments: vec![redrec_gateway::online::ExperimentConfig {
            name: "acl-ab".into(),
            routes: Vec::new(),
            variants: ["default", "discovery"]
                .map(|p| redrec_gateway::online::VariantConfig {
                    profile: p.into(),
                    name: None,
                    weight: 1,
                })
                .to_vec(),
        }],
        ..Default::default()
    };
    let gw = Running::start(s.clone(), Some(e)).await;
    let a = gw.addr.as_str();

    let r = call(a, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(a, "GET", "/v1/facets", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(a, "GET", "/v1/index", Some(KEY), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        a,
        "POST",
        "/v1/recommendations",
        None,
        Some(&json!({"k": 5})),
    )
    .await;
    assert_eq!(r.status, 200, "cold start: {}", r.text());
    let r = call(a, "POST", "/v1/search", None, Some(&json!({"text": "cheese", "k": 3, "filter": {"tag": {"field": "department", "any": ["GROCERY"]}}}))).await;
    assert_eq!(r.status, 200, "search: {}", r.text());
    let r = call(a, "GET", "/v1/items/shampoo-0/similar?k=3", None, None).await;
    assert_eq!(r.status, 200, "similar: {}", r.text());
    let r = call(a, "PUT", "/v1/items/dairy-99", Some(KEY), Some(&json!({"fields": {"text": "chocolate milk", "category": "DAIRY", "department": "GROCERY", "price": 2.0}}))).await;
    assert_eq!(r.status, 201, "item upsert: {}", r.text());
    let r = call(a, "GET", "/v1/items/dairy-99", Some(KEY), None).await;
    assert_eq!(r.status, 200, "item read: {}", r.text());
    let r = call(
        a,
        "POST",
        "/v1/events",
        Some(KEY),
        Some(&json!([
            {"type": "click", "user_id": "acl-u", "item_id": "fruit-1"},
            {"type": "purchase", "user_id": "acl-u", "item_id": "dairy-99"}
        ])),
    )
    .await;
    assert_eq!(r.status, 202, "events: {}", r.text());
    let r = call(
        a,
        "POST",
        "/v1/recommendations",
        None,
        Some(&json!({"user_id": "acl-u", "k": 5})),
    )
    .await;
    assert_eq!(r.status, 200, "personal: {}", r.text());
    let served = r.json();
    let variant = served["experiment"]["variant"]
        .as_str()
        .expect("assigned")
        .to_owned();
    // the list is written in the background: wait for it, then click its first item
    let mut recorded = false;
    for _ in 0..40 {
        let rep = call(a, "GET", "/v1/experiments/acl-ab", Some(KEY), None).await;
        assert_eq!(rep.status, 200, "{}", rep.text());
        let v = rep.json()["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == variant.as_str())
            .cloned()
            .unwrap();
        if v["impressions"] == 1 {
            recorded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        recorded,
        "the served list was not recorded under the gateway's ACL"
    );
    let click = json!({"type": "click", "user_id": "acl-u", "item_id": served["items"][0]["id"],
        "rec_id": served["rec_id"], "position": 0});
    let r = call(a, "POST", "/v1/events", Some(KEY), Some(&click)).await;
    assert_eq!(r.status, 202, "attributed click: {}", r.text());
    let rep = call(a, "GET", "/v1/experiments/acl-ab", Some(KEY), None)
        .await
        .json();
    let v = rep["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == variant.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (v["clicks"].clone(), v["ctr"].clone()),
        (json!(1), json!(1.0)),
        "{rep}"
    );
    let r = call(a, "GET", "/v1/users/acl-u", None, None).await;
    assert_eq!(r.json()["counters"]["purchase"], 1, "{}", r.text());
    let r = call(a, "DELETE", "/v1/users/acl-u", Some(KEY), None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = call(a, "DELETE", "/v1/items/dairy-99", Some(KEY), None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    gw.shutdown().await;

    // The same credentials outside the namespace, or on dangerous commands: refused.
    let client = redis::Client::open(s.redis.url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let denied = |r: redis::RedisResult<redis::Value>, what: &str| {
        let e = r.expect_err(what);
        assert!(
            e.to_string().contains("NOPERM") || e.code() == Some("NOPERM"),
            "{what}: {e}"
        );
    };
    denied(
        redis::cmd("GET")
            .arg("other-app:session:1")
            .query_async(&mut con)
            .await,
        "a key of another app",
    );
    denied(
        redis::cmd("SET")
            .arg("other-app:x")
            .arg(1)
            .query_async(&mut con)
            .await,
        "a write outside",
    );
    denied(
        redis::cmd("KEYS").arg("*").query_async(&mut con).await,
        "KEYS",
    );
    denied(
        redis::cmd("FLUSHALL").query_async(&mut con).await,
        "FLUSHALL",
    );
    denied(
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("*")
            .query_async(&mut con)
            .await,
        "CONFIG",
    );
    denied(
        redis::cmd("FT.DROPINDEX")
            .arg(space.ns.alias())
            .query_async(&mut con)
            .await,
        "FT.DROPINDEX",
    );
    denied(
        redis::cmd("EVAL")
            .arg("return 1")
            .arg(0)
            .query_async(&mut con)
            .await,
        "EVAL",
    );
    denied(
        redis::cmd("FUNCTION")
            .arg("FLUSH")
            .query_async(&mut con)
            .await,
        "FUNCTION FLUSH",
    );
}
