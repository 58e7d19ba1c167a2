//! Admission control through the router: with a limit of one Redis query in flight, concurrent
//! requests wait for each other within their deadline and all succeed; with the only slot held,
//! a request is refused with 503 and `Retry-After` by its deadline, and served again once the slot
//! is free.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use redrec_gateway::{AppState, app};
use redrec_testkit::TestSpace;

use crate::{DIMS, call, fixture, settings};

#[tokio::test]
async fn a_tiny_limit_queues_within_the_deadline_and_refuses_past_it() {
    let space = TestSpace::new("gw_admission");
    let mut s = settings(&space, DIMS);
    s.gateway.admission.max_in_flight = 1;
    s.gateway.deadline_ms = 2_000;
    // every request reaches Redis (no popular list served from memory)
    s.gateway.cache.popular_entries = 0;
    fixture::load(&space, &s.index, &fixture::catalog(3, DIMS)).await;
    let state = AppState::new(s, None).expect("state");
    let router = app(state.clone());

    // eight at once through one slot: each waits its turn, none fails
    let body = r#"{"user_id":"u-adm","k":3}"#;
    let calls = (0..8).map(|_| {
        let router = router.clone();
        tokio::spawn(async move {
            call(
                &router,
                Method::POST,
                "/v1/recommendations",
                None,
                Some(body),
            )
            .await
        })
    });
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let stats = state.admission.stats();
    assert_eq!(stats.limit, 1);
    assert_eq!(stats.in_flight, 0);
    // a features read and a retrieval per request
    assert_eq!(stats.admitted, 16, "{stats:?}");

    // the only slot is taken (a stuck query): refused by the deadline, with Retry-After
    let held = state
        .admission
        .acquire(Instant::now() + Duration::from_secs(30))
        .await
        .unwrap();
    let started = Instant::now();
    let r = call(
        &router,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.headers["retry-after"], "1");
    let message = r.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("overloaded: stage `features`"),
        "{message}"
    );
    drop(held);
    let r = call(
        &router,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let m = call(&router, Method::GET, "/metrics", None, None).await;
    assert!(m.text.contains("redrec_admission_limit 1"), "{}", m.text);
    assert!(
        m.text
            .contains("redrec_admission_refused_total{stage=\"features\""),
        "{}",
        m.text
    );
}
