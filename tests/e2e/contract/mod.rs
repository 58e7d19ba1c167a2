//! The API contract: requests generated from the gateway's own `/openapi.json`, sent over a
//! socket to the real gateway (real Redis, real embedder). A request valid by the document must
//! not be refused by validation; a request breaking one rule of the document must be refused
//! with 400 or 422; every response's status must be documented for its route and its body must
//! match the documented schema. A stateful pass then walks item -> event -> recommendations ->
//! user -> delete. Fixed seed: the same requests every run.

mod generate;
mod schema;

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use redrec_gateway::online::{ExperimentConfig, OnlineConfig, VariantConfig};
use serde_json::{Value, json};

use crate::{
    fixture, http,
    support::{self, KEY, catalog_gateway, catalog_gateway_with},
};
use generate::{Generator, Rng};
use schema::Validator;

const SEED: u64 = 0x5EED_2026_0020;
/// Generated requests per run (at least; the stateful pass adds its own).
const REQUESTS: usize = 1500;
/// The generated pass stops early past this, and then must still have sent [`MIN_REQUESTS`].
const TIME_LIMIT: Duration = Duration::from_secs(50);
const MIN_REQUESTS: usize = 300;

/// One operation of the document.
struct Operation<'d> {
    method: String,
    path: String,
    op: &'d Value,
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                op,
            });
        }
    }
    out
}

