//! Differential fuzzing of the filter path (JSON -> `Filter` -> RediSearch query string) against
//! the real server: a small index of adversarial documents, random filter trees, and for each
//! tree the id set `FT.SEARCH` returns compared with a reference evaluator that applies the same
//! tree to the documents in memory. A value that escapes its clause, a bound read wrongly or a
//! text term tokenized differently shows up as a different id set.
//!
//! The number of generated trees is `REDREC_FUZZ_CASES` (default 500, about a second), the seed
//! `REDREC_FUZZ_SEED` (default fixed, so CI runs are reproducible). Cases the fuzzer found are
//! kept below as named regression tests that run the same comparison.
//!
//! Server semantics the reference models (they are RediSearch's, not the builder's):
//! - TAG values are split on the field's separator (`,`), trimmed, and compared without case
//!   (the fields are not `CASESENSITIVE`); only ASCII letters are lowercased (`ÉCOLE` is stored
//!   as `École`, and `@f:{école}` does not find it).
//! - TEXT is tokenized on ASCII punctuation other than `_` and on whitespace; in stored text a
//!   backslash makes the next character part of the word. Words and a query's plain terms are
//!   lowercased in ASCII only; a prefix (`éco*`) is lowercased fully. The default English
//!   stopwords are not indexed and take no position. The vocabulary below has no two words with
//!   one stem, so stemming changes no result.
//! - A negation (`-x`, `not_any`) is the complement over every document of the index, so a
//!   document without the field matches it.

use std::collections::BTreeSet;
use std::ops::Bound;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use redrec_core::filter::{Filter, TagFilter, TextFilter, TextMode, text_terms, trim_tag};
use redrec_core::query::{HybridPolicy, KnnQuery, Projection};
use redrec_core::schema::{
    DistanceMetric, IndexSchema, ItemFields, VectorAlgorithm, VectorSettings, items_schema,
};
use redrec_testkit::TestSpace;

const DOCS: usize = 300;
const DIMS: usize = 4;

/// TAG values with query syntax, unicode, case and spacing variants.
const TAG_POOL: &[&str] = &[
    "BREAD",
    "bread",
    "MILK & CREAM",
    "a|b",
    "{x}",
    "}",
    "\\",
    "back\\slash",
    "\"q\"",
    "it's",
    "@home",
    "-1",
    "-",
    "*",
    "a*",
    "日本 茶",
    "Ünïcode",
    "x_y",
    "1.5",
    "$v",
    "%p%",
    "(p)",
    "[r]",
    ":c",
    "~t;",
    "a b",
    "  padded  ",
    "🍞",
    "crème",
    "1e5",
    "-inf",
    "x=y<z>",
    "!?",
    "^.^",
    "/",
];

/// Words the TEXT field is made of (no two share an English stem).
const WORDS: &[&str] = &[
    "milk",
    "bread",
    "crème",
    "brûlée",
    "日本",
    "茶",
    "x1",
    "42",
    "a_b",
    "zebra",
    "quartz",
    "ÉCOLE",
    "jazz",
    "fjord",
    "kiwi",
    "ünïcode",
    "the",
    "of",
    "not",
    "to",
    "mi",
    "mil",
    "7",
];

/// What separates words in TEXT values and query texts.
const SEPARATORS: &[&str] = &[
    " ", ", ", "-", "'", "\"", "*", "|", "@", "{", "}", "\\", "(", ")", ":", "%", "~", "  ", ".",
    "/", "$", "+", "=", "[", "]",
];

/// NUMERIC values as stored (hash strings) and as bounds.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "1.5",
    "-2.5",
    "3",
    "10",
    "1e300",
    "-1e300",
    "1e-300",
    "5e-324",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "0.1",
    "0.30000000000000004",
    "123456789012345680000",
    "-7",
];

const STOPWORDS: &[&str] = &[
    "a", "is", "the", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
    "it", "no", "not", "of", "on", "or", "such", "that", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with",
];

