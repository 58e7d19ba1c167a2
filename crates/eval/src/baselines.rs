//! The offline baselines, computed from the training split alone, on the same cases as the
//! gateway. Each returns one list of `k` item indexes per case; personal lists shorter than `k`
//! are filled with the global popularity order (items not already listed), as is usual for
//! next-basket baselines, so every method fills its `k` slots.
//!
//! - G-Pop: items by the number of training baskets holding them (all users).
//! - P-Pop: the user's own basket counts per item (ties by G-Pop).
//! - Decayed personal frequency: Σ over the user's baskets of 0.5^(age / half-life).
//! - TIFU-KNN (Hu et al., SIGIR 2020): the user's baskets in groups of `group_size`, decayed
//!   within a group by `within_decay` and across groups by `group_decay`; the prediction is
//!   `alpha · user + (1 − alpha) · mean of the k_neighbours most cosine-similar users`.

use std::collections::HashMap;

use serde::Serialize;

use crate::{
    data::Basket,
    split::{Case, Split, user_counts},
};

/// TIFU-KNN's parameters (one setting, not tuned on the test baskets).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TifuParams {
    pub group_size: usize,
    pub within_decay: f64,
    pub group_decay: f64,
    pub neighbours: usize,
    pub alpha: f64,
}

impl Default for TifuParams {
    fn default() -> Self {
        TifuParams {
            group_size: 7,
            within_decay: 0.9,
            group_decay: 0.7,
            neighbours: 300,
            alpha: 0.7,
        }
    }
}

/// Item indexes by descending count, ties by index.
pub fn popularity_order(counts: &[u32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..counts.len() as u32)
        .filter(|&i| counts[i as usize] > 0)
        .collect();
    order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    order
}

/// The top `k` of `scores` (ties by G-Pop rank), filled with the G-Pop order.
fn top_k(scores: &HashMap<u32, f64>, gpop_rank: &[u32], gpop: &[u32], k: usize) -> Vec<u32> {
    let mut scored: Vec<(u32, f64)> = scores
        .iter()
        .filter(|(_, s)| **s > 0.0)
        .map(|(&i, &s)| (i, s))
        .collect();
    scored.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(gpop_rank[a.0 as usize].cmp(&gpop_rank[b.0 as usize]))
    });
    let mut out: Vec<u32> = scored.into_iter().take(k).map(|(i, _)| i).collect();
    for &i in gpop {
        if out.len() >= k {
            break;
        }
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Shared inputs of the baselines.
pub struct Context<'a> {
    pub split: &'a Split,
    pub gpop: Vec<u32>,
    /// Rank of each item in `gpop` (items never bought rank last).
    pub gpop_rank: Vec<u32>,
    pub k: usize,
}

