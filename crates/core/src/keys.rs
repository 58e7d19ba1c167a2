//! Redis key naming. Every key redrec writes lives under one configurable namespace
//! (default `redrec`), so redrec can share a Redis with caches, sessions and rate limiters.
//!
//! Layout (with the default namespace):
//! - `redrec:item:{id}`                 item hash / JSON document (indexed)
//! - `redrec:user:{id}`                 long-term user features (hash)
//! - `redrec:user:{id}:session`         session features (hash, with TTL)
//! - `redrec:user:{id}:seen`            seen items (sorted set, score = unix ms)
//! - `redrec:user:{id}:recent`          recent interactions (capped list)
//! - `redrec:user:{id}:cart`            items in the cart (set, with TTL)
//! - `redrec:user:{id}:buys`            time-decayed purchase frequency (sorted set, capped)
//! - `redrec:evt:{event_id}`            idempotency marker (string, with TTL)
//! - `redrec:pop`                       item popularity from events (sorted set)
//! - `redrec:rl:{key}`                  rate-limit counters
//! - `redrec:rec:{rec_id}`              a served list (impression, hash, with TTL = attribution window)
//! - `redrec:rec:{rec_id}:fb`           which feedback kinds that list has had (hash, same TTL)
//! - `redrec:exp:{name}:{variant}`      online counters of one experiment variant (hash)
//! - `redrec:exp:{name}:{variant}:items` distinct items served by the variant (HyperLogLog)
//! - `redrec:meta:{name}`               operational metadata (migrations, seed markers)

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Longest accepted item or user id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// The characters an id may hold besides ASCII letters and digits (the OpenAPI document's id
/// pattern is built from this too).
pub const ID_PUNCTUATION: &str = "-_.:@";

/// Checks that an id is safe to embed in a key and a query: 1..=128 bytes of ASCII
/// letters, digits and `-_.:@`.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidId {
            id: id.to_owned(),
            reason: "must not be empty",
        });
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::InvalidId {
            id: id.to_owned(),
            reason: "must be at most 128 bytes",
        });
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || ID_PUNCTUATION.as_bytes().contains(&b))
    {
        return Err(Error::InvalidId {
            id: id.to_owned(),
            reason: "may contain only ASCII letters, digits and - _ . : @",
        });
    }
    Ok(())
}

/// The key namespace. Cheap to clone; all key builders go through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    prefix: String,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace::new("redrec")
    }
}

impl Namespace {
    pub fn new(name: &str) -> Namespace {
        Namespace {
            prefix: name.trim_end_matches(':').to_owned(),
        }
    }

    /// The namespace name without a trailing separator, e.g. `redrec`.
    pub fn name(&self) -> &str {
        &self.prefix
    }

    /// Key prefix shared by all item keys, e.g. `redrec:item:` (what `FT.CREATE ... PREFIX` takes).
    pub fn item_prefix(&self) -> String {
        format!("{}:item:", self.prefix)
    }

    pub fn item(&self, id: &str) -> String {
        format!("{}:item:{id}", self.prefix)
    }

    /// Recovers the item id from an item key; `None` if the key is not an item key of this namespace.
    pub fn item_id<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?.strip_prefix(":item:")
    }

    pub fn user(&self, id: &str) -> String {
        format!("{}:user:{id}", self.prefix)
    }

    pub fn user_session(&self, id: &str) -> String {
        format!("{}:user:{id}:session", self.prefix)
    }

    pub fn user_seen(&self, id: &str) -> String {
        format!("{}:user:{id}:seen", self.prefix)
    }

    pub fn user_recent(&self, id: &str) -> String {
        format!("{}:user:{id}:recent", self.prefix)
    }

    pub fn user_cart(&self, id: &str) -> String {
        format!("{}:user:{id}:cart", self.prefix)
    }

    /// The user's purchase history: item -> forward-decayed purchase count (see docs/USER_STATE.md).
    pub fn user_buys(&self, id: &str) -> String {
        format!("{}:user:{id}:buys", self.prefix)
    }

    pub fn event_marker(&self, event_id: &str) -> String {
        format!("{}:evt:{event_id}", self.prefix)
    }

    pub fn popularity(&self) -> String {
        format!("{}:pop", self.prefix)
    }

    pub fn rate_limit(&self, key: &str) -> String {
        format!("{}:rl:{key}", self.prefix)
    }

    /// A served list (impression) by its `rec_id`.
    pub fn rec(&self, rec_id: &str) -> String {
        format!("{}:rec:{rec_id}", self.prefix)
    }

    /// The feedback kinds a served list has had (first click, first cart add, ...).
    pub fn rec_feedback(&self, rec_id: &str) -> String {
        format!("{}:rec:{rec_id}:fb", self.prefix)
    }

    /// Online counters of one experiment variant.
    pub fn experiment_counters(&self, experiment: &str, variant: &str) -> String {
        format!("{}:exp:{experiment}:{variant}", self.prefix)
    }

    /// Distinct items one experiment variant served (HyperLogLog).
    pub fn experiment_items(&self, experiment: &str, variant: &str) -> String {
        format!("{}:exp:{experiment}:{variant}:items", self.prefix)
    }

    pub fn meta(&self, name: &str) -> String {
        format!("{}:meta:{name}", self.prefix)
    }

    /// The measured recall per `EF_RUNTIME` of a concrete index (JSON of
    /// [`EfCurve`](crate::calibration::EfCurve)), e.g. `shop:meta:ef_curve:shop:items:v1`.
    pub fn ef_curve(&self, index: &str) -> String {
        self.meta(&format!("ef_curve:{index}"))
    }

    /// The partitions of a concrete index (JSON of
    /// [`PartitionSet`](crate::partition::PartitionSet)), e.g.
    /// `shop:meta:partitions:shop:items:v1`.
    pub fn partitions(&self, index: &str) -> String {
        self.meta(&format!("partitions:{index}"))
    }

    /// Name of the serving alias every query goes through, e.g. `redrec:items`.
    pub fn alias(&self) -> String {
        format!("{}:items", self.prefix)
    }

    /// Name of a concrete versioned index behind the alias, e.g. `redrec:items:v1`.
    pub fn index(&self, version: u32) -> String {
        format!("{}:items:v{version}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_namespaced_keys() {
        let ns = Namespace::new("shop:");
        assert_eq!(ns.item("42"), "shop:item:42");
        assert_eq!(ns.item_prefix(), "shop:item:");
        assert_eq!(ns.item_id("shop:item:42"), Some("42"));
        assert_eq!(ns.item_id("other:item:42"), None);
        assert_eq!(ns.user_seen("u1"), "shop:user:u1:seen");
        assert_eq!(ns.alias(), "shop:items");
        assert_eq!(ns.index(2), "shop:items:v2");
        assert_eq!(
            ns.ef_curve("shop:items:v2"),
            "shop:meta:ef_curve:shop:items:v2"
        );
        assert_eq!(ns.rec("r1"), "shop:rec:r1");
        assert_eq!(ns.rec_feedback("r1"), "shop:rec:r1:fb");
        assert_eq!(ns.experiment_counters("e", "b"), "shop:exp:e:b");
        assert_eq!(ns.experiment_items("e", "b"), "shop:exp:e:b:items");
    }

    #[test]
    fn validates_ids() {
        assert!(validate_id("sku-1_2.3:a@b").is_ok());
        for bad in ["", "a b", "a{b}", "é", &"x".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
