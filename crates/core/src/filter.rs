//! The typed filter AST, its JSON form and its rendering to RediSearch query syntax (DIALECT 2).
//!
//! A [`Filter`] is built in code or parsed from JSON ([`Filter::from_json`]), checked against an
//! [`IndexSchema`] ([`Filter::check`]) and rendered ([`Filter::render`]) into the pre-filter part
//! of a KNN query. Every user string is either escaped (TAG values) or reduced to plain word
//! tokens (TEXT terms), so no filter input can change the structure of the query.
//!
//! JSON shape (one key per object; unknown keys are errors that name their JSON path):
//!
//! ```json
//! {"and": [
//!   {"tag":   {"field": "category", "any": ["BREAD", "MILK & CREAM"]}},
//!   {"tag":   {"field": "brand", "not_any": ["Private"]}},
//!   {"range": {"field": "price", "gte": 1, "lt": 5}},
//!   {"text":  {"field": "text", "match": "whole milk"}},
//!   {"not":   {"text": {"field": "text", "phrase": "low fat"}}},
//!   {"or":    [{"text": {"field": "text", "prefix": "choc"}}, {"all": {}}]}
//! ]}
//! ```

use std::fmt::Write as _;
use std::ops::Bound;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::schema::{FieldKind, IndexSchema};
use crate::{Error, Result};

/// Deepest nesting of `and` / `or` / `not` accepted (the root is depth 1).
pub const MAX_DEPTH: usize = 12;
/// Most nodes (leaves and boolean operators) in one filter.
pub const MAX_NODES: usize = 256;
/// Most values in one `tag` leaf.
pub const MAX_TAG_VALUES: usize = 256;
/// Longest TAG value or text, in bytes.
pub const MAX_STRING_LEN: usize = 1024;
/// RediSearch's default `MINPREFIX`: shorter prefixes are rejected by the server.
pub const MIN_PREFIX_LEN: usize = 2;
/// RediSearch's default stopword list (the index is created without `STOPWORDS`). These words
/// are not indexed and take no position: a query term that is one of them matches nothing, and
/// inside a phrase it makes the whole phrase match nothing, so the builder leaves them out.
pub const DEFAULT_STOPWORDS: &[&str] = &[
    "a", "is", "the", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
    "it", "no", "not", "of", "on", "or", "such", "that", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with",
];

/// A structured pre-filter over indexed item fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Filter {
    /// Matches every document (`*`).
    #[default]
    All,
    Tag(TagFilter),
    Range(RangeFilter),
    Text(TextFilter),
    /// Every child matches.
    And(Vec<Filter>),
    /// At least one child matches.
    Or(Vec<Filter>),
    /// The child does not match.
    Not(Box<Filter>),
}

/// A TAG field carries any of `values` (or, when `negated`, none of them).
#[derive(Debug, Clone, PartialEq)]
pub struct TagFilter {
    pub field: String,
    pub values: Vec<String>,
    pub negated: bool,
}

/// A NUMERIC field lies within bounds; `Unbounded` on a side means no limit there.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeFilter {
    pub field: String,
    pub lower: Bound<f64>,
    pub upper: Bound<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMode {
    /// Every word occurs (any order).
    Match,
    /// The words occur as a phrase, in order.
    Phrase,
    /// Every word occurs, the last one as a prefix (type-ahead).
    Prefix,
}

impl TextMode {
    fn key(self) -> &'static str {
        match self {
            TextMode::Match => "match",
            TextMode::Phrase => "phrase",
            TextMode::Prefix => "prefix",
        }
    }
}

/// Full-text condition on one TEXT field, or on every TEXT field when `field` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFilter {
    pub field: Option<String>,
    pub mode: TextMode,
    pub text: String,
}

impl Filter {
    pub fn all() -> Filter {
        Filter::All
    }

    pub fn tag_any<S: Into<String>>(field: &str, values: impl IntoIterator<Item = S>) -> Filter {
        Filter::Tag(TagFilter {
            field: field.to_owned(),
            values: values.into_iter().map(Into::into).collect(),
            negated: false,
        })
    }

    pub fn tag_not_any<S: Into<String>>(
        field: &str,
        values: impl IntoIterator<Item = S>,
    ) -> Filter {
        Filter::Tag(TagFilter {
            field: field.to_owned(),
            values: values.into_iter().map(Into::into).collect(),
            negated: true,
        })
    }

    pub fn range(field: &str, lower: Bound<f64>, upper: Bound<f64>) -> Filter {
        Filter::Range(RangeFilter {
            field: field.to_owned(),
            lower,
            upper,
        })
    }

    pub fn text(field: Option<&str>, mode: TextMode, text: &str) -> Filter {
        Filter::Text(TextFilter {
            field: field.map(str::to_owned),
            mode,
            text: text.to_owned(),
        })
    }

    pub fn and(children: Vec<Filter>) -> Filter {
        Filter::And(children)
    }

