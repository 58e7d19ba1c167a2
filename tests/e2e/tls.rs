//! The gateway reaching Redis over TLS (`rediss://`), trusting a private CA through
//! `redis.tls_ca_file`; without that CA the certificate is refused and `/readyz` says why.

use redrec_gateway::AppState;
use redrec_testkit::{TestSpace, tls::TlsFront};
use serde_json::json;

use crate::{
    fixture,
    http::json as call,
    support::{KEY, Running, settings},
};

#[tokio::test]
async fn the_gateway_serves_through_a_tls_connection_to_redis() {
    let space = TestSpace::new("e2e_tls");
    let mut s = settings(&space, 8);
    let items = fixture::catalog(5, 8);
    fixture::load(&space, &s.index, &items).await;
    let url = s.redis.url.clone();
    let (_, rest) = url.split_once("://").unwrap();
    let (credentials, host) = match rest.rsplit_once('@') {
        Some((c, h)) => (format!("{c}@"), h),
        None => (String::new(), rest),
    };
    let front = TlsFront::start(host.trim_end_matches('/')).await;
    let ca = std::env::temp_dir().join(format!("redrec-e2e-tls-{}.pem", std::process::id()));
    std::fs::write(&ca, &front.ca_pem).unwrap();
    s.redis.url = format!("rediss://{credentials}{}", front.addr());

    // 1. without the private CA: refused, and readiness names the cause (polled: the first
    //    check may still be waiting on the handshake)
    let gw = Running::start(s.clone(), None).await;
    let names_tls = |r: &crate::http::Response| {
        let why = r.json()["checks"]["redis"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        why.contains("certificate") || why.contains("tls")
    };
    let r = readyz_until(&gw.addr, names_tls).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(names_tls(&r), "{}", r.text());
    gw.shutdown().await;

    // 2. with it: every kind of call works over TLS
    s.redis.tls_ca_file = Some(ca.display().to_string());
    let gw = Running::start(s.clone(), None).await;
    let a = gw.addr.as_str();
    // (no embedder in this test: only the Redis checks matter)
    let r = readyz_until(a, |r| r.json()["checks"]["redis"] == "ok").await;
    assert_eq!(r.json()["checks"]["redis"], "ok", "{}", r.text());
    assert_eq!(r.json()["checks"]["index"], "ok", "{}", r.text());
    let r = call(
        a,
        "POST",
        "/v1/recommendations",
        None,
        Some(&json!({"k": 5})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 5);
    let r = call(
        a,
        "POST",
        "/v1/events",
        Some(KEY),
        Some(&json!({"type": "click", "user_id": "tls-u", "item_id": items[0].id})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = call(a, "GET", "/v1/users/tls-u", None, None).await;
    assert_eq!(r.json()["counters"]["click"], 1, "{}", r.text());
    gw.shutdown().await;

    // 3. a CA file with a plain redis:// URL is a configuration error naming the key
    let mut plain = s.clone();
    plain.redis.url = format!("redis://{credentials}{host}");
    let err = AppState::new(plain, None)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("redis.tls_ca_file"), "{err}");
    let _ = std::fs::remove_file(&ca);
}

/// `/readyz` polled for up to 5 s until `done` holds; the last answer either way (the caller's
/// assertions then say what was wrong).
async fn readyz_until(
    addr: &str,
    done: impl Fn(&crate::http::Response) -> bool,
) -> crate::http::Response {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = call(addr, "GET", "/readyz", None, None).await;
        if done(&r) || std::time::Instant::now() >= until {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
