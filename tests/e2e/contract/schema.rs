//! A JSON Schema validator for the subset the gateway's OpenAPI document uses (2020-12 keywords
//! plus its `x-` extensions). Any other keyword fails loudly, so the document cannot start
//! relying on a rule this validator silently skips.

use std::{cell::RefCell, collections::HashMap};

use regex::Regex;
use serde_json::Value;

/// Keywords that carry no rule.
const ANNOTATIONS: &[&str] = &[
    "description",
    "example",
    "examples",
    "format",
    "title",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    // definitions reached through `$ref`
    "$defs",
];

pub struct Validator<'d> {
    doc: &'d Value,
    regexes: RefCell<HashMap<String, Regex>>,
}

impl<'d> Validator<'d> {
    pub fn new(doc: &'d Value) -> Validator<'d> {
        Validator {
            doc,
            regexes: RefCell::new(HashMap::new()),
        }
    }

    /// The schema a `$ref` (`#/components/schemas/Name`) points to.
    pub fn resolve(&self, reference: &str) -> &'d Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references are supported: {reference}"));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("the document has no {reference}"))
    }

    pub fn is_valid(&self, schema: &Value, instance: &Value) -> bool {
        self.check(schema, instance, "$").is_ok()
    }

    /// Whether `text` matches `pattern` (unanchored, as JSON Schema's `pattern`).
    pub fn matches(&self, pattern: &str, text: &str) -> bool {
        let mut cache = self.regexes.borrow_mut();
        let re = cache.entry(pattern.to_owned()).or_insert_with(|| {
            Regex::new(pattern).unwrap_or_else(|e| panic!("pattern `{pattern}`: {e}"))
        });
        re.is_match(text)
    }