    pub fn or(children: Vec<Filter>) -> Filter {
        Filter::Or(children)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(child: Filter) -> Filter {
        Filter::Not(Box::new(child))
    }

    /// Conjunction of two filters that avoids wrapping `All`.
    pub fn and_also(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::All, f) | (f, Filter::All) => f,
            (Filter::And(mut a), Filter::And(b)) => {
                a.extend(b);
                Filter::And(a)
            }
            (Filter::And(mut a), f) => {
                a.push(f);
                Filter::And(a)
            }
            (a, b) => Filter::And(vec![a, b]),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Filter::All)
    }

    /// Parses the JSON form. Errors are [`Error::Filter`] naming the JSON path.
    pub fn from_json(value: &Value) -> Result<Filter> {
        let mut nodes = 0;
        parse_node(value, "$", 1, &mut nodes)
    }

    /// Parses the JSON form from text.
    pub fn from_json_str(text: &str) -> Result<Filter> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Filter {
            path: "$".into(),
            message: format!("not valid JSON: {e}"),
        })?;
        Filter::from_json(&value)
    }

    /// The JSON form (the inverse of [`Filter::from_json`]).
    pub fn to_json(&self) -> Value {
        let one = |k: &str, v: Value| {
            let mut m = Map::new();
            m.insert(k.to_owned(), v);
            Value::Object(m)
        };
        match self {
            Filter::All => one("all", Value::Object(Map::new())),
            Filter::Tag(t) => {
                let mut m = Map::new();
                m.insert("field".into(), Value::String(t.field.clone()));
                m.insert(
                    if t.negated { "not_any" } else { "any" }.into(),
                    Value::Array(t.values.iter().cloned().map(Value::String).collect()),
                );
                one("tag", Value::Object(m))
            }
            Filter::Range(r) => {
                let mut m = Map::new();
                m.insert("field".into(), Value::String(r.field.clone()));
                let num = |x: f64| {
                    serde_json::Number::from_f64(x)
                        .map(Value::Number)
                        .unwrap_or(Value::Null)
                };
                match r.lower {
                    Bound::Included(x) => {
                        m.insert("gte".into(), num(x));
                    }
                    Bound::Excluded(x) => {
                        m.insert("gt".into(), num(x));
                    }
                    Bound::Unbounded => {}
                }
                match r.upper {
                    Bound::Included(x) => {
                        m.insert("lte".into(), num(x));
                    }
                    Bound::Excluded(x) => {
                        m.insert("lt".into(), num(x));
                    }
                    Bound::Unbounded => {}
                }
                one("range", Value::Object(m))
            }
            Filter::Text(t) => {
                let mut m = Map::new();
                if let Some(f) = &t.field {
                    m.insert("field".into(), Value::String(f.clone()));
                }
                m.insert(t.mode.key().into(), Value::String(t.text.clone()));
                one("text", Value::Object(m))
            }
            Filter::And(c) => one("and", Value::Array(c.iter().map(Filter::to_json).collect())),
            Filter::Or(c) => one("or", Value::Array(c.iter().map(Filter::to_json).collect())),
            Filter::Not(c) => one("not", c.to_json()),
        }
    }

    /// Checks limits, values and that every field exists in `schema` with the right type.
    pub fn check(&self, schema: &IndexSchema) -> Result<()> {
        let mut nodes = 0;
        check_node(self, schema, "$", 1, &mut nodes)
    }

    /// Checks the filter against `schema` and renders it as a DIALECT 2 query expression.
    pub fn render(&self, schema: &IndexSchema) -> Result<String> {
        self.check(schema)?;
        // a text leaf without a field searches every TEXT field, named explicitly: the query
        // parser rejects an unfielded group followed by `| @field:...` in some positions
        let text_fields: Vec<&str> = schema
            .fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::Text(_)))
            .map(|f| f.name.as_str())
            .collect();
        let mut out = String::new();
        render_node(self, &text_fields.join("|"), &mut out);
        Ok(out)
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Filter, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Filter::from_json(&value).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON parsing

