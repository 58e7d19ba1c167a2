//! `FT.AGGREGATE` replies as rows of field -> text.

use std::collections::BTreeMap;

use redis::Value;

use super::{ReplyError, ReplyResult, pairs, string_map};

/// One row of an aggregation (a group, or a loaded document).
pub type Row = BTreeMap<String, String>;

/// Parses an `FT.AGGREGATE` reply: RESP2 `[total, [k, v, ...], ...]` or RESP3
/// `{results: [{extra_attributes: {...}}, ...]}`. Values that are not text are left out.
pub fn parse_aggregate(v: &Value) -> ReplyResult<Vec<Row>> {
    match v {
        Value::Array(items) => items.iter().skip(1).map(string_map).collect(),
        Value::Map(_) | Value::Attribute { .. } => {
            let p = pairs(v).ok_or_else(|| ReplyError::new("FT.AGGREGATE reply is not a map"))?;
            let Some((_, Value::Array(results))) = p.into_iter().find(|(k, _)| k == "results")
            else {
                return Err(ReplyError::new("FT.AGGREGATE reply has no `results` array"));
            };
            results
                .iter()
                .map(|r| {
                    let row = pairs(r).ok_or_else(|| ReplyError::new("result is not a map"))?;
                    match row.into_iter().find(|(k, _)| k == "extra_attributes") {
                        Some((_, attrs)) => string_map(attrs),
                        None => Ok(Row::new()),
                    }
                })
                .collect()
        }
        other => Err(ReplyError::new(format!(
            "FT.AGGREGATE reply is not an array or map: {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::bulk as b;

    #[test]
    fn reads_aggregate_rows_in_both_protocols() {
        let resp2 = Value::Array(vec![
            Value::Int(2),
            Value::Array(vec![b("dept"), b("food"), b("cat"), b("fruit")]),
            Value::Array(vec![b("dept"), b("home"), b("cat"), Value::Nil]),
        ]);
        let rows = parse_aggregate(&resp2).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["cat"], "fruit");
        assert!(!rows[1].contains_key("cat"));
        let resp3 = Value::Map(vec![
            (b("total_results"), Value::Int(1)),
            (
                b("results"),
                Value::Array(vec![Value::Map(vec![
                    (
                        b("extra_attributes"),
                        Value::Map(vec![(b("dept"), b("food")), (b("cat"), b("fruit"))]),
                    ),
                    (b("values"), Value::Array(vec![])),
                ])]),
            ),
        ]);
        assert_eq!(parse_aggregate(&resp3).unwrap(), vec![rows[0].clone()]);
        assert!(parse_aggregate(&Value::Int(3)).is_err());
    }
}