/// What the gateway must do with a request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Valid by the document: not refused by validation (2xx, or 404 / 413 / `unknown_item`,
    /// which depend on the data, not on the request's form).
    Valid,
    /// Breaks one rule of the document: 400 or 422.
    Refused,
    /// Exactly this status (wrong media type, missing key).
    Status(u16),
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    expect: Expect,
    what: String,
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A parameter value as sent in a URL.
fn to_text(v: &Value, json_content: bool) -> String {
    match v {
        Value::String(s) if !json_content => s.clone(),
        other if json_content => other.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The value the gateway reads from URL text, for checking against the parameter's schema.
fn as_received(text: &str, schema: &Value, json_content: bool) -> Value {
    if json_content {
        return serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<u64>().map(Value::from))
            .unwrap_or(Value::String(text.to_owned())),
        Some("boolean") => match text {
            "true" => json!(true),
            "false" => json!(false),
            _ => Value::String(text.to_owned()),
        },
        _ => Value::String(text.to_owned()),
    }
}

/// The schema of parameter `p` and whether it travels as JSON (`content`).
fn param_schema(p: &Value) -> (Value, bool) {
    match p.get("content") {
        Some(c) => (c["application/json"]["schema"].clone(), true),
        None => (p["schema"].clone(), false),
    }
}

/// Builds one request for `op`: valid, or with exactly one part broken.
fn build(g: &mut Generator<'_>, op: &Operation<'_>) -> Option<Request> {
    let params: Vec<&Value> = op.op["parameters"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let body_schema = op.op["requestBody"]["content"]["application/json"]["schema"].clone();
    let has_body = !body_schema.is_null();
    let secured = op.op.get("security").is_some();
    let query_params = params.iter().filter(|p| p["in"] == "query").count();

    // which part to break: 0 = none, 1.. = parameter i-1, params+1 = body, params+2 = an
    // unknown query parameter; or a protocol fault
    let roll = g.rng.below(100);
    let mut fault: Option<(u16, &str)> = None;
    let mut broken_part = None;
    if (40..90).contains(&roll) {
        let mut parts: Vec<usize> = (1..=params.len()).collect();
        if has_body {
            parts.push(params.len() + 1);
        }
        if query_params > 0 {
            parts.push(params.len() + 2);
        }
        if !parts.is_empty() {
            broken_part = Some(*g.rng.pick(&parts));
        }
    } else if (90..95).contains(&roll) && has_body {
        fault = Some((415, "text/plain body"));
    } else if roll >= 95 && secured {
        fault = Some((401, "no API key"));
    }

    let mut path = op.path.clone();
    let mut query = Vec::new();
    let mut valid = true;
    let mut what = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let name = p["name"].as_str().expect("parameter name");
        let (schema, json_content) = param_schema(p);
        let required = p["required"].as_bool().unwrap_or(false);
        let breaking = broken_part == Some(i + 1);
        if !breaking && !required && g.rng.chance(0.5) {
            continue;
        }
        let value = if breaking {
            let (v, w) = g.invalid(&schema)?;
            what.push(format!("{name}: {w}"));
            v
        } else {
            g.valid(&schema)?
        };
        let text = to_text(&value, json_content);
        if p["in"] == "path" {
            // an empty segment is another route, not a bad id
            if text.is_empty() {
                return None;
            }
            path = path.replace(&format!("{{{name}}}"), &percent_encode(&text));
        } else {
            query.push(format!("{name}={}", percent_encode(&text)));
        }
        if !g
            .validator
            .is_valid(&schema, &as_received(&text, &schema, json_content))
        {
            valid = false;
        }
    }
    if broken_part == Some(params.len() + 2) {
        query.push("unexpected_param=1".into());
        what.push("an undocumented query parameter".into());
        valid = false;
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let body = if has_body {
        let value = if broken_part == Some(params.len() + 1) {
            let (v, w) = g.invalid(&body_schema)?;
            what.push(format!("body: {w}"));
            v
        } else {
            g.valid(&body_schema)?
        };
        if !g.validator.is_valid(&body_schema, &value) {
            valid = false;
        }
        Some(serde_json::to_vec(&value).expect("json"))
    } else {
        None
    };

    let mut headers = Vec::new();
    if has_body {
        let ct = if fault.is_some_and(|f| f.0 == 415) {
            "text/plain"
        } else {
            "application/json"
        };
        headers.push(("content-type".to_owned(), ct.to_owned()));
    }
    if fault.is_none_or(|f| f.0 != 401) {
        if g.rng.chance(0.5) {
            headers.push(("authorization".to_owned(), format!("Bearer {KEY}")));
        } else {
            headers.push(("x-api-key".to_owned(), KEY.to_owned()));
        }
    }
    let expect = match fault {
        Some((status, w)) => {
            what.push(w.to_owned());
            Expect::Status(status)
        }
        None if valid => Expect::Valid,
        None => Expect::Refused,
    };
    Some(Request {
        method: op.method.clone(),
        path,
        headers,
        body,
        expect,
        what: if what.is_empty() {
            "valid".into()
        } else {
            what.join(", ")
        },
    })
}

/// Checks `r` against the documented responses of `op`: the status is listed, and the body has
/// the documented media type and schema.
fn check_documented(v: &Validator<'_>, op: &Value, r: &http::Response) -> Result<(), String> {
    let documented = op["responses"]
        .get(r.status.to_string())
        .ok_or_else(|| format!("status {} is not documented", r.status))?;
    let Some(content) = documented.get("content").and_then(Value::as_object) else {
        return if r.body.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "status {} documents no body, got {}",
                r.status,
                r.text()
            ))
        };
    };
    let ct = r.header("content-type").unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    let media = content
        .get(mime)
        .ok_or_else(|| format!("content type `{ct}` is not documented for {}", r.status))?;
    if mime == "application/json" {
        let body: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("body is not JSON ({e}): {}", r.text()))?;
        if let Some(schema) = media.get("schema") {
            v.check(schema, &body, "$")
                .map_err(|e| format!("body does not match the schema: {e}; body {body}"))?;
        }
    }
    Ok(())
}

/// Judges one response; `Err` is a contract failure.
fn judge(
    v: &Validator<'_>,
    op: &Operation<'_>,
    req: &Request,
    r: &http::Response,
) -> Result<(), String> {
    check_documented(v, op.op, r)?;
    let code = || {
        serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|b| b["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let ok = match req.expect {
        Expect::Valid if op.path.starts_with("/v1/") => {
            (200..300).contains(&r.status)
                || r.status == 404
                || r.status == 413
                || (r.status == 422 && code() == "unknown_item")
        }
        // operational routes answer what their state says (`/readyz`: 200 or 503)
        Expect::Valid => r.status < 500 || op.path == "/readyz",
        Expect::Refused => r.status == 400 || r.status == 422,
        Expect::Status(s) => r.status == s,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {:?}, got {}: {}",
            req.expect,
            r.status,
            r.text()
        ))
    }
}

async fn send(addr: &str, req: &Request) -> http::Response {
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http::request(addr, &req.method, &req.path, &headers, req.body.as_deref()).await
}