fn err(path: &str, message: impl Into<String>) -> Error {
    Error::Filter {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const OPERATORS: &str = "`and`, `or`, `not`, `tag`, `range`, `text` or `all`";

/// Counts one more node at `depth`: the size limits parsing and checking both enforce.
fn count_node(path: &str, depth: usize, nodes: &mut usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(err(
            path,
            format!("filter nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(err(path, format!("filter has more than {MAX_NODES} nodes")));
    }
    Ok(())
}

fn parse_node(v: &Value, path: &str, depth: usize, nodes: &mut usize) -> Result<Filter> {
    count_node(path, depth, nodes)?;
    let Value::Object(obj) = v else {
        return Err(err(
            path,
            format!(
                "expected an object with one of {OPERATORS}, got {}",
                kind_of(v)
            ),
        ));
    };
    if obj.len() != 1 {
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        return Err(err(
            path,
            format!(
                "expected exactly one of {OPERATORS}, got {} keys ({})",
                obj.len(),
                keys.join(", ")
            ),
        ));
    }
    let (key, inner) = obj.iter().next().expect("one entry");
    let here = format!("{path}.{key}");
    match key.as_str() {
        "all" => match inner {
            Value::Object(m) if m.is_empty() => Ok(Filter::All),
            Value::Bool(true) => Ok(Filter::All),
            other => Err(err(
                &here,
                format!("expected {{}} or true, got {}", kind_of(other)),
            )),
        },
        "and" | "or" => {
            let Value::Array(items) = inner else {
                return Err(err(
                    &here,
                    format!("expected an array of filters, got {}", kind_of(inner)),
                ));
            };
            if items.is_empty() {
                return Err(err(
                    &here,
                    "expected at least one filter, got an empty array",
                ));
            }
            let children = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_node(item, &format!("{here}[{i}]"), depth + 1, nodes))
                .collect::<Result<Vec<_>>>()?;
            Ok(if key == "and" {
                Filter::And(children)
            } else {
                Filter::Or(children)
            })
        }
        "not" => Ok(Filter::Not(Box::new(parse_node(
            inner,
            &here,
            depth + 1,
            nodes,
        )?))),
        "tag" => parse_tag(inner, &here),
        "range" => parse_range(inner, &here),
        "text" => parse_text(inner, &here),
        other => Err(err(
            path,
            format!("unknown operator `{other}`, expected one of {OPERATORS}"),
        )),
    }
}

fn leaf_object<'a>(v: &'a Value, path: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>> {
    let Value::Object(m) = v else {
        return Err(err(path, format!("expected an object, got {}", kind_of(v))));
    };
    if let Some(unknown) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(err(
            &format!("{path}.{unknown}"),
            format!(
                "unknown key `{unknown}`, expected one of: {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(m)
}

fn string_at(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(err(
            &format!("{path}.{key}"),
            format!("expected a string, got {}", kind_of(other)),
        )),
    }
}

fn required_field(m: &Map<String, Value>, path: &str) -> Result<String> {
    string_at(m, "field", path)?
        .ok_or_else(|| err(&format!("{path}.field"), "missing: name the index field"))
}

fn parse_tag(v: &Value, path: &str) -> Result<Filter> {
    let m = leaf_object(v, path, &["field", "any", "not_any"])?;
    let field = required_field(m, path)?;
    let (key, negated) = match (m.get("any"), m.get("not_any")) {
        (Some(_), None) => ("any", false),
        (None, Some(_)) => ("not_any", true),
        _ => {
            return Err(err(
                path,
                "expected exactly one of `any` or `not_any` (an array of strings)",
            ));
        }
    };
    let here = format!("{path}.{key}");
    let Value::Array(items) = &m[key] else {
        return Err(err(
            &here,
            format!("expected an array of strings, got {}", kind_of(&m[key])),
        ));
    };
    let values = items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(err(
                &format!("{here}[{i}]"),
                format!("expected a string, got {}", kind_of(other)),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Filter::Tag(TagFilter {
        field,
        values,
        negated,
    }))
}

fn parse_range(v: &Value, path: &str) -> Result<Filter> {
    let m = leaf_object(v, path, &["field", "gte", "gt", "lte", "lt"])?;
    let field = required_field(m, path)?;
    let num = |key: &str| -> Result<Option<f64>> {
        match m.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| err(&format!("{path}.{key}"), "number is out of range for f64")),
            Some(other) => Err(err(
                &format!("{path}.{key}"),
                format!("expected a number, got {}", kind_of(other)),
            )),
        }
    };
    let lower = match (num("gte")?, num("gt")?) {
        (Some(_), Some(_)) => return Err(err(path, "give at most one of `gte` and `gt`")),
        (Some(x), None) => Bound::Included(x),
        (None, Some(x)) => Bound::Excluded(x),
        (None, None) => Bound::Unbounded,
    };
    let upper = match (num("lte")?, num("lt")?) {
        (Some(_), Some(_)) => return Err(err(path, "give at most one of `lte` and `lt`")),
        (Some(x), None) => Bound::Included(x),
        (None, Some(x)) => Bound::Excluded(x),
        (None, None) => Bound::Unbounded,
    };
    Ok(Filter::Range(RangeFilter {
        field,
        lower,
        upper,
    }))
}

fn parse_text(v: &Value, path: &str) -> Result<Filter> {
    let m = leaf_object(v, path, &["field", "match", "phrase", "prefix"])?;
    let field = string_at(m, "field", path)?;
    let modes = [TextMode::Match, TextMode::Phrase, TextMode::Prefix];
    let given: Vec<TextMode> = modes
        .into_iter()
        .filter(|mode| m.contains_key(mode.key()))
        .collect();
    let [mode] = given[..] else {
        return Err(err(
            path,
            "expected exactly one of `match`, `phrase` or `prefix` (a string)",
        ));
    };
    let text = string_at(m, mode.key(), path)?.expect("key present");
    Ok(Filter::Text(TextFilter { field, mode, text }))
}

// ---------------------------------------------------------------------------------------------
// Checking against the schema

fn field_of_kind<'s>(
    schema: &'s IndexSchema,
    field: &str,
    expected: &'static str,
    path: &str,
) -> Result<&'s FieldKind> {
    let def = schema.field(field).map_err(|e| err(path, e.to_string()))?;
    if def.kind.type_name() != expected {
        let e = Error::FieldType {
            field: field.to_owned(),
            expected,
            actual: def.kind.type_name(),
        };
        return Err(err(path, e.to_string()));
    }
    Ok(&def.kind)
}

fn check_string(s: &str, path: &str, what: &str) -> Result<()> {
    if s.len() > MAX_STRING_LEN {
        return Err(err(
            path,
            format!(
                "{what} is {} bytes, at most {MAX_STRING_LEN} allowed",
                s.len()
            ),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(err(
            path,
            format!(
                "{what} contains the control character U+{:04X}, which the query syntax cannot express",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// Checks one node and, through `and` / `or` / `not`, its children: the size limits here, each
/// leaf's rules in its own function.
fn check_node(
    f: &Filter,
    schema: &IndexSchema,
    path: &str,
    depth: usize,
    nodes: &mut usize,
) -> Result<()> {
    count_node(path, depth, nodes)?;
    match f {
        Filter::All => Ok(()),
        Filter::And(children) | Filter::Or(children) => {
            let key = if matches!(f, Filter::And(_)) {
                "and"
            } else {
                "or"
            };
            if children.is_empty() {
                return Err(err(
                    &format!("{path}.{key}"),
                    "expected at least one filter, got none",
                ));
            }
            for (i, c) in children.iter().enumerate() {
                check_node(c, schema, &format!("{path}.{key}[{i}]"), depth + 1, nodes)?;
            }
            Ok(())
        }
        Filter::Not(child) => {
            if child.is_all() {
                return Err(err(
                    &format!("{path}.not"),
                    "`not` of `all` matches nothing; remove it",
                ));
            }
            if matches_everything(child) {
                return Err(err(
                    &format!("{path}.not"),
                    "`not` of a filter that matches everything (built only of `all`) matches nothing; remove it",
                ));
            }
            check_node(child, schema, &format!("{path}.not"), depth + 1, nodes)
        }
        Filter::Tag(t) => check_tag(t, schema, &format!("{path}.tag")),
        Filter::Range(r) => check_range(r, schema, &format!("{path}.range")),
        Filter::Text(t) => check_text(t, schema, &format!("{path}.text")),
    }
}

/// A tag leaf: a TAG field, 1..=[`MAX_TAG_VALUES`] values, none empty or holding the
/// field's separator.
fn check_tag(t: &TagFilter, schema: &IndexSchema, here: &str) -> Result<()> {
    let FieldKind::Tag(attrs) = field_of_kind(schema, &t.field, "tag", &format!("{here}.field"))?
    else {
        unreachable!("checked tag type")
    };
    let key = if t.negated { "not_any" } else { "any" };
    if t.values.is_empty() {
        return Err(err(
            &format!("{here}.{key}"),
            "expected at least one value, got none",
        ));
    }
    if t.values.len() > MAX_TAG_VALUES {
        return Err(err(
            &format!("{here}.{key}"),
            format!(
                "{} values given, at most {MAX_TAG_VALUES} allowed",
                t.values.len()
            ),
        ));
    }
    let separator = attrs.separator.as_deref().unwrap_or(",");
    for (i, v) in t.values.iter().enumerate() {
        let vpath = format!("{here}.{key}[{i}]");
        check_string(v, &vpath, "tag value")?;
        if trim_tag(v).is_empty() {
            return Err(err(&vpath, "tag value is empty"));
        }
        if !separator.is_empty() && v.contains(separator) {
            return Err(err(
                &vpath,
                format!(
                    "tag value contains `{separator}`, the separator of field `{}`, so no single tag can equal it",
                    t.field
                ),
            ));
        }
    }
    Ok(())
}

/// A range leaf: a NUMERIC field, at least one bound, no NaN, not empty.
fn check_range(r: &RangeFilter, schema: &IndexSchema, here: &str) -> Result<()> {
    field_of_kind(schema, &r.field, "numeric", &format!("{here}.field"))?;
    let value = |b: &Bound<f64>| match b {
        Bound::Included(x) | Bound::Excluded(x) => Some(*x),
        Bound::Unbounded => None,
    };
    for (key, b) in [("lower bound", &r.lower), ("upper bound", &r.upper)] {
        if let Some(x) = value(b)
            && x.is_nan()
        {
            return Err(err(here, format!("{key} is NaN, expected a number")));
        }
    }
    if matches!((&r.lower, &r.upper), (Bound::Unbounded, Bound::Unbounded)) {
        return Err(err(here, "give at least one of `gte`, `gt`, `lte`, `lt`"));
    }
    if let (Some(lo), Some(hi)) = (value(&r.lower), value(&r.upper)) {
        let empty = lo > hi
            || (lo == hi
                && (matches!(r.lower, Bound::Excluded(_))
                    || matches!(r.upper, Bound::Excluded(_))));
        if empty {
            return Err(err(
                here,
                format!("the range is empty (lower bound {lo} is above upper bound {hi})"),
            ));
        }
    }
    Ok(())
}

/// A text leaf: a TEXT field (or any, when the index has one), words to search, a prefix of
/// at least [`MIN_PREFIX_LEN`] characters.
fn check_text(t: &TextFilter, schema: &IndexSchema, here: &str) -> Result<()> {
    match &t.field {
        Some(field) => {
            field_of_kind(schema, field, "text", &format!("{here}.field"))?;
        }
        None => {
            if !schema
                .fields
                .iter()
                .any(|f| matches!(f.kind, FieldKind::Text(_)))
            {
                return Err(err(here, "the index has no text field to search"));
            }
        }
    }
    let tpath = format!("{here}.{}", t.mode.key());
    check_string(&t.text, &tpath, "text")?;
    let words = text_terms(&t.text);
    if words.is_empty() {
        return Err(err(
            &tpath,
            "text has no words (letters or digits) to search for",
        ));
    }
    let terms = query_terms(t);
    let Some(last) = terms.last() else {
        return Err(err(
            &tpath,
            format!(
                "text has only stopwords ({}), which the index does not hold, so it could match nothing",
                words.join(", ")
            ),
        ));
    };
    if t.mode == TextMode::Prefix && last.chars().count() < MIN_PREFIX_LEN {
        return Err(err(
            &tpath,
            format!("the prefix `{last}` is shorter than {MIN_PREFIX_LEN} characters"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Removes the leading and trailing spaces the index drops from TAG values when it indexes
/// them (so `" BREAD "` is stored as `BREAD` and must be searched as `BREAD`).
pub fn trim_tag(value: &str) -> &str {
    value.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b')
}

/// Escapes one TAG value for use inside `@field:{...}`: every ASCII character other than a
/// letter or digit is preceded by a backslash; non-ASCII characters are kept as they are (the
/// query lexer treats them as word characters). The value is trimmed first (see [`trim_tag`]).
pub fn escape_tag_value(value: &str) -> String {
    let v = trim_tag(value);
    let mut out = String::with_capacity(v.len() * 2);
    for c in v.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits text into the word tokens the indexer produces: runs of characters that are neither
/// ASCII punctuation (other than `_`) nor whitespace nor control characters, dropping tokens made
/// only of underscores. The tokens contain no query syntax, so they are safe to place in a query
/// as they are. One difference from the indexer: in stored text a backslash escapes the next
/// character (`a\,b` is indexed as the one token `a,b`, `mil\k` as `milk`); in query text it
/// separates words like any other punctuation.
pub fn text_terms(text: &str) -> Vec<String> {
    text.split(|c: char| {
        (c.is_ascii_punctuation() && c != '_') || c.is_whitespace() || c.is_control()
    })
    // a lone `_` is a syntax error in the query parser, and underscores alone mean nothing
    .filter(|t| !t.chars().all(|c| c == '_'))
    .map(str::to_owned)
    .collect()
}

/// Whether `term` is one of RediSearch's default stopwords (compared without case).
pub fn is_stopword(term: &str) -> bool {
    let lower = term.to_ascii_lowercase();
    DEFAULT_STOPWORDS.contains(&lower.as_str())
}

/// The terms a text leaf searches for: its words without stopwords (see [`DEFAULT_STOPWORDS`]);
/// in prefix mode the last word is a prefix, not a word, and is always kept.
fn query_terms(t: &TextFilter) -> Vec<String> {
    let mut words = text_terms(&t.text);
    let prefix = match t.mode {
        TextMode::Prefix => words.pop(),
        TextMode::Match | TextMode::Phrase => None,
    };
    words.retain(|w| !is_stopword(w));
    if t.mode == TextMode::Phrase {
        // the server's exact-phrase check cannot tell a word repeated in a row from one
        // occurrence (`"fjord fjord bread"` finds `fjord brûlée bread`): say it once
        words.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    }
    words.extend(prefix);
    // no case change here: the server lowercases indexed words and query terms alike (ASCII
    // letters only, in RediSearch 2.10), so a term matches the word it was written as
    words
}

/// Formats a numeric bound the way the query parser reads it (`-inf` / `+inf` for infinities).
pub fn format_number(x: f64) -> String {
    if x == f64::INFINITY {
        "+inf".into()
    } else if x == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{x}")
    }
}

/// Whether `f` matches every document by its structure alone: `all`, an `and` made only of such
/// filters, or an `or` with one of them. The query syntax has `*` only for a whole query, so
/// rendering leaves these out of `and` and turns such an `or` into `*`.
fn matches_everything(f: &Filter) -> bool {
    match f {
        Filter::All => true,
        Filter::And(children) => children.iter().all(matches_everything),
        Filter::Or(children) => children.iter().any(matches_everything),
        Filter::Tag(_) | Filter::Range(_) | Filter::Text(_) | Filter::Not(_) => false,
    }
}

fn render_node(f: &Filter, text_fields: &str, out: &mut String) {
    if matches_everything(f) {
        out.push('*');
        return;
    }
    match f {
        Filter::All => out.push('*'),
        Filter::Tag(t) => {
            if t.negated {
                out.push('-');
            }
            let _ = write!(out, "@{}:{{", t.field);
            for (i, v) in t.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                out.push_str(&escape_tag_value(v));
            }
            out.push('}');
        }
        Filter::Range(r) => {
            let lo = match r.lower {
                Bound::Included(x) => format_number(x),
                Bound::Excluded(x) => format!("({}", format_number(x)),
                Bound::Unbounded => "-inf".into(),
            };
            let hi = match r.upper {
                Bound::Included(x) => format_number(x),
                Bound::Excluded(x) => format!("({}", format_number(x)),
                Bound::Unbounded => "+inf".into(),
            };
            let _ = write!(out, "@{}:[{lo} {hi}]", r.field);
        }
        Filter::Text(t) => {
            let field = t.field.as_deref().unwrap_or(text_fields);
            let _ = write!(out, "@{field}:");
            let terms = query_terms(t);
            match t.mode {
                TextMode::Phrase => {
                    let _ = write!(out, "\"{}\"", terms.join(" "));
                }
                TextMode::Match => {
                    let _ = write!(out, "({})", terms.join(" "));
                }
                TextMode::Prefix => {
                    let _ = write!(out, "({}*)", terms.join(" "));
                }
            }
        }
        // Juxtaposition is AND in the query syntax, `|` is OR.
        Filter::And(children) => {
            // `*` is not valid inside a group: an `and` drops its match-everything children
            // (not all of them are, see `matches_everything` above)
            let kept: Vec<Filter> = children
                .iter()
                .filter(|c| !matches_everything(c))
                .cloned()
                .collect();
            render_group(&kept, " ", text_fields, out)
        }
        Filter::Or(children) => render_group(children, " | ", text_fields, out),
        Filter::Not(child) => {
            out.push_str("-(");
            render_node(child, text_fields, out);
            out.push(')');
        }
    }
}

/// `(a b c)` or `(a | b | c)`; a single child without the parentheses.
fn render_group(children: &[Filter], separator: &str, text_fields: &str, out: &mut String) {
    if let [only] = children {
        return render_node(only, text_fields, out);
    }
    out.push('(');
    for (i, c) in children.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        render_node(c, text_fields, out);
    }
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ItemFields, VectorSettings, items_schema};
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    fn schema() -> IndexSchema {
        items_schema(
            "t:items:v1",
            "t:item:",
            &ItemFields::default(),
            &VectorSettings::default(),
        )
    }

    fn check_json(json: &str, want: Expect) {
        let rendered = match Filter::from_json_str(json).and_then(|f| f.render(&schema())) {
            Ok(q) => q,
            Err(e) => format!("error: {e}"),
        };
        want.assert_eq(&rendered);
    }

    #[test]
    fn renders_the_issue_example() {
        check_json(
            r#"{"and":[{"tag":{"field":"category","any":["BREAD"]}},{"range":{"field":"price","gte":1,"lt":5}}]}"#,
            expect![[r#"(@category:{BREAD} @price:[1 (5])"#]],
        );
    }

    #[test]
    fn renders_every_operator() {
        check_json(r#"{"all":{}}"#, expect!["*"]);
        check_json(r#"{"all":true}"#, expect!["*"]);
        check_json(
            r#"{"tag":{"field":"brand","any":["Private Label","A&P"]}}"#,
            expect![[r#"@brand:{Private\ Label | A\&P}"#]],
        );
        check_json(
            r#"{"tag":{"field":"brand","not_any":["National"]}}"#,
            expect![[r#"-@brand:{National}"#]],
        );
        check_json(
            r#"{"range":{"field":"price","gt":-2.5}}"#,
            expect![[r#"@price:[(-2.5 +inf]"#]],
        );
        check_json(
            r#"{"range":{"field":"price","lte":10}}"#,
            expect![[r#"@price:[-inf 10]"#]],
        );
        check_json(
            r#"{"range":{"field":"popularity","gte":0.001,"lte":1e6}}"#,
            expect![[r#"@popularity:[0.001 1000000]"#]],
        );
        check_json(
            r#"{"text":{"field":"text","match":"Whole milk, 2%!"}}"#,
            expect![[r#"@text:(Whole milk 2)"#]],
        );
        check_json(
            r#"{"text":{"field":"text","phrase":"low-fat \"yogurt\""}}"#,
            expect![[r#"@text:"low fat yogurt""#]],
        );
        check_json(
            r#"{"text":{"field":"text","prefix":"frozen piz"}}"#,
            expect![[r#"@text:(frozen piz*)"#]],
        );
        check_json(
            r#"{"text":{"match":"crème brûlée"}}"#,
            expect!["@text:(crème brûlée)"],
        );
        check_json(
            r#"{"or":[{"tag":{"field":"department","any":["GROCERY"]}},{"not":{"tag":{"field":"in_stock","any":["0"]}}}]}"#,
            expect![[r#"(@department:{GROCERY} | -(@in_stock:{0}))"#]],
        );
        check_json(
            r#"{"and":[{"tag":{"field":"category","any":["X"]}}]}"#,
            expect!["@category:{X}"],
        );
    }

    #[test]
    fn renders_what_the_server_parses_and_matches() {
        // found by the differential fuzzer (crates/store/tests/it/filter_fuzz.rs)
        check_json(
            r#"{"and":[{"range":{"field":"price","lte":0}},{"all":{}}]}"#,
            expect!["@price:[-inf 0]"],
        );
        check_json(
            r#"{"or":[{"tag":{"field":"brand","any":["X"]}},{"and":[{"all":{}}]}]}"#,
            expect!["*"],
        );
        check_json(
            r#"{"not":{"and":[{"all":{}},{"or":[{"all":{}},{"tag":{"field":"brand","any":["X"]}}]}]}}"#,
            expect![[
                r#"error: invalid filter at `$.not`: `not` of a filter that matches everything (built only of `all`) matches nothing; remove it"#
            ]],
        );
        check_json(
            r#"{"or":[{"text":{"match":"milk"}},{"range":{"field":"price","lte":0}}]}"#,
            expect!["(@text:(milk) | @price:[-inf 0])"],
        );
        check_json(
            r#"{"text":{"phrase":"The milk of the  bread bread"}}"#,
            expect![[r#"@text:"milk bread""#]],
        );
        check_json(r#"{"text":{"match":"The milk"}}"#, expect!["@text:(milk)"]);
        check_json(r#"{"text":{"prefix":"the mi"}}"#, expect!["@text:(mi*)"]);
        check_json(r#"{"text":{"prefix":"the"}}"#, expect!["@text:(the*)"]);
        check_json(
            r#"{"text":{"field":"text","match":"The, of"}}"#,
            expect![[
                r#"error: invalid filter at `$.text.match`: text has only stopwords (The, of), which the index does not hold, so it could match nothing"#
            ]],
        );
    }

    #[test]
    fn escapes_tag_syntax_and_keeps_unicode() {
        check_json(
            r#"{"tag":{"field":"category","any":["-@{}[]()|\\\"'*:.<>;!~$%^&=", "日本 茶", " padded ", "-1", "a_b"]}}"#,
            expect![[
                r#"@category:{\-\@\{\}\[\]\(\)\|\\\"\'\*\:\.\<\>\;\!\~\$\%\^\&\= | 日本\ 茶 | padded | \-1 | a\_b}"#
            ]],
        );
    }

    #[test]
    fn reports_structural_errors_with_their_path() {
        check_json(
            r#"{"and":[{"tag":{"field":"category","any":["A"],"extra":1}}]}"#,
            expect![[
                r#"error: invalid filter at `$.and[0].tag.extra`: unknown key `extra`, expected one of: field, any, not_any"#
            ]],
        );
        check_json(
            r#"{"and":[],"or":[]}"#,
            expect![[
                r#"error: invalid filter at `$`: expected exactly one of `and`, `or`, `not`, `tag`, `range`, `text` or `all`, got 2 keys (and, or)"#
            ]],
        );
        check_json(
            r#"{"andd":[]}"#,
            expect![[
                r#"error: invalid filter at `$`: unknown operator `andd`, expected one of `and`, `or`, `not`, `tag`, `range`, `text` or `all`"#
            ]],
        );
        check_json(
            r#"{"or":[{"range":{"field":"price","gte":"1"}}]}"#,
            expect![[
                r#"error: invalid filter at `$.or[0].range.gte`: expected a number, got a string"#
            ]],
        );
        check_json(
            r#"{"range":{"field":"price","gte":1,"gt":2}}"#,
            expect![[r#"error: invalid filter at `$.range`: give at most one of `gte` and `gt`"#]],
        );
        check_json(
            r#"{"tag":{"field":"category","any":"BREAD"}}"#,
            expect![[
                r#"error: invalid filter at `$.tag.any`: expected an array of strings, got a string"#
            ]],
        );
        check_json(
            r#"{"tag":{"field":"category","any":[1]}}"#,
            expect![[
                r#"error: invalid filter at `$.tag.any[0]`: expected a string, got a number"#
            ]],
        );
        check_json(
            r#"{"tag":{"any":["x"]}}"#,
            expect![[r#"error: invalid filter at `$.tag.field`: missing: name the index field"#]],
        );
        check_json(
            r#"{"text":{"field":"text","match":"a","phrase":"b"}}"#,
            expect![[
                r#"error: invalid filter at `$.text`: expected exactly one of `match`, `phrase` or `prefix` (a string)"#
            ]],
        );
        check_json(
            r#"[1]"#,
            expect![[
                r#"error: invalid filter at `$`: expected an object with one of `and`, `or`, `not`, `tag`, `range`, `text` or `all`, got an array"#
            ]],
        );
        check_json(
            r#"{"and":"#,
            expect![[
                r#"error: invalid filter at `$`: not valid JSON: EOF while parsing a value at line 1 column 7"#
            ]],
        );
    }

    #[test]
    fn reports_schema_and_value_errors_with_field_and_path() {
        check_json(
            r#"{"and":[{"tag":{"field":"categroy","any":["A"]}}]}"#,
            expect![[
                r#"error: invalid filter at `$.and[0].tag.field`: unknown field `categroy`: the index schema has no such field (known: text, category, department, brand, price, popularity, in_stock, embedding)"#
            ]],
        );
        check_json(
            r#"{"range":{"field":"category","gte":1}}"#,
            expect![[
                r#"error: invalid filter at `$.range.field`: field `category` is a tag field, expected numeric"#
            ]],
        );
        check_json(
            r#"{"tag":{"field":"price","any":["1"]}}"#,
            expect![[
                r#"error: invalid filter at `$.tag.field`: field `price` is a numeric field, expected tag"#
            ]],
        );
        check_json(
            r#"{"text":{"field":"brand","match":"x"}}"#,
            expect![[
                r#"error: invalid filter at `$.text.field`: field `brand` is a tag field, expected text"#
            ]],
        );
        check_json(
            r#"{"tag":{"field":"category","any":["a,b"]}}"#,
            expect![[
                r#"error: invalid filter at `$.tag.any[0]`: tag value contains `,`, the separator of field `category`, so no single tag can equal it"#
            ]],
        );
        check_json(
            r#"{"tag":{"field":"category","any":["  "]}}"#,
            expect![[r#"error: invalid filter at `$.tag.any[0]`: tag value is empty"#]],
        );
        check_json(
            r#"{"tag":{"field":"category","any":["a\u0001"]}}"#,
            expect![[
                r#"error: invalid filter at `$.tag.any[0]`: tag value contains the control character U+0001, which the query syntax cannot express"#
            ]],
        );
        check_json(
            r#"{"tag":{"field":"category","not_any":[]}}"#,
            expect![[
                r#"error: invalid filter at `$.tag.not_any`: expected at least one value, got none"#
            ]],
        );
        check_json(
            r#"{"range":{"field":"price","gte":5,"lt":5}}"#,
            expect![[
                r#"error: invalid filter at `$.range`: the range is empty (lower bound 5 is above upper bound 5)"#
            ]],
        );
        check_json(
            r#"{"range":{"field":"price"}}"#,
            expect![[
                r#"error: invalid filter at `$.range`: give at least one of `gte`, `gt`, `lte`, `lt`"#
            ]],
        );
        check_json(
            r#"{"text":{"field":"text","match":"!!!"}}"#,
            expect![[
                r#"error: invalid filter at `$.text.match`: text has no words (letters or digits) to search for"#
            ]],
        );
        check_json(
            r#"{"text":{"field":"text","prefix":"milk c"}}"#,
            expect![[
                r#"error: invalid filter at `$.text.prefix`: the prefix `c` is shorter than 2 characters"#
            ]],
        );
        check_json(
            r#"{"not":{"all":{}}}"#,
            expect![[
                r#"error: invalid filter at `$.not`: `not` of `all` matches nothing; remove it"#
            ]],
        );
    }

    #[test]
    fn enforces_depth_and_size_limits() {
        let mut json = r#"{"all":{}}"#.to_owned();
        for _ in 0..MAX_DEPTH {
            json = format!(r#"{{"not":{json}}}"#);
        }
        let e = Filter::from_json_str(&json).unwrap_err().to_string();
        assert!(e.contains("deeper than 12"), "{e}");

        let leaves: Vec<String> = (0..MAX_NODES)
            .map(|i| format!(r#"{{"tag":{{"field":"category","any":["{i}"]}}}}"#))
            .collect();
        let e = Filter::from_json_str(&format!(r#"{{"or":[{}]}}"#, leaves.join(",")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 256 nodes"), "{e}");

        let many = Filter::tag_any("category", (0..=MAX_TAG_VALUES).map(|i| i.to_string()));
        let e = many.check(&schema()).unwrap_err().to_string();
        assert!(e.contains("257 values given"), "{e}");
        let long = Filter::tag_any("category", ["x".repeat(MAX_STRING_LEN + 1)]);
        assert!(long.check(&schema()).is_err());
    }

    #[test]
    fn json_roundtrips_and_serde_works() {
        let f = Filter::and(vec![
            Filter::tag_any("category", ["BREAD", "MILK"]),
            Filter::tag_not_any("brand", ["X"]),
            Filter::range("price", Bound::Excluded(1.5), Bound::Included(9.0)),
            Filter::range("popularity", Bound::Included(0.0), Bound::Unbounded),
            Filter::or(vec![
                Filter::text(Some("text"), TextMode::Prefix, "choc"),
                Filter::not(Filter::text(None, TextMode::Phrase, "dark chocolate")),
            ]),
            Filter::All,
        ]);
        let json = serde_json::to_string(&f).unwrap();
        expect![[r#"{"and":[{"tag":{"any":["BREAD","MILK"],"field":"category"}},{"tag":{"field":"brand","not_any":["X"]}},{"range":{"field":"price","gt":1.5,"lte":9.0}},{"range":{"field":"popularity","gte":0.0}},{"or":[{"text":{"field":"text","prefix":"choc"}},{"not":{"text":{"phrase":"dark chocolate"}}}]},{"all":{}}]}"#]]
        .assert_eq(&json);
        let back: Filter = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
        let e = serde_json::from_str::<Filter>(r#"{"nope":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown operator `nope`"), "{e}");
    }

    #[test]
    fn and_also_flattens() {
        let a = Filter::tag_any("category", ["A"]);
        assert_eq!(Filter::All.and_also(a.clone()), a);
        assert_eq!(a.clone().and_also(Filter::All), a);
        let b = Filter::tag_any("brand", ["B"]);
        assert_eq!(
            a.clone().and_also(b.clone()).and_also(a.clone()),
            Filter::And(vec![a.clone(), b, a])
        );
    }

    /// A model of the query lexer inside `{...}`: a backslash makes the next character literal,
    /// `|` and `}` end a value; anything else unescaped that is ASCII punctuation is syntax.
    fn unescape_tag_body(body: &str) -> std::result::Result<Vec<String>, String> {
        let mut values = vec![String::new()];
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => values
                    .last_mut()
                    .unwrap()
                    .push(chars.next().ok_or("dangling backslash")?),
                '|' => values.push(String::new()),
                ' ' => {}
                c if c.is_ascii_punctuation() => return Err(format!("unescaped `{c}`")),
                c => values.last_mut().unwrap().push(c),
            }
        }
        Ok(values)
    }

    /// JSON shaped like filters (operator keys, field names, syntax-laden strings, odd numbers),
    /// nested, with the wrong types mixed in.
    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "and", "or", "not", "tag", "range", "text", "all", "field", "any", "not_any", "gte",
            "gt", "lte", "lt", "match", "phrase", "prefix", "x",
        ]);
        let field = prop::sample::select(vec![
            "category",
            "brand",
            "price",
            "popularity",
            "text",
            "embedding",
            "nope",
            "",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_map(|x| serde_json::json!(x)),
            any::<i64>().prop_map(|x| serde_json::json!(x)),
            field.prop_map(|f| Value::String(f.to_owned())),
            "\\PC{0,12}".prop_map(Value::String),
            "[ -~]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(8, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..4).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn tag_escaping_is_lossless_and_structure_preserving(
            values in proptest::collection::vec("[^,\\p{Cc}]{1,12}", 1..4)
        ) {
            prop_assume!(values.iter().all(|v| !trim_tag(v).is_empty()));
            let f = Filter::tag_any("category", values.clone());
            let q = f.render(&schema()).unwrap();
            let body = q.strip_prefix("@category:{").and_then(|r| r.strip_suffix('}'));
            prop_assert!(body.is_some(), "{}", q);
            let parsed = unescape_tag_body(body.unwrap()).map_err(|e| TestCaseError::fail(format!("{e} in {q}")))?;
            let want: Vec<String> = values.iter().map(|v| trim_tag(v).to_owned()).collect();
            prop_assert_eq!(parsed, want);
        }

        /// Any JSON value: parsing and rendering return a value or an error, never panic.
        #[test]
        fn arbitrary_json_never_panics(json in arbitrary_json()) {
            if let Ok(f) = Filter::from_json(&json) {
                let _ = f.render(&schema());
            }
        }

        #[test]
        fn text_terms_carry_no_syntax(text in "\\PC{0,40}") {
            for t in text_terms(&text) {
                prop_assert!(!t.is_empty());
                prop_assert!(t.chars().all(|c| c == '_' || !(c.is_ascii_punctuation() || c.is_whitespace() || c.is_control())), "{:?}", t);
            }
        }
    }
}
