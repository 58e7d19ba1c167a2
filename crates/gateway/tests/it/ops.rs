//! Operational and admin routes: health, readiness, metrics, OpenAPI, index info, item CRUD,
//! authentication and the body error paths.

use axum::http::{Method, StatusCode};
use redrec_testkit::TestSpace;

use crate::{DIMS, KEY, call, fixture, router, settings};

#[tokio::test]
async fn healthz_and_server_timing_and_request_id() {
    let space = TestSpace::new("gw_health");
    let app = router(settings(&space, DIMS));
    let r = call(&app, Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "ok");
    let timing = r.headers["server-timing"].to_str().unwrap();
    assert!(timing.starts_with("total;dur="), "{timing}");
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn readyz_reports_each_check() {
    let space = TestSpace::new("gw_ready");
    let s = settings(&space, DIMS);
    let app = router(s.clone());
    // Redis is up, but there is no index and no embedder.
    let r = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["ready"], false);
    assert_eq!(r.json["checks"]["redis"], "ok");
    assert!(
        r.json["checks"]["index"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{}",
        r.text
    );
    assert_eq!(r.json["checks"]["embedder"], "not loaded");

    fixture::load(&space, &s.index, &fixture::catalog(3, DIMS)).await;
    let r = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(r.json["checks"]["index"], "ok", "{}", r.text);
}

#[tokio::test]
async fn readyz_is_false_and_reads_fail_fast_when_redis_is_down() {
    let space = TestSpace::new("gw_down");
    let mut s = settings(&space, DIMS);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    s.redis.url = format!("redis://127.0.0.1:{port}");
    let app = router(s);
    let started = std::time::Instant::now();
    let r = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["ready"], false);
    assert_ne!(r.json["checks"]["redis"], "ok");
    let r = call(&app, Method::GET, "/v1/items/x", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.error().0, "unavailable");
    assert_eq!(r.headers["retry-after"], "1");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // One failed Redis call behind each of the two responses (readyz's ping, the item read),
    // counted by the metrics middleware.
    let r = call(&app, Method::GET, "/metrics", None, None).await;
    assert!(
        r.text
            .contains("redrec_redis_errors_total{kind=\"connection\"} 2"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let space = TestSpace::new("gw_metrics");
    let app = router(settings(&space, DIMS));
    call(&app, Method::GET, "/healthz", None, None).await;
    let r = call(&app, Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    check_prometheus_text(&r.text);
    assert!(r.text.contains(
        "redrec_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
    ));
    assert!(
        r.text
            .contains("redrec_redis_pool_connections{state=\"max\"} 8")
    );
}

/// A strict reader of the OpenMetrics text format: every sample belongs to a declared family
/// (counters' samples end in `_total`, histograms' in `_bucket`, `_sum`, `_count`), names and
/// labels are well-formed, values parse, histogram buckets are cumulative and end in +Inf, and
/// the exposition ends with `# EOF`.
pub fn check_prometheus_text(text: &str) {
    use std::collections::BTreeMap;
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut last_bucket: BTreeMap<String, f64> = BTreeMap::new();
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end");
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line in OpenMetrics text");
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE line");
            assert!(["counter", "gauge", "histogram"].contains(&ty), "{line}");
            assert!(
                types.insert(name.to_owned(), ty.to_owned()).is_none(),
                "family {name} declared twice"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, Some(l.strip_suffix('}').expect("closing brace"))),
            None => (series, None),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name}"
        );
        let family = [
            ("_total", "counter"),
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
        ]
        .iter()
        .find_map(|(suffix, ty)| {
            name.strip_suffix(suffix)
                .filter(|f| types.get(*f).map(String::as_str) == Some(*ty))
        })
        .unwrap_or(name);
        let ty = types
            .get(family)
            .unwrap_or_else(|| panic!("sample {name} has no TYPE line"));
        assert!(
            ty != "counter" || name.ends_with("_total"),
            "counter sample {name} without _total"
        );
        let mut le = None;
        let mut others = Vec::new();
        if let Some(l) = labels {
            for pair in split_labels(l) {
                let (k, v) = pair.split_once('=').expect("label k=v");
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
                if k == "le" {
                    le = Some(v.to_owned());
                } else {
                    others.push(pair.clone());
                }
            }
        }
        if name.ends_with("_bucket") {
            let le = le.unwrap_or_else(|| panic!("bucket without le: {line}"));
            let key = format!("{name}{{{}}}", others.join(","));
            let prev = last_bucket.insert(key.clone(), v).unwrap_or(0.0);
            assert!(v >= prev, "buckets not cumulative at {line}");
            if le == "\"+Inf\"" {
                last_bucket.remove(&key);
            }
        }
    }
    assert!(
        last_bucket.is_empty(),
        "histograms without +Inf: {last_bucket:?}"
    );
    assert!(!types.is_empty(), "no metric families");
}

