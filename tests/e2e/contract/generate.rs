//! Instances generated from a schema of the document: valid ones (every candidate is checked
//! with the validator, so the validator is the judge, not the generator), and invalid ones that
//! break exactly one rule of a valid instance (again confirmed by the validator).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::schema::Validator;

/// A small deterministic generator (SplitMix64): the same seed gives the same requests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Characters random strings are drawn from: mostly plain, some punctuation, white space,
/// non-ASCII and control characters, so patterns are exercised from both sides.
const PLAIN: &[char] = &[
    'a', 'b', 'c', 'k', 'm', 'x', 'z', 'A', 'Q', 'Z', '0', '1', '7', '9',
];
const ODD: &[char] = &[
    '-', '_', '.', ':', '@', ',', ' ', '/', '&', '{', '"', '\\', '*', '|', '\t', '\n', 'é', '中',
    '\u{1}', '\u{7f}', '\u{85}', '\u{a0}', '😀',
];

pub struct Generator<'d> {
    pub validator: Validator<'d>,
    pub rng: Rng,
    /// Values to draw for a component schema (by name) most of the time: the ids of items that
    /// exist, so valid requests reach the code behind the validation.
    pub pools: HashMap<String, Vec<Value>>,
}

/// How often a `$ref` may recur on one path before the generator backs off (filters nest).
const MAX_RECURSION: usize = 3;
const ATTEMPTS: usize = 40;

impl<'d> Generator<'d> {
    /// A valid instance of `schema`, or `None` when none was found in a few attempts.
    pub fn valid(&mut self, schema: &Value) -> Option<Value> {
        for _ in 0..ATTEMPTS {
            if let Some(v) = self.candidate(schema, &mut Vec::new())
                && self.validator.is_valid(schema, &v)
            {
                return Some(v);
            }
        }
        None
    }

