//! The catalog as the gateway serves it: item ids and the fields that decide whether an item is
//! merchandise, read from the item hashes of the namespace (so any catalog loaded with
//! `redrec-ingest load` works, whatever its source format).
//!
//! Non-merchandise (measured, and removed from the targets): an item whose department or category
//! is one of the configured ones (case-insensitive), or whose `price` is present and not above 0.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use redrec_core::keys::Namespace;
use redrec_ingest::keyscan::KeyScan;
use serde::Serialize;

/// What the evaluation knows about the catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// item id -> non-merchandise?
    pub items: HashMap<String, bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogStats {
    pub items: usize,
    pub non_merch: usize,
    pub non_merch_departments: Vec<String>,
    pub non_merch_categories: Vec<String>,
}

/// The rule that classes an item non-merchandise.
#[derive(Debug, Clone)]
pub struct NonMerchRule {
    pub department_field: String,
    pub departments: HashSet<String>,
    pub category_field: String,
    pub categories: HashSet<String>,
}

fn upper_set(values: &[String]) -> HashSet<String> {
    values
        .iter()
        .map(|d| d.trim().to_ascii_uppercase())
        .filter(|d| !d.is_empty())
        .collect()
}

impl NonMerchRule {
    pub fn new(
        department_field: &str,
        departments: &[String],
        category_field: &str,
        categories: &[String],
    ) -> NonMerchRule {
        NonMerchRule {
            department_field: department_field.to_owned(),
            departments: upper_set(departments),
            category_field: category_field.to_owned(),
            categories: upper_set(categories),
        }
    }

    pub fn is_non_merch(
        &self,
        department: Option<&str>,
        category: Option<&str>,
        price: Option<&str>,
    ) -> bool {
        let listed = |set: &HashSet<String>, v: Option<&str>| {
            v.is_some_and(|v| set.contains(&v.trim().to_ascii_uppercase()))
        };
        let free = price
            .and_then(|p| p.trim().parse::<f64>().ok())
            .is_some_and(|p| p <= 0.0);
        listed(&self.departments, department) || listed(&self.categories, category) || free
    }
}

impl Catalog {
    pub fn stats(&self, rule: &NonMerchRule) -> CatalogStats {
        let sorted = |set: &HashSet<String>| {
            let mut v: Vec<String> = set.iter().cloned().collect();
            v.sort();
            v
        };
        CatalogStats {
            items: self.items.len(),
            non_merch: self.items.values().filter(|&&n| n).count(),
            non_merch_departments: sorted(&rule.departments),
            non_merch_categories: sorted(&rule.categories),
        }
    }

    /// Reads every item hash of the namespace (SCAN + pipelined HMGET).
    pub async fn read(
        con: &mut MultiplexedConnection,
        ns: &Namespace,
        rule: &NonMerchRule,
    ) -> Result<Catalog> {
        let mut scan = KeyScan::new(format!("{}*", ns.item_prefix()), 2000);
        let mut items = HashMap::new();
        while let Some(keys) = scan.next_batch(con).await.context("scanning item keys")? {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HMGET")
                    .arg(k)
                    .arg(&rule.department_field)
                    .arg(&rule.category_field)
                    .arg("price");
            }
            type Fields = (Option<String>, Option<String>, Option<String>);
            let fields: Vec<Fields> = if keys.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(con).await.context("reading item fields")?
            };
            for (k, (dept, cat, price)) in keys.iter().zip(fields) {
                if let Some(id) = ns.item_id(k) {
                    items.insert(
                        id.to_owned(),
                        rule.is_non_merch(dept.as_deref(), cat.as_deref(), price.as_deref()),
                    );
                }
            }
        }
        Ok(Catalog { items })
    }

    /// Sets every catalog item's indexed popularity `field` to its count in `counts` (0 when
    /// absent), so the served popular source knows only the training part, like G-Pop (the
    /// seeded field counts the whole year, test period included). Pipelined, 1,000 per round
    /// trip; returns the number of items written.
    pub async fn set_popularity(
        &self,
        con: &mut MultiplexedConnection,
        ns: &Namespace,
        field: &str,
        counts: &HashMap<&str, u32>,
    ) -> Result<usize> {
        let ids: Vec<&String> = self.items.keys().collect();
        for chunk in ids.chunks(1000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                let n = counts.get(id.as_str()).copied().unwrap_or(0);
                pipe.cmd("HSET").arg(ns.item(id)).arg(field).arg(n).ignore();
            }
            pipe.query_async::<()>(con)
                .await
                .context("writing the training popularity")?;
        }
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_departments_and_free_items() {
        let r = NonMerchRule::new(
            "department",
            &["Kiosk-Gas".into(), " fuel ".into()],
            "category",
            &["coupon/misc items".into()],
        );
        assert!(r.is_non_merch(Some("KIOSK-GAS"), None, Some("3.5")));
        assert!(r.is_non_merch(Some("FUEL"), None, None));
        assert!(r.is_non_merch(Some("GROCERY"), Some("COUPON/MISC ITEMS"), Some("1")));
        assert!(r.is_non_merch(Some("GROCERY"), None, Some("0")));
        assert!(!r.is_non_merch(Some("GROCERY"), Some("BAKED BREAD"), Some("0.99")));
        assert!(!r.is_non_merch(Some("GROCERY"), None, None));
        assert!(!r.is_non_merch(None, None, Some("oops")));
    }
}
