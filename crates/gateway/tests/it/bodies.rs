//! Arbitrary request bodies through the router (a bounded, seeded fuzz run in every test run):
//! whatever the body, the answer is never a 5xx and never a panic; a JSON body of the wrong type
//! where an object (or an event list) is expected is a 4xx, not a default request. Bodies are
//! built from the real field names, so many get past the first checks and reach the deeper ones.

use axum::http::{Method, StatusCode};
use redrec_core::synthetic::Rng;
use redrec_testkit::TestSpace;
use serde_json::{Map, Value, json};

use super::*;

/// Field names the routes know, and a few they do not.
const NAMES: &[&str] = &[
    "k",
    "user_id",
    "item_id",
    "query",
    "text",
    "vector",
    "filter",
    "profile",
    "explain",
    "exclude_seen",
    "positive",
    "negative",
    "type",
    "event_id",
    "dwell_ms",
    "timestamp_ms",
    "fields",
    "tag",
    "range",
    "and",
    "or",
    "not",
    "all",
    "field",
    "any",
    "gte",
    "lte",
    "gt",
    "lt",
    "match",
    "phrase",
    "prefix",
    "category",
    "price",
    "department",
    "popularity",
    "nope",
    "",
    "\u{0}",
    "k ",
    "KEY",
];

fn string(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "",
        "a",
        "milk",
        "u1",
        "BREAD",
        " ",
        "-",
        "*",
        "@",
        "{",
        "}",
        "|",
        "\\",
        "\"",
        "'",
        "%",
        "é",
        "\u{2028}",
        "\u{0}",
        "long",
        "click",
        "purchase",
        "default",
        "discovery",
        "1e309",
        "NaN",
        "-0",
        "∞",
    ];
    (0..rng.below(4))
        .map(|_| match PIECES[rng.below(PIECES.len())] {
            "long" => "x".repeat(300),
            p => p.to_owned(),
        })
        .collect()
}

fn number(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(1),
        3 => json!(5),
        4 => json!(1e300),
        5 => json!(-1e300),
        6 => json!(u64::MAX),
        7 => json!(0.5),
        _ => json!(i64::MIN),
    }
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    let pick = if depth >= 4 {
        rng.below(4)
    } else {
        rng.below(7)
    };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => number(rng),
        3 => Value::String(string(rng)),
        4 | 5 => {
            let mut m = Map::new();
            for _ in 0..rng.below(5) {
                m.insert(
                    NAMES[rng.below(NAMES.len())].to_owned(),
                    value(rng, depth + 1),
                );
            }
            Value::Object(m)
        }
        _ => {
            let n = if rng.below(8) == 0 { 300 } else { rng.below(5) };
            Value::Array((0..n).map(|_| value(rng, depth + 1)).collect())
        }
    }
}

fn chance(rng: &mut Rng, percent: usize) -> bool {
    rng.below(100) < percent
}

/// A plausible value most of the time, anything at all otherwise.
fn or_any(rng: &mut Rng, plausible: Value) -> Value {
    if chance(rng, 80) {
        plausible
    } else {
        value(rng, 2)
    }
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len())]
}

fn vector(rng: &mut Rng) -> Value {
    let dims = if chance(rng, 85) { DIMS } else { rng.below(12) };
    let zero = chance(rng, 10);
    Value::Array(
        (0..dims)
            .map(|i| {
                if zero {
                    json!(0.0)
                } else {
                    json!((i as f64 + rng.unit()) / 8.0)
                }
            })
            .collect(),
    )
}

fn filter(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth >= 3 || chance(rng, 55);
    let f = if leaf {
        match rng.below(3) {
            0 => json!({"tag": {"field": pick(rng, &["category", "department", "brand", "nope"]),
                                "any": (0..1 + rng.below(3)).map(|_| json!(string(rng))).collect::<Vec<_>>()}}),
            1 => {
                let mut r = Map::new();
                r.insert(
                    "field".into(),
                    json!(pick(rng, &["price", "popularity", "category"])),
                );
                for b in ["gte", "lte", "gt", "lt"] {
                    if chance(rng, 40) {
                        r.insert(b.into(), number(rng));
                    }
                }
                json!({"range": r})
            }
            _ => json!({"text": {"field": "text", "match": string(rng)}}),
        }
    } else {
        let op = pick(rng, &["and", "or", "not"]);
        if op == "not" {
            json!({"not": filter(rng, depth + 1)})
        } else {
            json!({op: (0..1 + rng.below(3)).map(|_| filter(rng, depth + 1)).collect::<Vec<_>>()})
        }
    };
    or_any(rng, f)
}

