//! The explore frontier (`--frontier`): how much explore recall a list can buy, and at what cost
//! in overall recall, when some of its places go to items the household never bought.
//!
//! Offline and from the training split only, like the baselines. Each arm starts from the
//! decayed personal frequency list (the repeat signal the served `history` source carries) and
//! gives places to never-bought items of one explore ranking:
//!
//! - `fixed m`: the last `m` of the `k` places, for every household;
//! - `adaptive c`: `round(c · k · novelty)` places, where a household's novelty is the share of
//!   the items of its training baskets (after its first) that it had never bought before: a
//!   household that keeps trying new items gets more explore places than one that buys the same
//!   staples every week.
//!
//! Explore rankings: G-Pop (most bought by everyone), the neighbours' part of TIFU-KNN (what the
//! most similar households buy), and ALS `user · item` when `--als` is given (the collaborative
//! vectors' algorithm with the household's own solved factors).
//!
//! It answers whether any such blend reaches explore recall above G-Pop's while keeping overall
//! recall at TIFU-KNN's: the arms are diagnostics for choosing the served explore rule, not
//! methods to report as results on the split they were chosen on.

use std::collections::HashSet;

use crate::{baselines::Context, split::Case};

/// One explore ranking: per case, never-bought items best first (at least `k` of them when the
/// catalog allows).
pub struct ExploreRanking {
    pub name: String,
    pub lists: Vec<Vec<u32>>,
}

/// How many places an arm gives to explore items.
#[derive(Debug, Clone, Copy)]
pub enum Places {
    Fixed(usize),
    Adaptive(f64),
}

impl Places {
    fn label(self) -> String {
        match self {
            Places::Fixed(m) => format!("fixed {m}"),
            Places::Adaptive(c) => format!("adaptive {c}"),
        }
    }
}

/// The place settings the frontier tries.
pub const PLACES: [Places; 8] = [
    Places::Fixed(1),
    Places::Fixed(2),
    Places::Fixed(3),
    Places::Fixed(5),
    Places::Fixed(10),
    Places::Adaptive(0.5),
    Places::Adaptive(1.0),
    Places::Adaptive(2.0),
];

impl Context<'_> {
    /// Items the case's household bought in training.
    fn bought(&self, case: &Case) -> HashSet<u32> {
        self.split.train[case.user as usize]
            .iter()
            .flat_map(|b| b.items.iter().copied())
            .collect()
    }

    /// G-Pop without the household's own purchases.
    pub fn gpop_explore(&self) -> ExploreRanking {
        let lists = self
            .split
            .cases
            .iter()
            .map(|c| {
                let bought = self.bought(c);
                self.gpop
                    .iter()
                    .copied()
                    .filter(|i| !bought.contains(i))
                    .take(self.k)
                    .collect()
            })
            .collect();
        ExploreRanking {
            name: "G-Pop".into(),
            lists,
        }
    }

    /// ALS `user · item` without the household's own purchases.
    pub fn als_explore(&self, model: &redrec_ingest::cf::AlsModel) -> ExploreRanking {
        let lists = self
            .split
            .cases
            .iter()
            .map(|c| {
                let bought = self.bought(c);
                let row = model.items.dot(&model.users.row(c.user as usize));
                let mut scored: Vec<(u32, f32)> = model
                    .item_ids
                    .iter()
                    .zip(row.iter())
                    .filter(|(i, _)| !bought.contains(i))
                    .map(|(&i, &x)| (i, x))
                    .collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                scored.into_iter().take(self.k).map(|(i, _)| i).collect()
            })
            .collect();
        ExploreRanking {
            name: format!("ALS {}-d", model.items.ncols()),
            lists,
        }
    }

    /// The neighbours' part of TIFU-KNN (`alpha` = 0: what the 300 most similar households
    /// buy) without the household's own purchases: "households like you also buy".
    pub fn neighbours_explore(&self, p: &crate::baselines::TifuParams) -> ExploreRanking {
        let p = crate::baselines::TifuParams { alpha: 0.0, ..*p };
        let lists = self
            .split
            .cases
            .iter()
            .zip(self.tifu_scores(&p))
            .map(|(c, scores)| {
                let bought = self.bought(c);
                let mut scored: Vec<(u32, f64)> = scores
                    .into_iter()
                    .filter(|(i, s)| *s > 0.0 && !bought.contains(i))
                    .collect();
                scored.sort_by(|a, b| {
                    b.1.total_cmp(&a.1)
                        .then(self.gpop_rank[a.0 as usize].cmp(&self.gpop_rank[b.0 as usize]))
                });
                scored.into_iter().take(self.k).map(|(i, _)| i).collect()
            })
            .collect();
        ExploreRanking {
            name: "neighbours".into(),
            lists,
        }
    }

    /// Share of a household's training items (after its first basket) never bought before.
    pub fn novelty(&self, case: &Case) -> f64 {
        let baskets = &self.split.train[case.user as usize];
        let mut seen: HashSet<u32> = HashSet::new();
        let (mut new, mut all) = (0usize, 0usize);
        for (n, b) in baskets.iter().enumerate() {
            for &i in &b.items {
                let fresh = seen.insert(i);
                if n > 0 {
                    all += 1;
                    new += usize::from(fresh);
                }
            }
        }
        if all == 0 {
            1.0
        } else {
            new as f64 / all as f64
        }
    }

    /// `personal` lists with explore places from `explore`, one arm per setting of [`PLACES`]:
    /// (arm name, lists).
    pub fn frontier_arms(
        &self,
        personal: &[Vec<u32>],
        explore: &ExploreRanking,
    ) -> Vec<(String, Vec<Vec<u32>>)> {
        let novelty: Vec<f64> = self.split.cases.iter().map(|c| self.novelty(c)).collect();
        PLACES
            .iter()
            .map(|&places| {
                let lists = personal
                    .iter()
                    .zip(&explore.lists)
                    .zip(&novelty)
                    .map(|((own, new), &nov)| {
                        let m = match places {
                            Places::Fixed(m) => m,
                            Places::Adaptive(c) => (c * self.k as f64 * nov).round() as usize,
                        };
                        blend(own, new, self.k, m)
                    })
                    .collect();
                (
                    format!(
                        "frontier: decayed P-Pop + {} {} explore",
                        explore.name,
                        places.label()
                    ),
                    lists,
                )
            })
            .collect()
    }
}

/// The first `k - m` of `own`, then up to `m` items of `new` not already listed, then `own`'s
/// remaining items (when `new` runs short).
pub fn blend(own: &[u32], new: &[u32], k: usize, m: usize) -> Vec<u32> {
    let m = m.min(k);
    let mut out: Vec<u32> = own.iter().take(k - m).copied().collect();
    for &i in new {
        if out.len() >= k {
            break;
        }
        if !out.contains(&i) {
            out.push(i);
        }
    }
    for &i in own {
        if out.len() >= k {
            break;
        }
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_gives_the_last_places_to_new_items() {
        assert_eq!(blend(&[1, 2, 3, 4], &[9, 8], 4, 2), vec![1, 2, 9, 8]);
        // a new item already listed is not repeated; own items fill what remains
        assert_eq!(blend(&[1, 2, 3, 4], &[2, 9], 4, 2), vec![1, 2, 9, 3]);
        assert_eq!(blend(&[1, 2, 3], &[7], 3, 0), vec![1, 2, 3]);
        assert_eq!(blend(&[1, 2], &[7, 8, 9], 3, 10), vec![7, 8, 9]);
    }
}
