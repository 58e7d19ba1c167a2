//! BERT uncased WordPiece tokenizer, reading the vocabulary from `tokenizer.json`.
//!
//! It follows the pipeline that file declares for all-MiniLM-L6-v2 (BertNormalizer with
//! clean_text, handle_chinese_chars, strip_accents and lowercase; BertPreTokenizer; WordPiece
//! with `##` continuations, `[UNK]` for words over 100 chars; `[CLS] A [SEP]`), but pads nothing:
//! padding is per batch in the model. The reference fixture checks the ids against the Hugging
//! Face `tokenizers` library on mixed ASCII/Unicode inputs.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use unicode_categories::UnicodeCategories;
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// Token ids of one text, `[CLS] ... [SEP]`.
pub(crate) type TokenIds = Vec<u32>;

/// A WordPiece tokenizer for BERT uncased vocabularies.
#[derive(Debug)]
pub(crate) struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    pad: u32,
    max_chars_per_word: usize,
    /// Added tokens (`[CLS]`, `[MASK]`, ...) matched verbatim in the raw text before
    /// normalisation, as the Hugging Face tokenizer does.
    added: Vec<(String, u32)>,
}

#[derive(Deserialize)]
struct TokenizerFile {
    normalizer: Option<serde_json::Value>,
    model: ModelSection,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
    #[serde(default)]
    normalized: bool,
}

#[derive(Deserialize)]
struct ModelSection {
    #[serde(rename = "type")]
    kind: String,
    vocab: HashMap<String, u32>,
    unk_token: String,
    continuing_subword_prefix: String,
    max_input_chars_per_word: usize,
}

impl WordPiece {
    /// Reads `tokenizer.json` (Hugging Face format) and checks it describes an uncased BERT
    /// WordPiece model, the only kind this tokenizer reproduces.
    pub(crate) fn from_file(path: &Path) -> Result<Self> {
        let file: TokenizerFile = super::read_json(path)?;
        let bad = |detail: String| Error::ModelFormat {
            path: path.to_owned(),
            detail,
        };
        if file.model.kind != "WordPiece" || file.model.continuing_subword_prefix != "##" {
            return Err(bad(format!(
                "expected a WordPiece model with `##` continuations, found type `{}` prefix `{}`",
                file.model.kind, file.model.continuing_subword_prefix
            )));
        }
        let lowercase = file
            .normalizer
            .as_ref()
            .and_then(|n| n.get("lowercase"))
            .and_then(serde_json::Value::as_bool);
        if lowercase != Some(true) {
            return Err(bad("expected a BertNormalizer with lowercase = true".into()));
        }
        let id = |token: &str| {
            file.model
                .vocab
                .get(token)
                .copied()
                .ok_or_else(|| bad(format!("vocabulary lacks the special token `{token}`")))
        };
        if let Some(token) = file.added_tokens.iter().find(|t| t.normalized) {
            return Err(bad(format!(
                "added token `{}` has normalized = true, which this tokenizer does not support",
                token.content
            )));
        }
        let added: Vec<(String, u32)> = file
            .added_tokens
            .iter()
            .filter(|t| !t.content.is_empty())
            .map(|t| (t.content.clone(), t.id))
            .collect();
        Ok(Self {
            added,
            unk: id(&file.model.unk_token)?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            pad: id("[PAD]")?,
            max_chars_per_word: file.model.max_input_chars_per_word,
            vocab: file.model.vocab,
        })
    }

    /// Largest id any text can map to.
    pub(crate) fn max_id(&self) -> usize {
        self.vocab.values().copied().max().unwrap_or(0) as usize
    }

    /// Id used for padding positions.
    pub(crate) fn pad_id(&self) -> u32 {
        self.pad
    }

