//! Selectivity estimates for the `auto` hybrid policy.
//!
//! RediSearch 2.10 brute-forces filtered KNN when a filter keeps many documents, which costs time
//! proportional to matching items x dimensions (9-24 ms for 25-90% of 100k x 128; see
//! docs/RETRIEVAL.md), while `HYBRID_POLICY BATCHES` answers the same queries in about 1 ms at the
//! same recall. Narrow filters are the opposite. To choose per query, the retriever keeps a small
//! random sample of the items' TAG and NUMERIC fields and evaluates the filter AST on it: pure
//! computation, microseconds per query.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use redrec_core::filter::Filter;
use redrec_core::schema::{FieldKind, IndexSchema};

/// Filterable field values of a random sample of items, stored by column and normalised once
/// when the sample is taken, so an estimate allocates nothing per row (it runs on every filtered
/// request).
#[derive(Debug, Clone, Default)]
pub struct FieldSample {
    rows: usize,
    /// Per TAG field: how its values are compared, and each row's normalised values.
    tags: HashMap<String, TagColumn>,
    /// Per field that holds numbers: each row's value.
    numbers: HashMap<String, Vec<Option<f64>>>,
}

#[derive(Debug, Clone, Default)]
struct TagColumn {
    case_sensitive: bool,
    values: Vec<Vec<Box<str>>>,
}

fn normalise(s: &str, case_sensitive: bool) -> Box<str> {
    let s = s.trim();
    if case_sensitive {
        s.into()
    } else {
        s.to_ascii_lowercase().into()
    }
}

