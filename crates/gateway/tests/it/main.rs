//! Handler tests: `app(state).oneshot(request)` against the real Redis, one TestSpace each.

mod admission;
mod bodies;
mod cache;
mod clock;
mod cluster;
mod fixture;
mod history;
mod online;
mod ops;
mod pipeline;
mod secrets;
mod security;
mod telemetry;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode},
};
use redrec_gateway::{AppState, GatewayConfig, Settings, app, config::StageBudgets};
use redrec_testkit::TestSpace;
use tower::ServiceExt;

pub const KEY: &str = "test-admin-key";
pub const DIMS: usize = 8;

/// Settings for a space with `dims`-dimensional vectors and one API key.
pub fn settings(space: &TestSpace, dims: usize) -> Settings {
    Settings {
        redis: fixture::redis_config(),
        index: fixture::index_config(space, dims),
        gateway: GatewayConfig {
            api_keys: vec![KEY.to_owned()],
            // Generous budgets: the test machine is shared and busy; budget behaviour is
            // tested explicitly with zero budgets.
            deadline_ms: 20_000,
            budgets: StageBudgets { rerank_ms: 10_000 },
            ..GatewayConfig::default()
        },
        ..Settings::default()
    }
}

pub fn router(settings: Settings) -> Router {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    app(AppState::new(settings, None).expect("state"))
}

/// A response: status, headers and the body parsed as JSON (or `Value::String` when not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
}

impl Reply {
    /// The item ids of a result list, in order.
    pub fn ids(&self) -> Vec<String> {
        self.json["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items: {}", self.text))
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `error.code` and `error.field` of an error body.
    pub fn error(&self) -> (&str, Option<&str>) {
        let e = &self.json["error"];
        (
            e["code"]
                .as_str()
                .unwrap_or_else(|| panic!("not an error body: {}", self.text)),
            e["field"].as_str(),
        )
    }
}

pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
    Reply {
        status,
        headers,
        json,
        text,
    }
}