    /// Tokenizes `text` into `[CLS] pieces [SEP]`, keeping at most `max_len` ids in total
    /// (the pieces are truncated, the special tokens kept). `max_len` must be at least 2.
    pub(crate) fn encode(&self, text: &str, max_len: usize) -> TokenIds {
        let budget = max_len.saturating_sub(2);
        let mut ids = Vec::with_capacity(16);
        ids.push(self.cls);
        let mut push = |id: u32| {
            let room = ids.len() - 1 < budget;
            if room {
                ids.push(id);
            }
            room
        };
        'segments: for (segment, added_id) in self.split_added(text) {
            let normalized = normalize(segment);
            for word in pre_tokenize(&normalized) {
                for id in self.word_pieces(word) {
                    if !push(id) {
                        break 'segments;
                    }
                }
            }
            if added_id.is_some_and(|id| !push(id)) {
                break;
            }
        }
        ids.push(self.sep);
        ids
    }

    /// Splits `text` at verbatim occurrences of added tokens: yields (text before, token id)
    /// pairs, the last with no token.
    fn split_added<'t>(&self, text: &'t str) -> Vec<(&'t str, Option<u32>)> {
        let mut out = Vec::new();
        let mut rest = text;
        loop {
            let next = self
                .added
                .iter()
                .filter_map(|(content, id)| {
                    rest.find(content.as_str()).map(|at| (at, content, *id))
                })
                .min_by_key(|&(at, content, _)| (at, std::cmp::Reverse(content.len())));
            match next {
                Some((at, content, id)) => {
                    out.push((&rest[..at], Some(id)));
                    rest = &rest[at + content.len()..];
                }
                None => {
                    out.push((rest, None));
                    return out;
                }
            }
        }
    }

    /// Greedy longest-match-first split of one word; the whole word maps to `[UNK]` when any
    /// part of it cannot be matched.
    fn word_pieces(&self, word: &str) -> Vec<u32> {
        if word.chars().count() > self.max_chars_per_word {
            return vec![self.unk];
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut candidate = String::with_capacity(word.len() + 2);
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while end > start {
                candidate.clear();
                if start > 0 {
                    candidate.push_str("##");
                }
                candidate.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(&candidate) {
                    found = Some(id);
                    break;
                }
                // step back one char, staying on a char boundary
                end -= word[start..end]
                    .chars()
                    .next_back()
                    .map_or(1, char::len_utf8);
            }
            match found {
                Some(id) => pieces.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        pieces
    }
}

/// BertNormalizer: drop NUL/U+FFFD/control chars, map whitespace to ' ', space out CJK
/// ideographs, strip accents (NFD then drop non-spacing marks), lowercase.
fn normalize(text: &str) -> String {
    let mut cleaned = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        if is_bert_whitespace(c) {
            cleaned.push(' ');
        } else if is_chinese_char(c) {
            cleaned.push(' ');
            cleaned.push(c);
            cleaned.push(' ');
        } else {
            cleaned.push(c);
        }
    }
    let mut out = String::with_capacity(cleaned.len());
    for c in cleaned.nfd().filter(|c| !c.is_mark_nonspacing()) {
        out.extend(c.to_lowercase());
    }
    out
}

/// BertPreTokenizer: split on whitespace (dropped), then isolate every punctuation char.
fn pre_tokenize(text: &str) -> impl Iterator<Item = &str> {
    text.split(char::is_whitespace)
        .filter(|w| !w.is_empty())
        .flat_map(split_punctuation)
}

fn split_punctuation(word: &str) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (idx, c) = rest
            .char_indices()
            .find(|&(_, c)| is_bert_punctuation(c))
            .unwrap_or((rest.len(), ' '));
        let piece = if idx == 0 {
            &rest[..c.len_utf8()]
        } else {
            &rest[..idx]
        };
        rest = &rest[piece.len()..];
        Some(piece)
    })
}

fn is_bert_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

fn is_bert_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        pre_tokenize(&normalize(text)).map(str::to_owned).collect()
    }

    #[test]
    fn normalizes_and_splits_like_bert() {
        assert_eq!(
            words("Héllo,  WORLD!\tcafé 2%"),
            ["hello", ",", "world", "!", "cafe", "2", "%"]
        );
        assert_eq!(words("a\u{0}b\u{fffd}c"), ["abc"]);
        assert_eq!(words("野口 x"), ["野", "口", "x"]);
        assert_eq!(words("..."), [".", ".", "."]);
        assert!(words(" \n ").is_empty());
    }
}