/// Items with the numeric ids the generator draws for integer ids (`0..30`), and one event per
/// user for every id, so generated requests find items and users; returns every id (the pool
/// of the `Id` schema).
async fn seed(addr: &str) -> Vec<Value> {
    let mut ids = catalog_ids();
    let auth = format!("Bearer {KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    for n in 0..30 {
        let body = json!({"fields": {"text": format!("numbered product {n}"), "category": "NUMBERED",
            "department": "GROCERY", "price": n}});
        let r = http::request(
            addr,
            "PUT",
            &format!("/v1/items/{n}"),
            &headers,
            Some(&serde_json::to_vec(&body).unwrap()),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        ids.push(json!(n.to_string()));
    }
    let events: Vec<Value> = ids
        .iter()
        .zip(ids.iter().rev())
        .map(|(user, item)| json!({"type": "view", "user_id": user, "item_id": item}))
        .collect();
    let r = http::request(
        addr,
        "POST",
        "/v1/events",
        &headers,
        Some(&serde_json::to_vec(&events).unwrap()),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    ids
}

/// The ids of the fixture's text catalog (`fixture::text_catalog`).
fn catalog_ids() -> Vec<Value> {
    fixture::PRODUCTS
        .iter()
        .flat_map(|(_, cat, names)| {
            (0..names.len()).map(move |i| json!(format!("{}-{i}", cat.to_lowercase())))
        })
        .collect()
}

#[tokio::test]
async fn generated_requests_match_the_openapi_document() {
    // an experiment, so `GET /v1/experiments/{name}` has a name to take and lists are recorded
    let (_space, gw) = catalog_gateway_with("e2e_contract", |s| {
        s.online = OnlineConfig {
            impressions: true,
            experiments: vec![ExperimentConfig {
                name: "contract-ab".into(),
                routes: Vec::new(),
                variants: ["default", "discovery"]
                    .map(|p| VariantConfig {
                        profile: p.into(),
                        name: None,
                        weight: 1,
                    })
                    .to_vec(),
            }],
            ..OnlineConfig::default()
        };
    })
    .await;
    let addr = gw.addr.clone();
    let r = http::request(&addr, "GET", "/openapi.json", &[], None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    let ops = operations(&doc);

    let ids = seed(&addr).await;
    let mut g = Generator {
        validator: Validator::new(&doc),
        // another seed explores further: REDREC_CONTRACT_SEED=<n>
        rng: Rng::new(
            std::env::var("REDREC_CONTRACT_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(SEED),
        ),
        pools: HashMap::from([("Id".to_owned(), ids)]),
    };
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut tally: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sent = 0;
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    // valid requests the data (not the form) turned away: 404, `unknown_item`
    let mut data_refusals = 0;
    for i in 0..REQUESTS {
        if started.elapsed() > TIME_LIMIT {
            break;
        }
        let op = &ops[i % ops.len()];
        let Some(req) = build(&mut g, op) else {
            *skipped
                .entry(format!("{} {}", op.method, op.path))
                .or_default() += 1;
            continue;
        };
        let r = send(&addr, &req).await;
        sent += 1;
        *kinds
            .entry(match req.expect {
                Expect::Valid => "valid",
                Expect::Refused => "invalid",
                Expect::Status(_) => "protocol",
            })
            .or_default() += 1;
        *tally
            .entry(format!("{} {}", op.method, op.path))
            .or_default()
            .entry(r.status)
            .or_default() += 1;
        if req.expect == Expect::Valid && (r.status == 404 || r.status == 422) {
            data_refusals += 1;
        }
        if let Err(e) = judge(&g.validator, op, &req, &r) {
            failures.push(format!(
                "{} {} ({}): {e}\n  body: {}",
                req.method,
                req.path,
                req.what,
                req.body
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b)
                        .chars()
                        .take(600)
                        .collect::<String>())
                    .unwrap_or_default()
            ));
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "contract: {sent} generated requests in {:.1} s ({kinds:?}; {data_refusals} valid ones \
         answered 404 or unknown_item; not generated: {skipped:?}), statuses per route: {tally:#?}",
        elapsed.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} contract failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sent >= MIN_REQUESTS, "only {sent} requests in {elapsed:?}");
    let not_built: usize = skipped.values().sum();
    assert!(
        not_built * 10 < sent,
        "the generator could not build {not_built} requests: {skipped:?}"
    );
    // every operation was reached with a request it accepted, and with one it refused
    for op in &ops {
        let statuses = &tally[&format!("{} {}", op.method, op.path)];
        assert!(
            statuses.keys().any(|s| (200..300).contains(s)) || op.path == "/readyz",
            "{} {} never answered 2xx: {statuses:?}",
            op.method,
            op.path
        );
    }

    stateful(&g.validator, &ops, &addr).await;
    gw.shutdown().await;
}

/// PUT item -> POST event -> POST recommendations -> GET user -> DELETE item -> DELETE user,
/// each response checked against the document.
async fn stateful(v: &Validator<'_>, ops: &[Operation<'_>], addr: &str) {
    let dims = v.resolve("#/components/schemas/ItemVector")["minItems"]
        .as_u64()
        .expect("vector dims") as usize;
    let find = |method: &str, path: &str| {
        ops.iter()
            .find(|o| o.method == method && o.path == path)
            .unwrap_or_else(|| panic!("the document has no {method} {path}"))
            .op
    };
    let key = [("authorization", format!("Bearer {KEY}"))];
    let step =
        async |method: &str, template: &str, path: &str, body: Option<Value>, status: u16| {
            let mut headers: Vec<(&str, &str)> =
                key.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let bytes = body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
            if bytes.is_some() {
                headers.push(("content-type", "application/json"));
            }
            if let Some(b) = &body {
                let schema =
                    &find(method, template)["requestBody"]["content"]["application/json"]["schema"];
                v.check(schema, b, "$").unwrap_or_else(|e| {
                    panic!("{method} {path}: the stateful request is invalid: {e}")
                });
            }
            let r = http::request(addr, method, path, &headers, bytes.as_deref()).await;
            assert_eq!(r.status, status, "{method} {path}: {}", r.text());
            check_documented(v, find(method, template), &r)
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            r
        };
    let mut vector = vec![0.0f32; dims];
    vector[0] = 1.0;
    let item = "contract-item-1";
    let user = "contract-user-1";
    let r = step(
        "PUT",
        "/v1/items/{id}",
        &format!("/v1/items/{item}"),
        Some(
            json!({"fields": {"text": "contract test bread", "category": "BAKERY",
            "department": "GROCERY", "price": 2.5}, "vector": vector}),
        ),
        201,
    )
    .await;
    assert_eq!(r.json()["created"], true);
    step(
        "POST",
        "/v1/events",
        "/v1/events",
        Some(json!({"type": "click", "user_id": user, "item_id": item})),
        202,
    )
    .await;
    let r = step(
        "POST",
        "/v1/recommendations",
        "/v1/recommendations",
        Some(json!({"user_id": user, "k": 5, "exclude_seen": false})),
        200,
    )
    .await;
    assert_eq!(r.json()["cold_start"], false, "{}", r.text());
    step(
        "GET",
        "/v1/users/{id}",
        &format!("/v1/users/{user}"),
        None,
        200,
    )
    .await;
    step(
        "DELETE",
        "/v1/items/{id}",
        &format!("/v1/items/{item}"),
        None,
        204,
    )
    .await;
    step(
        "GET",
        "/v1/items/{id}",
        &format!("/v1/items/{item}"),
        None,
        404,
    )
    .await;
    step(
        "DELETE",
        "/v1/users/{id}",
        &format!("/v1/users/{user}"),
        None,
        204,
    )
    .await;
    step(
        "GET",
        "/v1/users/{id}",
        &format!("/v1/users/{user}"),
        None,
        404,
    )
    .await;
}

/// Cases the generated requests found, and the undocumented statuses of issue #20, pinned.
#[tokio::test]
async fn contract_regressions() {
    let (_space, gw) = catalog_gateway("e2e_contract_regr").await;
    let addr = gw.addr.clone();
    let doc = http::request(&addr, "GET", "/openapi.json", &[], None)
        .await
        .json();
    let v = Validator::new(&doc);

    // the statuses a property-based tester found undocumented
    for (method, path) in [
        ("post", "/v1/events"),
        ("post", "/v1/recommendations"),
        ("post", "/v1/search"),
        ("put", "/v1/items/{id}"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"].get("415").is_some(),
            "{method} {path} does not document 415"
        );
    }
    assert!(
        doc["paths"]["/v1/items/{id}"]["get"]["responses"]
            .get("422")
            .is_some()
    );
    // the rules come from the serving configuration
    let dims = support::embedder().dims();
    let vector = v.resolve("#/components/schemas/QueryVector");
    assert_eq!(
        (vector["minItems"].as_u64(), vector["maxItems"].as_u64()),
        (Some(dims as u64), Some(dims as u64))
    );
    let k = &v.resolve("#/components/schemas/SearchRequest")["properties"]["k"];
    assert_eq!(
        k["maximum"].as_u64(),
        Some(redrec_gateway::GatewayConfig::default().max_k as u64)
    );

    let auth = format!("Bearer {KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let send = async |method: &str, path: &str, body: Value| {
        let bytes = serde_json::to_vec(&body).unwrap();
        http::request(&addr, method, path, &headers, Some(&bytes)).await
    };

    // a vector component of f32::MAX was stored, and every later rerank that met the item
    // failed with 422 ("components too large for f32 arithmetic")
    let mut huge = vec![0.1f32; dims];
    huge[3] = f32::MAX;
    let body = json!({"fields": {"text": "huge"}, "vector": huge});
    assert!(!v.is_valid(v.resolve("#/components/schemas/ItemUpsert"), &body));
    let r = send("PUT", "/v1/items/huge-1", body).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error().1.as_deref(), Some("vector"));
    let r = http::request(&addr, "GET", "/v1/items/huge-1", &headers[..1], None).await;
    assert_eq!(r.status, 404, "nothing was written: {}", r.text());

    // query text is limited in characters (the document's maxLength), not bytes
    let r = send("POST", "/v1/search", json!({"text": "é".repeat(2048)})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send("POST", "/v1/search", json!({"text": "é".repeat(2049)})).await;
    assert_eq!(
        (r.status, r.error().1.as_deref()),
        (422, Some("text")),
        "{}",
        r.text()
    );
    // ... and blank text over the limit is refused too, as the document says
    let r = send(
        "POST",
        "/v1/recommendations",
        json!({"query": {"text": " ".repeat(2049)}}),
    )
    .await;
    assert_eq!(
        (r.status, r.error().1.as_deref()),
        (422, Some("query.text")),
        "{}",
        r.text()
    );
    // nested parts must be objects: `"query": []` was taken as an empty query, and an event
    // given as an array of fields by position was applied
    let r = send("POST", "/v1/recommendations", json!({"query": []})).await;
    assert_eq!(
        (r.status, r.error().1.as_deref()),
        (422, Some("query")),
        "{}",
        r.text()
    );
    let r = send("POST", "/v1/events", json!([["click", "u-arr", "dairy-0"]])).await;
    assert_eq!(
        (r.status, r.error().1.as_deref()),
        (422, Some("[0]")),
        "{}",
        r.text()
    );
    // filter rules the document states as the server applies them (generated cases found the
    // `not` one before it was in the document)
    let filter = v.resolve("#/components/schemas/Filter");
    for (f, ok) in [
        (
            json!({"and": [{"all": {}}, {"tag": {"field": "category", "any": ["DAIRY"]}}]}),
            true,
        ),
        (json!({"not": {"or": [{"all": true}]}}), false),
        (json!({"text": {"field": "text", "match": "The of"}}), false),
        (
            json!({"text": {"field": "text", "prefix": "whole m"}}),
            false,
        ),
    ] {
        assert_eq!(v.is_valid(filter, &f), ok, "the document on {f}");
        let r = send("POST", "/v1/search", json!({"text": "milk", "filter": f})).await;
        assert_eq!(r.status == 200, ok, "{f}: {} {}", r.status, r.text());
    }
    // text without words was refused only when the lexical query was built, without a field
    let r = send("POST", "/v1/search", json!({"text": "\u{7f}!?"})).await;
    assert_eq!(
        (r.status, r.error().1.as_deref()),
        (422, Some("text")),
        "{}",
        r.text()
    );
    gw.shutdown().await;
}
