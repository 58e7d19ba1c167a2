//! The read routes (recommendations, search, similar, facets), events and users, through
//! `oneshot` against a small synthetic catalog in the real Redis.

use axum::http::{Method, StatusCode};
use redrec_testkit::TestSpace;
use serde_json::json;

use crate::{DIMS, KEY, Reply, call, fixture, router, settings};

async fn loaded(label: &str) -> (TestSpace, axum::Router) {
    let space = TestSpace::new(label);
    let s = settings(&space, DIMS);
    fixture::load(&space, &s.index, &fixture::catalog(10, DIMS)).await;
    let app = router(s);
    (space, app)
}

fn axis(c: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    v[c] = 1.0;
    v
}

fn categories(r: &Reply) -> Vec<String> {
    r.json["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", r.text))
        .iter()
        .map(|i| i["fields"]["category"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn recommendations_by_vector_with_filter_and_explanations() {
    let (_space, app) = loaded("gw_rec_vec").await;
    let body = json!({
        "query": {"vector": axis(0)},
        "filter": {"range": {"field": "price", "lte": 5}},
        "k": 5,
        "explain": true
    });
    let r = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    // Nearest to axis 0 is DAIRY, and every item passes the price filter.
    assert!(
        categories(&r).iter().all(|c| c == "DAIRY"),
        "{:?}",
        categories(&r)
    );
    for it in items {
        assert!(
            it["fields"]["price"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
                <= 5.0
        );
        assert_eq!(it["sources"][0]["source"], "query_vector");
        assert!(it["explanation"]["features"].is_array(), "{it}");
    }
    assert_eq!(r.json["degraded"], false);
    assert_eq!(r.json["profile"], "default");
    let stages: Vec<&str> = r.json["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["retrieve", "rerank"]);
    let timing = r.headers["server-timing"].to_str().unwrap();
    assert!(
        timing.contains("retrieve;dur=")
            && timing.contains("rerank;dur=")
            && timing.contains("total;dur="),
        "{timing}"
    );
}

#[tokio::test]
async fn cold_user_without_query_gets_popular_items() {
    let (_space, app) = loaded("gw_rec_cold").await;
    let body = json!({"user_id": "nobody", "k": 4});
    let r = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["cold_start"], true);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(
        items.iter().all(|i| i["sources"][0]["source"] == "popular"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn degraded_when_rerank_has_no_budget() {
    let space = TestSpace::new("gw_degraded");
    let mut s = settings(&space, DIMS);
    s.gateway.budgets.rerank_ms = 0;
    fixture::load(&space, &s.index, &fixture::catalog(5, DIMS)).await;
    let app = router(s);
    let body = json!({"query": {"vector": axis(1)}, "k": 3, "explain": true});
    let r = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["degraded"], true);
    assert!(
        r.json["degraded_reason"]
            .as_str()
            .unwrap()
            .contains("rerank"),
        "{}",
        r.text
    );
    // Retrieval order: the best similarity first, no explanations.
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(categories(&r).iter().all(|c| c == "BAKERY"));
    let sims: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]), "{sims:?}");
    assert!(items.iter().all(|i| i.get("explanation").is_none()));
    let m = call(&app, Method::GET, "/metrics", None, None).await;
    assert!(
        m.text
            .contains("redrec_degraded_responses_total{reason=\"rerank_budget\"} 1"),
        "{}",
        m.text
    );
}

#[tokio::test]
async fn search_fuses_vector_and_applies_filters() {
    let (_space, app) = loaded("gw_search").await;
    let body = json!({
        "vector": axis(2),
        "filter": {"tag": {"field": "department", "any": ["PRODUCE"]}},
        "k": 3
    });
    let r = call(
        &app,
        Method::POST,
        "/v1/search",
        None,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(categories(&r), ["FRUIT", "FRUIT", "FRUIT"]);
    // Text needs the embedder, which this state does not have: a clear 503.
    let r = call(
        &app,
        Method::POST,
        "/v1/search",
        None,
        Some(r#"{"text":"apple"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("embedder")
    );
    let r = call(&app, Method::POST, "/v1/search", None, Some(r#"{"k":3}"#)).await;
    assert_eq!(r.error(), ("invalid_field", Some("text")), "{}", r.text);
}

#[tokio::test]
async fn similar_items_exclude_the_item_itself() {
    let (_space, app) = loaded("gw_similar").await;
    let r = call(
        &app,
        Method::GET,
        "/v1/items/shampoo-3/similar?k=4",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ids: Vec<&str> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(!ids.contains(&"shampoo-3"));
    assert!(
        categories(&r).iter().all(|c| c == "SHAMPOO"),
        "{:?}",
        categories(&r)
    );
    let filter = urlencode(r#"{"range":{"field":"price","gte":100}}"#);
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/items/shampoo-3/similar?filter={filter}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["items"].as_array().unwrap().len(), 0);
    let r = call(&app, Method::GET, "/v1/items/missing-1/similar", None, None).await;
    assert_eq!(r.error(), ("unknown_item", Some("id")), "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        "/v1/items/shampoo-3/similar?k=0",
        None,
        None,
    )
    .await;
    assert_eq!(r.error(), ("invalid_field", Some("k")), "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        "/v1/items/shampoo-3/similar?filter=%7Bnope",
        None,
        None,
    )
    .await;
    assert_eq!(r.error(), ("invalid_field", Some("filter")), "{}", r.text);
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn recommendation_errors_name_the_field() {
    let space = TestSpace::new("gw_rec_errors");
    let mut s = settings(&space, DIMS);
    s.gateway.body_limit = 2048;
    fixture::load(&space, &s.index, &fixture::catalog(2, DIMS)).await;
    let app = router(s);
    let v = format!("{:?}", axis(0));
    let cases: Vec<(String, StatusCode, &str, Option<&str>)> = vec![
        (
            "{\"k\": 3,".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        // an array where the body object belongs: refused whole (serde would read a struct's
        // fields from it by position), so no field is named
        (
            "[1,2]".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
        (
            r#"{"k":"ten"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("k"),
        ),
        (
            r#"{"k":-1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("k"),
        ),
        (
            r#"{"k":0}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("k"),
        ),
        (
            r#"{"k":1000000}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("k"),
        ),
        (
            r#"{"explain":"yes"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("explain"),
        ),
        (
            r#"{"kk":3}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("kk"),
        ),
        // found by the body fuzzer: serde's structs also accept arrays (fields by position)
        (
            "[]".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
        (
            r#"["u1", null, null, 5]"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
        (
            r#"{"query":{"txt":"milk"}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("query.txt"),
        ),
        (
            r#"{"query":{"vector":[1,2,3]}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("query.vector"),
        ),
        (
            r#"{"query":{"vector":[1,"a"]}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("query.vector[1]"),
        ),
        (
            format!(r#"{{"query":{{"vector":[NaN{}]}}}}"#, ",0".repeat(DIMS - 1)),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            // cosine index: a zero query vector has no direction
            format!(r#"{{"query":{{"vector":[0{}]}}}}"#, ",0".repeat(DIMS - 1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("query.vector"),
        ),
        (
            format!(
                r#"{{"query":{{"vector":[1e40{}]}}}}"#,
                ",0".repeat(DIMS - 1)
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("query.vector"),
        ),
        (
            format!(
                r#"{{"query":{{"vector":{v}}},"filter":{{"tag":{{"field":"colour","any":["red"]}}}}}}"#
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("filter.tag.field"),
        ),
        (
            r#"{"filter":{"and":[{"tag":{"field":"category","any":["A"]}},{"rnage":{}}]}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("filter.and[1]"),
        ),
        (
            r#"{"profile":"nope"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("profile"),
        ),
        (
            r#"{"user_id":"a b"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("user_id"),
        ),
        (
            r#"{"query":{"item_id":"nope-1"}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_item",
            Some("id"),
        ),
        (
            r#"{"query":{"negative":["milk-1"]}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("query.negative"),
        ),
        (
            format!(r#"{{"query":{{"text":"{}"}}}}"#, "milk ".repeat(1000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let r = call(&app, Method::POST, "/v1/recommendations", None, Some(&body)).await;
        let short: String = body.chars().take(90).collect();
        assert_eq!(r.status, status, "{short}: {}", r.text);
        assert_eq!(r.error(), (code, field), "{short}: {}", r.text);
    }
    // Not JSON at all.
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v1/recommendations")
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("k=3"))
        .unwrap();
    let res = tower::ServiceExt::oneshot(app.clone(), req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn events_update_the_user_and_the_next_list() {
    let (_space, app) = loaded("gw_events").await;
    let user = "u-events";
    // Before: a cold user gets popular items, a mix of categories.
    let before = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&json!({"user_id": user, "k": 8}).to_string()),
    )
    .await;
    let share = |r: &Reply| categories(r).iter().filter(|c| *c == "FRUIT").count();
    let before_share = share(&before);
    // Clicks on FRUIT items, as a batch.
    let batch: Vec<_> = (0..3)
        .map(|i| json!({"type": "click", "user_id": user, "item_id": format!("apple-{i}"), "event_id": format!("e{i}")}))
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
    assert_eq!(r.json["applied"], 3);
    // A retry of one event counts once.
    let retry = json!({"type": "click", "user_id": user, "item_id": "apple-0", "event_id": "e0"});
    let r = call(
        &app,
        Method::POST,
        "/v1/events",
        Some(KEY),
        Some(&retry.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["duplicates"], json!([0]));

    let after = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&json!({"user_id": user, "k": 8}).to_string()),
    )
    .await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    assert_eq!(after.json["cold_start"], false);
    let after_share = share(&after);
    assert!(
        after_share > before_share,
        "FRUIT share {before_share} -> {after_share}: {:?}",
        categories(&after)
    );
    // Seen items are excluded by default.
    let ids: Vec<&str> = after.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"apple-0"), "{ids:?}");

    let r = call(&app, Method::GET, &format!("/v1/users/{user}"), None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["counters"]["click"], 3);
    assert!(r.json["category_affinity"]["FRUIT"].as_f64().unwrap() > 0.0);

    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/users/{user}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/users/{user}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&app, Method::GET, &format!("/v1/users/{user}"), None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn event_errors_name_the_event_and_field() {
    let (_space, app) = loaded("gw_event_errors").await;
    let cases = [
        (
            json!({"type": "click", "user_id": "u1", "item_id": "apple-1"}),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            None,
        ),
        (
            json!({"type": "hover", "user_id": "u1", "item_id": "apple-1"}),
            Some(KEY),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("type"),
        ),
        (
            json!({"type": "click", "user_id": "u1", "item": "apple-1"}),
            Some(KEY),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("item"),
        ),
        (
            json!([{"type": "click", "user_id": "u1", "item_id": "apple-1"}, {"type": "click", "user_id": "u1", "item_id": "ghost-9"}]),
            Some(KEY),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_item",
            Some("[1].item_id"),
        ),
        (
            json!([{"type": "dwell", "user_id": "u1", "item_id": "apple-1", "dwell_ms": -5}]),
            Some(KEY),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("[0].dwell_ms"),
        ),
        (
            json!([]),
            Some(KEY),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
        (
            json!("click"),
            Some(KEY),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
    ];
    for (body, key, status, code, field) in cases {
        let r = call(
            &app,
            Method::POST,
            "/v1/events",
            key,
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.error(), (code, field), "{body}: {}", r.text);
    }
    // Nothing from the rejected batch was applied.
    let r = call(&app, Method::GET, "/v1/users/u1", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn facets_list_departments_and_categories() {
    let (_space, app) = loaded("gw_facets").await;
    let r = call(&app, Method::GET, "/v1/facets", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["departments"]["GROCERY"], json!(["BAKERY", "DAIRY"]));
    assert_eq!(r.json["departments"]["PRODUCE"], json!(["FRUIT"]));
}

#[tokio::test]
async fn reads_can_require_a_key() {
    let space = TestSpace::new("gw_read_keys");
    let mut s = settings(&space, DIMS);
    s.gateway.read_keys_required = true;
    fixture::load(&space, &s.index, &fixture::catalog(2, DIMS)).await;
    let app = router(s);
    let r = call(&app, Method::POST, "/v1/recommendations", None, Some("{}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        Some(KEY),
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn connect_adopts_extra_fields_of_the_live_index() {
    let space = TestSpace::new("gw_live_schema");
    let s = settings(&space, DIMS);
    fixture::load(&space, &s.index, &fixture::catalog(3, DIMS)).await;
    let mut con = fixture::conn(&space).await;
    let () = redis::cmd("FT.ALTER")
        .arg(space.ns.index(1))
        .arg("SCHEMA")
        .arg("ADD")
        .arg("product_type")
        .arg("TAG")
        .query_async(&mut con)
        .await
        .unwrap();
    let () = redis::cmd("HSET")
        .arg(space.ns.item("milk-1"))
        .arg("product_type")
        .arg("SKIM")
        .query_async(&mut con)
        .await
        .unwrap();
    // A state built without looking at the server rejects the field ...
    let plain = router(s.clone());
    let body = json!({"filter": {"tag": {"field": "product_type", "any": ["SKIM"]}}, "k": 5});
    let r = call(
        &plain,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(
        r.error(),
        ("invalid_field", Some("filter.tag.field")),
        "{}",
        r.text
    );
    // ... `connect` adopts it: it filters and comes back with the results.
    let state = redrec_gateway::AppState::connect(s, None).await.unwrap();
    let app = redrec_gateway::app(state);
    let r = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["id"], "milk-1");
    assert_eq!(items[0]["fields"]["product_type"], "SKIM");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_a_503() {
    let space = TestSpace::new("gw_deadline");
    let mut s = settings(&space, DIMS);
    s.gateway.deadline_ms = 0;
    fixture::load(&space, &s.index, &fixture::catalog(2, DIMS)).await;
    let app = router(s);
    let body = json!({"user_id": "u1", "k": 3});
    let r = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.error().0, "unavailable");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline passed during stage `features`"),
        "{}",
        r.text
    );
    assert_eq!(r.headers["retry-after"], "1");
    let m = call(&app, Method::GET, "/metrics", None, None).await;
    assert!(
        m.text
            .contains("redrec_stage_timeouts_total{stage=\"features\"} 1"),
        "{}",
        m.text
    );
}
