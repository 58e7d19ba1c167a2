//! Online evaluation through the gateway: `rec_id`s on served lists, impressions recorded in
//! Redis with a TTL, events attributed to lists and experiment variants, deterministic
//! assignment, the experiment report, reload (atomic, rejected whole when invalid), and a
//! simulation in which synthetic users prefer one profile's lists.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    http::{Method, StatusCode},
};
use redis::AsyncCommands;
use redrec_gateway::{
    AppState, Settings, app,
    online::{ExperimentConfig, OnlineConfig, VariantConfig},
};
use redrec_testkit::TestSpace;
use serde_json::{Value, json};

use crate::{DIMS, KEY, Reply, call, fixture, settings};

fn experiment(name: &str, profiles: &[&str]) -> ExperimentConfig {
    ExperimentConfig {
        name: name.to_owned(),
        routes: vec!["recommendations".to_owned()],
        variants: profiles
            .iter()
            .map(|p| VariantConfig {
                profile: (*p).to_owned(),
                name: None,
                weight: 1,
            })
            .collect(),
    }
}

async fn loaded(label: &str, online: OnlineConfig) -> (TestSpace, Settings, AppState, Router) {
    let space = TestSpace::new(label);
    let mut s = settings(&space, DIMS);
    s.online = online;
    fixture::load(&space, &s.index, &fixture::catalog(10, DIMS)).await;
    let state = AppState::new(s.clone(), None).expect("state");
    let router = app(state.clone());
    (space, s, state, router)
}