/// One document of the fuzz index: every field optional, as hashes may lack any of them.
#[derive(Debug, Clone)]
struct Doc {
    key: String,
    text: Option<String>,
    category: Option<String>,
    brand: Option<String>,
    in_stock: Option<String>,
    price: Option<String>,
    popularity: Option<String>,
}

impl Doc {
    fn tag(&self, field: &str) -> Option<&str> {
        match field {
            "category" => self.category.as_deref(),
            "brand" => self.brand.as_deref(),
            "in_stock" => self.in_stock.as_deref(),
            other => panic!("no tag field {other}"),
        }
    }

    fn number(&self, field: &str) -> Option<f64> {
        let raw = match field {
            "price" => self.price.as_deref(),
            "popularity" => self.popularity.as_deref(),
            other => panic!("no numeric field {other}"),
        }?;
        Some(raw.parse().expect("numeric fixture parses"))
    }
}

/// splitmix64: a tiny deterministic generator for the documents.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, pool: &[&'a str]) -> &'a str {
        pool[self.below(pool.len())]
    }
}

fn make_docs(space: &TestSpace) -> Vec<Doc> {
    let mut rng = Mix(0x5eed_f11e);
    (0..DOCS)
        .map(|i| {
            let opt = |percent_missing: u64, rng: &mut Mix, f: &dyn Fn(&mut Mix) -> String| {
                (!rng.chance(percent_missing)).then(|| f(rng))
            };
            let text = opt(8, &mut rng, &|r: &mut Mix| {
                let n = 1 + r.below(6);
                let mut s = String::new();
                for w in 0..n {
                    if w > 0 {
                        s.push_str(r.pick(SEPARATORS));
                    }
                    s.push_str(r.pick(WORDS));
                }
                s
            });
            let category = opt(8, &mut rng, &|r: &mut Mix| r.pick(TAG_POOL).to_owned());
            // brand holds one to three tags, as a multi-valued TAG field does
            let brand = opt(8, &mut rng, &|r: &mut Mix| {
                let n = 1 + r.below(3);
                (0..n)
                    .map(|_| r.pick(TAG_POOL))
                    .collect::<Vec<_>>()
                    .join(",")
            });
            let in_stock = opt(5, &mut rng, &|r: &mut Mix| r.pick(&["0", "1"]).to_owned());
            let price = opt(8, &mut rng, &|r: &mut Mix| r.pick(NUMBERS).to_owned());
            let popularity = opt(8, &mut rng, &|r: &mut Mix| {
                if r.chance(50) {
                    r.pick(NUMBERS).to_owned()
                } else {
                    format!("{}", (r.below(2000) as f64 - 1000.0) / 8.0)
                }
            });
            Doc {
                key: space.ns.item(&format!("d{i}")),
                text,
                category,
                brand,
                in_stock,
                price,
                popularity,
            }
        })
        .collect()
}

fn fuzz_schema(space: &TestSpace) -> IndexSchema {
    items_schema(
        &space.ns.index(1),
        &space.ns.item_prefix(),
        &ItemFields::default(),
        &VectorSettings {
            dims: DIMS,
            // exact KNN, so a KNN over every document returns exactly the filtered set
            algorithm: VectorAlgorithm::Flat,
            distance_metric: DistanceMetric::L2,
            ..VectorSettings::default()
        },
    )
}

