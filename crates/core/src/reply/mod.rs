//! Reading Redis replies (`redis::Value`) into typed results, in both protocol versions: RESP3
//! (maps, sets, attributes; the only one that carries the `warning` list that flags partial
//! search results) and RESP2 (flat `[k, v, k, v]` arrays). Pure parsing: the crates that talk
//! to Redis send the commands and hand the replies here.
//!
//! - this file: the primitives ([`text`], [`number`], [`pairs`], [`string_map`]) and small
//!   replies (`HMGET`, `MODULE LIST`, `INFO` fields);
//! - [`search`]: `FT.SEARCH` and `FT.HYBRID` pages;
//! - [`info`]: `FT.INFO` (what a live index looks like, how far its indexing is);
//! - [`aggregate`]: `FT.AGGREGATE` rows.

pub mod aggregate;
pub mod info;
pub mod search;

use std::collections::BTreeMap;

use redis::Value;

pub use aggregate::{Row, parse_aggregate};
pub use info::{IndexInfo, InfoAttribute, parse_info};
pub use search::{Hit, Page, Shape, parse_hybrid, parse_search};

/// A reply whose shape the parser does not understand (a bug or a server it does not know, never
/// the caller's input). Each crate maps it to its own "unexpected reply" error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unexpected reply from redis: {message}")]
pub struct ReplyError {
    pub message: String,
}

impl ReplyError {
    pub fn new(message: impl Into<String>) -> ReplyError {
        ReplyError {
            message: message.into(),
        }
    }
}

/// Result of parsing one reply.
pub type ReplyResult<T> = std::result::Result<T, ReplyError>;

/// A string or number reply as text (`None` for nil, arrays, maps, errors).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Okay => Some("OK".into()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// [`text`], or the empty string.
pub fn text_or_empty(v: &Value) -> String {
    text(v).unwrap_or_default()
}

/// A number reply, or a string that parses as one.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Double(d) => Some(*d),
        Value::Int(i) => Some(*i as f64),
        other => text(other)?.parse().ok(),
    }
}

/// An integer reply, or a string that parses as one.
pub fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// Key/value pairs of a RESP3 map or a RESP2 flat `[k, v, k, v]` array (`None` for anything
/// else, an odd-length array, or a key that is not text).
pub fn pairs(v: &Value) -> Option<Vec<(String, &Value)>> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        Value::Array(a) if a.len() % 2 == 0 => a
            .chunks_exact(2)
            .map(|c| Some((text(&c[0])?, &c[1])))
            .collect(),
        Value::Attribute { data, .. } => pairs(data),
        _ => None,
    }
}

/// Like [`pairs`], but lenient: whatever pairs can be read (a trailing odd element is dropped,
/// a key that is not text becomes the empty string), empty for other shapes. For replies such
/// as `FT.INFO` whose optional parts vary by server version.
pub fn pairs_lenient(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| (text_or_empty(k), v)).collect(),
        Value::Array(a) => a
            .chunks_exact(2)
            .map(|c| (text_or_empty(&c[0]), &c[1]))
            .collect(),
        Value::Attribute { data, .. } => pairs_lenient(data),
        _ => Vec::new(),
    }
}

/// The text values of a pairs reply (values that are not text are left out). Read straight
/// from the reply (no intermediate pair list): this runs for every document of every search.
pub fn string_map(v: &Value) -> ReplyResult<BTreeMap<String, String>> {
    string_map_except(v, |_, _| false)
}

/// [`string_map`], but every pair is first offered to `take`; the pairs it takes (returns `true`
/// for) stay out of the map. Search replies use it to keep a binary vector blob out of the text.
pub fn string_map_except(
    v: &Value,
    mut take: impl FnMut(&Value, &Value) -> bool,
) -> ReplyResult<BTreeMap<String, String>> {
    if let Value::Attribute { data, .. } = v {
        return string_map_except(data, take);
    }
    let mut out = BTreeMap::new();
    let mut add = |k: &Value, v: &Value| {
        if take(k, v) {
            return true;
        }
        let Some(k) = text(k) else {
            return false;
        };
        if let Some(v) = text(v) {
            out.insert(k, v);
        }
        true
    };
    let ok = match v {
        Value::Map(m) => m.iter().all(|(k, v)| add(k, v)),
        Value::Array(a) if a.len() % 2 == 0 => a.chunks_exact(2).all(|c| add(&c[0], &c[1])),
        _ => false,
    };
    if ok {
        Ok(out)
    } else {
        Err(ReplyError::new(format!("expected field pairs, got {v:?}")))
    }
}

