//! A bounded least-recently-used map with hit and miss counters: the serving caches (query-text
//! embeddings, item vectors, cold-start lists) share it. Pure data structure; callers wrap it in
//! the lock they need.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Hits, misses and size of one cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub capacity: usize,
    /// Entries dropped to stay within `capacity`.
    pub evictions: u64,
}

impl CacheStats {
    /// Hits over lookups; 0 before the first lookup.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

/// At most `capacity` entries; inserting beyond it drops the least recently used one. Lookups
/// and inserts are O(log n).
#[derive(Debug)]
pub struct Lru<K, V> {
    map: HashMap<K, (V, u64)>,
    /// Use tick -> key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    capacity: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// A cache of at most `capacity` entries (0 keeps nothing: every lookup misses).
    pub fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }

    /// The value under `key`, marking it most recently used; counts a hit or a miss.
    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_if(key, |_| true)
    }

    /// Like [`Lru::get`], but an entry for which `keep` is false (e.g. expired) is dropped and
    /// counted as a miss.
    pub fn get_if<Q>(&mut self, key: &Q, keep: impl FnOnce(&V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tick += 1;
        let tick = self.tick;
        let Some((value, used)) = self.map.get_mut(key) else {
            self.misses += 1;
            return None;
        };
        if !keep(value) {
            self.remove(key);
            self.misses += 1;
            return None;
        }
        let k = self.order.remove(used).expect("order holds every key");
        *used = tick;
        self.order.insert(tick, k);
        self.hits += 1;
        Some(value.clone())
    }

    /// Stores `value` under `key` (replacing an older one), evicting the least recently used
    /// entry when full.
    pub fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if let Some((_, used)) = self.map.remove(&key) {
            self.order.remove(&used);
        }
        while self.map.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
            self.evictions += 1;
        }
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (value, self.tick));
    }

    /// Drops the entry under `key`; returns whether there was one.
    pub fn remove<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.map.remove(key) {
            Some((_, used)) => {
                self.order.remove(&used);
                true
            }
            None => false,
        }
    }

    /// Drops every entry (counters are kept).
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits,
            misses: self.misses,
            entries: self.map.len(),
            capacity: self.capacity,
            evictions: self.evictions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_and_counts() {
        let mut c: Lru<String, u32> = Lru::new(2);
        c.insert("a".into(), 1);
        c.insert("b".into(), 2);
        assert_eq!(c.get("a"), Some(1)); // b is now the oldest
        c.insert("c".into(), 3);
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("c"), Some(3));
        c.insert("c".into(), 4); // replace: no eviction
        assert_eq!(c.get("c"), Some(4));
        assert_eq!(
            c.stats(),
            CacheStats {
                hits: 4,
                misses: 1,
                entries: 2,
                capacity: 2,
                evictions: 1
            }
        );
        assert!((c.stats().hit_rate() - 0.8).abs() < 1e-12);
        // an entry that fails `keep` is dropped and counts as a miss
        assert_eq!(c.get_if("a", |v| *v > 1), None);
        assert_eq!(c.stats().misses, 2);
        assert_eq!(c.len(), 1);
        c.insert("a".into(), 1);
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.get("c"), None);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut c: Lru<u8, u8> = Lru::new(0);
        c.insert(1, 1);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.len(), 0);
        assert_eq!(CacheStats::default().hit_rate(), 0.0);
    }
}