fn id(rng: &mut Rng, ids: &[String]) -> Value {
    if chance(rng, 70) {
        json!(ids[rng.below(ids.len())])
    } else {
        json!(string(rng))
    }
}

/// A body for one route: the route's own fields, each present half the time, mostly with
/// plausible values (so requests get past the first checks), sometimes anything at all.
fn body(rng: &mut Rng, path: &str, ids: &[String]) -> Value {
    if chance(rng, 10) {
        return value(rng, 2);
    }
    let mut m = Map::new();
    let put = |rng: &mut Rng, m: &mut Map<String, Value>, k: &str, v: Value| {
        if chance(rng, 50) {
            let v = or_any(rng, v);
            m.insert(k.to_owned(), v);
        }
    };
    match path {
        "/v1/recommendations" | "/v1/search" => {
            let k = json!(if chance(rng, 90) {
                1 + rng.below(20)
            } else {
                pick(rng, &["0", "201"]).parse::<usize>().unwrap()
            });
            put(rng, &mut m, "k", k);
            let user = json!(pick(rng, &["u1", "fuzz-u", "", "a b"]));
            put(rng, &mut m, "user_id", user);
            let profile = json!(pick(rng, &["default", "discovery", "repurchase", "nope"]));
            put(rng, &mut m, "profile", profile);
            let b = json!(chance(rng, 50));
            put(rng, &mut m, "explain", b.clone());
            put(rng, &mut m, "exclude_seen", b);
            let f = filter(rng, 0);
            put(rng, &mut m, "filter", f);
            if path == "/v1/search" {
                let v = vector(rng);
                put(rng, &mut m, "vector", v);
            } else {
                let mut q = Map::new();
                match rng.below(4) {
                    0 => {
                        q.insert("vector".into(), vector(rng));
                    }
                    1 => {
                        q.insert("item_id".into(), id(rng, ids));
                    }
                    2 => {
                        q.insert("positive".into(), json!([id(rng, ids), id(rng, ids)]));
                        q.insert("negative".into(), json!([id(rng, ids)]));
                    }
                    _ => {
                        q.insert("text".into(), json!(string(rng)));
                    }
                }
                put(rng, &mut m, "query", Value::Object(q));
            }
        }
        "/v1/events" => {
            let events: Vec<Value> = (0..1 + rng.below(4))
                .map(|_| {
                    let mut e = Map::new();
                    let kind = json!(pick(
                        rng,
                        &[
                            "click", "view", "purchase", "cart_add", "dwell", "skip", "bogus"
                        ]
                    ));
                    e.insert("type".into(), or_any(rng, kind));
                    let user = json!(pick(rng, &["fuzz-u", "u1", ""]));
                    e.insert("user_id".into(), or_any(rng, user));
                    e.insert("item_id".into(), id(rng, ids));
                    let dwell = number(rng);
                    put(rng, &mut e, "dwell_ms", dwell);
                    let eid = json!(format!("fuzz-{}", rng.below(50)));
                    put(rng, &mut e, "event_id", eid);
                    Value::Object(e)
                })
                .collect();
            return if events.len() == 1 && chance(rng, 50) {
                events.into_iter().next().unwrap()
            } else {
                Value::Array(events)
            };
        }
        _ => {
            let mut fields = Map::new();
            for (k, v) in [
                ("text", json!(string(rng))),
                ("category", json!(pick(rng, &["DAIRY", "", " x ", "a,b"]))),
                ("department", json!("GROCERY")),
                ("price", number(rng)),
                ("popularity", number(rng)),
                ("nope", json!(1)),
            ] {
                put(rng, &mut fields, k, v);
            }
            m.insert("fields".into(), or_any(rng, Value::Object(fields)));
            let v = vector(rng);
            put(rng, &mut m, "vector", v);
        }
    }
    Value::Object(m)
}

