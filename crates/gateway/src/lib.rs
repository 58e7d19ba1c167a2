//! redrec-gateway: the HTTP API. It wires the retriever, reranker, feature store and embedder into
//! a request pipeline with latency budgets, and adds what serving needs around it: API keys,
//! rate limiting in the same Redis, strict JSON validation, metrics, request ids, `Server-Timing`
//! and the demo page.
//!
//! [`app`] builds the router from an [`AppState`]; the binary (`src/main.rs`) loads the
//! configuration, installs tracing and serves it with graceful shutdown.

pub mod admission;
pub mod auth;
pub mod budget;
pub mod cache;
pub mod clock;
pub mod config;
pub mod cpu;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod online;
pub mod openapi;
pub mod pipeline;
pub mod plan;
pub mod retrieve;
pub mod routes;
pub mod security;
pub mod services;
pub mod state;
pub mod telemetry;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use axum::{
    Extension, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use config::GatewayConfig;
pub use error::ApiError;
pub use state::{AppState, Settings, StartError};

/// Header carrying the request id (taken from the client when present, generated otherwise).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The gateway's router with every route and middleware.
pub fn app(state: AppState) -> Router {
    let body_limit = state.gateway().body_limit;
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let api = Router::new()
        .merge(routes::items::router())
        .merge(routes::query::router())
        .merge(routes::users::router())
        .merge(routes::experiments::router())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::rate_limit,
        ));
    let router = Router::new()
        .merge(routes::system::router())
        .merge(api)
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(state::BodyLimit(body_limit)))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| req.uri().path().to_owned());
            let id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-")
                .to_owned();
            // `rec_id` is filled in by the pipeline for served lists
            tracing::info_span!("request", method = %req.method(), route = %route, request_id = %id,
                rec_id = tracing::field::Empty)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, RequestIds::new()));
    // validated by `AppState::new`
    let router = match security::cors_layer(&state.gateway().cors_allow_origins) {
        Ok(Some(cors)) => router.layer(cors),
        _ => router,
    };
    router.with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then stops accepting connections
/// and waits for in-flight requests to finish (the binary bounds that wait). While it serves, a
/// background task looks the serving index up (`Retriever::watch_index`), so responses can say
/// when the index is still being built without a Redis call of their own.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watch = tokio::spawn({
        let state = state.clone();
        async move { state.retriever.watch_index().await }
    });
    let served = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    watch.abort();
    served
}

async fn fallback(req: Request) -> ApiError {
    ApiError::NotFound {
        what: "route",
        id: format!("{} {}", req.method(), req.uri().path()),
    }
}

/// The metrics middleware: records every request, and the error metrics its response carries
/// (`error::ErrorMetrics`: set by `ApiError::into_response`, so error paths never touch the
/// registry themselves); adds `Server-Timing` (total plus the stages a handler reported); runs
/// the request as a CPU-metered future (`cpu.rs`) and records its CPU time by stage.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let ledger = cpu::Ledger::new();
    let response = cpu::metered(ledger.clone(), observed(&state, &route, req, next)).await;
    state.metrics.observe_cpu(&route, &ledger.spent());
    response
}

async fn observed(state: &AppState, route: &str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let mut response = next.run(req).await.into_response();
    cpu::enter(cpu::Stage::Respond);
    let elapsed = started.elapsed();
    state
        .metrics
        .observe_request(method.as_str(), route, response.status().as_u16(), elapsed);
    if let Some(errors) = response.extensions().get::<error::ErrorMetrics>() {
        for metric in &errors.0 {
            state.metrics.error(*metric);
        }
    }
    let mut timing = format!("total;dur={:.3}", elapsed.as_secs_f64() * 1e3);
    if let Some(stages) = response.extensions().get::<budget::ServerTiming>()
        && !stages.0.is_empty()
    {
        timing = format!("{}, {timing}", stages.0);
    }
    if let Ok(v) = HeaderValue::from_str(&timing) {
        response.headers_mut().insert("server-timing", v);
    }
    response
}

/// Request ids: a per-process random prefix and a counter (unique without a UUID dependency).
#[derive(Clone)]
struct RequestIds {
    prefix: u32,
    next: std::sync::Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> RequestIds {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        RequestIds {
            prefix: nanos ^ std::process::id().rotate_left(16),
            next: std::sync::Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _req: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:08x}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
