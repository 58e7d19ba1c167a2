//! Mapping source columns to schema fields, and validating every row before anything is written.
//!
//! A row becomes an [`ItemDoc`] (the key and the typed values to write) or a list of
//! [`Reject`]s, each naming the file, the row and the field, with what was expected. The value
//! rules and the hash/JSON encoding are the item codec of `redrec_core::item`, which the gateway's
//! `PUT /v1/items` uses too; this module maps source columns and values onto it.

use std::collections::BTreeMap;

pub use redrec_core::item::{FieldValue as DocValue, MAX_TAG_LEN, format_num};
use redrec_core::{
    item::{self, check_tag, truncate},
    keys,
    schema::{FieldKind, IndexSchema, VectorAttrs},
    vector,
};
use serde::{Deserialize, Serialize};

use crate::source::{SourceRow, Value};

/// How source columns map to schema fields (the `[mapping]` section of the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    /// Column holding the item id.
    pub id: String,
    /// Schema field -> source column, for fields whose column has another name. Schema fields
    /// not listed are read from the column of the same name.
    pub fields: BTreeMap<String, String>,
    /// Schema fields that must be present in every row (the id always is).
    pub required: Vec<String>,
    /// Rows must carry a vector when the schema has a vector field (turn off for metadata-only
    /// loads; vectors can come later from a vector file).
    pub require_vector: bool,
    /// Scale vectors to unit length before writing.
    pub normalize: bool,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            id: "id".into(),
            fields: BTreeMap::new(),
            required: Vec::new(),
            require_vector: true,
            normalize: false,
        }
    }
}

impl Mapping {
    /// The source column of a schema field.
    pub fn column<'a>(&'a self, field: &'a str) -> &'a str {
        self.fields.get(field).map_or(field, String::as_str)
    }
}

/// One invalid row (or one problem in it), with where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub file: String,
    pub row: u64,
    /// The schema field (or `-` when the row as a whole is unreadable).
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} row {}: field `{}`: {}",
            self.file, self.row, self.field, self.message
        )
    }
}

/// A validated item: its key and the (storage field, value) pairs to write.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemDoc {
    pub id: String,
    pub key: String,
    pub values: Vec<(String, DocValue)>,
}

/// Validates rows against one schema and mapping.
#[derive(Debug, Clone)]
pub struct Validator {
    schema: IndexSchema,
    mapping: Mapping,
    file: String,
    /// Where each schema field is written: its hash field (or JSON attribute) name. Differs from
    /// the schema name only for vector fields added by a migration (`embedding__v2`).
    storage_names: BTreeMap<String, String>,
}

impl Validator {
    /// `storage_names` overrides where a schema field is stored (see [`crate::index::ServingIndex`]).
    pub fn new(
        schema: IndexSchema,
        mapping: Mapping,
        file: impl Into<String>,
        storage_names: BTreeMap<String, String>,
    ) -> crate::Result<Validator> {
        for field in mapping.fields.keys() {
            schema.field(field)?;
        }
        for field in &mapping.required {
            schema.field(field)?;
        }
        if mapping.id.is_empty() {
            return Err(crate::Error::Mapping {
                message: "`mapping.id` must name the id column".into(),
            });
        }
        Ok(Validator {
            schema,
            mapping,
            file: file.into(),
            storage_names,
        })
    }

    pub fn schema(&self) -> &IndexSchema {
        &self.schema
    }

