//! `FT.SEARCH` and `FT.HYBRID` replies as [`Page`]s of [`Hit`]s, in both protocol versions.

use std::collections::BTreeMap;

use redis::Value;

use super::{ReplyError, ReplyResult, is_text, number, pairs, string_map, string_map_except, text};
use crate::query::VECTOR_ALIAS;

/// One document of a search reply.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hit {
    pub key: String,
    /// `WITHSCORES` score (text queries) or the hybrid score.
    pub score: Option<f64>,
    pub fields: BTreeMap<String, String>,
    /// The raw vector blob, when the search returned it under [`VECTOR_ALIAS`]
    /// ([`crate::query::Projection::FieldsAndVector`]); it is never in `fields` (binary, not text).
    pub vector: Option<Vec<u8>>,
}

/// Reads a document's returned fields into `hit`: text values into `fields`, the blob under
/// [`VECTOR_ALIAS`] into `vector`, untouched by any text conversion.
fn read_fields(v: &Value, hit: &mut Hit) -> ReplyResult<()> {
    let mut vector = None;
    hit.fields = string_map_except(v, |k, val| {
        if is_text(k, VECTOR_ALIAS) != Some(true) {
            return false;
        }
        if let Value::BulkString(b) = val {
            vector = Some(b.clone());
        }
        true
    })?;
    hit.vector = vector;
    Ok(())
}

/// A parsed search reply.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub total: u64,
    pub hits: Vec<Hit>,
    /// Server warnings (RESP3 only), e.g. `Timeout limit was reached` for partial results.
    pub warnings: Vec<String>,
}

/// What the RESP2 flat array holds per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub with_scores: bool,
    pub with_content: bool,
}

/// Parses an `FT.SEARCH` reply.
pub fn parse_search(v: &Value, shape: Shape) -> ReplyResult<Page> {
    match v {
        Value::Map(_) => parse_search_resp3(v),
        Value::Attribute { data, .. } => parse_search(data, shape),
        Value::Array(items) => parse_search_resp2(items, shape),
        Value::ServerError(e) => Err(ReplyError::new(format!("server error in reply: {e:?}"))),
        other => Err(ReplyError::new(format!(
            "FT.SEARCH reply is not an array or map: {other:?}"
        ))),
    }
}

fn parse_search_resp3(v: &Value) -> ReplyResult<Page> {
    let mut page = Page::default();
    for (k, val) in pairs(v).expect("map") {
        match k.as_str() {
            "total_results" => page.total = number(val).unwrap_or(0.0) as u64,
            "warning" | "warnings" => {
                if let Value::Array(w) | Value::Set(w) = val {
                    page.warnings = w.iter().filter_map(text).collect();
                }
            }
            "results" => {
                let Value::Array(results) = val else {
                    return Err(ReplyError::new("`results` is not an array"));
                };
                page.hits.reserve(results.len());
                for r in results {
                    page.hits.push(resp3_hit(r)?);
                }
            }
            _ => {}
        }
    }
    Ok(page)
}

/// One document of a RESP3 search reply: a map with `id`, `score`, `extra_attributes`.
fn resp3_hit(r: &Value) -> ReplyResult<Hit> {
    let not_a_map = || ReplyError::new("result is not a map");
    let entries: &[(Value, Value)] = match r {
        Value::Map(m) => m,
        // the flat form is read by the generic pair reader
        _ => return resp3_hit_from_pairs(&pairs(r).ok_or_else(not_a_map)?),
    };
    if entries.iter().any(|(k, _)| is_text(k, "").is_none()) {
        return Err(not_a_map());
    }
    let mut hit = Hit::default();
    for (rk, rv) in entries {
        if is_text(rk, "id") == Some(true) {
            hit.key = text(rv).unwrap_or_default();
        } else if is_text(rk, "score") == Some(true) {
            hit.score = number(rv);
        } else if is_text(rk, "extra_attributes") == Some(true) {
            read_fields(rv, &mut hit)?;
        }
    }
    Ok(hit)
}

fn resp3_hit_from_pairs(p: &[(String, &Value)]) -> ReplyResult<Hit> {
    let mut hit = Hit::default();
    for (rk, rv) in p {
        match rk.as_str() {
            "id" => hit.key = text(rv).unwrap_or_default(),
            "score" => hit.score = number(rv),
            "extra_attributes" => read_fields(rv, &mut hit)?,
            _ => {}
        }
    }
    Ok(hit)
}

fn parse_search_resp2(items: &[Value], shape: Shape) -> ReplyResult<Page> {
    let Some(first) = items.first() else {
        return Err(ReplyError::new("empty FT.SEARCH reply"));
    };
    let total = number(first).ok_or_else(|| ReplyError::new("FT.SEARCH total is not a number"))?;
    let mut page = Page {
        total: total as u64,
        ..Page::default()
    };
    let mut it = items[1..].iter();
    while let Some(k) = it.next() {
        let mut hit = Hit {
            key: text(k).ok_or_else(|| ReplyError::new("document id is not a string"))?,
            ..Hit::default()
        };
        if shape.with_scores {
            hit.score = it.next().and_then(number);
        }
        if shape.with_content {
            let fields = it
                .next()
                .ok_or_else(|| ReplyError::new("document without its fields"))?;
            read_fields(fields, &mut hit)?;
        }
        page.hits.push(hit);
    }
    Ok(page)
}

