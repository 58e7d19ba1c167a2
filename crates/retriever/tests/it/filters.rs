//! Filters against the real server: TAG values match exactly themselves whatever they contain,
//! and no filter input changes the structure of the query (no injection, no syntax errors).

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use redrec_core::filter::{Filter, TextMode, trim_tag};
use redrec_core::schema::{FieldDef, FieldKind, IndexSchema, TagAttrs};
use redrec_testkit::TestSpace;
use serde_json::json;

use crate::support;

const SPECIALS: &str = "-@{}[]()|\\\"'*:.<>;!~$%^&=?/#+`";

fn schema(space: &TestSpace) -> IndexSchema {
    let mut s = support::schema(&space.ns, 4);
    s.fields.push(FieldDef {
        name: "cs".into(),
        path: None,
        kind: FieldKind::Tag(TagAttrs {
            case_sensitive: true,
            ..TagAttrs::default()
        }),
    });
    s
}

fn search(
    con: &mut redis::Connection,
    index: &str,
    query: &str,
) -> redis::RedisResult<BTreeSet<String>> {
    let reply: Vec<redis::Value> = redis::cmd("FT.SEARCH")
        .arg(index)
        .arg(query)
        .arg("NOCONTENT")
        .arg("LIMIT")
        .arg(0)
        .arg(1000)
        .arg("DIALECT")
        .arg(2)
        .query(con)?;
    Ok(reply
        .iter()
        .skip(1)
        .map(|v| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("unexpected id {other:?}"),
        })
        .collect())
}

/// TAG values: printable ASCII punctuation, letters, spaces and unicode; never the separator
/// (`,`, rejected by validation) or control characters (rejected too).
fn tag_value() -> impl Strategy<Value = String> {
    let special = proptest::sample::select(SPECIALS.chars().collect::<Vec<_>>());
    let ch = prop_oneof![
        4 => special,
        3 => proptest::char::range('a', 'z'),
        2 => proptest::char::range('A', 'Z'),
        1 => proptest::char::range('0', '9'),
        1 => Just(' '),
        1 => Just('_'),
        2 => any::<char>(),
    ];
    proptest::collection::vec(ch, 1..10)
        .prop_map(|cs| cs.into_iter().collect::<String>())
        .prop_filter("usable tag", |s| {
            !s.contains(',') && !s.chars().any(char::is_control) && !trim_tag(s).is_empty()
        })
}