    /// Validates one row; on failure returns every problem found in it.
    pub fn validate(&self, row: &SourceRow) -> Result<ItemDoc, Vec<Reject>> {
        let mut rejects = Vec::new();
        let reject = |field: &str, message: String| Reject {
            file: self.file.clone(),
            row: row.row,
            field: field.to_owned(),
            message,
        };
        let id = match row.get(&self.mapping.id) {
            None | Some(Value::Null) => {
                rejects.push(reject(
                    "id",
                    format!("missing id (column `{}`)", self.mapping.id),
                ));
                None
            }
            Some(v) => match id_string(v) {
                Ok(id) => match keys::validate_id(&id) {
                    Ok(()) => Some(id),
                    Err(e) => {
                        rejects.push(reject("id", e.to_string()));
                        None
                    }
                },
                Err(m) => {
                    rejects.push(reject("id", m));
                    None
                }
            },
        };
        let mut values = Vec::new();
        for f in &self.schema.fields {
            let column = self.mapping.column(&f.name);
            let value = row.get(column).filter(|v| !matches!(v, Value::Null));
            let Some(value) = value else {
                let is_vector = matches!(f.kind, FieldKind::Vector(_));
                if self.mapping.required.contains(&f.name)
                    || (is_vector && self.mapping.require_vector)
                {
                    rejects.push(reject(&f.name, format!("missing (column `{column}`)")));
                }
                continue;
            };
            let parsed = match &f.kind {
                FieldKind::Numeric(_) => number(value).map(|o| o.map(DocValue::Num)),
                FieldKind::Text(_) => text(value).map(|o| o.map(DocValue::Text)),
                FieldKind::Tag(t) => tags(value, t.separator.as_deref().unwrap_or(","))
                    .map(|o| o.map(DocValue::Tags)),
                FieldKind::Geo(_) => {
                    geo(value).map(|o| o.map(|(lon, lat)| DocValue::Geo(lon, lat)))
                }
                FieldKind::Vector(attrs) => vector_value(value, attrs, self.mapping.normalize)
                    .map(|o| o.map(DocValue::Vector)),
            };
            match parsed {
                Ok(Some(v)) => {
                    let name = self.storage_names.get(&f.name).unwrap_or(&f.name).clone();
                    values.push((name, v));
                }
                Ok(None) => {
                    if self.mapping.required.contains(&f.name) {
                        rejects.push(reject(
                            &f.name,
                            format!("missing (column `{column}` is empty)"),
                        ));
                    }
                }
                Err(m) => rejects.push(reject(&f.name, m)),
            }
        }
        match id {
            Some(id) if rejects.is_empty() => Ok(ItemDoc {
                key: self.schema.index.key(&id),
                id,
                values,
            }),
            _ => Err(rejects),
        }
    }
}

fn id_string(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.trim().to_owned()),
        Value::Num(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(format!("{}", *n as i64)),
        other => Err(format!(
            "expected a string or an integer id, got {}",
            other.kind()
        )),
    }
}

fn number(v: &Value) -> Result<Option<f64>, String> {
    let n = match v {
        Value::Num(n) => *n,
        Value::Str(s) if s.trim().is_empty() => return Ok(None),
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("expected a number, got `{}`", truncate(s)))?,
        other => return Err(format!("expected a number, got {}", other.kind())),
    };
    item::check_number(n).map(Some)
}

fn text(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Str(s) if s.trim().is_empty() => Ok(None),
        Value::Str(s) => Ok(Some(s.clone())),
        Value::Num(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(format!("expected a string, got {}", other.kind())),
    }
}

/// Tag values: a string (split on the separator), a number or boolean, or a list of strings.
/// Each tag is trimmed and must be non-empty, at most [`MAX_TAG_LEN`] bytes, without control
/// characters; a list element must not contain the separator (it would split into two tags).
fn tags(v: &Value, sep: &str) -> Result<Option<Vec<String>>, String> {
    match v {
        Value::Str(s) if s.trim().is_empty() => Ok(None),
        Value::Str(s) => item::split_tags(s, sep).map(Some),
        Value::Num(n) => Ok(Some(vec![n.to_string()])),
        Value::Bool(b) => Ok(Some(vec![b.to_string()])),
        Value::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Str(s) if s.contains(sep) => {
                        return Err(format!(
                            "list element {i} `{}` contains the tag separator `{sep}`",
                            truncate(s)
                        ));
                    }
                    Value::Str(s) => {
                        out.push(check_tag(s).map_err(|m| format!("list element {i}: {m}"))?)
                    }
                    other => {
                        return Err(format!(
                            "list element {i} is {}, expected a string",
                            other.kind()
                        ));
                    }
                }
            }
            Ok((!out.is_empty()).then_some(out))
        }
        other => Err(format!(
            "expected a string or a list of strings, got {}",
            other.kind()
        )),
    }
}

fn geo(v: &Value) -> Result<Option<(f64, f64)>, String> {
    match v {
        Value::Str(s) => item::parse_geo(s).map(Some),
        other => Err(format!("expected \"lon,lat\", got {}", other.kind())),
    }
}

fn vector_value(
    v: &Value,
    attrs: &VectorAttrs,
    normalize: bool,
) -> Result<Option<Vec<f32>>, String> {
    let mut out: Vec<f32> = match v {
        Value::Vector(v) => v.clone(),
        Value::List(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::Num(n) => Ok(*n as f32),
                Value::Str(s) => s
                    .trim()
                    .parse::<f32>()
                    .map_err(|_| format!("component {i} is `{}`, expected a number", truncate(s))),
                other => Err(format!(
                    "component {i} is {}, expected a number",
                    other.kind()
                )),
            })
            .collect::<Result<_, _>>()?,
        Value::Str(s) => {
            let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
            if inner.trim().is_empty() {
                return Ok(None);
            }
            inner
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
                .enumerate()
                .map(|(i, p)| {
                    p.parse::<f32>().map_err(|_| {
                        format!("component {i} is `{}`, expected a number", truncate(p))
                    })
                })
                .collect::<Result<_, _>>()?
        }
        other => {
            return Err(format!(
                "expected a list of {} numbers, got {}",
                attrs.dims,
                other.kind()
            ));
        }
    };
    vector::validate(&out, attrs.dims).map_err(|e| e.to_string())?;
    if normalize {
        vector::normalize(&mut out).map_err(|e| e.to_string())?;
    }
    Ok(Some(out))
}

