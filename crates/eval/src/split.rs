//! The train / test split. Items outside the catalog or classed non-merchandise are removed from
//! every basket first (a basket left empty disappears), then:
//!
//! - [`SplitKind::Cutoff`] (default): training = every basket before the cut-off; each user's
//!   target = their first basket at or after it.
//! - [`SplitKind::LastBasket`]: each user's target = their last basket; training = the others.
//!
//! A user is evaluated when they have at least `min_baskets` baskets in all (training + target)
//! and at least one training basket. Every user's training baskets feed the baselines (global
//! popularity and neighbours come from everyone), whether evaluated or not.

use std::collections::HashMap;

use serde::Serialize;

use crate::data::{Basket, Dataset};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitKind {
    Cutoff { at: i64 },
    LastBasket,
}

/// One evaluated user: the basket to predict, split into items bought before (repeat) and not.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub user: u32,
    pub time: i64,
    pub target: Vec<u32>,
    pub repeat: Vec<u32>,
    pub explore: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SplitStats {
    pub train_baskets: usize,
    pub train_lines: usize,
    pub eligible_users: usize,
    pub evaluated_users: usize,
    pub target_items_mean: f64,
    /// Share of target items the user bought before (in training).
    pub repeat_share: f64,
    /// Basket lines removed as non-merchandise or not in the catalog.
    pub removed_lines: usize,
}

pub struct Split {
    pub kind: SplitKind,
    /// Training baskets of every user (indexed like `Dataset::users`).
    pub train: Vec<Vec<Basket>>,
    pub cases: Vec<Case>,
    pub stats: SplitStats,
}

/// Splits `data`. `keep[i]` says whether item `i` stays (in the catalog, merchandise).
/// `max_users` keeps a deterministic sample of the eligible users (by a hash of id and `seed`).
pub fn split(
    data: &Dataset,
    keep: &[bool],
    kind: SplitKind,
    min_baskets: usize,
    max_users: Option<usize>,
    seed: u64,
) -> Split {
    let mut stats = SplitStats::default();
    let mut train = Vec::with_capacity(data.histories.len());
    let mut eligible = Vec::new();
    for (u, history) in data.histories.iter().enumerate() {
        let mut baskets: Vec<Basket> = Vec::with_capacity(history.len());
        for b in history {
            let items: Vec<u32> = b
                .items
                .iter()
                .copied()
                .filter(|&i| keep[i as usize])
                .collect();
            stats.removed_lines += b.items.len() - items.len();
            if !items.is_empty() {
                baskets.push(Basket {
                    time: b.time,
                    items,
                });
            }
        }
        let total = baskets.len();
        let target = match kind {
            SplitKind::Cutoff { at } => {
                let first_after = baskets.iter().position(|b| b.time >= at);
                let target = first_after.map(|p| baskets[p].clone());
                baskets.truncate(first_after.unwrap_or(total));
                target
            }
            SplitKind::LastBasket => {
                if total >= 2 {
                    baskets.pop()
                } else {
                    None
                }
            }
        };
        if let Some(t) = target
            && total >= min_baskets
            && !baskets.is_empty()
        {
            eligible.push((u as u32, t));
        }
        stats.train_baskets += baskets.len();
        stats.train_lines += baskets.iter().map(|b| b.items.len()).sum::<usize>();
        train.push(baskets);
    }
    stats.eligible_users = eligible.len();
    if let Some(max) = max_users
        && eligible.len() > max
    {
        eligible.sort_by_key(|(u, _)| mix(seed ^ fnv(&data.users[*u as usize])));
        eligible.truncate(max);
        eligible.sort_by_key(|(u, _)| *u);
    }
    let mut cases = Vec::with_capacity(eligible.len());
    let (mut target_items, mut repeat_items) = (0usize, 0usize);
    for (u, t) in eligible {
        let bought: std::collections::HashSet<u32> = train[u as usize]
            .iter()
            .flat_map(|b| b.items.iter().copied())
            .collect();
        let (repeat, explore): (Vec<u32>, Vec<u32>) =
            t.items.iter().partition(|i| bought.contains(i));
        target_items += t.items.len();
        repeat_items += repeat.len();
        cases.push(Case {
            user: u,
            time: t.time,
            target: t.items,
            repeat,
            explore,
        });
    }
    stats.evaluated_users = cases.len();
    stats.target_items_mean = target_items as f64 / cases.len().max(1) as f64;
    stats.repeat_share = repeat_items as f64 / target_items.max(1) as f64;
    Split {
        kind,
        train,
        cases,
        stats,
    }
}

