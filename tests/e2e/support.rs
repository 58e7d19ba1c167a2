//! Shared by the e2e and browser tests: a gateway serving on a real socket (ephemeral port) with
//! the real embedder, and the settings and catalog it is started with.

#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use redrec_gateway::{AppState, GatewayConfig, Settings, config::StageBudgets};
use redrec_testkit::TestSpace;

use crate::fixture;

pub const KEY: &str = "e2e-key";

/// The embedder the gateway binary would load (`REDREC_EMBEDDER__MODEL_DIR` or the default
/// model directory; `cargo xtask fetch model` provides it).
pub fn embedder() -> Arc<dyn redrec_embedder::Embedder> {
    static EMBEDDER: std::sync::OnceLock<Arc<dyn redrec_embedder::Embedder>> =
        std::sync::OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let cfg = redrec_embedder::EmbedderConfig::default();
            let e = redrec_embedder::from_config(&cfg)
                .unwrap_or_else(|e| panic!("the e2e gateway tests need the embedding model: {e}"));
            Arc::from(e)
        })
        .clone()
}

pub fn settings(space: &TestSpace, dims: usize) -> Settings {
    Settings {
        redis: fixture::redis_config(),
        index: fixture::index_config(space, dims),
        gateway: GatewayConfig {
            api_keys: vec![KEY.to_owned()],
            deadline_ms: 20_000,
            budgets: StageBudgets { rerank_ms: 10_000 },
            ..GatewayConfig::default()
        },
        ..Settings::default()
    }
}

/// A gateway serving on 127.0.0.1 (ephemeral port); dropping it shuts the server down.
pub struct Running {
    pub addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub async fn start(
        settings: Settings,
        embedder: Option<Arc<dyn redrec_embedder::Embedder>>,
    ) -> Running {
        let state = AppState::connect(settings, embedder)
            .await
            .expect("gateway state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(redrec_gateway::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Running {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Triggers graceful shutdown and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("server drained within 30 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A gateway over the embedded text catalog.
pub async fn catalog_gateway(label: &str) -> (TestSpace, Running) {
    catalog_gateway_with(label, |_| {}).await
}

/// [`catalog_gateway`] with settings changed by `configure` first.
pub async fn catalog_gateway_with(
    label: &str,
    configure: impl FnOnce(&mut Settings),
) -> (TestSpace, Running) {
    let space = TestSpace::new(label);
    let e = embedder();
    let mut s = settings(&space, e.dims());
    configure(&mut s);
    let items = tokio::task::spawn_blocking({
        let e = e.clone();
        move || fixture::text_catalog(e.as_ref())
    })
    .await
    .unwrap();
    fixture::load(&space, &s.index, &items).await;
    let gw = Running::start(s, Some(e)).await;
    (space, gw)
}
