//! The replay clock: `x-redrec-as-of` moves the request's clock (session expiry, decays) only
//! when `gateway.replay_clock` is on; otherwise the header is a 422 naming it.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use redrec_gateway::clock::{AS_OF_HEADER, now_ms};
use redrec_testkit::TestSpace;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{DIMS, KEY, call, fixture, router, settings};

async fn user_as_of(app: &axum::Router, user: &str, as_of: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/users/{user}"))
        .header(AS_OF_HEADER, as_of)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn space_with_clicks(label: &str, replay: bool) -> (TestSpace, axum::Router) {
    let space = TestSpace::new(label);
    let mut s = settings(&space, DIMS);
    s.gateway.replay_clock = replay;
    fixture::load(&space, &s.index, &fixture::catalog(3, DIMS)).await;
    let app = router(s);
    let clicks: Vec<_> = (0..2)
        .map(|i| json!({"type": "click", "user_id": "u1", "item_id": format!("apple-{i}")}))
        .collect();
    let r = call(
        &app,
        Method::POST,
        "/v1/events",
        Some(KEY),
        Some(&json!(clicks).to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    (space, app)
}

#[tokio::test]
async fn as_of_moves_the_clock_when_replays_are_on() {
    let (_space, app) = space_with_clicks("gw_clock_on", true).await;
    let now = now_ms();
    let (status, fresh) = user_as_of(&app, "u1", &now.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert!(fresh["session_vector"].is_array(), "{fresh}");
    let fresh_affinity = fresh["category_affinity"]["FRUIT"].as_f64().unwrap();

    // two hours later the 30-minute session has expired and affinities have decayed
    let later = (now + 2 * 3600 * 1000).to_string();
    let (status, later) = user_as_of(&app, "u1", &later).await;
    assert_eq!(status, StatusCode::OK, "{later}");
    assert!(later["session_vector"].is_null(), "{later}");
    let later_affinity = later["category_affinity"]["FRUIT"].as_f64().unwrap();
    assert!(
        later_affinity < fresh_affinity,
        "{later_affinity} !< {fresh_affinity}"
    );

    // not an epoch-ms integer: 422 naming the header
    let (status, body) = user_as_of(&app, "u1", "2017-12-01").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], AS_OF_HEADER);
}

#[tokio::test]
async fn as_of_is_refused_on_the_wall_clock() {
    let (_space, app) = space_with_clicks("gw_clock_off", false).await;
    let (status, body) = user_as_of(&app, "u1", &now_ms().to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], AS_OF_HEADER);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("replay_clock"),
        "{body}"
    );
}
