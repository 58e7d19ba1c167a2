//! The HTTP embedder against a tiny HTTP/1.1 server on 127.0.0.1 started by each test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;

use redrec_embedder::{ApiStyle, Embedder, Error, HttpConfig, HttpEmbedder};
use serde_json::{Value, json};

/// Produces `(status, body)` from the request's JSON body.
type Reply = Box<dyn Fn(&Value) -> (u16, String) + Send>;

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// Serves `replies.len()` requests, answering the n-th with `replies[n](request body)` as
/// `(status, body)`, then stops. Returns the base URL and a receiver of what was requested.
fn serve(replies: Vec<Reply>) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for reply in replies {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let (mut length, mut authorization) = (0usize, None);
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "authorization" => authorization = Some(value.trim().to_owned()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            let (status, answer) = reply(&body);
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
            stream.flush().unwrap();
            let _ = tx.send(Seen {
                path,
                authorization,
                body,
            });
        }
    });
    (url, rx)
}

/// A deterministic fake "model": vector of `dims` built from the text's length (not normalised,
/// so the test can check that the embedder normalises).
fn fake_vector(text: &str, dims: usize) -> Vec<f32> {
    (0..dims).map(|i| (text.len() + i + 1) as f32).collect()
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn texts_of(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn openai_reply(dims: usize) -> Reply {
    Box::new(move |body| {
        let texts = texts_of(body, "input");
        // answer in reverse order: the client must sort by `index`
        let data: Vec<Value> = texts
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": fake_vector(t, dims)}))
            .collect();
        (
            200,
            json!({"object": "list", "data": data, "model": "m"}).to_string(),
        )
    })
}

fn tei_reply(dims: usize) -> Reply {
    Box::new(move |body| {
        let vectors: Vec<Vec<f32>> = texts_of(body, "inputs")
            .iter()
            .map(|t| fake_vector(t, dims))
            .collect();
        (200, serde_json::to_string(&vectors).unwrap())
    })
}

fn config(url: &str, api_style: ApiStyle, dims: usize) -> HttpConfig {
    HttpConfig {
        url: url.to_owned(),
        api_style,
        model: "test-model".into(),
        api_key: None,
        dims,
        timeout_ms: 5_000,
    }
}

#[test]
fn openai_style_batches_requests_sends_key_and_normalises() {
    let (url, seen) = serve(vec![openai_reply(4), openai_reply(4)]);
    let mut cfg = config(&format!("{url}/"), ApiStyle::Openai, 4);
    cfg.api_key = Some("sk-test".into());
    let embedder = HttpEmbedder::new(&cfg, 2).unwrap();
    assert_eq!(embedder.endpoint(), format!("{url}/v1/embeddings"));
    assert_eq!((embedder.dims(), embedder.model_id()), (4, "test-model"));
    let texts = ["a", "bbb", "cc"];
    let got = embedder.embed(&texts).unwrap();
    for (t, v) in texts.iter().zip(&got) {
        let want = normalised(fake_vector(t, 4));
        assert!(
            v.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-6),
            "{t}: {v:?}"
        );
    }
    let first = seen.recv().unwrap();
    assert_eq!(first.path, "/v1/embeddings");
    assert_eq!(first.authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(
        first.body,
        json!({"model": "test-model", "input": ["a", "bbb"]})
    );
    let second = seen.recv().unwrap();
    assert_eq!(second.body["input"], json!(["cc"]));
}

#[test]
fn tei_style_posts_inputs_to_embed() {
    let (url, seen) = serve(vec![tei_reply(3)]);
    let embedder = HttpEmbedder::new(&config(&url, ApiStyle::Tei, 3), 64).unwrap();
    let got = embedder.embed(&["whole milk", "motor oil"]).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], normalised(fake_vector("whole milk", 3)));
    let req = seen.recv().unwrap();
    assert_eq!(req.path, "/embed");
    assert_eq!(req.authorization, None);
    assert_eq!(texts_of(&req.body, "inputs"), ["whole milk", "motor oil"]);
}

