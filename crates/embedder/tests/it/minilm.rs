//! MiniLM against `tests/reference/minilm_reference.json`, written by `make_reference.py`
//! (Hugging Face `tokenizers` + a float64 numpy BERT forward pass; no code shared with the crate).

use std::path::Path;
use std::sync::OnceLock;

use redrec_embedder::{
    Embedder, EmbedderConfig, EmbedderKind, Error, MiniLm, default_model_dir, from_config,
};
use serde::Deserialize;

const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Reference {
    max_tokens: usize,
    sentences: Vec<Sentence>,
    pairs: Vec<Pair>,
    tokenizer_cases: Vec<TokenizerCase>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    ids: Vec<u32>,
    vector: Vec<f32>,
}

#[derive(Deserialize)]
struct Pair {
    a: usize,
    b: usize,
    cosine: f32,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    ids: Vec<u32>,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/minilm_reference.json");
        let text = std::fs::read_to_string(&path).expect("reference fixture is readable");
        serde_json::from_str(&text).expect("reference fixture parses")
    })
}

/// The model, loaded once per test binary. Panics with the loader's message (which says to run
/// `cargo xtask fetch model`) when the files are missing.
fn model() -> &'static MiniLm {
    static MODEL: OnceLock<MiniLm> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = default_model_dir();
        MiniLm::load(&dir).unwrap_or_else(|e| panic!("loading MiniLM from {}: {e}", dir.display()))
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn token_ids_match_hugging_face_tokenizers() {
    let model = model();
    let r = reference();
    assert_eq!(
        r.max_tokens, 128,
        "fixture was made with 128-token truncation"
    );
    for case in &r.tokenizer_cases {
        assert_eq!(
            model.token_ids(&case.text),
            case.ids,
            "token ids of {:?}",
            case.text
        );
    }
    for s in &r.sentences {
        assert_eq!(model.token_ids(&s.text), s.ids, "token ids of {:?}", s.text);
    }
}

#[test]
fn single_text_vectors_match_numpy_reference() {
    let model = model();
    assert_eq!(model.dims(), 384);
    assert_eq!(model.model_id(), "sentence-transformers/all-MiniLM-L6-v2");
    let mut worst = 0.0f32;
    for s in &reference().sentences {
        let got = model.embed_one(&s.text).unwrap();
        assert_eq!(got.len(), 384);
        let diff = max_abs_diff(&got, &s.vector);
        assert!(
            diff < TOLERANCE,
            "{:?}: max |diff| {diff} over 384 dims; first dims got {:?} want {:?}",
            s.text,
            &got[..8],
            &s.vector[..8]
        );
        worst = worst.max(diff);
        let norm = cosine(&got, &got).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{:?}: norm {norm}", s.text);
    }
    println!("largest |rust - numpy| over all sentences and dims: {worst:e}");
}

#[test]
fn batched_vectors_equal_single_ones() {
    // batches of 5 mix lengths (2..=128 tokens), so padding and masking are exercised
    let dir = default_model_dir();
    let batched = MiniLm::load_with(&dir, 128, 5).unwrap().with_threads(2);
    let r = reference();
    let texts: Vec<&str> = r.sentences.iter().map(|s| s.text.as_str()).collect();
    let vectors = batched.embed(&texts).unwrap();
    assert_eq!(vectors.len(), texts.len());
    for (s, got) in r.sentences.iter().zip(&vectors) {
        let diff = max_abs_diff(got, &s.vector);
        assert!(
            diff < TOLERANCE,
            "{:?} in a batch: max |diff| {diff}",
            s.text
        );
    }
    assert!(batched.embed(&[]).unwrap().is_empty());
}

#[test]
fn cosines_of_known_pairs_match_reference() {
    let model = model();
    let r = reference();
    for p in &r.pairs {
        let a = model.embed_one(&r.sentences[p.a].text).unwrap();
        let b = model.embed_one(&r.sentences[p.b].text).unwrap();
        let got = cosine(&a, &b);
        assert!(
            (got - p.cosine).abs() < TOLERANCE,
            "cos({:?}, {:?}) = {got}, reference {}",
            r.sentences[p.a].text,
            r.sentences[p.b].text,
            p.cosine
        );
    }
}

#[test]
fn related_products_score_clearly_above_unrelated_ones() {
    let v = model()
        .embed(&[
            "whole milk",
            "2% reduced fat milk",
            "motor oil",
            "organic bananas",
        ])
        .unwrap();
    let related = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(
        related > unrelated + 0.2,
        "whole milk~2% milk {related} vs whole milk~motor oil {unrelated}"
    );
    assert!(cosine(&v[0], &v[3]) < related);
}

#[test]
fn long_text_is_truncated_to_max_tokens() {
    let model = model();
    let long = "milk ".repeat(500);
    let ids = model.token_ids(&long);
    assert_eq!(ids.len(), 128);
    assert_eq!((ids[0], ids[127]), (101, 102), "[CLS] ... [SEP] kept");
    let short = MiniLm::load_with(&default_model_dir(), 16, 8).unwrap();
    assert_eq!(short.token_ids(&long).len(), 16);
    assert_eq!(short.embed(&[&long]).unwrap()[0].len(), 384);
}

#[test]
fn from_config_builds_minilm() {
    let config = EmbedderConfig {
        kind: EmbedderKind::Minilm,
        model_dir: Some(default_model_dir()),
        batch_size: 3,
        ..EmbedderConfig::default()
    };
    let embedder = from_config(&config).unwrap();
    assert_eq!(embedder.dims(), 384);
    assert_eq!(
        format!("{embedder:?}"),
        r#"Embedder { model_id: "sentence-transformers/all-MiniLM-L6-v2", dims: 384 }"#
    );
    let direct = MiniLm::from_config(&EmbedderConfig {
        threads: 2,
        max_tokens: 64,
        ..config.clone()
    })
    .unwrap();
    let shown = format!("{direct:?}");
    assert!(
        shown.contains("max_tokens: 64")
            && shown.contains("batch_size: 3")
            && shown.contains("threads: 2"),
        "{shown}"
    );
    let got = embedder.embed_one("whole milk").unwrap();
    let want = &reference().sentences[0];
    assert_eq!(want.text, "whole milk");
    assert!(max_abs_diff(&got, &want.vector) < TOLERANCE);
}

#[test]
fn missing_model_dir_says_how_to_fetch_it() {
    let dir = std::env::temp_dir().join("redrec-embedder-no-model-here");
    let err = MiniLm::load(&dir).unwrap_err();
    assert!(matches!(err, Error::ModelMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cargo xtask fetch model"), "{msg}");
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn bad_max_tokens_and_batch_size_are_rejected() {
    let dir = default_model_dir();
    let err = MiniLm::load_with(&dir, 1000, 8).unwrap_err();
    assert!(err.to_string().contains("embedder.max_tokens"), "{err}");
    let err = MiniLm::load_with(&dir, 128, 0).unwrap_err();
    assert!(err.to_string().contains("embedder.batch_size"), "{err}");
}

#[test]
fn concurrent_callers_share_one_model() {
    let model = model();
    let r = reference();
    std::thread::scope(|scope| {
        let workers: Vec<_> = r
            .sentences
            .iter()
            .take(4)
            .map(|s| scope.spawn(move || (s, model.embed_one(&s.text).unwrap())))
            .collect();
        for worker in workers {
            let (s, got) = worker.join().unwrap();
            let diff = max_abs_diff(&got, &s.vector);
            assert!(
                diff < TOLERANCE,
                "{:?} from a thread: max |diff| {diff}",
                s.text
            );
        }
    });
}