/// Parses an `FT.HYBRID` reply: `total_results`, `results` (maps or flat arrays carrying
/// `__key`, `__score` and the loaded fields) and `warnings`.
pub fn parse_hybrid(v: &Value) -> ReplyResult<Page> {
    let p = pairs(v).ok_or_else(|| ReplyError::new(format!("FT.HYBRID reply: {v:?}")))?;
    let mut page = Page::default();
    for (k, val) in p {
        match k.as_str() {
            "total_results" => page.total = number(val).unwrap_or(0.0) as u64,
            "warnings" | "warning" => {
                if let Value::Array(w) | Value::Set(w) = val {
                    page.warnings = w.iter().filter_map(text).collect();
                }
            }
            "results" => {
                let Value::Array(results) = val else {
                    return Err(ReplyError::new("FT.HYBRID `results` is not an array"));
                };
                for r in results {
                    let mut fields = string_map(r)?;
                    let key = fields.remove("__key").unwrap_or_default();
                    let score = fields.remove("__score").and_then(|s| s.parse().ok());
                    page.hits.push(Hit {
                        key,
                        score,
                        fields,
                        vector: None,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::reply::bulk as b;

    #[test]
    fn reads_resp2_search_shapes() {
        let v = Value::Array(vec![
            Value::Int(2),
            b("i:1"),
            b("0.5"),
            Value::Array(vec![b("t"), b("a")]),
            b("i:2"),
            b("0.25"),
            Value::Array(vec![b("t"), b("b")]),
        ]);
        let page = parse_search(
            &v,
            Shape {
                with_scores: true,
                with_content: true,
            },
        )
        .unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(page.hits[1].key, "i:2");
        assert_eq!(page.hits[1].score, Some(0.25));
        assert_eq!(page.hits[0].fields["t"], "a");
        let v = Value::Array(vec![Value::Int(1), b("i:1")]);
        let page = parse_search(
            &v,
            Shape {
                with_scores: false,
                with_content: false,
            },
        )
        .unwrap();
        assert_eq!(page.hits[0].key, "i:1");
    }

    #[test]
    fn reads_resp3_search_with_warnings() {
        let v = Value::Map(vec![
            (b("total_results"), Value::Int(1)),
            (
                b("results"),
                Value::Array(vec![Value::Map(vec![
                    (b("id"), b("i:1")),
                    (b("score"), Value::Double(1.5)),
                    (
                        b("extra_attributes"),
                        Value::Map(vec![(b("__dist"), b("0.125"))]),
                    ),
                    (b("values"), Value::Array(vec![])),
                ])]),
            ),
            (
                b("warning"),
                Value::Array(vec![b("Timeout limit was reached")]),
            ),
        ]);
        let shape = Shape {
            with_scores: true,
            with_content: true,
        };
        let page = parse_search(&v, shape).unwrap();
        assert_eq!(page.hits[0].fields["__dist"], "0.125");
        assert_eq!(page.hits[0].score, Some(1.5));
        assert_eq!(page.warnings, ["Timeout limit was reached"]);
    }

    /// A vector blob that is not valid UTF-8 arrives byte for byte in `vector`, in both
    /// protocols, and never among the text fields.
    #[test]
    fn keeps_a_returned_vector_blob_as_bytes() {
        let blob: Vec<u8> = [0.5f32, -1.0, f32::from_bits(0xfffe_ff80)]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert!(
            std::str::from_utf8(&blob).is_err(),
            "the test blob must not be text"
        );
        let fields = vec![
            b("category"),
            b("BREAD"),
            b(VECTOR_ALIAS),
            Value::BulkString(blob.clone()),
            b("__dist"),
            b("0.25"),
        ];
        let resp2 = Value::Array(vec![Value::Int(1), b("i:1"), Value::Array(fields.clone())]);
        let shape = Shape {
            with_scores: false,
            with_content: true,
        };
        let resp3 = Value::Map(vec![
            (b("total_results"), Value::Int(1)),
            (
                b("results"),
                Value::Array(vec![Value::Map(vec![
                    (b("id"), b("i:1")),
                    (
                        b("extra_attributes"),
                        Value::Map(
                            fields
                                .chunks_exact(2)
                                .map(|c| (c[0].clone(), c[1].clone()))
                                .collect(),
                        ),
                    ),
                ])]),
            ),
        ]);
        for v in [resp2, resp3] {
            let hit = &parse_search(&v, shape).unwrap().hits[0];
            assert_eq!(hit.vector.as_deref(), Some(blob.as_slice()));
            assert_eq!(hit.fields.len(), 2, "{:?}", hit.fields);
            assert_eq!(hit.fields["category"], "BREAD");
            assert!(!hit.fields.contains_key(VECTOR_ALIAS));
        }
    }

    #[test]
    fn reads_hybrid_replies() {
        let v = Value::Array(vec![
            b("total_results"),
            Value::Int(1),
            b("results"),
            Value::Array(vec![Value::Array(vec![
                b("__key"),
                b("i:7"),
                b("__score"),
                b("0.03"),
                b("price"),
                b("2.5"),
            ])]),
            b("warnings"),
            Value::Array(vec![]),
            b("execution_time"),
            b("0.5"),
        ]);
        let page = parse_hybrid(&v).unwrap();
        assert_eq!(page.hits[0].key, "i:7");
        assert_eq!(page.hits[0].score, Some(0.03));
        assert_eq!(page.hits[0].fields["price"], "2.5");
    }
}
