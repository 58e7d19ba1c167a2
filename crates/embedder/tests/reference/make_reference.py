#!/usr/bin/env python3
"""Reference vectors for redrec-embedder's MiniLM, computed independently of the Rust code.

Tokenization uses the Hugging Face `tokenizers` library on the model's own tokenizer.json
(padding off, truncation at 128 tokens); the encoder is a float64 numpy forward pass of BERT
written from the published architecture (post-LayerNorm, erf GELU), followed by mean pooling
over the attention mask and L2 normalisation, as sentence-transformers' all-MiniLM-L6-v2 does.

Usage (from the repository root, after `cargo xtask fetch model`):
    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install numpy safetensors tokenizers
    /tmp/refvenv/bin/python crates/embedder/tests/reference/make_reference.py \
        target/redrec/models/all-minilm-l6-v2 > crates/embedder/tests/reference/minilm_reference.json
"""

import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_TOKENS = 128

# Sentences embedded one at a time and compared in full (all 384 dims).
SENTENCES = [
    "whole milk",
    "2% reduced fat milk",
    "motor oil",
    "organic bananas",
    "fresh yellow bananas, sold per pound",
    "synthetic 5W-30 engine oil, 5 quart jug",
    "GROCERY MILK/MILK PRODUCTS FLUID MILK WHITE ONLY 1 GA",
    "DRUG GM ANALGESICS ASPIRIN 100 CT",
    "Crème brûlée with café au lait",
    "",
    "a",
    # longer than 128 tokens: truncated to 126 word pieces + [CLS]/[SEP]
    " ".join(["chocolate chip cookies baked fresh every morning in small batches"] * 15),
]

# Cosines recorded for these pairs (indexes into SENTENCES).
PAIRS = [(0, 1), (0, 2), (3, 4), (2, 5), (0, 6), (1, 2)]

# Strings whose token ids the Rust tokenizer must reproduce exactly.
TOKENIZER_CASES = [
    "Hello, World!",
    "Crème brûlée",
    "naïve café résumé",
    "smörgåsbord Ünïcödé",
    "日本語のテキスト",
    "½ gallon 10-oz. pkg (12 ct)",
    "it's e-mail@example.com #1 $3.99 & more...",
    "ﬁne ligature",
    "İstanbul ΣΊΣΥΦΟΣ",
    "emoji 🥛 milk",
    "tab\tnew\nline\r\nend",
    "zero\u200bwidth\u200djoiner",
    "non\u00a0breaking space",
    "control\u0007char\u0000nul\ufffdrepl",
    "x" * 120,
    "unbelievablyunpronounceablewordthatgoesonandon",
    "GROCERY SOFT DRINKS SOFT DRINKS 12/18&15PK CAN CAR 12 OZ",
    "PRODUCE VEGETABLES - ALL OTHERS BROCCOLI WHOLE & CROWNS",
    "[CLS] literal [SEP] tokens [MASK] and [UNK]",
    "   leading and trailing   ",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ",
    "Ωmega ǅ digraph ß straße",
]


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def dense(w, prefix, x):
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def encode(w, cfg, ids):
    """Returns the mean-pooled, L2-normalised embedding of one unpadded id sequence."""
    n = len(ids)
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = cfg["layer_norm_eps"]
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = dense(w, p + "attention.self.query", x).reshape(n, heads, head_dim).transpose(1, 0, 2)
        k = dense(w, p + "attention.self.key", x).reshape(n, heads, head_dim).transpose(1, 0, 2)
        v = dense(w, p + "attention.self.value", x).reshape(n, heads, head_dim).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs = probs / probs.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, hidden)
        attn = dense(w, p + "attention.output.dense", ctx)
        x = layer_norm(
            attn + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        inner = gelu(dense(w, p + "intermediate.dense", x))
        out = dense(w, p + "output.dense", inner)
        x = layer_norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(axis=0)
    return pooled / np.linalg.norm(pooled)


def main():
    model_dir = sys.argv[1]
    with open(f"{model_dir}/config.json") as f:
        cfg = json.load(f)
    weights = {k: v.astype(np.float64) for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)

    sentences = []
    vectors = []
    for text in SENTENCES:
        ids = tok.encode(text).ids
        vec = encode(weights, cfg, ids)
        vectors.append(vec)
        sentences.append({"text": text, "ids": ids, "vector": [round(float(x), 7) for x in vec]})
    pairs = [
        {"a": a, "b": b, "cosine": round(float(vectors[a] @ vectors[b]), 7)} for a, b in PAIRS
    ]
    tokenizer_cases = [{"text": t, "ids": tok.encode(t).ids} for t in TOKENIZER_CASES]
    json.dump(
        {
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "max_tokens": MAX_TOKENS,
            "generator": "crates/embedder/tests/reference/make_reference.py (numpy float64 forward pass)",
            "sentences": sentences,
            "pairs": pairs,
            "tokenizer_cases": tokenizer_cases,
        },
        sys.stdout,
        ensure_ascii=False,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