/// Renders a doc as `HSET` field/value arguments (vectors as f32 blobs).
pub fn hash_args(doc: &ItemDoc, schema: &IndexSchema) -> Vec<(String, Vec<u8>)> {
    item::encode_hash(&doc.values, schema)
}

/// Renders a doc as a JSON document (vectors as arrays of numbers).
pub fn json_doc(doc: &ItemDoc, schema: &IndexSchema) -> serde_json::Value {
    item::encode_json(&doc.values, schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: std::fmt::Debug + PartialEq>(
        got: Result<Option<T>, String>,
        want: Result<Option<T>, &str>,
    ) {
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w),
            (Err(g), Err(w)) => assert!(g.contains(w), "`{g}` lacks `{w}`"),
            (g, w) => panic!("got {g:?}, want {w:?}"),
        }
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn parses_numbers() {
        check(number(&Value::Num(2.5)), Ok(Some(2.5)));
        check(number(&s(" 3 ")), Ok(Some(3.0)));
        check(number(&s("")), Ok(None));
        check(number(&s("abc")), Err("expected a number, got `abc`"));
        check(number(&s("NaN")), Err("expected a finite number"));
        check(
            number(&Value::Bool(true)),
            Err("expected a number, got a boolean"),
        );
    }

    #[test]
    fn parses_tags() {
        let v = |xs: &[&str]| Ok(Some(xs.iter().map(|x| x.to_string()).collect::<Vec<_>>()));
        check(tags(&s("a, b"), ","), v(&["a", "b"]));
        check(
            tags(&Value::List(vec![s("a"), s("b c")]), ","),
            v(&["a", "b c"]),
        );
        check(tags(&Value::Num(7.0), ","), v(&["7"]));
        check(tags(&s("a,,b"), ","), Err("expected a non-empty tag"));
        check(
            tags(&Value::List(vec![s("a|b")]), "|"),
            Err("contains the tag separator `|`"),
        );
        check(
            tags(&Value::List(vec![Value::Num(1.0)]), ","),
            Err("list element 0 is a number"),
        );
        check(tags(&s(&"x".repeat(300)), ","), Err("at most 256 allowed"));
        check(tags(&Value::Other("an object"), ","), Err("got an object"));
    }

    #[test]
    fn parses_geo_and_vectors() {
        check(geo(&s("2.35, 48.85")), Ok(Some((2.35, 48.85))));
        check(geo(&s("200,1")), Err("lon in -180..180"));
        let attrs = VectorAttrs::new(
            3,
            redrec_core::schema::VectorAlgorithm::Flat,
            redrec_core::schema::DistanceMetric::Cosine,
        );
        check(
            vector_value(&s("[1, 2, 3]"), &attrs, false),
            Ok(Some(vec![1.0, 2.0, 3.0])),
        );
        check(
            vector_value(&s("1 2 3"), &attrs, false),
            Ok(Some(vec![1.0, 2.0, 3.0])),
        );
        check(
            vector_value(&s("3,4,0"), &attrs, true),
            Ok(Some(vec![0.6, 0.8, 0.0])),
        );
        check(
            vector_value(&s("1,x,3"), &attrs, false),
            Err("component 1 is `x`"),
        );
        check(
            vector_value(&s("1,inf,3"), &attrs, false),
            Err("component 1 is inf"),
        );
        check(
            vector_value(&Value::Vector(vec![1.0]), &attrs, false),
            Err("has 1 dimensions, expected 3"),
        );
        check(
            vector_value(&Value::Bool(true), &attrs, false),
            Err("expected a list of 3 numbers"),
        );
    }

    #[test]
    fn formats_ids_and_numbers() {
        assert_eq!(id_string(&Value::Num(25671.0)).unwrap(), "25671");
        assert!(id_string(&Value::Num(1.5)).is_err());
        assert_eq!(format_num(3.0), "3");
        assert_eq!(format_num(2.25), "2.25");
    }
}
