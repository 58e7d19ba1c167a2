//! Browser-facing protections: CORS (off unless origins are configured) and the demo page's
//! Content-Security-Policy.

use axum::http::{HeaderName, HeaderValue, Method, header};
use sha2::{Digest, Sha256};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for `gateway.cors_allow_origins`: `None` when the list is empty (the default:
/// browsers then refuse cross-origin calls, the same-origin demo page is unaffected). Each entry
/// is an exact origin, `scheme://host[:port]`; the error names the entry.
pub fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(origins.len());
    for (i, origin) in origins.iter().enumerate() {
        values.push(
            parse_origin(origin)
                .map_err(|why| format!("gateway.cors_allow_origins[{i}] `{origin}`: {why}"))?,
        );
    }
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-user-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("server-timing"),
                header::RETRY_AFTER,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

fn parse_origin(origin: &str) -> Result<HeaderValue, &'static str> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or("expected an origin such as `https://shop.example.com` (scheme http or https)")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
        return Err("expected `scheme://host[:port]` with no path, query or wildcard");
    }
    HeaderValue::from_str(origin).map_err(|_| "not a valid header value")
}

/// `Content-Security-Policy` of the demo page: its one inline script is allowed by hash, it
/// talks only to this gateway, loads nothing from elsewhere and cannot be framed.
pub fn demo_csp(html: &str) -> String {
    let script = inline_script(html).unwrap_or_default();
    let hash = base64(&Sha256::digest(script.as_bytes()));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// The text between the page's `<script>` and `</script>` (the page has exactly one).
fn inline_script(html: &str) -> Option<&str> {
    let start = html.find("<script>")? + "<script>".len();
    let end = start + html[start..].find("</script>")?;
    Some(&html[start..end])
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn the_csp_allows_exactly_the_inline_script() {
        let html = "<html><script>alert(1)</script></html>";
        let csp = demo_csp(html);
        // sha256("alert(1)") in base64
        let want = base64(&Sha256::digest(b"alert(1)"));
        assert!(
            csp.contains(&format!("script-src 'sha256-{want}'")),
            "{csp}"
        );
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }

    #[test]
    fn cors_is_off_by_default_and_origins_are_checked() {
        assert!(cors_layer(&[]).unwrap().is_none());
        assert!(
            cors_layer(&[
                "https://shop.example.com".into(),
                "http://localhost:3000".into()
            ])
            .unwrap()
            .is_some()
        );
        for bad in [
            "*",
            "shop.example.com",
            "https://shop.example.com/",
            "https://",
            "ftp://x",
        ] {
            let e = cors_layer(&["https://ok.example".into(), bad.into()]).unwrap_err();
            assert!(e.starts_with("gateway.cors_allow_origins[1]"), "{bad}: {e}");
        }
    }
}
