//! Selectivity estimates for the `auto` hybrid policy.
//!
//! RediSearch 2.10 brute-forces filtered KNN when a filter keeps many documents, which costs time
//! proportional to matching items x dimensions (9-24 ms for 25-90% of 100k x 128; see
//! docs/RETRIEVAL.md), while `HYBRID_POLICY BATCHES` answers the same queries in about 1 ms at the
//! same recall. Narrow filters are the opposite. To choose per query, the retriever keeps a small
//! random sample of the items' TAG and NUMERIC fields and evaluates the filter AST on it: pure
//! computation, microseconds per query.

use std::collections::BTreeMap;
use std::ops::Bound;

use redrec_core::filter::Filter;
use redrec_core::schema::{FieldKind, IndexSchema};

/// Filterable field values of a random sample of items.
#[derive(Debug, Clone, Default)]
pub struct FieldSample {
    rows: Vec<BTreeMap<String, String>>,
    /// Per TAG field: (separator, case sensitive).
    tags: BTreeMap<String, (char, bool)>,
}

impl FieldSample {
    /// A sample of `rows` (field -> stored value) for `schema`.
    pub fn new(schema: &IndexSchema, rows: Vec<BTreeMap<String, String>>) -> FieldSample {
        let tags = schema
            .fields
            .iter()
            .filter_map(|f| match &f.kind {
                FieldKind::Tag(t) => {
                    let sep = t
                        .separator
                        .as_deref()
                        .and_then(|s| s.chars().next())
                        .unwrap_or(',');
                    Some((f.name.clone(), (sep, t.case_sensitive)))
                }
                _ => None,
            })
            .collect();
        FieldSample { rows, tags }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The share of sampled items the filter keeps, or `None` when the filter holds a part the
    /// sample cannot judge (full-text conditions) or the sample is empty.
    pub fn estimate(&self, filter: &Filter) -> Option<f64> {
        if self.rows.is_empty() {
            return None;
        }
        let mut hits = 0usize;
        for row in &self.rows {
            if self.matches(filter, row)? {
                hits += 1;
            }
        }
        Some(hits as f64 / self.rows.len() as f64)
    }

    fn matches(&self, filter: &Filter, row: &BTreeMap<String, String>) -> Option<bool> {
        Some(match filter {
            Filter::All => true,
            Filter::Text(_) => return None,
            Filter::Tag(t) => {
                let (sep, case_sensitive) =
                    self.tags.get(&t.field).copied().unwrap_or((',', false));
                let norm = |s: &str| {
                    let s = s.trim();
                    if case_sensitive {
                        s.to_owned()
                    } else {
                        s.to_ascii_lowercase()
                    }
                };
                let carried = row
                    .get(&t.field)
                    .map(|v| v.split(sep).map(norm).collect::<Vec<_>>());
                let any = carried
                    .map(|c| t.values.iter().any(|want| c.contains(&norm(want))))
                    .unwrap_or(false);
                any != t.negated
            }
            Filter::Range(r) => {
                match row.get(&r.field).and_then(|v| v.trim().parse::<f64>().ok()) {
                    None => false,
                    Some(x) => {
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
                    }
                }
            }
            Filter::And(children) => {
                let mut all = true;
                for c in children {
                    all &= self.matches(c, row)?;
                }
                all
            }
            Filter::Or(children) => {
                let mut any = false;
                for c in children {
                    any |= self.matches(c, row)?;
                }
                any
            }
            Filter::Not(child) => !self.matches(child, row)?,
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