    fn candidate(&mut self, schema: &Value, stack: &mut Vec<String>) -> Option<Value> {
        let obj = match schema {
            Value::Bool(true) => return Some(json!("any")),
            Value::Bool(false) => return None,
            Value::Object(o) => o,
            _ => return None,
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or(r).to_owned();
            if stack.iter().filter(|n| **n == name).count() >= MAX_RECURSION {
                return None;
            }
            if let Some(pool) = self.pools.get(&name)
                && !pool.is_empty()
                && self.rng.chance(0.8)
            {
                return Some(self.rng.pick(pool).clone());
            }
            let target = self.validator.resolve(r);
            stack.push(name);
            let v = self.candidate(target, stack);
            stack.pop();
            return v;
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array) {
            return Some(self.rng.pick(e).clone());
        }
        if let Some(c) = obj.get("const") {
            return Some(c.clone());
        }
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if types.is_empty() {
            // no type: one of the combinators decides the shape
            for key in ["oneOf", "anyOf"] {
                if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                    let start = self.rng.below(branches.len());
                    for i in 0..branches.len() {
                        let b = &branches[(start + i) % branches.len()];
                        if let Some(v) = self.candidate(b, stack) {
                            return Some(v);
                        }
                    }
                    return None;
                }
            }
            if let Some(first) = obj
                .get("allOf")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                return self.candidate(first, stack);
            }
            return Some(json!("any"));
        }
        let non_null: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
        if non_null.is_empty() || (types.contains(&"null") && self.rng.chance(0.2)) {
            return Some(Value::Null);
        }
        match *self.rng.pick(&non_null) {
            "object" => self.object(obj, stack),
            "array" => self.array(obj, stack),
            "string" => Some(Value::String(self.string(obj))),
            "integer" => Some(self.integer(obj)),
            "number" => Some(self.number(obj)),
            "boolean" => Some(Value::Bool(self.rng.chance(0.5))),
            _ => None,
        }
    }

    fn object(&mut self, obj: &Map<String, Value>, stack: &mut Vec<String>) -> Option<Value> {
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                // a property no value may take
                if sub == &Value::Bool(false) || sub.get("not") == Some(&json!({})) {
                    continue;
                }
                if required.contains(&name.as_str()) || self.rng.chance(0.5) {
                    match self.candidate(sub, stack) {
                        Some(v) => {
                            out.insert(name.clone(), v);
                        }
                        None if required.contains(&name.as_str()) => return None,
                        None => {}
                    }
                }
            }
        }
        let extra = obj.get("additionalProperties");
        if !matches!(extra, Some(Value::Bool(false)))
            && obj.get("properties").is_some()
            && self.rng.chance(0.3)
        {
            let name = self.rng.pick(&["note", "color", "size_2", "bad name", "é"]);
            if let Some(v) = self.candidate(extra.unwrap_or(&Value::Bool(true)), stack) {
                out.insert((*name).to_owned(), v);
            }
        }
        Some(Value::Object(out))
    }

    fn array(&mut self, obj: &Map<String, Value>, stack: &mut Vec<String>) -> Option<Value> {
        let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = obj
            .get("maxItems")
            .and_then(Value::as_u64)
            .map(|m| m as usize)
            .unwrap_or(min + 4);
        let len = if max <= 64 && self.rng.chance(0.1) {
            max
        } else {
            min + self.rng.below(max.min(min + 4) - min + 1)
        };
        let items = obj.get("items").cloned().unwrap_or(Value::Bool(true));
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(self.candidate(&items, stack)?);
        }
        Some(Value::Array(out))
    }

    fn string(&mut self, obj: &Map<String, Value>) -> String {
        let min = obj.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = obj
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|m| m as usize)
            .unwrap_or(min + 40);
        let (len, odd) = match self.rng.below(10) {
            // the longest allowed, plain characters
            0 => (max, 0.0),
            1..=5 => (min.max(1) + self.rng.below(12), 0.0),
            _ => (min + self.rng.below(12), 0.3),
        };
        let len = len.clamp(min, max);
        (0..len)
            .map(|_| {
                if self.rng.chance(odd) {
                    *self.rng.pick(ODD)
                } else {
                    *self.rng.pick(PLAIN)
                }
            })
            .collect()
    }

    fn integer(&mut self, obj: &Map<String, Value>) -> Value {
        let min = obj.get("minimum").and_then(Value::as_i64).unwrap_or(-1000) as i128;
        let max = obj
            .get("maximum")
            .and_then(|m| m.as_i64().map(i128::from).or(m.as_u64().map(i128::from)))
            .unwrap_or(1000);
        let v = match self.rng.below(6) {
            0 => min,
            1 => max,
            _ => (min + (self.rng.below(30) as i128)).min(max),
        };
        int_value(v)
    }

    fn number(&mut self, obj: &Map<String, Value>) -> Value {
        let min = obj.get("minimum").and_then(Value::as_f64);
        let max = obj.get("maximum").and_then(Value::as_f64);
        let x = match (self.rng.below(20), min, max) {
            (0, Some(m), _) => m,
            (1, _, Some(m)) => m,
            _ => (self.rng.unit() * 2.0 - 1.0) * if self.rng.chance(0.5) { 1.0 } else { 100.0 },
        };
        json!(x)
    }

    /// `valid` with one rule broken: `(instance, what was broken)`.
    pub fn invalid(&mut self, schema: &Value) -> Option<(Value, String)> {
        for _ in 0..ATTEMPTS {
            let base = self.valid(schema)?;
            let mut sites = Vec::new();
            self.sites(schema, &base, String::new(), &mut sites, 0);
            if sites.is_empty() {
                return None;
            }
            let (pointer, rule) = self.rng.pick(&sites).clone();
            let Some(target) = base.pointer(&pointer).cloned() else {
                continue;
            };
            let Some((replacement, what)) = self.break_rule(&rule, &target) else {
                continue;
            };
            let mut broken = base.clone();
            *broken.pointer_mut(&pointer).expect("pointer") = replacement;
            if !self.validator.is_valid(schema, &broken) {
                return Some((broken, format!("{what} at `{pointer}`")));
            }
        }
        None
    }

    /// Every (JSON pointer, schema) pair of `instance` a rule applies at: the node itself and,
    /// through `$ref`, `allOf`, the branch of `anyOf`/`oneOf` it matches, `properties` and
    /// `items`, its parts.
    fn sites(
        &self,
        schema: &Value,
        instance: &Value,
        pointer: String,
        out: &mut Vec<(String, Value)>,
        depth: usize,
    ) {
        if depth > 40 {
            return;
        }
        let Some(obj) = schema.as_object() else {
            return;
        };
        out.push((pointer.clone(), schema.clone()));
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            self.sites(
                self.validator.resolve(r),
                instance,
                pointer.clone(),
                out,
                depth + 1,
            );
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for b in obj.get(key).and_then(Value::as_array).into_iter().flatten() {
                if key == "allOf" || self.validator.is_valid(b, instance) {
                    self.sites(b, instance, pointer.clone(), out, depth + 1);
                }
            }
        }
        if let (Some(props), Some(o)) = (
            obj.get("properties").and_then(Value::as_object),
            instance.as_object(),
        ) {
            for (name, sub) in props {
                if let Some(v) = o.get(name) {
                    let p = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
                    self.sites(sub, v, p, out, depth + 1);
                }
            }
        }
        if let (Some(items), Some(a)) = (obj.get("items"), instance.as_array()) {
            for (i, v) in a.iter().enumerate() {
                self.sites(items, v, format!("{pointer}/{i}"), out, depth + 1);
            }
        }
    }

    /// A value for `target` that breaks one rule of `rule`.
    fn break_rule(&mut self, rule: &Value, target: &Value) -> Option<(Value, String)> {
        let obj = rule.as_object()?;
        let mut options: Vec<(Value, String)> = Vec::new();
        let n = |x: f64| json!(x);
        if let Some(t) = obj.get("type") {
            let allowed: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let samples = [
                ("string", json!("text")),
                ("integer", json!(7)),
                ("number", json!(2.5)),
                ("boolean", json!(true)),
                ("array", json!([])),
                ("object", json!({})),
                ("null", Value::Null),
            ];
            for (ty, v) in samples {
                let covered =
                    allowed.contains(&ty) || (ty == "integer" && allowed.contains(&"number"));
                if !covered {
                    options.push((v, format!("type {ty} instead of {allowed:?}")));
                }
            }
        }
        if obj.contains_key("enum") || obj.contains_key("const") {
            options.push((json!("not-a-listed-value"), "a value outside enum".into()));
        }
        if let Some(s) = target.as_str() {
            if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
                options.push((json!("m".repeat(max as usize + 1)), "maxLength + 1".into()));
            }
            if let Some(max) = obj.get("x-max-bytes").and_then(Value::as_u64) {
                // within maxLength in characters, over the limit in bytes
                let chars = (max as usize / 2) + 1;
                options.push((json!("é".repeat(chars)), "x-max-bytes + 1".into()));
            }
            if let Some(min) = obj.get("minLength").and_then(Value::as_u64)
                && min > 0
            {
                options.push((
                    json!(s.chars().take(min as usize - 1).collect::<String>()),
                    "minLength - 1".into(),
                ));
            }
            if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
                for bad in [
                    "",
                    " ",
                    "a",
                    "ab cd",
                    "a/b",
                    "__",
                    "x\u{1}y",
                    "é",
                    "bad value!",
                    "u1:cart",
                    ",",
                    "a,b",
                ] {
                    if !self.validator.matches(p, bad) {
                        options.push((json!(bad), format!("{bad:?} against pattern")));
                        break;
                    }
                }
            }
        }
        if target.is_number() {
            if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
                let v = if target.is_f64() || min.abs() > 1e15 {
                    n(min * 10.0 - 1.0)
                } else {
                    json!(min as i64 - 1)
                };
                options.push((v, "minimum - 1".into()));
            }
            if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
                let v = if target.is_f64() || max.abs() > 1e15 {
                    n(max * 10.0 + 1.0)
                } else {
                    json!(max as i64 + 1)
                };
                options.push((v, "maximum + 1".into()));
            }
        }
        if let Some(a) = target.as_array() {
            if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
                let filler = a.first().cloned().unwrap_or(json!("x"));
                let mut longer = a.clone();
                while longer.len() <= max as usize {
                    longer.push(filler.clone());
                }
                options.push((Value::Array(longer), "maxItems + 1".into()));
            }
            if let Some(min) = obj.get("minItems").and_then(Value::as_u64)
                && min > 0
            {
                let shorter: Vec<Value> = a.iter().take(min as usize - 1).cloned().collect();
                options.push((Value::Array(shorter), "minItems - 1".into()));
            }
        }
        if let Some(o) = target.as_object() {
            if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
                let mut more = o.clone();
                more.insert("unexpected_field".into(), json!(1));
                options.push((Value::Object(more), "an unknown property".into()));
            }
            if obj.contains_key("propertyNames") {
                let mut more = o.clone();
                more.insert("bad name!".into(), json!("x"));
                options.push((
                    Value::Object(more),
                    "a property name outside propertyNames".into(),
                ));
            }
            for name in obj
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = name.as_str() {
                    let mut fewer = o.clone();
                    fewer.remove(name);
                    options.push((Value::Object(fewer), format!("required `{name}` removed")));
                }
            }
        }
        if obj.contains_key("x-max-depth") {
            let mut deep = target.clone();
            for _ in 0..obj["x-max-depth"].as_u64().unwrap_or(0) {
                deep = json!({"and": [deep]});
            }
            options.push((deep, "x-max-depth + 1".into()));
        }
        if obj.contains_key("x-max-nodes") {
            let max = obj["x-max-nodes"].as_u64().unwrap_or(0) as usize;
            let wide = json!({"or": vec![target.clone(); max]});
            options.push((wide, "x-max-nodes + 1".into()));
        }
        if let Some(stop) = obj.get("x-stopwords").and_then(Value::as_array)
            && stop.len() >= 2
        {
            let text = format!("{} {}", to_str(&stop[0]), to_str(&stop[1]).to_uppercase());
            options.push((json!(text), "stopwords only".into()));
        }
        if obj.contains_key("x-non-empty-range") {
            let mut empty = target.clone();
            if let Some(o) = empty.as_object_mut() {
                for k in ["gte", "gt", "lte", "lt"] {
                    o.remove(k);
                }
                o.insert("gte".into(), json!(5));
                o.insert("lt".into(), json!(5));
            }
            options.push((empty, "an empty range".into()));
        }
        if options.is_empty() {
            return None;
        }
        let i = self.rng.below(options.len());
        Some(options.swap_remove(i))
    }
}

fn to_str(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int_value(v: i128) -> Value {
    if let Ok(i) = i64::try_from(v) {
        json!(i)
    } else if let Ok(u) = u64::try_from(v) {
        json!(u)
    } else {
        json!(v as f64)
    }
}