fn split_labels(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let space = TestSpace::new("gw_openapi");
    let app = router(settings(&space, DIMS));
    let r = call(&app, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["openapi"].as_str().unwrap().starts_with("3."));
    let paths = r.json["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/index",
        "/v1/items/{id}",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    // Every $ref points at a declared schema.
    let schemas = r.json["components"]["schemas"].as_object().unwrap();
    for (_, target) in r.text.match_indices("#/components/schemas/").map(|(i, _)| {
        let rest = &r.text[i + "#/components/schemas/".len()..];
        ((), rest.split('"').next().unwrap().to_owned())
    }) {
        // `Name` or `Name/$defs/Part`
        let name = target.split('/').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {target}");
    }
}

#[tokio::test]
async fn admin_routes_need_a_valid_key() {
    let space = TestSpace::new("gw_auth");
    let app = router(settings(&space, DIMS));
    let body = format!(
        r#"{{"fields":{{"category":"DAIRY"}},"vector":{:?}}}"#,
        vec![0.5f32; DIMS]
    );
    for (method, uri, body) in [
        (Method::PUT, "/v1/items/a1", Some(body.as_str())),
        (Method::GET, "/v1/items/a1", None),
        (Method::DELETE, "/v1/items/a1", None),
        (Method::GET, "/v1/index", None),
    ] {
        let r = call(&app, method.clone(), uri, None, body).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri}: {}",
            r.text
        );
        assert_eq!(r.error().0, "unauthorized");
        assert!(r.headers.contains_key("www-authenticate"));
        let r = call(&app, method.clone(), uri, Some("wrong"), body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
}

#[tokio::test]
async fn item_upsert_get_delete_roundtrip() {
    let space = TestSpace::new("gw_items");
    let s = settings(&space, DIMS);
    let app = router(s.clone());
    fixture::load(&space, &s.index, &[]).await;
    let v: Vec<f32> = (0..DIMS).map(|i| i as f32 * 0.1).collect();
    let body = serde_json::json!({
        "fields": {"category": "DAIRY", "department": "GROCERY", "price": 2.5, "text": "whole milk", "color": "white"},
        "vector": v,
    })
    .to_string();
    let r = call(&app, Method::PUT, "/v1/items/m1", Some(KEY), Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["created"], true);
    let r = call(&app, Method::PUT, "/v1/items/m1", Some(KEY), Some(&body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["created"], false);

    let r = call(
        &app,
        Method::GET,
        "/v1/items/m1?with_vector=true",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["fields"]["category"], "DAIRY");
    assert_eq!(r.json["fields"]["price"], "2.5");
    assert_eq!(r.json["fields"]["color"], "white");
    assert_eq!(r.json["vector"].as_array().unwrap().len(), DIMS);
    assert!((r.json["vector"][3].as_f64().unwrap() - 0.3).abs() < 1e-6);

    let r = call(&app, Method::GET, "/v1/index", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["num_docs"], 1);
    assert_eq!(r.json["index_name"], space.ns.index(1));
    assert_eq!(r.json["fields"]["category"], "TAG");

    let r = call(&app, Method::DELETE, "/v1/items/m1", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&app, Method::GET, "/v1/items/m1", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error().0, "not_found");
    let r = call(&app, Method::DELETE, "/v1/items/m1", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn item_upsert_rejects_bad_input_naming_the_field() {
    let space = TestSpace::new("gw_item_errors");
    let mut s = settings(&space, DIMS);
    s.gateway.body_limit = 4096;
    let app = router(s);
    let good_vec = format!("{:?}", vec![0.5f32; DIMS]);
    let cases: Vec<(String, StatusCode, &str, Option<&str>)> = vec![
        (
            "{\"fields\": {".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            format!(
                r#"{{"fields":{{}},"vector":[NaN{}]}}"#,
                ",0.5".repeat(DIMS - 1)
            ),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            format!(
                r#"{{"fields":{{}},"vector":[1e39{}]}}"#,
                ",0.5".repeat(DIMS - 1)
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("vector"),
        ),
        (
            r#"{"fields":{},"vector":[0.5,0.5]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("vector"),
        ),
        (
            format!(r#"{{"fields":{{}},"vector":{good_vec},"extra":1}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("extra"),
        ),
        (
            format!(r#"{{"fields":{{"price":"cheap"}},"vector":{good_vec}}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("fields.price"),
        ),
        (
            format!(r#"{{"fields":{{"category":7}},"vector":{good_vec}}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("fields.category"),
        ),
        (
            // The item codec's tag rules (shared with ingest): no empty tag between separators.
            format!(r#"{{"fields":{{"category":"DAIRY,,MILK"}},"vector":{good_vec}}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("fields.category"),
        ),
        (
            r#"{"fields":{},"vector":"abc"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("vector"),
        ),
        (
            r#"{"fields":{}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("vector"),
        ),
        (
            format!(
                r#"{{"fields":{{"text":"{}"}},"vector":{good_vec}}}"#,
                "x".repeat(5000)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let r = call(&app, Method::PUT, "/v1/items/bad", Some(KEY), Some(&body)).await;
        let short: String = body.chars().take(80).collect();
        assert_eq!(r.status, status, "{short}: {}", r.text);
        assert_eq!(r.error(), (code, field), "{short}: {}", r.text);
        assert!(!r.json["error"]["message"].as_str().unwrap().is_empty());
    }
    let r = call(
        &app,
        Method::PUT,
        "/v1/items/bad%20id",
        Some(KEY),
        Some("{\"fields\":{}}"),
    )
    .await;
    assert_eq!(r.error(), ("invalid_field", Some("id")), "{}", r.text);
    let r = call(
        &app,
        Method::GET,
        "/v1/items/x?with_vector=maybe",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        r.error(),
        ("invalid_field", Some("with_vector")),
        "{}",
        r.text
    );
    let r = call(&app, Method::GET, "/v1/items/x?colour=red", Some(KEY), None).await;
    assert_eq!(r.error(), ("invalid_field", Some("colour")), "{}", r.text);
    let r = call(&app, Method::GET, "/nope", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rate_limit_counts_in_redis_per_key() {
    let space = TestSpace::new("gw_rate");
    let mut s = settings(&space, DIMS);
    s.gateway.rate_limit.enabled = true;
    s.gateway.rate_limit.requests = 3;
    s.gateway.rate_limit.window_ms = 60_000;
    let app = router(s);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(call(&app, Method::GET, "/v1/items/none", Some(KEY), None).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(codes, [404, 404, 404, 429, 429]);
    assert_eq!(statuses[3].error().0, "rate_limited");
    assert!(statuses[3].headers.contains_key("retry-after"));
    // Counted in the shared Redis under the namespace.
    let mut con = space.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:rl:*", space.ns.name()))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    // Operational routes are not limited.
    assert_eq!(
        call(&app, Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    // The two refusals are counted once each, by the metrics middleware.
    let r = call(&app, Method::GET, "/metrics", None, None).await;
    assert!(r.text.contains("redrec_rate_limited_total 2"), "{}", r.text);
}
