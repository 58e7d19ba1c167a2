//! The item codec: the value rules every writer of an item applies, and how typed values become a
//! hash (or a JSON document). Shared by `redrec-ingest` (rows from files) and the gateway's
//! `PUT /v1/items/{id}` (JSON bodies), so an item written either way is checked by the same rules
//! and stored in the same bytes. Callers map their own input (a source row, a JSON value) onto
//! [`FieldValue`]s with these checks; error messages are plain text, and the caller names the
//! field (ingest: file, row and field; gateway: the JSON path).

use crate::{
    schema::{FieldKind, IndexSchema},
    vector,
};

/// Longest accepted tag value, in bytes.
pub const MAX_TAG_LEN: usize = 256;

/// A typed value ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Text(String),
    Num(f64),
    Tags(Vec<String>),
    Geo(f64, f64),
    Vector(Vec<f32>),
}

/// A number a numeric field can hold: finite.
pub fn check_number(n: f64) -> Result<f64, String> {
    if n.is_finite() {
        Ok(n)
    } else {
        Err(format!("expected a finite number, got {n}"))
    }
}

/// One tag, trimmed: non-empty, at most [`MAX_TAG_LEN`] bytes, without control characters.
pub fn check_tag(t: &str) -> Result<String, String> {
    let t = t.trim();
    if t.is_empty() {
        return Err("expected a non-empty tag, got an empty one".into());
    }
    if t.len() > MAX_TAG_LEN {
        return Err(format!(
            "tag is {} bytes long, at most {MAX_TAG_LEN} allowed",
            t.len()
        ));
    }
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Err(format!(
            "tag `{}` contains the control character {c:?}: expected printable text",
            truncate(t)
        ));
    }
    Ok(t.to_owned())
}

/// A tag string split on the field's separator, each tag checked by [`check_tag`].
pub fn split_tags(s: &str, sep: &str) -> Result<Vec<String>, String> {
    s.split(sep).map(check_tag).collect()
}

/// A GEO value, `"lon,lat"`, within the ranges Redis accepts.
pub fn parse_geo(s: &str) -> Result<(f64, f64), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let parsed: Option<(f64, f64)> = match parts[..] {
        [lon, lat] => lon.parse().ok().zip(lat.parse().ok()),
        _ => None,
    };
    match parsed {
        Some((lon, lat)) if (-180.0..=180.0).contains(&lon) && (-85.06..=85.06).contains(&lat) => {
            Ok((lon, lat))
        }
        _ => Err(format!(
            "expected \"lon,lat\" with lon in -180..180 and lat in -85.05..85.05, got `{}`",
            truncate(s)
        )),
    }
}

/// Longest name of a field stored outside the schema, in bytes.
pub const MAX_PLAIN_FIELD_NAME_LEN: usize = 64;

/// Whether `name` may be stored as a field outside the schema (kept, not indexed): 1-64 ASCII
/// letters, digits or `_`, so it can never collide with query syntax or key naming.
pub fn is_plain_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PLAIN_FIELD_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The separator of tag field `name` (`,` unless the schema says otherwise).
pub fn tag_separator(schema: &IndexSchema, name: &str) -> String {
    match schema.field(name).map(|f| &f.kind) {
        Ok(FieldKind::Tag(t)) => t.separator.clone().unwrap_or_else(|| ",".into()),
        _ => ",".into(),
    }
}

/// Numbers are written the shortest way that reads back the same (`3` not `3.0`).
pub fn format_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Renders (storage field, value) pairs as `HSET` field/value arguments (vectors as f32 blobs).
pub fn encode_hash(
    values: &[(String, FieldValue)],
    schema: &IndexSchema,
) -> Vec<(String, Vec<u8>)> {
    values
        .iter()
        .map(|(name, v)| {
            let bytes = match v {
                FieldValue::Text(s) => s.clone().into_bytes(),
                FieldValue::Num(n) => format_num(*n).into_bytes(),
                FieldValue::Tags(t) => t.join(&tag_separator(schema, name)).into_bytes(),
                FieldValue::Geo(lon, lat) => format!("{lon},{lat}").into_bytes(),
                FieldValue::Vector(v) => vector::encode(v),
            };
            (name.clone(), bytes)
        })
        .collect()
}

/// Renders (storage field, value) pairs as a JSON document (vectors as arrays of numbers).
pub fn encode_json(values: &[(String, FieldValue)], schema: &IndexSchema) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, v) in values {
        let value = match v {
            FieldValue::Text(s) => serde_json::Value::String(s.clone()),
            FieldValue::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
                serde_json::json!(*n as i64)
            }
            FieldValue::Num(n) => serde_json::json!(n),
            FieldValue::Tags(t) => serde_json::Value::String(t.join(&tag_separator(schema, name))),
            FieldValue::Geo(lon, lat) => serde_json::Value::String(format!("{lon},{lat}")),
            FieldValue::Vector(v) => serde_json::json!(v),
        };
        map.insert(name.clone(), value);
    }
    serde_json::Value::Object(map)
}

/// `s` cut to 40 characters for an error message.
pub fn truncate(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(40).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ItemFields, VectorSettings, items_schema};

    fn schema() -> IndexSchema {
        items_schema(
            "idx",
            "p:",
            &ItemFields::default(),
            &VectorSettings {
                dims: 2,
                ..VectorSettings::default()
            },
        )
    }

    #[test]
    fn checks_values_with_messages_that_say_what_was_expected() {
        assert_eq!(check_number(2.5), Ok(2.5));
        assert!(check_number(f64::NAN).unwrap_err().contains("finite"));
        assert_eq!(split_tags(" a , b", ","), Ok(vec!["a".into(), "b".into()]));
        assert!(split_tags("a,,b", ",").unwrap_err().contains("non-empty"));
        assert!(
            check_tag(&"x".repeat(300))
                .unwrap_err()
                .contains("at most 256")
        );
        assert!(
            check_tag("a\u{7}")
                .unwrap_err()
                .contains("control character")
        );
        assert_eq!(parse_geo("2.35, 48.85"), Ok((2.35, 48.85)));
        assert!(parse_geo("200,1").unwrap_err().contains("lon in -180..180"));
        assert!(is_plain_field_name("color_2"));
        assert!(!is_plain_field_name("a b") && !is_plain_field_name(""));
        assert!(!is_plain_field_name(&"a".repeat(65)));
        assert_eq!(truncate(&"y".repeat(50)), format!("{}...", "y".repeat(40)));
    }

    #[test]
    fn encodes_hash_and_json_the_same_way_for_every_writer() {
        let values = vec![
            (
                "category".to_owned(),
                FieldValue::Tags(vec!["a".into(), "b".into()]),
            ),
            ("price".to_owned(), FieldValue::Num(3.0)),
            ("popularity".to_owned(), FieldValue::Num(2.5)),
            ("text".to_owned(), FieldValue::Text("milk".into())),
            ("embedding".to_owned(), FieldValue::Vector(vec![1.0, 0.0])),
        ];
        let hash = encode_hash(&values, &schema());
        let text: Vec<(&str, &[u8])> = hash
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .take(4)
            .collect();
        assert_eq!(
            text,
            [
                ("category", &b"a,b"[..]),
                ("price", b"3"),
                ("popularity", b"2.5"),
                ("text", b"milk")
            ]
        );
        assert_eq!(hash[4].1, vector::encode(&[1.0, 0.0]));
        let json = encode_json(&values, &schema());
        assert_eq!(json["price"], serde_json::json!(3));
        assert_eq!(json["category"], "a,b");
        assert_eq!(json["embedding"], serde_json::json!([1.0, 0.0]));
    }
}