    /// The first rule `instance` breaks, with its path.
    pub fn check(&self, schema: &Value, instance: &Value, path: &str) -> Result<(), String> {
        let fail = |m: String| Err(format!("{path}: {m}"));
        let obj = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return fail("no value is allowed here".into()),
            Value::Object(o) => o,
            other => panic!("not a schema at {path}: {other}"),
        };
        for (key, rule) in obj {
            match key.as_str() {
                "$ref" => {
                    let target = self.resolve(rule.as_str().expect("$ref is a string"));
                    self.check(target, instance, path)?;
                }
                "type" => {
                    let types: Vec<&str> = match rule {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                        _ => panic!("bad type at {path}"),
                    };
                    if !types.iter().any(|t| has_type(instance, t)) {
                        return fail(format!("expected type {types:?}, got {instance}"));
                    }
                }
                "enum" => {
                    let options = rule.as_array().expect("enum is an array");
                    if !options.iter().any(|o| same(o, instance)) {
                        return fail(format!("{instance} is not one of {rule}"));
                    }
                }
                "const" => {
                    if !same(rule, instance) {
                        return fail(format!("{instance} is not {rule}"));
                    }
                }
                "pattern" => {
                    if let Value::String(s) = instance
                        && !self.matches(rule.as_str().expect("pattern"), s)
                    {
                        return fail(format!("{s:?} does not match {rule}"));
                    }
                }
                "minLength" | "maxLength" | "x-max-bytes" => {
                    if let Value::String(s) = instance {
                        let n = if key == "x-max-bytes" {
                            s.len()
                        } else {
                            s.chars().count()
                        };
                        let limit = rule.as_u64().expect("length") as usize;
                        if (key == "minLength" && n < limit) || (key != "minLength" && n > limit) {
                            return fail(format!("length {n} breaks {key} {limit}"));
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let Value::Number(n) = instance {
                        let (x, limit) = (n.as_f64().unwrap(), rule.as_f64().expect("bound"));
                        let exact = match (n.as_i64(), n.as_u64(), rule.as_i64(), rule.as_u64()) {
                            (Some(a), _, Some(b), _) => Some(a.cmp(&b)),
                            (_, Some(a), _, Some(b)) => Some(a.cmp(&b)),
                            _ => None,
                        };
                        let order = exact.unwrap_or_else(|| x.total_cmp(&limit));
                        let bad = if key == "minimum" {
                            order.is_lt()
                        } else {
                            order.is_gt()
                        };
                        if bad {
                            return fail(format!("{n} breaks {key} {rule}"));
                        }
                    }
                }
                "minItems" | "maxItems" => {
                    if let Value::Array(a) = instance {
                        let limit = rule.as_u64().expect("count") as usize;
                        if (key == "minItems" && a.len() < limit)
                            || (key == "maxItems" && a.len() > limit)
                        {
                            return fail(format!("{} items break {key} {limit}", a.len()));
                        }
                    }
                }
                "items" => {
                    if let Value::Array(a) = instance {
                        for (i, item) in a.iter().enumerate() {
                            self.check(rule, item, &format!("{path}[{i}]"))?;
                        }
                    }
                }
                "minProperties" | "maxProperties" => {
                    if let Value::Object(o) = instance {
                        let limit = rule.as_u64().expect("count") as usize;
                        if (key == "minProperties" && o.len() < limit)
                            || (key == "maxProperties" && o.len() > limit)
                        {
                            return fail(format!("{} properties break {key} {limit}", o.len()));
                        }
                    }
                }
                "required" => {
                    if let Value::Object(o) = instance {
                        for name in rule.as_array().expect("required").iter() {
                            let name = name.as_str().expect("required name");
                            if !o.contains_key(name) {
                                return fail(format!("missing required `{name}`"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Value::Object(o) = instance {
                        for (name, sub) in rule.as_object().expect("properties") {
                            if let Some(v) = o.get(name) {
                                self.check(sub, v, &format!("{path}.{name}"))?;
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Value::Object(o) = instance {
                        let known = obj.get("properties").and_then(Value::as_object);
                        for (name, v) in o {
                            if known.is_some_and(|k| k.contains_key(name)) {
                                continue;
                            }
                            self.check(rule, v, &format!("{path}.{name}"))
                                .map_err(|e| format!("{e} (additional property `{name}`)"))?;
                        }
                    }
                }
                "propertyNames" => {
                    if let Value::Object(o) = instance {
                        for name in o.keys() {
                            self.check(
                                rule,
                                &Value::String(name.clone()),
                                &format!("{path}.{name}"),
                            )
                            .map_err(|e| format!("{e} (property name)"))?;
                        }
                    }
                }
                "allOf" => {
                    for sub in rule.as_array().expect("allOf") {
                        self.check(sub, instance, path)?;
                    }
                }
                "anyOf" => {
                    let branches = rule.as_array().expect("anyOf");
                    let errors: Vec<String> = branches
                        .iter()
                        .filter_map(|b| self.check(b, instance, path).err())
                        .collect();
                    if errors.len() == branches.len() {
                        return fail(format!("matches no branch of anyOf: {}", errors.join("; ")));
                    }
                }
                "oneOf" => {
                    let branches = rule.as_array().expect("oneOf");
                    let mut errors = Vec::new();
                    let mut passed = 0;
                    for b in branches {
                        match self.check(b, instance, path) {
                            Ok(()) => passed += 1,
                            Err(e) => errors.push(e),
                        }
                    }
                    if passed != 1 {
                        return fail(format!(
                            "matches {passed} branches of oneOf, expected 1: {}",
                            errors.join("; ")
                        ));
                    }
                }
                "not" => {
                    if self.check(rule, instance, path).is_ok() {
                        return fail(format!("matches the schema under `not`: {rule}"));
                    }
                }
                "if" => {
                    if self.check(rule, instance, path).is_ok() {
                        if let Some(then) = obj.get("then") {
                            self.check(then, instance, path)?;
                        }
                    } else if let Some(otherwise) = obj.get("else") {
                        self.check(otherwise, instance, path)?;
                    }
                }
                "then" | "else" => {}
                "x-max-depth" | "x-max-nodes" => {
                    let (depth, nodes) = filter_size(instance, 1);
                    let limit = rule.as_u64().expect("limit") as usize;
                    let n = if key == "x-max-depth" { depth } else { nodes };
                    if n > limit {
                        return fail(format!("{key}: {n} is above {limit}"));
                    }
                }
                "x-non-empty-range" => {
                    let num = |k: &str| instance.get(k).and_then(Value::as_f64);
                    let lower = num("gte")
                        .map(|x| (x, true))
                        .or(num("gt").map(|x| (x, false)));
                    let upper = num("lte")
                        .map(|x| (x, true))
                        .or(num("lt").map(|x| (x, false)));
                    if let (Some((lo, lo_incl)), Some((hi, hi_incl))) = (lower, upper)
                        && (lo > hi || (lo == hi && !(lo_incl && hi_incl)))
                    {
                        return fail(format!("the range {lo}..{hi} is empty"));
                    }
                }
                "x-stopwords" => {
                    if let Value::String(s) = instance {
                        let stop: Vec<&str> = rule
                            .as_array()
                            .expect("x-stopwords is a list")
                            .iter()
                            .filter_map(Value::as_str)
                            .collect();
                        let words = words(s);
                        if !words.is_empty()
                            && words
                                .iter()
                                .all(|w| stop.contains(&w.to_ascii_lowercase().as_str()))
                        {
                            return fail(format!("{s:?} has only stopwords"));
                        }
                    }
                }
                other if ANNOTATIONS.contains(&other) => {}
                other => panic!("the validator does not know keyword `{other}` (at {path})"),
            }
        }
        Ok(())
    }
}

/// The words of a text as the index tokenises it: split on ASCII punctuation other than `_`,
/// white space and control characters; tokens of underscores only dropped.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| {
        (c.is_ascii_punctuation() && c != '_') || c.is_whitespace() || c.is_control()
    })
    .filter(|t| !t.chars().all(|c| c == '_'))
    .collect()
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        // as strict as serde: `1.0` is not an integer
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("unknown type `{other}`"),
    }
}

/// JSON equality with numbers compared by value (`0` equals `0.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

/// Depth and node count of a filter in the gateway's JSON form (`and`/`or` arrays and `not`
/// nest; the root is depth 1).
pub fn filter_size(v: &Value, depth: usize) -> (usize, usize) {
    let Some(obj) = v.as_object() else {
        return (depth, 1);
    };
    let children: Vec<&Value> = match obj.iter().next() {
        Some((k, Value::Array(items))) if k == "and" || k == "or" => items.iter().collect(),
        Some((k, inner)) if k == "not" => vec![inner],
        _ => Vec::new(),
    };
    let mut max_depth = depth;
    let mut nodes = 1;
    for c in children {
        let (d, n) = filter_size(c, depth + 1);
        max_depth = max_depth.max(d);
        nodes += n;
    }
    (max_depth, nodes)
}