impl<'a> Context<'a> {
    pub fn new(split: &'a Split, counts: &[u32], k: usize) -> Context<'a> {
        let gpop = popularity_order(counts);
        let mut gpop_rank = vec![u32::MAX; counts.len()];
        for (r, &i) in gpop.iter().enumerate() {
            gpop_rank[i as usize] = r as u32;
        }
        Context {
            split,
            gpop,
            gpop_rank,
            k,
        }
    }

    fn fill(&self, scores: &HashMap<u32, f64>) -> Vec<u32> {
        top_k(scores, &self.gpop_rank, &self.gpop, self.k)
    }

    pub fn gpop_lists(&self) -> Vec<Vec<u32>> {
        let list: Vec<u32> = self.gpop.iter().take(self.k).copied().collect();
        vec![list; self.split.cases.len()]
    }

    pub fn ppop_lists(&self) -> Vec<Vec<u32>> {
        self.each_case(|_, baskets| {
            user_counts(baskets)
                .into_iter()
                .map(|(i, c)| (i, f64::from(c)))
                .collect()
        })
    }

    pub fn decayed_lists(&self, half_life_days: f64) -> Vec<Vec<u32>> {
        let h = half_life_days * 86_400.0;
        self.each_case(|case, baskets| {
            let mut s = HashMap::new();
            for b in baskets {
                let w = 0.5f64.powf((case.time - b.time) as f64 / h);
                for &i in &b.items {
                    *s.entry(i).or_insert(0.0) += w;
                }
            }
            s
        })
    }

    fn each_case(&self, f: impl Fn(&Case, &[Basket]) -> HashMap<u32, f64>) -> Vec<Vec<u32>> {
        self.split
            .cases
            .iter()
            .map(|c| self.fill(&f(c, &self.split.train[c.user as usize])))
            .collect()
    }

    /// Implicit ALS trained on the training baskets: items by `user · item` factors.
    /// ALS (user x item factors of a model trained on this split's training rows).
    pub fn als_lists(&self, model: &redrec_ingest::cf::AlsModel) -> Vec<Vec<u32>> {
        self.split
            .cases
            .iter()
            .map(|c| {
                let row = model.items.dot(&model.users.row(c.user as usize));
                let s: HashMap<u32, f64> = model
                    .item_ids
                    .iter()
                    .zip(row.iter())
                    .map(|(&i, &x)| (i, f64::from(x)))
                    .collect();
                self.fill(&s)
            })
            .collect()
    }

    pub fn tifu_lists(&self, p: &TifuParams) -> Vec<Vec<u32>> {
        self.tifu_scores(p).iter().map(|s| self.fill(s)).collect()
    }

    /// TIFU-KNN's item scores per case (see [`Context::tifu_lists`]).
    pub fn tifu_scores(&self, p: &TifuParams) -> Vec<HashMap<u32, f64>> {
        // Every user with training baskets is a potential neighbour.
        let vectors: Vec<SparseVec> = self
            .split
            .train
            .iter()
            .map(|bs| tifu_user_vector(bs, p))
            .collect();
        let norms: Vec<f64> = vectors
            .iter()
            .map(|v| v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt())
            .collect();
        // Inverted index: item -> (user, weight).
        let mut postings: HashMap<u32, Vec<(u32, f64)>> = HashMap::new();
        for (u, v) in vectors.iter().enumerate() {
            for &(i, x) in v {
                postings.entry(i).or_default().push((u as u32, x));
            }
        }
        let mut acc = vec![0.0f64; vectors.len()];
        self.split
            .cases
            .iter()
            .map(|c| {
                let u = c.user as usize;
                acc.iter_mut().for_each(|a| *a = 0.0);
                for &(i, x) in &vectors[u] {
                    for &(v, y) in &postings[&i] {
                        acc[v as usize] += x * y;
                    }
                }
                let mut sims: Vec<(usize, f64)> = acc
                    .iter()
                    .enumerate()
                    .filter(|&(v, &a)| v != u && a > 0.0)
                    .map(|(v, &a)| (v, a / (norms[u] * norms[v])))
                    .collect();
                sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                sims.truncate(p.neighbours);
                let mut scores: HashMap<u32, f64> = HashMap::new();
                for &(i, x) in &vectors[u] {
                    *scores.entry(i).or_insert(0.0) += p.alpha * x;
                }
                if !sims.is_empty() {
                    let w = (1.0 - p.alpha) / sims.len() as f64;
                    for &(v, _) in &sims {
                        for &(i, y) in &vectors[v] {
                            *scores.entry(i).or_insert(0.0) += w * y;
                        }
                    }
                }
                scores
            })
            .collect()
    }
}

type SparseVec = Vec<(u32, f64)>;

/// TIFU's user vector: baskets (oldest first) in groups of `group_size` from the oldest; within
/// a group basket j of n weighs `within_decay^(n-1-j)`, the group is the weighted sum / n; group
/// g of G weighs `group_decay^(G-1-g)`, and the user vector is the weighted sum / G.
pub fn tifu_user_vector(baskets: &[Basket], p: &TifuParams) -> SparseVec {
    let mut v: HashMap<u32, f64> = HashMap::new();
    let groups: Vec<&[Basket]> = baskets.chunks(p.group_size.max(1)).collect();
    let g_n = groups.len();
    for (g, group) in groups.iter().enumerate() {
        let gw = p.group_decay.powi((g_n - 1 - g) as i32) / g_n as f64;
        let n = group.len();
        for (j, b) in group.iter().enumerate() {
            let w = gw * p.within_decay.powi((n - 1 - j) as i32) / n as f64;
            for &i in &b.items {
                *v.entry(i).or_insert(0.0) += w;
            }
        }
    }
    let mut out: SparseVec = v.into_iter().collect();
    out.sort_by_key(|(i, _)| *i);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popularity_order_breaks_ties_by_index() {
        assert_eq!(popularity_order(&[1, 3, 0, 3]), [1, 3, 0]);
    }

    #[test]
    fn tifu_vector_weights_recent_baskets_more() {
        let b = |t, items: &[u32]| Basket {
            time: t,
            items: items.to_vec(),
        };
        let p = TifuParams {
            group_size: 2,
            within_decay: 0.5,
            group_decay: 0.5,
            ..TifuParams::default()
        };
        // groups: [b0, b1], [b2]; G = 2
        let v = tifu_user_vector(&[b(0, &[0]), b(1, &[1]), b(2, &[2])], &p);
        let get = |i| v.iter().find(|(j, _)| *j == i).unwrap().1;
        // item 0: group 0 (weight 0.5/2), basket 0 of 2 (0.5/2) -> 0.0625
        assert!((get(0) - 0.0625).abs() < 1e-12);
        assert!((get(1) - 0.125).abs() < 1e-12);
        assert!((get(2) - 0.5).abs() < 1e-12);
    }
}
