//! `EmbedderConfig` deserialisation and `from_config` dispatch.

use redrec_embedder::{ApiStyle, EmbedderConfig, EmbedderKind, from_config};
use serde_json::json;

#[test]
fn defaults_select_minilm_with_batches_of_64() {
    let config: EmbedderConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(config, EmbedderConfig::default());
    assert_eq!(config.kind, EmbedderKind::Minilm);
    assert_eq!((config.batch_size, config.max_tokens), (64, 128));
    assert_eq!(config.model_dir, None);
}

#[test]
fn http_section_deserialises() {
    let config: EmbedderConfig = serde_json::from_value(json!({
        "kind": "http",
        "batch_size": 32,
        "http": {
            "url": "http://tei:8080",
            "api_style": "tei",
            "dims": 768,
            "timeout_ms": 2000,
            "api_key": "k"
        }
    }))
    .unwrap();
    assert_eq!(config.kind, EmbedderKind::Http);
    assert_eq!(config.batch_size, 32);
    assert_eq!(config.http.api_style, ApiStyle::Tei);
    assert_eq!((config.http.dims, config.http.timeout_ms), (768, 2000));
    assert_eq!(config.http.api_key.as_deref(), Some("k"));
    let embedder = from_config(&config).unwrap();
    assert_eq!(embedder.dims(), 768);
}

#[test]
fn unknown_kind_is_rejected_by_serde() {
    let err = serde_json::from_value::<EmbedderConfig>(json!({"kind": "onnx"})).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("unknown variant `onnx`") && msg.contains("minilm"),
        "{msg}"
    );
}

#[test]
fn from_config_validates_before_loading() {
    let config = EmbedderConfig {
        batch_size: 0,
        ..EmbedderConfig::default()
    };
    let err = from_config(&config).unwrap_err();
    assert!(err.to_string().contains("embedder.batch_size"), "{err}");

    let config = EmbedderConfig {
        kind: EmbedderKind::Http,
        ..EmbedderConfig::default()
    };
    let err = from_config(&config).unwrap_err();
    assert!(err.to_string().contains("embedder.http.url"), "{err}");
}

#[test]
fn misspelt_keys_are_rejected() {
    let err = serde_json::from_value::<EmbedderConfig>(json!({"batchsize": 8})).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `batchsize`"),
        "{err}"
    );
    let err = serde_json::from_value::<EmbedderConfig>(json!({"http": {"api_stlye": "tei"}}))
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `api_stlye`"),
        "{err}"
    );
}