#[test]
fn wrong_dimensions_are_a_clear_error() {
    let (url, _seen) = serve(vec![openai_reply(5)]);
    let embedder = HttpEmbedder::new(&config(&url, ApiStyle::Openai, 384), 8).unwrap();
    let err = embedder.embed(&["x"]).unwrap_err();
    assert!(matches!(err, Error::BadResponse { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("5 dimensions, expected 384"), "{msg}");
    assert!(msg.contains("embedder.http.dims"), "{msg}");
}

#[test]
fn wrong_vector_count_and_bad_json_are_errors() {
    let (url, _seen) = serve(vec![
        Box::new(|_| (200, "[[1.0, 2.0]]".to_owned())),
        Box::new(|_| (200, "{\"nope\": 1}".to_owned())),
    ]);
    let embedder = HttpEmbedder::new(&config(&url, ApiStyle::Tei, 2), 8).unwrap();
    let err = embedder.embed(&["a", "b"]).unwrap_err();
    assert!(
        err.to_string().contains("sent 2 texts, got 1 vectors"),
        "{err}"
    );
    let err = embedder.embed(&["a"]).unwrap_err();
    assert!(err.to_string().contains("expected a JSON array"), "{err}");
}

#[test]
fn http_error_status_is_reported_with_body() {
    let (url, _seen) = serve(vec![Box::new(|_| {
        (503, "{\"error\":\"model loading\"}".to_owned())
    })]);
    let embedder = HttpEmbedder::new(&config(&url, ApiStyle::Openai, 4), 8).unwrap();
    let err = embedder.embed(&["x"]).unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("503") && msg.contains("model loading"),
        "{msg}"
    );
}

#[test]
fn unreachable_service_and_timeout_are_errors() {
    // a listener that accepts but never answers: the client must give up after timeout_ms
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut cfg = config(&url, ApiStyle::Tei, 4);
    cfg.timeout_ms = 300;
    let embedder = HttpEmbedder::new(&cfg, 8).unwrap();
    let started = std::time::Instant::now();
    let err = embedder.embed(&["x"]).unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    assert!(
        started.elapsed().as_secs() < 5,
        "took {:?}",
        started.elapsed()
    );
    drop(listener);

    // nothing listens on the port any more
    let err = embedder.embed(&["x"]).unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
}

#[test]
fn no_texts_means_no_request() {
    let embedder =
        HttpEmbedder::new(&config("http://127.0.0.1:9", ApiStyle::Openai, 4), 8).unwrap();
    assert!(embedder.embed(&[]).unwrap().is_empty());
}

#[test]
fn invalid_settings_name_the_field() {
    let ok = config("http://127.0.0.1:1", ApiStyle::Openai, 4);
    let cases: Vec<(HttpConfig, usize, &str)> = vec![
        (
            HttpConfig {
                url: "".into(),
                ..ok.clone()
            },
            8,
            "embedder.http.url",
        ),
        (
            HttpConfig {
                url: "ftp://x".into(),
                ..ok.clone()
            },
            8,
            "embedder.http.url",
        ),
        (
            HttpConfig {
                dims: 0,
                ..ok.clone()
            },
            8,
            "embedder.http.dims",
        ),
        (
            HttpConfig {
                timeout_ms: 0,
                ..ok.clone()
            },
            8,
            "embedder.http.timeout_ms",
        ),
        (
            HttpConfig {
                model: " ".into(),
                ..ok.clone()
            },
            8,
            "embedder.http.model",
        ),
        (ok.clone(), 0, "embedder.batch_size"),
    ];
    for (cfg, batch, field) in cases {
        let err = HttpEmbedder::new(&cfg, batch).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    // TEI does not need a model name
    assert!(
        HttpEmbedder::new(
            &HttpConfig {
                model: String::new(),
                api_style: ApiStyle::Tei,
                ..ok
            },
            8
        )
        .is_ok()
    );
}