/// Creates the index, writes the documents and waits until they are all indexed.
fn build_index(space: &TestSpace, schema: &IndexSchema, docs: &[Doc]) {
    let mut con = space.sync_conn();
    let _: () = schema.ft_create_cmd().query(&mut con).expect("FT.CREATE");
    let mut pipe = redis::pipe();
    for (i, d) in docs.iter().enumerate() {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&d.key);
        let fields = [
            ("text", &d.text),
            ("category", &d.category),
            ("brand", &d.brand),
            ("in_stock", &d.in_stock),
            ("price", &d.price),
            ("popularity", &d.popularity),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                cmd.arg(name).arg(v.as_str());
            }
        }
        let v: Vec<f32> = (0..DIMS).map(|j| ((i * 7 + j * 3) % 11) as f32).collect();
        cmd.arg("embedding")
            .arg(redrec_core::vector::encode(&v).as_slice());
        pipe.add_command(cmd).ignore();
    }
    let _: () = pipe.query(&mut con).expect("HSET documents");
    let mut last = String::new();
    for _ in 0..200 {
        let info: redis::Value = redis::cmd("FT.INFO")
            .arg(&schema.index.name)
            .query(&mut con)
            .expect("FT.INFO");
        last = format!("{info:?}");
        if num_docs(&info) == Some(DOCS) && !last.contains("\"indexing\"), int(1)") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("index did not reach {DOCS} documents: {last}");
}

