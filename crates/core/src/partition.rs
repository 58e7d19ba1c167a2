//! Partitioned indexes: extra RediSearch indexes over the same item keys, each restricted to the
//! items one filter keeps (`FT.CREATE ... FILTER <expression>`), so that a query whose filter
//! lies inside a partition runs its KNN over a small graph instead of brute-forcing a small share
//! of a large one (issue 19: a filter keeping 1% of 1M items costs 13+ ms of brute force).
//!
//! A partition's filter is a conjunction of TAG conditions (any of some values) and NUMERIC
//! ranges on the schema's fields; the server keeps its membership current on every write, so a
//! partition never needs a refresh. Which partitions exist for a concrete index is recorded as a
//! [`PartitionSet`] under [`Namespace::partitions`](crate::keys::Namespace::partitions): ingest
//! writes it after checking each partition holds exactly the items its filter keeps in the base
//! index, and the retriever reads it in the background and routes a query to the smallest
//! partition its filter implies ([`PartitionSet::route`]). Routing never changes results beyond
//! HNSW's approximation: the query's whole filter is still sent to the partition.

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::filter::{Filter, RangeFilter, TagFilter, format_number, trim_tag};
use crate::schema::{FieldKind, IndexSchema, StorageType};
use crate::{Error, Result};

/// Most partitions one index may have (each one is a full index of its items: memory and write
/// cost grow with the share of the catalog they cover).
pub const MAX_PARTITIONS: usize = 64;

/// One partition of a concrete index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// `[a-z0-9_-]{1,48}`; part of the partition index's name.
    pub name: String,
    /// Which items it holds: TAG and NUMERIC-range conditions, all of which must hold.
    pub filter: Filter,
    /// The partition's own index ([`Partition::index_name`]).
    pub index: String,
    /// Items it held when it was checked against the base index.
    pub docs: u64,
}

/// The partitions of one concrete index, as stored next to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSet {
    /// The concrete base index (a re-index needs its own partitions).
    pub index: String,
    /// Items in the base index when the set was last written.
    pub items: u64,
    pub partitions: Vec<Partition>,
}

fn partition_err(name: &str, message: impl Into<String>) -> Error {
    Error::Partition {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// Checks a partition name: 1-48 of `a-z`, `0-9`, `_`, `-`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(partition_err(
            name,
            "a partition name is 1-48 characters of a-z, 0-9, `_` and `-`",
        ))
    }
}

/// The partition index of `base` called `name`, e.g. `shop:items:v1:part:shoes`.
pub fn index_name(base: &str, name: &str) -> String {
    format!("{base}:part:{name}")
}

/// The conditions of a conjunction, nested `and`s flattened (`All` contributes none).
fn conjuncts(filter: &Filter) -> Vec<&Filter> {
    let mut out = Vec::new();
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::All => {}
            Filter::And(children) => stack.extend(children.iter().rev()),
            other => out.push(other),
        }
    }
    out
}

