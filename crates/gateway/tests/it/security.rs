//! Browser-facing protections and API keys given as digests.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use tower::ServiceExt;

use super::*;

fn sha256_hex(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn the_demo_page_carries_a_csp_that_pins_its_script() {
    let space = TestSpace::new("gw_csp");
    let app = router(settings(&space, DIMS));
    let r = call(&app, Method::GET, "/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    // the hash is of the script the page really contains
    let start = r.text.find("<script>").unwrap() + "<script>".len();
    let end = start + r.text[start..].find("</script>").unwrap();
    let script = &r.text[start..end];
    assert!(script.contains("recommend"), "not the page's script");
    assert_eq!(
        csp,
        redrec_gateway::security::demo_csp(&r.text),
        "the policy must pin the script of the page as served"
    );
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
}

async fn preflight(app: &axum::Router, origin: &str) -> axum::http::Response<Body> {
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/recommendations")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap()
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allow_list() {
    let space = TestSpace::new("gw_cors");
    let app = router(settings(&space, DIMS));
    let res = preflight(&app, "https://shop.example.com").await;
    assert!(
        !res.headers().contains_key("access-control-allow-origin"),
        "CORS must be off by default: {:?}",
        res.headers()
    );

    let mut s = settings(&space, DIMS);
    s.gateway.cors_allow_origins = vec!["https://shop.example.com".into()];
    let app = router(s);
    let res = preflight(&app, "https://shop.example.com").await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    // another origin gets no grant
    let res = preflight(&app, "https://evil.example.com").await;
    assert!(!res.headers().contains_key("access-control-allow-origin"));

    // a bad entry stops the start, naming it
    let mut s = settings(&space, DIMS);
    s.gateway.cors_allow_origins = vec!["*".into()];
    let err = AppState::new(s, None).err().expect("`*` must be refused");
    let msg = err.to_string();
    assert!(msg.contains("gateway.cors_allow_origins[0]"), "{msg}");
}

#[tokio::test]
async fn a_key_configured_as_its_sha256_opens_writes() {
    let space = TestSpace::new("gw_keyhash");
    let mut s = settings(&space, DIMS);
    s.gateway.api_keys = vec![format!("sha256:{}", sha256_hex("s3cret-write-key"))];
    let app = router(s);
    let body = r#"{"type":"click","user_id":"u1","item_id":"nope"}"#;
    let r = call(&app, Method::POST, "/v1/events", Some("wrong"), Some(body)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // the digest itself is not a key
    let digest = format!("sha256:{}", sha256_hex("s3cret-write-key"));
    let r = call(&app, Method::POST, "/v1/events", Some(&digest), Some(body)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // the real key passes authentication (the unknown item is then a 4xx of its own, not 401)
    let r = call(
        &app,
        Method::POST,
        "/v1/events",
        Some("s3cret-write-key"),
        Some(body),
    )
    .await;
    assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    let mut s = settings(&space, DIMS);
    s.gateway.api_keys = vec!["sha256:xyz".into()];
    let msg = AppState::new(s, None)
        .err()
        .expect("bad digest")
        .to_string();
    assert!(msg.contains("gateway.api_keys[0]"), "{msg}");
    assert!(
        !msg.contains("xyz"),
        "the entry itself is not echoed: {msg}"
    );
}