#[tokio::test]
async fn arbitrary_bodies_never_cause_a_5xx() {
    let space = TestSpace::new("gw_fuzz");
    let s = settings(&space, DIMS);
    let items = fixture::catalog(3, DIMS);
    fixture::load(&space, &s.index, &items).await;
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    let app = router(s);
    let routes: &[(Method, &str, Option<&str>)] = &[
        (Method::POST, "/v1/recommendations", None),
        (Method::POST, "/v1/search", None),
        (Method::POST, "/v1/events", Some(KEY)),
        (Method::PUT, "/v1/items/fuzz-item", Some(KEY)),
    ];
    let cases = std::env::var("REDREC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150usize);
    let mut rng = Rng::new(0x5eed_f022);
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for case in 0..cases {
        for (method, path, key) in routes {
            let b = body(&mut rng, path, &ids);
            let text = b.to_string();
            let r = call(&app, method.clone(), path, *key, Some(&text)).await;
            *by_status.entry(r.status.as_u16()).or_default() += 1;
            // this router has no embedder: a valid text query is a documented 503
            let no_embedder = r.status == StatusCode::SERVICE_UNAVAILABLE
                && r.text.contains("the embedder is not loaded");
            assert!(
                r.status.as_u16() < 500 || no_embedder,
                "case {case}: {method} {path} with {text} answered {}: {}",
                r.status,
                r.text
            );
            // the wrong JSON type at the top is a client error, never a default request
            let object_route = *path != "/v1/events";
            let wrong_type = if object_route {
                !b.is_object()
            } else {
                !(b.is_object() || b.is_array())
            };
            // ... and so is an array where a nested object is expected (a query, an event)
            let nested_array = if object_route {
                b.get("query").is_some_and(Value::is_array)
            } else {
                b.as_array()
                    .is_some_and(|events| events.iter().any(Value::is_array))
            };
            if wrong_type || nested_array {
                assert!(
                    r.status.is_client_error(),
                    "case {case}: {method} {path} accepted {text}: {}",
                    r.status
                );
            }
        }
    }
    println!("{} requests by status: {by_status:?}", cases * routes.len());
    assert!(
        by_status.keys().any(|s| *s < 300),
        "no generated body was ever accepted: the generator only tests the first check"
    );
    // the fuzzed item must not linger
    let r = call(&app, Method::DELETE, "/v1/items/fuzz-item", Some(KEY), None).await;
    assert!(matches!(
        r.status,
        StatusCode::NO_CONTENT | StatusCode::NOT_FOUND
    ));
}

/// Method, path, API key, body, and the `error.field` the 422 must name.
type NestedCase<'a> = (Method, &'a str, Option<&'a str>, &'a str, Option<&'a str>);

/// A nested object given as a JSON array was read field by field by position (found by the body
/// fuzzer): every struct position now takes only an object, and the error names the field.
#[tokio::test]
async fn nested_objects_given_as_arrays_are_422() {
    let space = TestSpace::new("gw_nested_arrays");
    let s = settings(&space, DIMS);
    let app = router(s);
    let cases: &[NestedCase<'_>] = &[
        (
            Method::POST,
            "/v1/recommendations",
            None,
            r#"{"query":["milk"]}"#,
            Some("query"),
        ),
        (
            Method::POST,
            "/v1/recommendations",
            None,
            r#"{"query":["milk",null,null,[],[]],"k":3}"#,
            Some("query"),
        ),
        (
            Method::POST,
            "/v1/search",
            None,
            r#"{"text":"milk","filter":[{"all":{}}]}"#,
            Some("filter"),
        ),
        (
            Method::POST,
            "/v1/events",
            Some(KEY),
            r#"[["view","u1","i1"]]"#,
            Some("[0]"),
        ),
        (
            Method::POST,
            "/v1/events",
            Some(KEY),
            r#"[{"type":"view","user_id":"u1","item_id":"i1"},["view","u1","i1",null,null]]"#,
            Some("[1]"),
        ),
        (
            Method::PUT,
            "/v1/items/nested-array",
            Some(KEY),
            r#"{"fields":[["category","x"]]}"#,
            Some("fields"),
        ),
    ];
    for (method, path, key, body, field) in cases {
        let r = call(&app, method.clone(), path, *key, Some(body)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path} {body}: {}",
            r.text
        );
        let (code, got_field) = r.error();
        assert_eq!(code, "invalid_field", "{body}: {}", r.text);
        assert!(
            got_field.is_some_and(|f| field.is_none_or(|want| f.starts_with(want))),
            "{body}: field {got_field:?}, expected {field:?}: {}",
            r.text
        );
    }
}
