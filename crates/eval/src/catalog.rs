//! The catalog as the gateway serves it: item ids and the fields that decide whether an item is
//! merchandise, read from the item hashes of the namespace (so any catalog loaded with
//! `redrec-ingest load` works, whatever its source format).
//!
//! Non-merchandise (measured, and removed from the targets): an item whose department is one of
//! the configured departments (case-insensitive), or whose `price` is present and not above 0.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use redrec_core::keys::Namespace;
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
}

/// The rule that classes an item non-merchandise.
#[derive(Debug, Clone)]
pub struct NonMerchRule {
    pub department_field: String,
    pub departments: HashSet<String>,
}

impl NonMerchRule {
    pub fn new(department_field: &str, departments: &[String]) -> NonMerchRule {
        NonMerchRule {
            department_field: department_field.to_owned(),
            departments: departments
                .iter()
                .map(|d| d.trim().to_ascii_uppercase())
                .filter(|d| !d.is_empty())
                .collect(),
        }
    }

    pub fn is_non_merch(&self, department: Option<&str>, price: Option<&str>) -> bool {
        let dept = department
            .map(|d| self.departments.contains(&d.trim().to_ascii_uppercase()))
            .unwrap_or(false);
        let free = price
            .and_then(|p| p.trim().parse::<f64>().ok())
            .is_some_and(|p| p <= 0.0);
        dept || free
    }
}

impl Catalog {
    pub fn stats(&self, rule: &NonMerchRule) -> CatalogStats {
        let mut departments: Vec<String> = rule.departments.iter().cloned().collect();
        departments.sort();
        CatalogStats {
            items: self.items.len(),
            non_merch: self.items.values().filter(|&&n| n).count(),
            non_merch_departments: departments,
        }
    }

    /// Reads every item hash of the namespace (SCAN + pipelined HMGET).
    pub async fn read(
        con: &mut MultiplexedConnection,
        ns: &Namespace,
        rule: &NonMerchRule,
    ) -> Result<Catalog> {
        let pattern = format!("{}*", ns.item_prefix());
        let mut cursor: u64 = 0;
        let mut items = HashMap::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(2000)
                .query_async(con)
                .await
                .context("scanning item keys")?;
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HMGET")
                    .arg(k)
                    .arg(&rule.department_field)
                    .arg("price");
            }
            let fields: Vec<(Option<String>, Option<String>)> = if keys.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(con).await.context("reading item fields")?
            };
            for (k, (dept, price)) in keys.iter().zip(fields) {
                if let Some(id) = ns.item_id(k) {
                    items.insert(
                        id.to_owned(),
                        rule.is_non_merch(dept.as_deref(), price.as_deref()),
                    );
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(Catalog { items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_departments_and_free_items() {
        let r = NonMerchRule::new("department", &["Kiosk-Gas".into(), " fuel ".into()]);
        assert!(r.is_non_merch(Some("KIOSK-GAS"), Some("3.5")));
        assert!(r.is_non_merch(Some("FUEL"), None));
        assert!(r.is_non_merch(Some("GROCERY"), Some("0")));
        assert!(!r.is_non_merch(Some("GROCERY"), Some("0.99")));
        assert!(!r.is_non_merch(Some("GROCERY"), None));
        assert!(!r.is_non_merch(None, Some("oops")));
    }
}