fn num_docs(info: &redis::Value) -> Option<usize> {
    let redis::Value::Array(items) = info else {
        return None;
    };
    let pos = items.iter().position(|v| match v {
        redis::Value::BulkString(b) => b == b"num_docs",
        redis::Value::SimpleString(s) => s == "num_docs",
        _ => false,
    })?;
    match &items[pos + 1] {
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        redis::Value::Int(n) => Some(*n as usize),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The reference evaluator

fn doc_tags(raw: &str) -> BTreeSet<String> {
    raw.split(',')
        .map(trim_tag)
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The words of a query text, lowercased as the server lowercases plain terms (ASCII only):
/// every punctuation character separates words.
fn words(text: &str) -> Vec<String> {
    text.split(is_separator)
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn is_separator(c: char) -> bool {
    (c.is_ascii_punctuation() && c != '_') || c.is_whitespace()
}

/// The server's tokens of a stored TEXT value: words split on separators, where a backslash
/// makes the next character part of the word (`a\,b` is the token `a,b`, `mil\k` is `milk`),
/// lowercased, without the stopwords, which are not indexed and take no position.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            word.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if is_separator(c) {
            out.push(std::mem::take(&mut word));
        } else {
            word.push(c);
        }
    }
    out.push(word);
    out.into_iter()
        .filter(|t| !t.is_empty())
        .map(|t| t.to_ascii_lowercase())
        .filter(|t| !STOPWORDS.contains(&t.as_str()))
        .collect()
}

fn in_range(x: f64, lower: &Bound<f64>, upper: &Bound<f64>) -> bool {
    let lo = match lower {
        Bound::Included(b) => x >= *b,
        Bound::Excluded(b) => x > *b,
        Bound::Unbounded => true,
    };
    let hi = match upper {
        Bound::Included(b) => x <= *b,
        Bound::Excluded(b) => x < *b,
        Bound::Unbounded => true,
    };
    lo && hi
}

fn text_matches(t: &TextFilter, doc: &Doc) -> bool {
    let Some(text) = &doc.text else {
        return false;
    };
    let have = tokens(text);
    let raw = words(&t.text);
    let without_stopwords = |w: &[String]| -> Vec<String> {
        w.iter()
            .filter(|w| !STOPWORDS.contains(&w.as_str()))
            .cloned()
            .collect()
    };
    match t.mode {
        TextMode::Match => without_stopwords(&raw).iter().all(|w| have.contains(w)),
        TextMode::Phrase => {
            // the builder says a word repeated in a row once (the server's exact-phrase check
            // cannot match a repeat)
            let mut want = without_stopwords(&raw);
            want.dedup();
            want.is_empty() || have.windows(want.len()).any(|win| win == want.as_slice())
        }
        TextMode::Prefix => {
            // the prefix itself is not a word, so it is never a stopword
            let (_, rest) = raw.split_last().expect("checked filters have words");
            // a prefix is lowercased fully (unlike a plain term)
            let prefix = text_terms(&t.text)
                .pop()
                .expect("a last word")
                .to_lowercase();
            without_stopwords(rest).iter().all(|w| have.contains(w))
                && have.iter().any(|h| h.starts_with(prefix.as_str()))
        }
    }
}

fn has_infinite_bound(f: &Filter) -> bool {
    let infinite =
        |b: &Bound<f64>| matches!(b, Bound::Included(x) | Bound::Excluded(x) if x.is_infinite());
    match f {
        Filter::Range(r) => infinite(&r.lower) || infinite(&r.upper),
        Filter::And(c) | Filter::Or(c) => c.iter().any(has_infinite_bound),
        Filter::Not(c) => has_infinite_bound(c),
        Filter::All | Filter::Tag(_) | Filter::Text(_) => false,
    }
}

fn eval(f: &Filter, doc: &Doc) -> bool {
    match f {
        Filter::All => true,
        Filter::Tag(TagFilter {
            field,
            values,
            negated,
        }) => {
            let have = doc.tag(field).map(doc_tags).unwrap_or_default();
            let any = values
                .iter()
                .any(|v| have.contains(&trim_tag(v).to_ascii_lowercase()));
            any != *negated
        }
        Filter::Range(r) => doc
            .number(&r.field)
            .is_some_and(|x| in_range(x, &r.lower, &r.upper)),
        Filter::Text(t) => text_matches(t, doc),
        Filter::And(children) => children.iter().all(|c| eval(c, doc)),
        Filter::Or(children) => children.iter().any(|c| eval(c, doc)),
        Filter::Not(child) => !eval(child, doc),
    }
}

// ---------------------------------------------------------------------------------------------
// Running one filter on the server and comparing

fn reply_keys(reply: &redis::Value) -> Vec<String> {
    let redis::Value::Array(items) = reply else {
        panic!("FT.SEARCH reply is not an array: {reply:?}");
    };
    items
        .iter()
        .skip(1)
        .filter_map(|v| match v {
            redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

struct Fixture {
    /// Keeps the namespace (index and keys) alive until the test ends.
    _space: TestSpace,
    schema: IndexSchema,
    docs: Vec<Doc>,
    con: redis::Connection,
}

impl Fixture {
    fn new(label: &str) -> Fixture {
        let space = TestSpace::new(label);
        let schema = fuzz_schema(&space);
        let docs = make_docs(&space);
        build_index(&space, &schema, &docs);
        let con = space.sync_conn();
        Fixture {
            _space: space,
            schema,
            docs,
            con,
        }
    }

    /// Sends `filter` through its JSON form and the builder, runs it as a plain search and as
    /// the filter of a KNN over every document, and compares both id sets with the reference.
    fn compare(&mut self, filter: &Filter) -> Result<(), String> {
        let json = serde_json::to_string(&filter.to_json()).expect("filter JSON");
        // JSON has no infinities: such bounds exist only in filters built in code
        let parsed = if has_infinite_bound(filter) {
            filter.clone()
        } else {
            Filter::from_json_str(&json).map_err(|e| format!("{json}: {e}"))?
        };
        if &parsed != filter {
            return Err(format!("{json} parses back as {parsed:?}, not {filter:?}"));
        }
        let query = match parsed.render(&self.schema) {
            Ok(q) => q,
            // rejected by validation: a clear error, nothing sent
            Err(redrec_core::Error::Filter { .. }) => return Ok(()),
            Err(e) => return Err(format!("{json}: unexpected error kind {e}")),
        };
        let want: BTreeSet<String> = self
            .docs
            .iter()
            .filter(|d| eval(filter, d))
            .map(|d| d.key.clone())
            .collect();
        let plain: redis::Value = redis::cmd("FT.SEARCH")
            .arg(&self.schema.index.name)
            .arg(&query)
            .arg("NOCONTENT")
            .arg("LIMIT")
            .arg(0)
            .arg(DOCS * 2)
            .arg("DIALECT")
            .arg(2)
            .query(&mut self.con)
            .map_err(|e| format!("{json}\nquery {query}\nserver error: {e}"))?;
        self.check(&json, &query, "search", &want, reply_keys(&plain))?;
        let knn = KnnQuery {
            index: self.schema.index.name.clone(),
            filter: query.clone(),
            vector_field: "embedding".into(),
            vector: vec![1.0; DIMS],
            k: DOCS,
            ef_runtime: None,
            distance_alias: "__dist".into(),
            projection: Projection::IdsOnly,
            hybrid_policy: Some(HybridPolicy::AdhocBf),
            timeout_ms: None,
        };
        let reply: redis::Value = knn
            .cmd()
            .expect("KNN command")
            .query(&mut self.con)
            .map_err(|e| format!("{json}\nKNN with {query}\nserver error: {e}"))?;
        self.check(&json, &query, "KNN", &want, reply_keys(&reply))
    }

    fn check(
        &self,
        json: &str,
        query: &str,
        how: &str,
        want: &BTreeSet<String>,
        got: Vec<String>,
    ) -> Result<(), String> {
        let got: BTreeSet<String> = got.into_iter().collect();
        if &got == want {
            return Ok(());
        }
        let show = |keys: Vec<&String>| -> String {
            keys.iter()
                .take(4)
                .map(|k| match self.docs.iter().find(|d| &&d.key == k) {
                    Some(d) => format!("\n    {d:?}"),
                    None => format!("\n    {k} (not a document of the fixture)"),
                })
                .collect()
        };
        Err(format!(
            "{how} differs from the reference for {json}\n  query: {query}\n  \
             {} missing (reference matches, server does not):{}\n  \
             {} extra (server matches, reference does not):{}",
            want.difference(&got).count(),
            show(want.difference(&got).collect()),
            got.difference(want).count(),
            show(got.difference(want).collect()),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Generating filters

fn number_bound() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => prop::sample::select(NUMBERS).prop_map(|s| s.parse::<f64>().expect("number")),
        2 => (-1000i32..1000).prop_map(|n| f64::from(n) / 8.0),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::MIN_POSITIVE),
        1 => Just(-f64::MIN_POSITIVE),
    ]
}

fn bound() -> impl Strategy<Value = Bound<f64>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => number_bound().prop_map(Bound::Included),
        2 => number_bound().prop_map(Bound::Excluded),
    ]
}

/// A tag value as a user might send it: a known value, a case or spacing variant of one, or
/// an unknown one.
fn tag_value() -> impl Strategy<Value = String> {
    let known = prop::sample::select(TAG_POOL);
    prop_oneof![
        6 => known.clone().prop_map(str::to_owned),
        1 => known.clone().prop_map(str::to_uppercase),
        1 => known.prop_map(|v| format!(" {v}\t")),
        1 => "[ -~]{1,6}",
        1 => "\\PC{1,4}",
    ]
}

fn query_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(WORDS), 1..4),
        prop::sample::select(SEPARATORS),
        prop::sample::select(&["", "\"", "-", "*", "@text:", "(", "|"][..]),
    )
        .prop_map(|(words, sep, affix)| format!("{affix}{}{affix}", words.join(sep)))
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        3 => (
            prop::sample::select(&["category", "brand", "in_stock"][..]),
            prop::collection::vec(tag_value(), 1..4),
            any::<bool>(),
        )
            .prop_map(|(field, values, negated)| Filter::Tag(TagFilter {
                field: field.to_owned(),
                values,
                negated,
            })),
        3 => (
            prop::sample::select(&["price", "popularity"][..]),
            bound(),
            bound(),
        )
            .prop_map(|(field, a, b)| {
                // order the bounds so most generated ranges are valid
                let v = |b: &Bound<f64>| match b {
                    Bound::Included(x) | Bound::Excluded(x) => Some(*x),
                    Bound::Unbounded => None,
                };
                let (lower, upper) = match (v(&a), v(&b)) {
                    (Some(x), Some(y)) if x > y => (b, a),
                    _ => (a, b),
                };
                Filter::range(field, lower, upper)
            }),
        2 => (
            prop::option::of(Just("text")),
            prop::sample::select(&[TextMode::Match, TextMode::Phrase, TextMode::Prefix][..]),
            query_text(),
        )
            .prop_map(|(field, mode, text)| Filter::text(field, mode, &text)),
        1 => Just(Filter::All),
    ]
}

