//! Optional OpenTelemetry trace export (`[gateway.otlp]`, off by default). With it on, the
//! request span (`request`: method, route, request id, `rec_id`) and one span per pipeline
//! stage (`features`, `embed`, `retrieve`, `rerank`, each carrying the served list's `rec_id`)
//! are sent to a collector over OTLP/HTTP (protobuf). A batch processor on its own thread does
//! the sending: a request only hands its finished spans over (a full queue drops spans, it never
//! makes a request wait), and a collector that is down costs export errors in the log, not
//! latency.
//!
//! The stage spans are `DEBUG` spans: with the export off they are disabled at their call sites
//! (the log's filter is `info` by default), so they cost nothing; the export's own filter takes
//! this crate's spans down to `DEBUG` and other crates' at `INFO`. Only the binary installs the
//! layer (`src/main.rs`); the gateway's tests install it on one thread.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::{Level, Subscriber};
use tracing_subscriber::{Layer, filter::Targets, registry::LookupSpan};

/// `[gateway.otlp]` in redrec.toml, `REDREC_GATEWAY__OTLP__*` in the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// Export spans. Off by default: nothing is sent and no exporter thread is started.
    pub enabled: bool,
    /// The collector's OTLP/HTTP traces endpoint (`http://host:4318/v1/traces`; plain HTTP:
    /// run the collector, or an agent forwarding to it, beside the gateway).
    pub endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// How long one export may take before it is abandoned, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            enabled: false,
            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
            service_name: "redrec-gateway".into(),
            timeout_ms: 3000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("`gateway.otlp.{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("cannot start the OTLP exporter: {0}")]
    Exporter(String),
}

impl OtlpConfig {
    /// Checks the section (also when the export is off, so a typo shows before it is turned on).
    pub fn validate(&self) -> Result<(), TelemetryError> {
        let invalid = |field, message: &str| TelemetryError::Invalid {
            field,
            message: message.to_owned(),
        };
        let host = self
            .endpoint
            .strip_prefix("http://")
            .ok_or_else(|| {
                invalid(
                    "endpoint",
                    &format!(
                        "expected an http:// URL of the collector's OTLP/HTTP traces endpoint \
                         (http://host:4318/v1/traces), got `{}` (https is not built in: export \
                         to a local collector or agent)",
                        self.endpoint
                    ),
                )
            })?
            .split('/')
            .next()
            .unwrap_or("");
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid(
                "endpoint",
                &format!("`{}` names no host", self.endpoint),
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(invalid("service_name", "expected a non-empty name"));
        }
        if self.timeout_ms == 0 {
            return Err(invalid("timeout_ms", "expected at least 1 ms"));
        }
        Ok(())
    }
}

/// A running export: its tracing layer, and the provider that flushes on [`Otlp::shutdown`].
pub struct Otlp {
    provider: SdkTracerProvider,
}

impl Otlp {
    /// Starts the exporter when `cfg.enabled`; `None` when the export is off.
    pub fn start(cfg: &OtlpConfig) -> Result<Option<Otlp>, TelemetryError> {
        cfg.validate()?;
        if !cfg.enabled {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(cfg.endpoint.clone())
            .with_timeout(Duration::from_millis(cfg.timeout_ms))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        Ok(Some(Otlp { provider }))
    }

    /// The layer that turns spans into exported ones (this crate's down to `DEBUG`: the stage
    /// spans; other crates' at `INFO`).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let tracer = self.provider.tracer("redrec-gateway");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(
                Targets::new()
                    .with_default(Level::INFO)
                    .with_target("redrec_gateway", Level::DEBUG),
            )
    }

    /// Exports every span finished so far (blocks until the collector answered or timed out).
    pub fn flush(&self) -> Result<(), TelemetryError> {
        self.provider
            .force_flush()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))
    }

    /// Flushes and stops the exporter thread.
    pub fn shutdown(self) -> Result<(), TelemetryError> {
        self.provider
            .shutdown()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default() {
        assert!(!OtlpConfig::default().enabled);
        assert!(Otlp::start(&OtlpConfig::default()).unwrap().is_none());
    }

    #[test]
    fn invalid_settings_name_their_key() {
        let check = |cfg: OtlpConfig, expect: &str| {
            let err = Otlp::start(&cfg).err().expect("rejected").to_string();
            assert!(err.contains(expect), "{err}");
        };
        let on = OtlpConfig {
            enabled: true,
            ..OtlpConfig::default()
        };
        check(
            OtlpConfig {
                endpoint: "collector:4318".into(),
                ..on.clone()
            },
            "`gateway.otlp.endpoint`: expected an http:// URL",
        );
        check(
            OtlpConfig {
                endpoint: "https://collector:4318/v1/traces".into(),
                ..on.clone()
            },
            "https is not built in",
        );
        check(
            OtlpConfig {
                endpoint: "http:///v1/traces".into(),
                ..on.clone()
            },
            "names no host",
        );
        check(
            OtlpConfig {
                service_name: " ".into(),
                ..on.clone()
            },
            "`gateway.otlp.service_name`",
        );
        // validated even while off
        check(
            OtlpConfig {
                timeout_ms: 0,
                ..OtlpConfig::default()
            },
            "`gateway.otlp.timeout_ms`: expected at least 1 ms",
        );
    }
}
