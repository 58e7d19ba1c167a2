//! The `redrec-gateway` binary: loads the layered configuration (defaults < redrec.toml <
//! `REDREC_*` env), installs the tracing subscriber, loads the embedder, and serves the API until
//! SIGINT/SIGTERM, then drains in-flight requests for at most `gateway.shutdown_grace_secs`.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result};
use redrec_gateway::{AppState, Settings, telemetry::Otlp};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// mimalloc instead of the system allocator: a request allocates thousands of small values
/// (RESP replies, hits, JSON), and glibc's malloc / free took about a fifth of the gateway's CPU
/// samples (docs/BENCHMARKS.md, "Gateway CPU per request").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn load_settings() -> Result<Settings> {
    redrec_core::config::figment(&Settings::default())
        .context("cannot read the configuration")?
        .extract::<Settings>()
        .context("invalid configuration")
}

/// Installs the log (`RUST_LOG`, default `info`) and, with `[gateway.otlp]` on, the span
/// export; each has its own filter, so the export's stage spans never reach the log.
fn init_tracing(gateway: &redrec_gateway::GatewayConfig) -> Result<Option<Otlp>> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info"));
    let log = if gateway.log_format == "json" {
        fmt::layer().json().boxed()
    } else {
        fmt::layer().boxed()
    };
    let otlp = Otlp::start(&gateway.otlp).context("invalid configuration")?;
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(otlp.as_ref().map(|o| o.layer()))
        .init();
    if otlp.is_some() {
        tracing::info!(endpoint = %gateway.otlp.endpoint, "exporting spans over OTLP/HTTP");
    }
    Ok(otlp)
}

/// Turns transparent huge pages off for this process, before the runtime and its threads start.
/// mimalloc advises the kernel to back its arenas with 2 MiB pages (`MADV_HUGEPAGE`), so on a
/// machine with THP in `madvise` (or `always`) mode the kernel's khugepaged folds partly used
/// arena memory into whole huge pages over time: in a soak the resident set rose in steps of
/// 12-20 MiB (`AnonHugePages` 4 -> 32 MiB) at a constant load, and never came back down
/// (docs/RELIABILITY.md, soak run 6). Normal 4 KiB pages keep the resident set at what is used.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        // Not fatal: the gateway serves the same, its memory may only grow in steps.
        eprintln!("redrec-gateway: cannot turn transparent huge pages off ({e}); continuing");
    }
}

fn main() -> Result<()> {
    disable_transparent_huge_pages();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve())
}

