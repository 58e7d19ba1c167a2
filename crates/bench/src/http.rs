//! The gateway side: the query mix as `POST /v1/recommendations`, over a small pool of HTTP/1.1
//! keep-alive connections (hyper's low-level client, no connection-pool crate, no TLS).

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use hdrhistogram::Histogram;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::{
    Request,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    header,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::{
    driver::{BoxFut, StageLatency, Target},
    stats,
    workload::{BenchQuery, Kind},
};

/// A keep-alive HTTP/1.1 client for one host.
pub struct HttpClient {
    /// `host:port`
    authority: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    pub timeout: Duration,
    /// Sent as `X-Api-Key` on every request when set.
    pub api_key: Option<String>,
}

impl HttpClient {
    /// `base` is `http://host:port` (no TLS: the bench talks to a local gateway).
    pub fn new(base: &str) -> Result<HttpClient> {
        let authority = base
            .strip_prefix("http://")
            .with_context(|| format!("gateway url `{base}`: expected http://host:port"))?
            .trim_end_matches('/')
            .to_owned();
        if authority.is_empty() || authority.contains('/') {
            bail!("gateway url `{base}`: expected http://host:port");
        }
        Ok(HttpClient {
            authority,
            idle: Mutex::new(Vec::new()),
            timeout: Duration::from_secs(2),
            api_key: None,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to the gateway at {}", self.authority))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn checkout(&self) -> Result<SendRequest<Full<Bytes>>> {
        loop {
            let idle = self.idle.lock().expect("pool lock").pop();
            match idle {
                Some(mut s) if !s.is_closed() => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    /// Sends one request and returns (status, body).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes)> {
        self.send_with(method, path, body, &[]).await
    }

    /// [`HttpClient::send`] with extra request headers.
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Bytes)> {
        tokio::time::timeout(self.timeout, async {
            let mut sender = self.checkout().await?;
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, &self.authority);
            if let Some(key) = &self.api_key {
                req = req.header("x-api-key", key);
            }
            if body.is_some() {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await?.to_bytes();
            self.idle.lock().expect("pool lock").push(sender);
            Ok((status, bytes))
        })
        .await
        .with_context(|| format!("{method} {path} timed out"))?
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<(u16, Bytes)> {
        self.send("POST", path, Some(serde_json::to_vec(body)?))
            .await
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Bytes)> {
        self.send("GET", path, None).await
    }
}

/// The JSON body of `POST /v1/recommendations` for one query of the mix.
pub fn recommendation_body(q: &BenchQuery) -> Value {
    let mut body = json!({ "k": q.k });
    match q.kind {
        Kind::Vector => body["query"] = json!({ "vector": q.vector }),
        Kind::Personal => body["user_id"] = json!(q.user_id),
        Kind::Text => body["query"] = json!({ "text": q.text }),
    }
    if !q.filter.is_all() {
        body["filter"] = q.filter.to_json();
    }
    body
}

/// Item ids of a recommendations response (`{"items": [{"id": ...}, ...]}`).
pub fn response_ids(body: &[u8]) -> Result<Vec<String>> {
    Ok(parse_response(body)?.0)
}

/// (stage, milliseconds) pairs a response reports.
pub type StageTimings = Vec<(String, f64)>;

/// Item ids and the per-stage timings (`"timings": [{"stage": ..., "ms": ...}]`) of a response.
pub fn parse_response(body: &[u8]) -> Result<(Vec<String>, StageTimings)> {
    let v: Value = serde_json::from_slice(body).context("gateway response is not JSON")?;
    let timings = v
        .get("timings")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|s| {
                    Some((s.get("stage")?.as_str()?.to_owned(), s.get("ms")?.as_f64()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .context("gateway response has no `items` array")?;
    let ids = items
        .iter()
        .filter_map(|i| i.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    Ok((ids, timings))
}

/// The route the query mix is sent to.
const RECOMMEND_ROUTE: &str = "/v1/recommendations";

/// The `(stage, cumulative CPU seconds)` of `route` in a `/metrics` exposition
/// (`redrec_request_cpu_seconds_total{route="...",stage="..."} 1.25`).
pub fn route_cpu(metrics: &str, route: &str) -> Vec<(String, f64)> {
    let prefix = format!("redrec_request_cpu_seconds_total{{route=\"{route}\",stage=\"");
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (stage, value) = rest.split_once("\"} ")?;
            Some((stage.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The gateway as a load target.
pub struct GatewayTarget {
    pub client: HttpClient,
    stages: Mutex<BTreeMap<String, Histogram<u64>>>,
}

impl GatewayTarget {
    pub fn new(client: HttpClient) -> GatewayTarget {
        GatewayTarget {
            client,
            stages: Mutex::new(BTreeMap::new()),
        }
    }

    pub async fn recommend(&self, q: &BenchQuery) -> Result<Vec<String>> {
        let (status, body) = self
            .client
            .post_json(RECOMMEND_ROUTE, &recommendation_body(q))
            .await?;
        if status != 200 {
            bail!(
                "POST /v1/recommendations answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        let (ids, timings) = parse_response(&body)?;
        let mut stages = self.stages.lock().expect("stages lock");
        for (stage, ms) in timings {
            stats::record(
                stages.entry(stage).or_insert_with(stats::new_histogram),
                Duration::from_secs_f64(ms.max(0.0) / 1000.0),
            );
        }
        Ok(ids)
    }
}

impl Target for GatewayTarget {
    fn send<'a>(&'a self, q: &'a BenchQuery) -> BoxFut<'a, Result<()>> {
        Box::pin(async move { self.recommend(q).await.map(|_| ()) })
    }

    fn cpu_counters(&self) -> BoxFut<'_, Option<Vec<(String, f64)>>> {
        Box::pin(async move {
            let (status, body) = self.client.get("/metrics").await.ok()?;
            (status == 200).then(|| route_cpu(&String::from_utf8_lossy(&body), RECOMMEND_ROUTE))
        })
    }

    fn take_stages(&self) -> Vec<StageLatency> {
        let stages = std::mem::take(&mut *self.stages.lock().expect("stages lock"));
        stages
            .into_iter()
            .map(|(stage, h)| StageLatency {
                stage,
                count: h.len(),
                p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redrec_core::filter::Filter;

    fn q(kind: Kind) -> BenchQuery {
        BenchQuery {
            kind,
            vector: vec![0.5, 0.25],
            user_id: Some("u1".into()),
            text: Some("fresh apple".into()),
            filter: Filter::tag_any("category", ["cat01"]),
            k: 10,
        }
    }

    #[test]
    fn bodies_follow_the_api() {
        let v = recommendation_body(&q(Kind::Vector));
        assert_eq!(v["query"]["vector"], json!([0.5, 0.25]));
        assert_eq!(v["filter"]["tag"]["any"], json!(["cat01"]));
        assert_eq!(v["k"], 10);
        assert!(v.get("user_id").is_none());
        let p = recommendation_body(&q(Kind::Personal));
        assert_eq!(p["user_id"], "u1");
        assert!(p.get("query").is_none());
        assert_eq!(
            recommendation_body(&q(Kind::Text))["query"]["text"],
            "fresh apple"
        );
    }

    #[test]
    fn reads_the_cpu_counters_of_one_route() {
        let text = "# TYPE redrec_request_cpu_seconds_total counter\n\
            redrec_request_cpu_seconds_total{route=\"/v1/recommendations\",stage=\"request\"} 0.5\n\
            redrec_request_cpu_seconds_total{route=\"/v1/recommendations\",stage=\"retrieve\"} 1.25\n\
            redrec_request_cpu_seconds_total{route=\"/v1/events\",stage=\"request\"} 9\n";
        assert_eq!(
            route_cpu(text, "/v1/recommendations"),
            [("request".to_owned(), 0.5), ("retrieve".to_owned(), 1.25)]
        );
        assert!(route_cpu("", "/v1/recommendations").is_empty());
    }

    #[test]
    fn parses_response_ids_and_rejects_garbage() {
        let ids = response_ids(br#"{"items":[{"id":"4","score":0.9},{"id":"7"}]}"#).unwrap();
        assert_eq!(ids, ["4", "7"]);
        assert!(response_ids(b"<html>").is_err());
        assert!(response_ids(br#"{"error":{}}"#).is_err());
        assert!(HttpClient::new("https://x:1").is_err());
        assert!(HttpClient::new("http://127.0.0.1:8080/").is_ok());
    }

    #[tokio::test]
    async fn talks_http_over_keep_alive() {
        // A one-connection HTTP/1.1 server written against the socket: answers two requests.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            for _ in 0..2 {
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let body = br#"{"items":[{"id":"1"}],"timings":[{"stage":"retrieve","ms":1.5}]}"#;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                s.write_all(head.as_bytes()).await.unwrap();
                s.write_all(body).await.unwrap();
            }
        });
        let gw = GatewayTarget::new(HttpClient::new(&format!("http://{addr}")).unwrap());
        assert_eq!(gw.recommend(&q(Kind::Vector)).await.unwrap(), ["1"]);
        assert_eq!(gw.recommend(&q(Kind::Text)).await.unwrap(), ["1"]);
        let stages = gw.take_stages();
        assert_eq!(stages.len(), 1);
        assert_eq!((stages[0].stage.as_str(), stages[0].count), ("retrieve", 2));
        assert!((stages[0].p50_ms - 1.5).abs() < 0.01, "{stages:?}");
        assert!(gw.take_stages().is_empty());
        server.await.unwrap();
    }
}