#[test]
fn tag_values_match_exactly_the_documents_carrying_them() {
    let space = TestSpace::new("tagprop");
    let schema = schema(&space);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(support::create_index(&space, &schema));
    let con = std::cell::RefCell::new(space.sync_conn());
    let index = space.ns.alias();
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    // keys of the previous case, deleted first (a failing case returns before its own cleanup)
    let written = std::cell::RefCell::new(Vec::<String>::new());
    let case = std::cell::Cell::new(0u32);
    runner
        .run(
            &(proptest::collection::vec(tag_value(), 1..8), tag_value()),
            |(values, stranger)| {
                case.set(case.get() + 1);
                let case = case.get();
                let mut con = con.borrow_mut();
                let con = &mut *con;
                let old = std::mem::take(&mut *written.borrow_mut());
                if !old.is_empty() {
                    let _: () = redis::cmd("DEL").arg(&old).query(con).unwrap();
                }
                // fresh documents for this case: doc i carries values[i] in both tag fields
                let keys: Vec<String> = (0..values.len())
                    .map(|i| space.ns.item(&format!("c{case}-{i}")))
                    .collect();
                for (key, v) in keys.iter().zip(&values) {
                    let _: () = redis::cmd("HSET")
                        .arg(key)
                        .arg("cs")
                        .arg(v)
                        .arg("category")
                        .arg(v)
                        .arg("text")
                        .arg("doc")
                        .query(con)
                        .unwrap();
                }
                written.borrow_mut().extend(keys.iter().cloned());
                let all: BTreeSet<String> = keys.iter().cloned().collect();
                let mut probes = values.clone();
                probes.push(stranger);
                for p in &probes {
                    for field in ["cs", "category"] {
                        let same = |v: &str| {
                            let (a, b) = (trim_tag(v), trim_tag(p));
                            if field == "cs" {
                                a == b
                            } else {
                                a.eq_ignore_ascii_case(b)
                            }
                        };
                        let want: BTreeSet<String> = keys
                            .iter()
                            .zip(&values)
                            .filter(|(_, v)| same(v))
                            .map(|(k, _)| k.clone())
                            .collect();
                        // through the JSON form, as the HTTP API receives it
                        let f = Filter::from_json(&json!({"tag": {"field": field, "any": [p]}}))
                            .unwrap();
                        let q = f.render(&schema).unwrap();
                        let got = search(con, &index, &q)
                            .map_err(|e| TestCaseError::fail(format!("{q:?}: {e}")))?;
                        prop_assert_eq!(&got, &want, "query {:?} for value {:?}", q, p);
                        let q = Filter::tag_not_any(field, [p.clone()])
                            .render(&schema)
                            .unwrap();
                        let got = search(con, &index, &q)
                            .map_err(|e| TestCaseError::fail(format!("{q:?}: {e}")))?;
                        let complement: BTreeSet<String> = all.difference(&want).cloned().collect();
                        prop_assert_eq!(&got, &complement, "query {:?}", q);
                    }
                    // the same strings as text never break the query either
                    let words = redrec_core::filter::text_terms(p);
                    if !words.is_empty() {
                        let only_stopwords =
                            words.iter().all(|w| redrec_core::filter::is_stopword(w));
                        for mode in [TextMode::Match, TextMode::Phrase, TextMode::Prefix] {
                            // rejected before rendering: a prefix shorter than 2 characters, and
                            // a match or phrase of stopwords only (the index holds none)
                            let Ok(q) = Filter::text(Some("text"), mode, p).render(&schema) else {
                                prop_assert!(
                                    mode == TextMode::Prefix || only_stopwords,
                                    "{mode:?} of {p:?} rejected"
                                );
                                continue;
                            };
                            search(con, &index, &q)
                                .map_err(|e| TestCaseError::fail(format!("{q:?}: {e}")))?;
                        }
                    }
                }
                // every value at once selects every document
                let q = Filter::tag_any("cs", values.clone())
                    .render(&schema)
                    .unwrap();
                prop_assert_eq!(search(con, &index, &q).unwrap(), all.clone());
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn crafted_injections_stay_inside_their_value() {
    let space = TestSpace::new("inject");
    let schema = schema(&space);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(support::create_index(&space, &schema));
    let mut con = space.sync_conn();
    let index = space.ns.alias();
    for (id, v) in [("a", "alpha"), ("b", "beta"), ("evil", "x} | @cs:{alpha")] {
        let _: () = redis::cmd("HSET")
            .arg(space.ns.item(id))
            .arg("cs")
            .arg(v)
            .arg("text")
            .arg(format!("{v} words"))
            .query(&mut con)
            .unwrap();
    }
    let key = |id: &str| space.ns.item(id);
    let attacks = [
        "x} | @cs:{alpha",
        "*",
        "alpha} | *",
        "$param",
        "\\",
        "alpha\\",
        "\" | *",
        "-alpha",
        "alpha)=>[KNN 10 @embedding $vec]",
        "alpha | beta",
    ];
    for a in attacks {
        let q = Filter::tag_any("cs", [a]).render(&schema).unwrap();
        let got = search(&mut con, &index, &q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let want: BTreeSet<String> = if a == "x} | @cs:{alpha" {
            [key("evil")].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(got, want, "{a:?} rendered as {q}");
        // as text: only the words remain, and the query runs
        let q = Filter::text(Some("text"), TextMode::Match, a).render(&schema);
        if let Ok(q) = q {
            search(&mut con, &index, &q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }
}

#[test]
fn every_operator_runs_on_the_server() {
    let space = TestSpace::new("ops");
    let schema = schema(&space);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(support::create_index(&space, &schema));
    let mut con = space.sync_conn();
    let index = space.ns.alias();
    let docs = [
        ("1", "BREAD", "1.5", "whole wheat bread"),
        ("2", "BREAD", "4.99", "white bread loaf"),
        ("3", "MILK", "2", "whole milk gallon"),
        ("4", "MILK", "-1", "chocolate milk"),
        ("5", "CHEESE", "5", "cheddar cheese block"),
    ];
    for (id, cat, price, text) in docs {
        let _: () = redis::cmd("HSET")
            .arg(space.ns.item(id))
            .arg("category")
            .arg(cat)
            .arg("price")
            .arg(price)
            .arg("text")
            .arg(text)
            .query(&mut con)
            .unwrap();
    }
    let check = |con: &mut redis::Connection, json: serde_json::Value, want: &[&str]| {
        let q = Filter::from_json(&json).unwrap().render(&schema).unwrap();
        let got = search(con, &index, &q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let want: BTreeSet<String> = want.iter().map(|id| space.ns.item(id)).collect();
        assert_eq!(got, want, "{q}");
    };
    check(&mut con, json!({"all": {}}), &["1", "2", "3", "4", "5"]);
    check(
        &mut con,
        json!({"tag": {"field": "category", "any": ["bread", "CHEESE"]}}),
        &["1", "2", "5"],
    );
    check(
        &mut con,
        json!({"tag": {"field": "category", "not_any": ["BREAD"]}}),
        &["3", "4", "5"],
    );
    check(
        &mut con,
        json!({"range": {"field": "price", "gte": 1.5, "lt": 5}}),
        &["1", "2", "3"],
    );
    check(
        &mut con,
        json!({"range": {"field": "price", "gt": 1.5, "lte": 5}}),
        &["2", "3", "5"],
    );
    check(
        &mut con,
        json!({"range": {"field": "price", "lt": 0}}),
        &["4"],
    );
    check(
        &mut con,
        json!({"text": {"field": "text", "match": "whole"}}),
        &["1", "3"],
    );
    check(
        &mut con,
        json!({"text": {"field": "text", "phrase": "whole milk"}}),
        &["3"],
    );
    check(
        &mut con,
        json!({"text": {"field": "text", "prefix": "choc"}}),
        &["4"],
    );
    check(&mut con, json!({"text": {"match": "cheddar"}}), &["5"]);
    check(
        &mut con,
        json!({"and": [{"tag": {"field": "category", "any": ["MILK"]}}, {"not": {"text": {"field": "text", "match": "chocolate"}}}]}),
        &["3"],
    );
    check(
        &mut con,
        json!({"or": [{"range": {"field": "price", "gte": 4.99}}, {"text": {"field": "text", "match": "chocolate"}}]}),
        &["2", "4", "5"],
    );
    check(
        &mut con,
        json!({"and": [{"or": [{"tag": {"field": "category", "any": ["BREAD"]}}, {"tag": {"field": "category", "any": ["MILK"]}}]}, {"not": {"range": {"field": "price", "lt": 2}}}]}),
        &["2", "3"],
    );
}