async fn serve() -> Result<()> {
    let settings = load_settings()?;
    let otlp = init_tracing(&settings.gateway)?;
    let embedder_cfg = settings.embedder.clone();
    let embedder = tokio::task::spawn_blocking(move || redrec_embedder::from_config(&embedder_cfg))
        .await
        .context("embedder loader panicked")?;
    let embedder: Option<Arc<dyn redrec_embedder::Embedder>> = match embedder {
        Ok(e) => {
            tracing::info!(model = e.model_id(), dims = e.dims(), "embedder loaded");
            Some(Arc::from(e))
        }
        Err(e) => {
            // Serving without an embedder keeps vector, item and personalised queries working;
            // text queries answer 503 and /readyz reports it.
            tracing::error!(error = %e, "embedder not loaded: text queries will answer 503");
            None
        }
    };
    let listen = settings.gateway.listen.clone();
    let grace = Duration::from_secs(settings.gateway.shutdown_grace_secs);
    let state = AppState::connect(settings, embedder)
        .await
        .context("cannot start the gateway")?;
    // Warm the facet cache (a whole-catalog aggregation) before the first page load needs it.
    tokio::spawn({
        let state = state.clone();
        async move {
            if let Err(e) = redrec_gateway::services::index::facets(&state).await {
                tracing::warn!(error = %e, "facets not warmed");
            }
        }
    });
    // With retriever.hybrid_policy = "auto" (the default), the selectivity sample is taken and
    // kept fresh here, in the background, never inside a request.
    tokio::spawn({
        let state = state.clone();
        async move { state.retriever.keep_sample_fresh().await }
    });
    spawn_popularity_fold(&state);
    // `POST /v1/admin/reload` re-reads the same files and environment as this start did.
    state
        .online
        .set_reload_source(Arc::new(|| load_settings().map_err(|e| format!("{e:#}"))));
    spawn_reload_on_sighup(&state);
    let flushed = state.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "redrec gateway listening");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = redrec_gateway::serve(listener, state, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(());
    });
    let server = tokio::spawn(server);
    // The drain gets `grace`; after that the process exits regardless.
    tokio::select! {
        r = server => r.context("server task failed")?.context("server failed")?,
        () = async {
            let _ = stop_rx.await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(grace_secs = grace.as_secs(), "drain timed out; exiting"),
    }
    // served lists still queued for the impression writer
    if tokio::time::timeout(Duration::from_secs(2), flushed.online.flush())
        .await
        .is_err()
    {
        tracing::warn!("served lists still queued at exit were not recorded");
    }
    if let Some(otlp) = otlp {
        // spans still queued for the collector
        let stopped = tokio::task::spawn_blocking(move || otlp.shutdown()).await;
        if let Ok(Err(e)) = stopped {
            tracing::warn!(error = %e, "spans still queued at exit were not exported");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Event popularity accumulates in its own sorted set (rewriting an indexed item hash on every
/// event would re-index the document, vector included); this task folds it into the indexed
/// `popularity` field in small batches, paced so the fold never holds Redis for long: each batch
/// of [`FOLD_BATCH`] items (a few ms of re-indexing) is followed by a pause of
/// [`FOLD_REST`] times its duration, so the fold takes at most a fifth of Redis's time.
/// (Back to back, the ~30 batches of 32 items a 16 events/s minute leaves held Redis for ~330 ms
/// in one second: the soak saw a burst of 503s at every fold.)
fn spawn_popularity_fold(state: &AppState) {
    let every = state.settings.gateway.popularity_fold_secs;
    if every == 0 {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match fold_paced(&state).await {
                Ok(r) if r.folded > 0 => {
                    // popular lists are ordered by the field just written
                    state.caches.popularity_changed();
                    tracing::info!(
                        folded = r.folded,
                        dropped = r.dropped,
                        batches = r.batches,
                        "popularity folded"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "popularity fold failed"),
            }
        }
    });
}

/// Items per fold batch.
const FOLD_BATCH: usize = 8;
/// Pause after a fold batch, as a multiple of the batch's own duration.
const FOLD_REST: u32 = 4;

async fn fold_paced(state: &AppState) -> anyhow::Result<redrec_userstate::FoldReport> {
    let mut report = redrec_userstate::FoldReport::default();
    let pending = {
        let mut con = state.conn(redrec_store::Route::Primary).await?;
        state.user_state.popularity_backlog(&mut *con).await?
    };
    // bounded so a fold under constant traffic ends: each batch removes what it read
    for _ in 0..pending.div_ceil(FOLD_BATCH) + 1 {
        let started = std::time::Instant::now();
        let more = {
            let mut con = state.conn(redrec_store::Route::Primary).await?;
            state
                .user_state
                .fold_popularity_batch(&mut *con, FOLD_BATCH, &mut report)
                .await?
        };
        if !more {
            break;
        }
        tokio::time::sleep((started.elapsed() * FOLD_REST).max(Duration::from_millis(1))).await;
    }
    Ok(report)
}

/// SIGHUP does what `POST /v1/admin/reload` does: re-read the configuration and swap rank
/// profiles and experiments, or keep the running ones when the new configuration is invalid.
#[cfg(unix)]
fn spawn_reload_on_sighup(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: reload through POST /v1/admin/reload only");
            return;
        };
        while hangups.recv().await.is_some() {
            if let Err(e) = redrec_gateway::services::online::reload(&state) {
                tracing::error!(error = %e, "SIGHUP: configuration not reloaded");
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_reload_on_sighup(_state: &AppState) {}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_gateway_settings_from_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "redrec.toml",
                "[gateway]\nlisten = \"0.0.0.0:9000\"\ndeadline_ms = 150\n[gateway.budgets]\nrerank_ms = 5\n\
                 [ingest]\nbatch_size = 500\n",
            )?;
            jail.set_env("REDREC_GATEWAY__API_KEYS", "[\"k1\",\"k2\"]");
            jail.set_env("REDREC_GATEWAY__RATE_LIMIT__ENABLED", "true");
            // Other binaries' settings in the same file / environment are ignored.
            jail.set_env("REDREC_REDIS_PORT", "6390");
            let s = load_settings().map_err(|e| e.to_string())?;
            assert_eq!(s.gateway.listen, "0.0.0.0:9000");
            assert_eq!(s.gateway.deadline_ms, 150);
            assert_eq!(s.gateway.budgets.rerank_ms, 5);
            assert_eq!(s.gateway.admission.max_in_flight, 0, "adaptive by default");
            assert_eq!(s.gateway.api_keys, ["k1", "k2"]);
            assert!(s.gateway.rate_limit.enabled);
            Ok(())
        });
    }

    #[test]
    fn loads_the_otlp_section_off_by_default() {
        figment::Jail::expect_with(|jail| {
            let s = load_settings().map_err(|e| e.to_string())?;
            assert!(!s.gateway.otlp.enabled);
            jail.create_file(
                "redrec.toml",
                "[gateway.otlp]\nenabled = true\nendpoint = \"http://otel:4318/v1/traces\"\n",
            )?;
            jail.set_env("REDREC_GATEWAY__OTLP__SERVICE_NAME", "recs-eu");
            let s = load_settings().map_err(|e| e.to_string())?;
            assert!(s.gateway.otlp.enabled);
            assert_eq!(s.gateway.otlp.endpoint, "http://otel:4318/v1/traces");
            assert_eq!(s.gateway.otlp.service_name, "recs-eu");
            assert_eq!(s.gateway.otlp.timeout_ms, 3000);
            Ok(())
        });
    }

    #[test]
    fn rejects_unknown_gateway_settings() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("redrec.toml", "[gateway]\nlisten_addr = \"x\"\n")?;
            let err = format!("{:#}", load_settings().unwrap_err());
            assert!(err.contains("listen_addr"), "{err}");
            Ok(())
        });
    }
}