impl FieldSample {
    /// A sample of `rows` (field -> stored value) for `schema`.
    pub fn new(schema: &IndexSchema, rows: Vec<BTreeMap<String, String>>) -> FieldSample {
        let mut tags = HashMap::new();
        for f in &schema.fields {
            if let FieldKind::Tag(t) = &f.kind {
                let sep = t
                    .separator
                    .as_deref()
                    .and_then(|s| s.chars().next())
                    .unwrap_or(',');
                let values = rows
                    .iter()
                    .map(|r| {
                        r.get(&f.name).map_or_else(Vec::new, |v| {
                            v.split(sep)
                                .map(|x| normalise(x, t.case_sensitive))
                                .collect()
                        })
                    })
                    .collect();
                tags.insert(
                    f.name.clone(),
                    TagColumn {
                        case_sensitive: t.case_sensitive,
                        values,
                    },
                );
            }
        }
        // Every field that holds numbers in the sample can be range-filtered (a range on a
        // non-numeric field matches nothing, as in the index).
        let mut names: Vec<&String> = rows.iter().flat_map(|r| r.keys()).collect();
        names.sort();
        names.dedup();
        let numbers = names
            .into_iter()
            .map(|name| {
                let column = rows
                    .iter()
                    .map(|r| r.get(name).and_then(|v| v.trim().parse::<f64>().ok()))
                    .collect();
                (name.clone(), column)
            })
            .collect();
        FieldSample {
            rows: rows.len(),
            tags,
            numbers,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The share of sampled items the filter keeps, or `None` when the filter holds a part the
    /// sample cannot judge (full-text conditions) or the sample is empty.
    pub fn estimate(&self, filter: &Filter) -> Option<f64> {
        if self.rows == 0 {
            return None;
        }
        let kept = self.matches(filter)?;
        Some(kept.iter().filter(|k| **k).count() as f64 / self.rows as f64)
    }

    /// Which rows the filter keeps, in row order; `None` as for [`FieldSample::estimate`].
    pub fn keeps(&self, filter: &Filter) -> Option<Vec<bool>> {
        self.matches(filter)
    }

    /// Which rows the filter keeps.
    fn matches(&self, filter: &Filter) -> Option<Vec<bool>> {
        Some(match filter {
            Filter::All => vec![true; self.rows],
            Filter::Text(_) => return None,
            Filter::Tag(t) => match self.tags.get(&t.field) {
                // a field the schema does not tag: no row carries a value
                None => vec![t.negated; self.rows],
                Some(column) => {
                    let wanted: Vec<Box<str>> = t
                        .values
                        .iter()
                        .map(|w| normalise(w, column.case_sensitive))
                        .collect();
                    column
                        .values
                        .iter()
                        .map(|carried| carried.iter().any(|c| wanted.contains(c)) != t.negated)
                        .collect()
                }
            },
            Filter::Range(r) => match self.numbers.get(&r.field) {
                None => vec![false; self.rows],
                Some(column) => column
                    .iter()
                    .map(|x| {
                        x.is_some_and(|x| {
                            let lower = match r.lower {
                                Bound::Included(b) => x >= b,
                                Bound::Excluded(b) => x > b,
                                Bound::Unbounded => true,
                            };
                            let upper = match r.upper {
                                Bound::Included(b) => x <= b,
                                Bound::Excluded(b) => x < b,
                                Bound::Unbounded => true,
                            };
                            lower && upper
                        })
                    })
                    .collect(),
            },
            Filter::And(children) => {
                let mut all = vec![true; self.rows];
                for c in children {
                    for (a, m) in all.iter_mut().zip(self.matches(c)?) {
                        *a &= m;
                    }
                }
                all
            }
            Filter::Or(children) => {
                let mut any = vec![false; self.rows];
                for c in children {
                    for (a, m) in any.iter_mut().zip(self.matches(c)?) {
                        *a |= m;
                    }
                }
                any
            }
            Filter::Not(child) => self.matches(child)?.into_iter().map(|m| !m).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redrec_core::filter::TextMode;
    use redrec_core::schema::{ItemFields, VectorSettings, items_schema};

    fn sample() -> FieldSample {
        let schema = items_schema(
            "i",
            "p:",
            &ItemFields::default(),
            &VectorSettings::default(),
        );
        let rows = (0..100)
            .map(|i| {
                let mut r = BTreeMap::new();
                r.insert(
                    "category".to_owned(),
                    if i % 10 == 0 {
                        "Bread".into()
                    } else {
                        "milk, Dairy".into()
                    },
                );
                if i % 4 != 0 {
                    r.insert("price".to_owned(), i.to_string());
                }
                r
            })
            .collect();
        FieldSample::new(&schema, rows)
    }

    #[test]
    fn estimates_tags_ranges_and_boolean_combinations() {
        let s = sample();
        assert_eq!(s.estimate(&Filter::All), Some(1.0));
        assert_eq!(
            s.estimate(&Filter::tag_any("category", ["bread"])),
            Some(0.10)
        );
        assert_eq!(
            s.estimate(&Filter::tag_any("category", [" DAIRY "])),
            Some(0.90)
        );
        assert_eq!(
            s.estimate(&Filter::tag_not_any("category", ["dairy"])),
            Some(0.10)
        );
        // prices 1..=99 except multiples of 4 (25 rows have none)
        let cheap = Filter::range("price", Bound::Included(0.0), Bound::Excluded(50.0));
        assert_eq!(s.estimate(&cheap), Some(37.0 / 100.0));
        let both = Filter::and(vec![cheap.clone(), Filter::tag_any("category", ["bread"])]);
        // bread rows are 0, 10, .., 90; priced and below 50: 10 and 30
        assert_eq!(s.estimate(&both), Some(0.02));
        let either = Filter::or(vec![cheap.clone(), Filter::tag_any("category", ["bread"])]);
        assert_eq!(s.estimate(&either), Some((37.0 + 10.0 - 2.0) / 100.0));
        assert_eq!(s.estimate(&Filter::not(cheap)), Some(63.0 / 100.0));
    }

    #[test]
    fn text_conditions_and_empty_samples_give_no_estimate() {
        let s = sample();
        let text = Filter::text(None, TextMode::Match, "whole milk");
        assert_eq!(s.estimate(&Filter::and(vec![Filter::All, text])), None);
        assert_eq!(FieldSample::default().estimate(&Filter::All), None);
    }
}
