//! The serving caches through the router: popular lists, item vectors and query-text embeddings
//! are served from memory on a repeat, counted in `/metrics`, and dropped when the gateway writes
//! the items they depend on.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::http::{Method, StatusCode};
use redrec_gateway::{AppState, app};
use redrec_testkit::TestSpace;
use serde_json::json;

use crate::{DIMS, KEY, Reply, call, fixture, settings};

/// `PUT /v1/items/{id}` with `fields` and a unit vector along `axis`.
async fn put_on_axis(
    router: &axum::Router,
    id: &str,
    axis: usize,
    fields: serde_json::Value,
) -> Reply {
    let vector: Vec<f32> = (0..DIMS)
        .map(|i| if i == axis { 1.0 } else { 0.0 })
        .collect();
    let item = json!({"fields": fields, "vector": vector});
    call(
        router,
        Method::PUT,
        &format!("/v1/items/{id}"),
        Some(KEY),
        Some(&item.to_string()),
    )
    .await
}

fn stats(state: &AppState, cache: &str) -> redrec_core::lru::CacheStats {
    state
        .caches
        .stats()
        .into_iter()
        .find(|(name, _)| *name == cache)
        .unwrap()
        .1
}

#[tokio::test]
async fn popular_lists_are_cached_per_filter_and_dropped_when_items_change() {
    let space = TestSpace::new("gw_cache_pop");
    let s = settings(&space, DIMS);
    fixture::load(&space, &s.index, &fixture::catalog(3, DIMS)).await;
    let state = AppState::new(s, None).unwrap();
    let router = app(state.clone());
    let cold = r#"{"k":3}"#;
    let first = call(
        &router,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(cold),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = call(
        &router,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(cold),
    )
    .await;
    assert_eq!(again.ids(), first.ids());
    let s = stats(&state, "popular");
    assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));
    // another filter is another list
    let dairy = json!({"k": 3, "filter": {"tag": {"field": "category", "any": ["DAIRY"]}}});
    let r = call(
        &router,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&dairy.to_string()),
    )
    .await;
    assert!(
        r.ids().iter().all(|id| id.starts_with("milk-")),
        "{}",
        r.text
    );
    assert_eq!(stats(&state, "popular").entries, 2);
    // a known user's request is never served from it (its exclusions are per user)
    let events = json!([{"user_id": "u-pop", "item_id": "milk-0", "type": "click"}]);
    let r = call(
        &router,
        Method::POST,
        "/v1/events",
        Some(KEY),
        Some(&events.to_string()),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text);
    let before = stats(&state, "popular");
    let r = call(
        &router,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(r#"{"k":3,"user_id":"u-pop"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = stats(&state, "popular");
    assert_eq!((after.hits, after.misses), (before.hits, before.misses));

    // a new, most popular item written through the gateway shows up at once
    let r = put_on_axis(
        &router,
        "star-1",
        5,
        json!({"category": "DAIRY", "department": "GROCERY", "price": 2.0, "text": "new milk", "popularity": 1000}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        stats(&state, "popular").entries,
        0,
        "lists dropped on the write"
    );
    let r = call(
        &router,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(cold),
    )
    .await;
    assert_eq!(r.ids()[0], "star-1", "{}", r.text);

    let m = call(&router, Method::GET, "/metrics", None, None).await;
    assert!(
        m.text
            .contains("redrec_cache_hits_total{cache=\"popular\"} 1"),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("redrec_cache_hit_ratio{cache=\"popular\"}"),
        "{}",
        m.text
    );
}

#[tokio::test]
async fn item_vectors_are_cached_and_dropped_when_the_item_is_written() {
    let space = TestSpace::new("gw_cache_vec");
    let s = settings(&space, DIMS);
    fixture::load(&space, &s.index, &fixture::catalog(3, DIMS)).await;
    let state = AppState::new(s, None).unwrap();
    let router = app(state.clone());
    let similar = "/v1/items/milk-0/similar?k=2";
    let first = call(&router, Method::GET, similar, None, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(
        first.ids().iter().all(|id| id.starts_with("milk-")),
        "{}",
        first.text
    );
    let again = call(&router, Method::GET, similar, None, None).await;
    assert_eq!(again.ids(), first.ids());
    let s = stats(&state, "item_vectors");
    assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));

    // milk-0 now points along the shampoo axis: its neighbours change with the write
    let r = put_on_axis(
        &router,
        "milk-0",
        3,
        json!({"category": "DAIRY", "department": "GROCERY", "price": 1.0, "text": "milk", "popularity": 3}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(stats(&state, "item_vectors").entries, 0);
    let r = call(&router, Method::GET, similar, None, None).await;
    assert!(
        r.ids().iter().all(|id| id.starts_with("shampoo-")),
        "{}",
        r.text
    );
    // an unknown item is still an error naming it, and nothing is cached for it
    let r = call(&router, Method::GET, "/v1/items/nope/similar", None, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.error(), ("unknown_item", Some("id")));
    assert_eq!(stats(&state, "item_vectors").entries, 1);
}

/// A deterministic embedder: a text maps to one axis chosen by its length; counts its calls.
struct AxisEmbedder(AtomicUsize);

impl redrec_embedder::Embedder for AxisEmbedder {
    fn dims(&self) -> usize {
        DIMS
    }
    fn model_id(&self) -> &str {
        "axis"
    }
    fn embed(&self, texts: &[&str]) -> redrec_embedder::Result<Vec<Vec<f32>>> {
        self.0.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts
            .iter()
            .map(|t| {
                (0..DIMS)
                    .map(|i| if i == t.len() % 4 { 1.0 } else { 0.0 })
                    .collect()
            })
            .collect())
    }
}

#[tokio::test]
async fn a_repeated_query_text_is_embedded_once() {
    let space = TestSpace::new("gw_cache_emb");
    let s = settings(&space, DIMS);
    fixture::load(&space, &s.index, &fixture::catalog(3, DIMS)).await;
    let embedder = Arc::new(AxisEmbedder(AtomicUsize::new(0)));
    let state = AppState::new(s, Some(embedder.clone())).unwrap();
    let router = app(state.clone());
    let body = r#"{"text":"milk","k":3}"#;
    let first = call(&router, Method::POST, "/v1/search", None, Some(body)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = call(&router, Method::POST, "/v1/search", None, Some(body)).await;
    assert_eq!(again.ids(), first.ids());
    assert_eq!(embedder.0.load(Ordering::SeqCst), 1, "embedded twice");
    let s = stats(&state, "query_embeddings");
    assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));
    let r = call(
        &router,
        Method::POST,
        "/v1/search",
        None,
        Some(r#"{"text":"bread","k":3}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(embedder.0.load(Ordering::SeqCst), 2);
    let m = call(&router, Method::GET, "/metrics", None, None).await;
    assert!(
        m.text
            .contains("redrec_cache_hits_total{cache=\"query_embeddings\"} 1"),
        "{}",
        m.text
    );
}