/// Per item: in how many training baskets it appears (the global popularity of the split).
pub fn basket_counts(train: &[Vec<Basket>], n_items: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n_items];
    for b in train.iter().flatten() {
        for &i in &b.items {
            counts[i as usize] += 1;
        }
    }
    counts
}

/// Per user: how many training baskets held each item.
pub fn user_counts(baskets: &[Basket]) -> HashMap<u32, u32> {
    let mut m = HashMap::new();
    for b in baskets {
        for &i in &b.items {
            *m.entry(i).or_insert(0) += 1;
        }
    }
    m
}

/// A well-mixed 64-bit hash of `x`: the first output of the SplitMix64 stream seeded with it.
pub fn mix(x: u64) -> u64 {
    redrec_core::synthetic::Rng::new(x).next_u64()
}

/// FNV-1a of a string (stable across runs and platforms, unlike `std`'s hasher).
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DatasetBuilder;

    fn data() -> Dataset {
        let mut b = DatasetBuilder::default();
        // u1: three baskets before 100, one after; item `x` is dropped (not kept).
        for (t, items) in [
            (10, &["a", "b"][..]),
            (20, &["a"]),
            (30, &["c", "x"]),
            (110, &["a", "d"]),
            (120, &["e"]),
        ] {
            for i in items {
                b.add("u1", i, t, None);
            }
        }
        // u2: only two baskets in all.
        b.add("u2", "a", 10, None);
        b.add("u2", "a", 150, None);
        b.build()
    }

    #[test]
    fn cutoff_split_predicts_the_first_basket_after() {
        let d = data();
        let keep: Vec<bool> = d.items.iter().map(|i| i != "x").collect();
        let s = split(&d, &keep, SplitKind::Cutoff { at: 100 }, 3, None, 0);
        assert_eq!(s.cases.len(), 1, "u2 has only two baskets");
        let c = &s.cases[0];
        let name = |v: &[u32]| {
            v.iter()
                .map(|&i| d.items[i as usize].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(name(&c.target), ["a", "d"]);
        assert_eq!(name(&c.repeat), ["a"]);
        assert_eq!(name(&c.explore), ["d"]);
        assert_eq!(s.train[0].len(), 3);
        assert_eq!(s.stats.removed_lines, 1);
        assert_eq!(s.stats.repeat_share, 0.5);
    }

    #[test]
    fn last_basket_split_holds_out_the_last() {
        let d = data();
        let keep = vec![true; d.items.len()];
        let s = split(&d, &keep, SplitKind::LastBasket, 2, None, 0);
        assert_eq!(s.cases.len(), 2);
        assert_eq!(s.cases[0].time, 120);
        assert_eq!(s.train[0].len(), 4);
        assert_eq!(s.cases[1].time, 150);
    }

    #[test]
    fn sampling_is_deterministic_and_bounded() {
        let mut b = DatasetBuilder::default();
        for u in 0..50 {
            for t in 0..4 {
                b.add(&format!("u{u}"), "a", t, None);
            }
        }
        let d = b.build();
        let keep = vec![true; 1];
        let a = split(&d, &keep, SplitKind::LastBasket, 3, Some(10), 7);
        let b2 = split(&d, &keep, SplitKind::LastBasket, 3, Some(10), 7);
        assert_eq!(a.cases.len(), 10);
        assert_eq!(a.cases, b2.cases);
        assert_eq!(a.stats.eligible_users, 50);
    }
}