async fn recommend(app: &Router, body: Value) -> Reply {
    let r = call(
        app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

async fn events(app: &Router, body: Value) -> Reply {
    call(
        app,
        Method::POST,
        "/v1/events",
        Some(KEY),
        Some(&body.to_string()),
    )
    .await
}

async fn report(app: &Router, name: &str) -> Value {
    let r = call(
        app,
        Method::GET,
        &format!("/v1/experiments/{name}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

fn variant<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variant {name}: {report}"))
}

#[tokio::test]
async fn served_lists_carry_a_rec_id_and_are_recorded_with_a_ttl() {
    let online = OnlineConfig {
        impressions: true,
        attribution_window_secs: 120,
        ..OnlineConfig::default()
    };
    let (space, _s, state, app) = loaded("gw_online_rec", online).await;
    let a = recommend(&app, json!({"k": 5, "user_id": "u-rec"})).await;
    let b = recommend(&app, json!({"k": 5})).await;
    let rec_id = a.json["rec_id"].as_str().expect("rec_id").to_owned();
    assert_eq!(
        a.headers.get("x-rec-id").and_then(|v| v.to_str().ok()),
        Some(rec_id.as_str())
    );
    assert_ne!(rec_id, b.json["rec_id"].as_str().unwrap());
    redrec_core::keys::validate_id(&rec_id).unwrap();
    assert!(a.json.get("experiment").is_none(), "{}", a.text);

    state.online.flush().await;
    let mut con = fixture::conn(&space).await;
    let key = space.ns.rec(&rec_id);
    let stored: std::collections::HashMap<String, String> = con.hgetall(&key).await.unwrap();
    assert_eq!(stored["items"], a.ids().join(" "));
    assert_eq!(stored["profile"], "default");
    assert_eq!(stored["user"], "u-rec");
    assert_eq!(stored["route"], "recommendations");
    assert_eq!(
        stored["sources"].split(' ').count(),
        5,
        "one source list per item: {stored:?}"
    );
    let ttl: i64 = con.pttl(&key).await.unwrap();
    assert!((1..=120_000).contains(&ttl), "ttl {ttl}");
    let metrics = call(&app, Method::GET, "/metrics", None, None).await.text;
    assert!(
        metrics.contains("redrec_impressions_recorded_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_impressions_nothing_is_recorded() {
    let (space, _s, state, app) = loaded("gw_online_off", OnlineConfig::default()).await;
    let r = recommend(&app, json!({"k": 3, "user_id": "u-off"})).await;
    let rec_id = r.json["rec_id"].as_str().expect("rec_id always present");
    state.online.flush().await;
    let mut con = fixture::conn(&space).await;
    let exists: bool = con.exists(space.ns.rec(rec_id)).await.unwrap();
    assert!(!exists);
    // an event naming a list that was never recorded is applied all the same
    let r = events(
        &app,
        json!({"type": "click", "user_id": "u-off", "item_id": r.ids()[0], "rec_id": rec_id}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}

#[tokio::test]
async fn events_are_attributed_to_their_list_and_variant() {
    let online = OnlineConfig {
        impressions: true,
        experiments: vec![experiment("e-attr", &["default", "discovery"])],
        ..OnlineConfig::default()
    };
    let (_space, _s, state, app) = loaded("gw_online_attr", online).await;
    let user = "u-attr";
    let r = recommend(&app, json!({"k": 6, "user_id": user})).await;
    let assigned = r.json["experiment"]["variant"]
        .as_str()
        .expect("assigned")
        .to_owned();
    assert_eq!(r.json["experiment"]["name"], "e-attr");
    assert_eq!(r.json["profile"], assigned.as_str());
    // deterministic: the same user lands in the same variant
    let again = recommend(&app, json!({"k": 6, "user_id": user})).await;
    assert_eq!(again.json["experiment"]["variant"], assigned.as_str());
    // an explicit profile is not overridden and is not in the experiment
    let explicit = recommend(
        &app,
        json!({"k": 6, "user_id": user, "profile": "repurchase"}),
    )
    .await;
    assert!(explicit.json.get("experiment").is_none());
    // the experiment covers recommendations only: a search by the same user is not in it
    let mut v = vec![0.0f32; DIMS];
    v[0] = 1.0;
    let body = json!({"vector": v, "user_id": user, "k": 3}).to_string();
    let search = call(&app, Method::POST, "/v1/search", None, Some(&body)).await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.text);
    assert!(search.json.get("experiment").is_none(), "{}", search.text);
    assert_eq!(search.json["profile"], "default");
    state.online.flush().await;

    let rec_id = r.json["rec_id"].as_str().unwrap();
    let ids = r.ids();
    let outside = fixture::catalog(10, DIMS)
        .into_iter()
        .map(|i| i.id)
        .find(|id| !ids.contains(id))
        .unwrap();
    // a click on the third item (position hint given), a retry of it, a cart add without a
    // position, and events that cannot be attributed
    let batch = json!([
        {"type": "click", "user_id": user, "item_id": ids[2], "rec_id": rec_id, "position": 2},
        {"type": "click", "user_id": user, "item_id": ids[2], "rec_id": rec_id, "position": 2},
        {"type": "cart_add", "user_id": user, "item_id": ids[4], "rec_id": rec_id},
        {"type": "view", "user_id": user, "item_id": ids[0], "rec_id": rec_id},
        {"type": "click", "user_id": user, "item_id": ids[1], "rec_id": "no-such-list"},
        {"type": "click", "user_id": "someone-else", "item_id": ids[1], "rec_id": rec_id},
        {"type": "click", "user_id": user, "item_id": outside, "rec_id": rec_id},
        {"type": "click", "user_id": user, "item_id": ids[3]},
    ]);
    let r = events(&app, batch).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let rep = report(&app, "e-attr").await;
    let v = variant(&rep, &assigned);
    assert_eq!(v["impressions"], 2, "{rep}");
    assert_eq!(v["clicks"], 2, "both clicks count as events: {rep}");
    assert_eq!(v["cart_adds"], 1);
    assert_eq!(v["ctr"], 0.5, "one of two lists was clicked: {rep}");
    assert_eq!(v["add_to_cart_rate"], 0.5);
    assert_eq!(v["purchase_rate"], 0.0);
    assert_eq!(v["mean_first_click_position"], 3.0);
    assert_eq!(v["distinct_items"], 6, "{rep}");
    assert!(v["coverage"].as_f64().unwrap() > 0.0);
    let other = rep["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] != assigned.as_str())
        .unwrap();
    assert_eq!(other["impressions"], 0);
    assert_eq!(other["ctr"], Value::Null);
    assert_eq!(rep["winner"], Value::Null);

    let metrics = call(&app, Method::GET, "/metrics", None, None).await.text;
    for line in [
        "redrec_attribution_events_total{kind=\"click\",outcome=\"attributed\"} 2",
        "redrec_attribution_events_total{kind=\"cart_add\",outcome=\"attributed\"} 1",
        "redrec_attribution_events_total{kind=\"click\",outcome=\"not_found\"} 1",
        "redrec_attribution_events_total{kind=\"click\",outcome=\"other_user\"} 1",
        "redrec_attribution_events_total{kind=\"click\",outcome=\"not_in_list\"} 1",
        "redrec_attribution_events_total{kind=\"other\",outcome=\"not_counted\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    assert!(metrics.contains(&format!(
        "redrec_experiment_lists_total{{experiment=\"e-attr\",variant=\"{assigned}\"}} 2"
    )));

    // a retried event with an id counts once, also in attribution
    let dup = json!({"type": "purchase", "user_id": user, "item_id": ids[0], "rec_id": rec_id, "event_id": "p-1"});
    for _ in 0..2 {
        let r = events(&app, dup.clone()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    let rep = report(&app, "e-attr").await;
    assert_eq!(variant(&rep, &assigned)["purchases"], 1, "{rep}");

    // bad attribution fields name themselves
    let r = events(
        &app,
        json!({"type": "click", "user_id": user, "item_id": ids[0], "position": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error(), ("invalid_field", Some("position")));
    let r = events(
        &app,
        json!([{"type": "click", "user_id": user, "item_id": ids[0], "rec_id": "a b"}]),
    )
    .await;
    assert_eq!(r.error(), ("invalid_field", Some("[0].rec_id")));
    let r = call(&app, Method::GET, "/v1/experiments/nope", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error(), ("invalid_field", Some("name")));
    let r = call(&app, Method::GET, "/v1/experiments/e-attr", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reload_swaps_profiles_and_experiments_without_dropping_requests() {
    let (_space, s, state, app) = loaded(
        "gw_online_reload",
        OnlineConfig {
            impressions: true,
            ..OnlineConfig::default()
        },
    )
    .await;
    let next = Arc::new(Mutex::new(s.clone()));
    state.online.set_reload_source(Arc::new({
        let next = next.clone();
        move || Ok(next.lock().unwrap().clone())
    }));
    let r = recommend(&app, json!({"k": 3, "user_id": "u-rl"})).await;
    assert!(r.json.get("experiment").is_none());

    // requests keep flowing while the configuration flips back and forth
    let load = tokio::spawn({
        let app = app.clone();
        async move {
            let mut statuses = Vec::new();
            for i in 0..60 {
                let body = json!({"k": 3, "user_id": format!("u-{i}")}).to_string();
                let r = call(&app, Method::POST, "/v1/recommendations", None, Some(&body)).await;
                statuses.push(r.status);
            }
            statuses
        }
    });
    let mut with = s.clone();
    with.online.experiments = vec![experiment("e-rl", &["default", "discovery"])];
    for i in 0..20 {
        *next.lock().unwrap() = if i % 2 == 0 { with.clone() } else { s.clone() };
        let r = call(&app, Method::POST, "/v1/admin/reload", Some(KEY), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        tokio::task::yield_now().await;
    }
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );

    *next.lock().unwrap() = with.clone();
    let r = call(&app, Method::POST, "/v1/admin/reload", Some(KEY), None).await;
    assert_eq!(r.json["experiments"]["experiments"][0]["name"], "e-rl");
    assert_eq!(r.json["restart_required"], json!([]));
    let r = recommend(&app, json!({"k": 3, "user_id": "u-rl"})).await;
    assert_eq!(r.json["experiment"]["name"], "e-rl");

    // an invalid config is rejected whole: the key is named, nothing changes
    let mut bad = with.clone();
    bad.online
        .experiments
        .push(experiment("e-bad", &["default", "missing"]));
    bad.gateway.max_k = 7;
    *next.lock().unwrap() = bad;
    let r = call(&app, Method::POST, "/v1/admin/reload", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.error(),
        (
            "invalid_field",
            Some("online.experiments[1].variants[1].profile")
        )
    );
    let list = call(&app, Method::GET, "/v1/experiments", Some(KEY), None).await;
    let names: Vec<&str> = list.json["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e-rl"]);

    // a source that fails names what failed; settings read only at start are reported
    let mut later = with.clone();
    later.gateway.max_k = 7;
    *next.lock().unwrap() = later;
    let r = call(&app, Method::POST, "/v1/admin/reload", Some(KEY), None).await;
    assert_eq!(r.json["restart_required"], json!(["gateway"]), "{}", r.text);
    let r = call(&app, Method::POST, "/v1/admin/reload", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Deterministic pseudo-random numbers in [0, 1) (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Synthetic users in an experiment between `default` and `discovery`: each asks for one list
/// and clicks an item of it with probability 0.30 when `discovery` served it and 0.15 when
/// `default` did (the clicked position is drawn with a position bias), sending the list's
/// `rec_id` back. The report must name `discovery` the winner with an interval around the true
/// difference of 0.15, and the control's own interval must be consistent with 0.15.
#[tokio::test]
async fn simulated_users_who_prefer_one_profile_make_it_the_winner() {
    const USERS: usize = 600;
    let online = OnlineConfig {
        impressions: true,
        experiments: vec![experiment("sim", &["default", "discovery"])],
        ..OnlineConfig::default()
    };
    let (_space, _s, state, app) = loaded("gw_online_sim", online).await;
    let mut rng = Rng(0x51_u64);
    let mut served = Vec::with_capacity(USERS);
    for u in 0..USERS {
        let user = format!("sim-{u}");
        let r = recommend(
            &app,
            json!({"k": 5, "user_id": user, "exclude_seen": false}),
        )
        .await;
        served.push((user, r));
    }
    state.online.flush().await;
    let mut truth = [(0usize, 0usize); 2];
    let mut batch = Vec::new();
    for (user, r) in &served {
        let profile = r.json["profile"].as_str().unwrap();
        let arm = usize::from(profile == "discovery");
        let p_click = if arm == 1 { 0.30 } else { 0.15 };
        truth[arm].0 += 1;
        if rng.next() < p_click {
            truth[arm].1 += 1;
            let ids = r.ids();
            // position bias: each next position half as likely
            let mut pos = 0;
            while pos + 1 < ids.len() && rng.next() < 0.5 {
                pos += 1;
            }
            batch.push(
                json!({"type": "click", "user_id": user, "item_id": ids[pos],
                "rec_id": r.json["rec_id"], "position": pos}),
            );
        }
    }
    for chunk in batch.chunks(100) {
        let r = events(&app, Value::Array(chunk.to_vec())).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    let rep = report(&app, "sim").await;
    eprintln!("simulation: truth (lists, clicked) {truth:?}; report {rep:#}");
    let control = variant(&rep, "default");
    let treated = variant(&rep, "discovery");
    assert_eq!(control["impressions"], truth[0].0 as u64);
    assert_eq!(treated["impressions"], truth[1].0 as u64);
    // the split is about even
    assert!((240..=360).contains(&truth[0].0), "{truth:?}");
    let ctr = &treated["vs_control"]["ctr"];
    assert_eq!(rep["winner"], "discovery", "{rep}");
    assert_eq!(ctr["significant"], true);
    let [lo, hi] = [
        ctr["interval"][0].as_f64().unwrap(),
        ctr["interval"][1].as_f64().unwrap(),
    ];
    assert!(lo > 0.0 && lo < 0.15 && 0.15 < hi, "interval [{lo}, {hi}]");
    let observed = treated["ctr"].as_f64().unwrap() - control["ctr"].as_f64().unwrap();
    assert!((ctr["difference"].as_f64().unwrap() - observed).abs() < 1e-12);
    assert!(treated["mean_first_click_position"].as_f64().unwrap() >= 1.0);
}

#[tokio::test]
async fn the_operator_dashboard_is_served_with_its_script_pinned_by_the_csp() {
    let (_space, _s, _state, app) = loaded("gw_online_admin", OnlineConfig::default()).await;
    let page = call(&app, Method::GET, "/admin", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("redrec operator dashboard"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'sha256-") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    // every route the page reads answers the admin key, and only it
    for path in ["/v1/index", "/v1/experiments"] {
        let r = call(&app, Method::GET, path, Some(KEY), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert!(r.text.len() > 2);
        let r = call(&app, Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    for fetched in [
        "get(\"/v1/index\")",
        "get(\"/metrics\")",
        "get(\"/v1/experiments\")",
    ] {
        assert!(
            page.text.contains(fetched),
            "the page no longer reads {fetched}"
        );
    }
}

#[tokio::test]
async fn an_invalid_online_section_stops_the_start_naming_the_key() {
    let space = TestSpace::new("gw_online_start");
    let mut s = settings(&space, DIMS);
    s.online.experiments = vec![experiment("e", &["default", "discovery"])];
    let err = AppState::new(s.clone(), None)
        .err()
        .expect("experiments without impressions")
        .to_string();
    assert!(err.contains("`online.impressions`"), "{err}");
    s.online.impressions = true;
    s.online.experiments[0].variants[0].profile = "missing".into();
    let err = AppState::new(s, None)
        .err()
        .expect("unknown profile")
        .to_string();
    assert!(
        err.contains("`online.experiments[0].variants[0].profile`: unknown rank profile `missing`"),
        "{err}"
    );
}