fn filter_tree() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Filter::Or),
            inner.prop_map(|f| if f.is_all() { f } else { Filter::not(f) }),
        ]
    })
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

#[test]
fn generated_filters_select_what_the_reference_selects() {
    let fx = std::cell::RefCell::new(Fixture::new("filter_fuzz"));
    let cases = env_number("REDREC_FUZZ_CASES", 500) as u32;
    let seed = env_number("REDREC_FUZZ_SEED", 0x00f1_1732);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let result = runner.run(&filter_tree(), |f| {
        fx.borrow_mut().compare(&f).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("filter fuzz (seed {seed}, {cases} cases) found: {e}");
    }
}

/// Every document is matched by `all`: the fixture itself is sound (all documents indexed, the
/// reference agrees on the trivial filter).
#[test]
fn fixture_indexes_every_document() {
    Fixture::new("filter_fuzz_all")
        .compare(&Filter::All)
        .unwrap();
}

fn regression(label: &str, json: &str) {
    let filter = Filter::from_json_str(json).expect("regression case parses");
    let mut fx = Fixture::new(label);
    fx.compare(&filter).unwrap();
    let query = filter.render(&fx.schema).expect("regression case renders");
    assert!(!query.is_empty());
}

// Cases the fuzzer found, each once a mismatch or a server error.

/// `*` inside a group is a syntax error: `(@price:[-inf 0] *)`.
#[test]
fn regression_all_inside_and() {
    regression(
        "fuzz_all_in_and",
        r#"{"or":[{"and":[{"range":{"field":"price","lte":0}},{"all":{}}]}]}"#,
    );
}

/// `((milk) | (milk) | @price:[-inf 0])` is a syntax error: unfielded text groups before a
/// fielded clause in an `or`.
#[test]
fn regression_unfielded_text_in_or() {
    regression(
        "fuzz_unfielded_or",
        r#"{"or":[{"text":{"match":"milk"}},{"text":{"match":"milk"}},{"range":{"field":"price","lte":0}}]}"#,
    );
}

/// A phrase holding a stopword matched nothing (stopwords are not indexed).
#[test]
fn regression_phrase_with_stopword() {
    regression(
        "fuzz_phrase_stopword",
        r#"{"or":[{"text":{"phrase":"jazz the fjord"}},{"text":{"phrase":"the milk"}}]}"#,
    );
}

/// `"fjord fjord bread"` found `fjord brûlée bread`: the exact-phrase check cannot match a
/// repeated word.
#[test]
fn regression_phrase_with_repeated_word() {
    regression(
        "fuzz_phrase_repeat",
        r#"{"not":{"text":{"phrase":"fjord fjord bread"}}}"#,
    );
}

/// A prefix is lowercased fully by the server, a plain term in ASCII only.
#[test]
fn regression_uppercase_unicode_prefix_and_term() {
    regression(
        "fuzz_unicode_case",
        r#"{"or":[{"text":{"prefix":"ÉCOLE"}},{"text":{"field":"text","match":"ÉCOLE jazz"}}]}"#,
    );
}

/// `mil\milk` in stored text is the one word `milmilk`, so it is not a `milk` document.
#[test]
fn regression_backslash_in_stored_text() {
    regression(
        "fuzz_backslash",
        r#"{"and":[{"not":{"text":{"match":"milk"}}}]}"#,
    );
}
