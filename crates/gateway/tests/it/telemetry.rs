//! OpenTelemetry export (`[gateway.otlp]`): a served list's request span and stage spans reach
//! an OTLP/HTTP collector carrying its `rec_id`. The collector is a stand-in: a plain HTTP
//! server on a thread of its own that decodes each protobuf payload as an OTLP
//! `ExportTraceServiceRequest`.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::{Method, StatusCode};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value, trace::v1::Span,
};
use prost::Message as _;
use redrec_gateway::{
    AppState, app,
    telemetry::{Otlp, OtlpConfig},
};
use redrec_testkit::TestSpace;
use serde_json::json;
use tracing_subscriber::prelude::*;

use crate::{DIMS, call, fixture, settings};

/// What the stand-in collector received: (path, content type, body) per request.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// Accepts OTLP/HTTP posts on 127.0.0.1 (ephemeral port), answers 200 with an empty
/// `ExportTraceServiceResponse`, and keeps what it was sent.
fn collector() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received: Received = Arc::default();
    let kept = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let kept = kept.clone();
            // one thread per connection: the exporter may keep its connection open
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                // requests on this connection until the exporter closes it
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_owned();
                    let mut headers = BTreeMap::new();
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
                        }
                    }
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .expect("the exporter sends a content-length");
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let content_type = headers.get("content-type").cloned().unwrap_or_default();
                    kept.lock().unwrap().push((path, content_type, body));
                    let _ = writer.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    (addr, received)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}

// current-thread runtime: the subscriber below is this thread's, and the whole request runs on it
#[tokio::test]
async fn stage_spans_reach_an_otlp_collector_with_the_rec_id() {
    let (addr, received) = collector();
    let otlp = Otlp::start(&OtlpConfig {
        enabled: true,
        endpoint: format!("http://{addr}/v1/traces"),
        service_name: "redrec-gateway-test".into(),
        ..OtlpConfig::default()
    })
    .unwrap()
    .expect("export on");
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(otlp.layer()));

    let space = TestSpace::new("gw_otlp");
    let s = settings(&space, DIMS);
    fixture::load(&space, &s.index, &fixture::catalog(10, DIMS)).await;
    let app = app(AppState::new(s, None).expect("state"));
    let r = call(
        &app,
        Method::POST,
        "/v1/recommendations",
        None,
        Some(&json!({"user_id": "otlp-u1", "k": 3}).to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rec_id = r.json["rec_id"].as_str().unwrap().to_owned();

    // the batch processor exports on its own thread; flush waits for the collector's answer
    otlp.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans: Vec<Span> = loop {
        let spans: Vec<Span> = received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(path, content_type, body)| {
                assert_eq!(path, "/v1/traces");
                assert_eq!(content_type, "application/x-protobuf");
                let request = ExportTraceServiceRequest::decode(body.as_slice())
                    .expect("an OTLP protobuf payload");
                for rs in &request.resource_spans {
                    let service = rs
                        .resource
                        .as_ref()
                        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                        .and_then(|kv| kv.value.as_ref())
                        .and_then(|v| match &v.value {
                            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                            _ => None,
                        });
                    assert_eq!(service.as_deref(), Some("redrec-gateway-test"));
                }
                request
                    .resource_spans
                    .into_iter()
                    .flat_map(|rs| rs.scope_spans)
                    .flat_map(|ss| ss.spans)
            })
            .filter(|s| attribute(s, "rec_id") == Some(rec_id.as_str()))
            .collect();
        if spans.iter().any(|s| s.name == "request") || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .unwrap_or_else(|| panic!("no request span with rec_id {rec_id}: {names:?}"));
    assert_eq!(attribute(request, "route"), Some("/v1/recommendations"));
    // a user and no query text: features, retrieve and rerank ran (no embedding)
    for stage in ["features", "retrieve", "rerank"] {
        let span = spans
            .iter()
            .find(|s| s.name == stage)
            .unwrap_or_else(|| panic!("no `{stage}` span with rec_id {rec_id}: {names:?}"));
        assert_eq!(span.trace_id, request.trace_id, "{stage} in another trace");
        assert_eq!(
            span.parent_span_id, request.span_id,
            "{stage} is not a child of the request span"
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        assert!(
            span.start_time_unix_nano >= request.start_time_unix_nano
                && span.end_time_unix_nano <= request.end_time_unix_nano,
            "{stage} outside its request"
        );
    }
    assert!(!names.contains(&"embed"), "{names:?}");
    drop(guard);
    otlp.shutdown().unwrap();
}