/// Checks that `filter` can define a partition of an index with `schema`: a HASH index, and a
/// conjunction of at least one TAG condition (not negated, values free of `"`, `\` and control
/// characters) or NUMERIC range over fields of those types.
pub fn check_filter(name: &str, filter: &Filter, schema: &IndexSchema) -> Result<()> {
    if schema.index.storage_type != StorageType::Hash {
        return Err(partition_err(
            name,
            "partitions need an index ON HASH (the FILTER expression reads hash fields)",
        ));
    }
    filter
        .check(schema)
        .map_err(|e| partition_err(name, e.to_string()))?;
    let parts = conjuncts(filter);
    if parts.is_empty() {
        return Err(partition_err(
            name,
            "the filter keeps every item: a partition needs at least one `tag` or `range` condition",
        ));
    }
    for part in parts {
        match part {
            Filter::Tag(t) if !t.negated => {
                for v in &t.values {
                    let v = trim_tag(v);
                    if v.is_empty() || v.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                        return Err(partition_err(
                            name,
                            format!(
                                "tag value {v:?} of `{}`: expected a non-empty value without `\"`, `\\` or control characters",
                                t.field
                            ),
                        ));
                    }
                }
            }
            // `Filter::check` has checked the field is NUMERIC
            Filter::Range(_) => {}
            other => {
                return Err(partition_err(
                    name,
                    format!(
                        "`{}`: a partition filter is an `and` of `tag` (not negated) and `range` conditions",
                        other.to_json()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn case_sensitive(schema: &IndexSchema, field: &str) -> bool {
    schema
        .field(field)
        .ok()
        .is_some_and(|f| matches!(&f.kind, FieldKind::Tag(t) if t.case_sensitive))
}

/// The `FT.CREATE ... FILTER` expression of a partition filter (checked with [`check_filter`]),
/// e.g. `(lower(@category)=="shoes") && (@price>=10 && @price<20)`.
pub fn expression(name: &str, filter: &Filter, schema: &IndexSchema) -> Result<String> {
    check_filter(name, filter, schema)?;
    let mut terms = Vec::new();
    for part in conjuncts(filter) {
        match part {
            Filter::Tag(t) => {
                let sensitive = case_sensitive(schema, &t.field);
                let field = if sensitive {
                    format!("@{}", t.field)
                } else {
                    format!("lower(@{})", t.field)
                };
                let alternatives: Vec<String> = t
                    .values
                    .iter()
                    .map(|v| {
                        let v = trim_tag(v);
                        let v = if sensitive {
                            v.to_owned()
                        } else {
                            v.to_lowercase()
                        };
                        format!("{field}==\"{v}\"")
                    })
                    .collect();
                terms.push(format!("({})", alternatives.join(" || ")));
            }
            Filter::Range(r) => {
                let mut sides = Vec::new();
                match r.lower {
                    Bound::Included(x) => sides.push(format!("@{}>={}", r.field, format_number(x))),
                    Bound::Excluded(x) => sides.push(format!("@{}>{}", r.field, format_number(x))),
                    Bound::Unbounded => {}
                }
                match r.upper {
                    Bound::Included(x) => sides.push(format!("@{}<={}", r.field, format_number(x))),
                    Bound::Excluded(x) => sides.push(format!("@{}<{}", r.field, format_number(x))),
                    Bound::Unbounded => {}
                }
                terms.push(format!("({})", sides.join(" && ")));
            }
            _ => unreachable!("check_filter admits tag and range conditions only"),
        }
    }
    Ok(terms.join(" && "))
}

/// `FT.CREATE` arguments of a partition: the base index's arguments (`base_args`, as
/// [`IndexSchema::ft_create_args_stored`] renders them) under the partition's name, with
/// `FILTER <expression>` before `SCHEMA`.
pub fn create_args(
    base_args: &[String],
    partition_index: &str,
    expression: &str,
) -> Result<Vec<String>> {
    let schema_at = base_args
        .iter()
        .position(|a| a == "SCHEMA")
        .ok_or_else(|| Error::Schema {
            message: "FT.CREATE arguments without SCHEMA".into(),
        })?;
    let mut args = Vec::with_capacity(base_args.len() + 2);
    args.push(partition_index.to_owned());
    args.extend(base_args[1..schema_at].iter().cloned());
    args.push("FILTER".into());
    args.push(expression.to_owned());
    args.extend(base_args[schema_at..].iter().cloned());
    Ok(args)
}

fn norm_tag(v: &str, sensitive: bool) -> String {
    let v = trim_tag(v);
    if sensitive {
        v.to_owned()
    } else {
        v.to_lowercase()
    }
}

/// Whether every item `inner` keeps is kept by `outer` (both ranges on the same field).
fn range_within(inner: &RangeFilter, outer: &RangeFilter) -> bool {
    let lower_ok = match (inner.lower, outer.lower) {
        (_, Bound::Unbounded) => true,
        (Bound::Unbounded, _) => false,
        (Bound::Included(a), Bound::Included(b)) => a >= b,
        (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        (Bound::Included(a), Bound::Excluded(b)) => a > b,
        (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
    };
    let upper_ok = match (inner.upper, outer.upper) {
        (_, Bound::Unbounded) => true,
        (Bound::Unbounded, _) => false,
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Excluded(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a), Bound::Excluded(b)) => a < b,
        (Bound::Excluded(a), Bound::Excluded(b)) => a <= b,
    };
    inner.field == outer.field && lower_ok && upper_ok
}

/// Whether TAG condition `inner` keeps only items `outer` keeps (values a subset).
fn tag_within(inner: &TagFilter, outer: &TagFilter, schema: &IndexSchema) -> bool {
    if inner.negated || outer.negated || inner.field != outer.field {
        return false;
    }
    let sensitive = case_sensitive(schema, &inner.field);
    let allowed: Vec<String> = outer
        .values
        .iter()
        .map(|v| norm_tag(v, sensitive))
        .collect();
    !inner.values.is_empty()
        && inner
            .values
            .iter()
            .all(|v| allowed.contains(&norm_tag(v, sensitive)))
}

fn condition_within(inner: &Filter, outer: &Filter, schema: &IndexSchema) -> bool {
    match (inner, outer) {
        (Filter::Tag(a), Filter::Tag(b)) => tag_within(a, b, schema),
        (Filter::Range(a), Filter::Range(b)) => range_within(a, b),
        _ => false,
    }
}

/// Whether every item `query` keeps is in the partition `part` (conservative: `false` when it
/// cannot tell). True when each condition of the partition is implied by one top-level
/// condition of the query.
pub fn implies(query: &Filter, part: &Filter, schema: &IndexSchema) -> bool {
    let q = conjuncts(query);
    let p = conjuncts(part);
    !p.is_empty()
        && p.iter()
            .all(|pc| q.iter().any(|qc| condition_within(qc, pc, schema)))
}

/// Where a query goes: the partition, and whether the query keeps exactly its items (then the
/// filter adds nothing inside the partition and the search can run unfiltered).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Route<'a> {
    pub partition: &'a Partition,
    pub exact: bool,
}

impl PartitionSet {
    /// Reads a stored set (JSON) and checks its names.
    pub fn parse(json: &[u8]) -> std::result::Result<PartitionSet, String> {
        let set: PartitionSet = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        for p in &set.partitions {
            validate_name(&p.name).map_err(|e| e.to_string())?;
        }
        Ok(set)
    }

    /// The JSON stored under [`Namespace::partitions`](crate::keys::Namespace::partitions).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a partition set always serialises")
    }

    /// The smallest partition (by its item count) among `usable` ones that holds every item
    /// `filter` keeps; `None` when none does.
    pub fn route<'a>(
        &'a self,
        filter: &Filter,
        schema: &IndexSchema,
        usable: impl Fn(&Partition) -> bool,
    ) -> Option<Route<'a>> {
        let partition = self
            .partitions
            .iter()
            .filter(|p| usable(p) && implies(filter, &p.filter, schema))
            .min_by_key(|p| p.docs)?;
        let exact = implies(&partition.filter, filter, schema);
        Some(Route { partition, exact })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ItemFields, VectorSettings, items_schema};

    fn schema() -> IndexSchema {
        items_schema(
            "shop:items:v1",
            "shop:item:",
            &ItemFields::default(),
            &VectorSettings::default(),
        )
    }

    fn band(lo: f64, hi: f64) -> Filter {
        Filter::range("price", Bound::Included(lo), Bound::Excluded(hi))
    }

    fn part(name: &str, filter: Filter, docs: u64) -> Partition {
        Partition {
            name: name.into(),
            index: index_name("shop:items:v1", name),
            filter,
            docs,
        }
    }

    #[test]
    fn renders_filter_expressions() {
        let s = schema();
        let f = Filter::and(vec![
            Filter::tag_any("category", [" Shoes ", "Bags"]),
            band(10.0, 20.5),
        ]);
        assert_eq!(
            expression("p", &f, &s).unwrap(),
            r#"(lower(@category)=="shoes" || lower(@category)=="bags") && (@price>=10 && @price<20.5)"#
        );
        let open = Filter::range("price", Bound::Excluded(5.0), Bound::Unbounded);
        assert_eq!(expression("p", &open, &s).unwrap(), "(@price>5)");
    }

    #[test]
    fn refuses_filters_a_partition_cannot_hold() {
        let s = schema();
        let cases = [
            (Filter::All, "at least one"),
            (Filter::tag_not_any("category", ["x"]), "not negated"),
            (
                Filter::or(vec![Filter::tag_any("category", ["a"]), band(1.0, 2.0)]),
                "an `and` of",
            ),
            (Filter::tag_any("category", ["a\"b"]), "without"),
            (Filter::tag_any("nope", ["a"]), "unknown field"),
            (
                Filter::range("category", Bound::Unbounded, Bound::Included(1.0)),
                "expected numeric",
            ),
        ];
        for (f, want) in cases {
            let e = check_filter("p", &f, &s).unwrap_err().to_string();
            assert!(e.contains(want), "{f:?}: {e}");
            assert!(e.contains("partition `p`"), "{e}");
        }
        assert!(validate_name("shoes_2-x").is_ok());
        for bad in ["", "Shoes", "a:b", &"x".repeat(49)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_args_put_the_filter_before_the_schema() {
        let base: Vec<String> = [
            "shop:items:v1",
            "ON",
            "HASH",
            "PREFIX",
            "1",
            "shop:item:",
            "SCHEMA",
            "price",
            "NUMERIC",
        ]
        .map(String::from)
        .to_vec();
        let args = create_args(&base, "shop:items:v1:part:a", "(@price>1)").unwrap();
        assert_eq!(
            args.join(" "),
            "shop:items:v1:part:a ON HASH PREFIX 1 shop:item: FILTER (@price>1) SCHEMA price NUMERIC"
        );
    }

    #[test]
    fn implication_is_by_condition_and_conservative() {
        let s = schema();
        let shoes = Filter::tag_any("category", ["shoes", "bags"]);
        assert!(implies(&Filter::tag_any("category", ["SHOES"]), &shoes, &s));
        assert!(!implies(
            &Filter::tag_any("category", ["shoes", "hats"]),
            &shoes,
            &s
        ));
        assert!(!implies(&Filter::All, &shoes, &s));
        assert!(!implies(
            &Filter::not(Filter::tag_any("category", ["hats"])),
            &shoes,
            &s
        ));
        // a query condition per partition condition, extra query conditions allowed
        let p = Filter::and(vec![shoes.clone(), band(10.0, 20.0)]);
        let q = Filter::and(vec![
            Filter::tag_any("brand", ["acme"]),
            Filter::and(vec![
                band(12.0, 15.0),
                Filter::tag_any("category", ["bags"]),
            ]),
        ]);
        assert!(implies(&q, &p, &s));
        assert!(!implies(&Filter::tag_any("category", ["bags"]), &p, &s));
        // range ends, inclusive and exclusive
        assert!(implies(&band(10.0, 20.0), &band(10.0, 20.0), &s));
        let upto20 = Filter::range("price", Bound::Included(10.0), Bound::Included(20.0));
        assert!(!implies(&upto20, &band(10.0, 20.0), &s));
        assert!(implies(&band(10.0, 20.0), &upto20, &s));
        let above = Filter::range("price", Bound::Excluded(10.0), Bound::Unbounded);
        assert!(!implies(&above, &band(10.0, 20.0), &s));
        assert!(implies(&band(11.0, 12.0), &above, &s));
        // a disjunction in the query is never taken apart
        let either = Filter::or(vec![band(11.0, 12.0), band(13.0, 14.0)]);
        assert!(!implies(&either, &band(10.0, 20.0), &s));
    }

    #[test]
    fn routes_to_the_smallest_usable_partition() {
        let s = schema();
        let set = PartitionSet {
            index: "shop:items:v1".into(),
            items: 1000,
            partitions: vec![
                part("wide", band(0.0, 100.0), 500),
                part("narrow", band(10.0, 20.0), 50),
                part("other", band(50.0, 60.0), 10),
            ],
        };
        let r = set.route(&band(12.0, 13.0), &s, |_| true).unwrap();
        assert_eq!((r.partition.name.as_str(), r.exact), ("narrow", false));
        let r = set.route(&band(10.0, 20.0), &s, |_| true).unwrap();
        assert_eq!((r.partition.name.as_str(), r.exact), ("narrow", true));
        let r = set
            .route(&band(12.0, 13.0), &s, |p| p.name != "narrow")
            .unwrap();
        assert_eq!(r.partition.name, "wide");
        assert!(set.route(&band(90.0, 120.0), &s, |_| true).is_none());
        assert!(set.route(&Filter::All, &s, |_| true).is_none());
        let json = set.to_json();
        assert_eq!(PartitionSet::parse(json.as_bytes()).unwrap(), set);
        let bad = json.replace("\"narrow\"", "\"Bad Name\"");
        assert!(PartitionSet::parse(bad.as_bytes()).is_err());
    }
}