/// Whether a reply is the text `name` (`None` when it is not text at all), without allocating.
pub fn is_text(v: &Value, name: &str) -> Option<bool> {
    match v {
        Value::BulkString(b) => Some(b.as_slice() == name.as_bytes()),
        Value::SimpleString(s) => Some(s == name),
        Value::VerbatimString { text, .. } => Some(text == name),
        other => text(other).map(|t| t == name),
    }
}

/// An `HMGET` reply: one optional byte string per field asked for, borrowed from the reply
/// (vectors are decoded straight from it, without a copy of each blob).
pub fn parse_hmget(v: &Value) -> ReplyResult<Vec<Option<&[u8]>>> {
    let Value::Array(items) = v else {
        return Err(ReplyError::new(format!(
            "HMGET reply is not an array: {v:?}"
        )));
    };
    Ok(items
        .iter()
        .map(|x| match x {
            Value::BulkString(b) => Some(b.as_slice()),
            Value::SimpleString(s) => Some(s.as_bytes()),
            _ => None,
        })
        .collect())
}

/// The value of `name` in an `INFO` reply (`name:value` lines).
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The loaded percentage in an `INFO persistence` reply while the server loads its data
/// (`loading:1`), `None` otherwise.
pub fn loading_percent(info: &str) -> Option<f64> {
    if info_field(info, "loading") != Some("1") {
        return None;
    }
    info_field(info, "loading_loaded_perc")?.parse().ok()
}

/// The version of module `name` (case-insensitive) from a `MODULE LIST` reply.
pub fn module_version(v: &Value, name: &str) -> Option<u32> {
    let Value::Array(modules) = v else {
        return None;
    };
    modules.iter().find_map(|m| {
        let p = pairs(m)?;
        let field = |key: &str| p.iter().find(|(k, _)| k == key).and_then(|(_, v)| text(v));
        field("name")
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
            .then(|| field("ver")?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
pub(crate) fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_search_module_version() {
        let b = bulk;
        let v = Value::Array(vec![
            Value::Map(vec![
                (b("name"), b("ReJSON")),
                (b("ver"), Value::Int(20803)),
            ]),
            Value::Map(vec![
                (b("name"), b("search")),
                (b("ver"), Value::Int(80403)),
            ]),
        ]);
        assert_eq!(module_version(&v, "search"), Some(80403));
        let v = Value::Array(vec![Value::Array(vec![
            b("name"),
            b("search"),
            b("ver"),
            Value::Int(21005),
        ])]);
        assert_eq!(module_version(&v, "search"), Some(21005));
        assert_eq!(module_version(&v, "ReJSON"), None);
    }

    #[test]
    fn reads_pairs_in_both_protocols() {
        let flat = Value::Array(vec![bulk("a"), Value::Int(1), bulk("b"), bulk("x")]);
        let map = Value::Map(vec![(bulk("a"), Value::Int(1)), (bulk("b"), bulk("x"))]);
        for v in [&flat, &map] {
            let m = string_map(v).unwrap();
            assert_eq!(m["a"], "1");
            assert_eq!(m["b"], "x");
        }
        let odd = Value::Array(vec![bulk("a"), Value::Int(1), bulk("b")]);
        assert_eq!(pairs(&odd), None);
        assert_eq!(pairs_lenient(&odd).len(), 1);
        assert_eq!(integer(&bulk("42")), Some(42));
        assert_eq!(number(&Value::Double(0.5)), Some(0.5));
        assert_eq!(text(&Value::Nil), None);
    }

    #[test]
    fn reads_info_fields_and_loading_progress() {
        let info = "# Memory\r\nused_memory:1234\r\nused_memory_human:1.2K\r\n";
        assert_eq!(info_field(info, "used_memory"), Some("1234"));
        assert_eq!(info_field(info, "used_memory_rss"), None);
        let loading = "# Persistence\r\nloading:1\r\nloading_loaded_perc:37.25\r\n";
        assert_eq!(loading_percent(loading), Some(37.25));
        assert_eq!(
            loading_percent("loading:0\r\nloading_loaded_perc:0.00\r\n"),
            None
        );
        assert_eq!(loading_percent(""), None);
    }

    #[test]
    fn reads_hmget() {
        let v = Value::Array(vec![bulk("x"), Value::Nil]);
        assert_eq!(parse_hmget(&v).unwrap(), vec![Some(&b"x"[..]), None]);
        assert!(parse_hmget(&Value::Int(1)).is_err());
    }
}
