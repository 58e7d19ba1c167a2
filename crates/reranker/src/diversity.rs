//! Result selection: pins, Maximal Marginal Relevance over item vectors, and per-category caps.
//!
//! Input is the eligible pool already sorted by relevance (score desc, id asc). Slots are filled
//! in order: a slot with a pin takes its pinned item; any other slot takes the unpinned,
//! uncapped item with the best MMR value
//! `lambda * rel_norm - (1 - lambda) * max_sim`, where `rel_norm` is the relevance min-max
//! normalised over the pool and `max_sim` the largest cosine similarity to an item already placed
//! (negative cosines count as 0; items without a vector are never penalised). Without MMR the
//! value is the relevance itself. Ties go to the earlier pool item, i.e. higher score, then
//! smaller id, so the output is deterministic.
//!
//! Cost: one pass computes every vector's inverse norm, O(n d). MMR is evaluated lazily
//! ("lazy greedy"): `max_sim` only grows as results are placed, so a candidate's last computed
//! MMR value is an upper bound of its current one. A max-heap of those bounds yields the next
//! candidate; a stale one is brought up to date (one dot product per result placed since its last
//! update) and pushed back, a fresh one on top is the exact argmax. The worst case is the eager
//! O(k n d); in practice most candidates are never refreshed because their bound already loses.
//! The dot products run on the candidates' own slices (no copy into a matrix) with an 8-lane
//! accumulator the compiler vectorises: for 500 x 384-d with 19 eager updates that measured about
//! 0.6 ms against 1.2 ms for ndarray's `dot` (no BLAS), and skipping a normalised copy saves
//! another ~0.4 ms of page faults per request.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, HashMap},
};

use crate::{Error, Result};

/// The eligible candidates, sorted by (score desc, id asc).
pub(crate) struct Pool<'a> {
    pub ids: Vec<&'a str>,
    pub scores: Vec<f64>,
    pub categories: Vec<Option<&'a str>>,
    pub vectors: Vec<Option<&'a [f32]>>,
    /// Index of each pool item in the request's candidate slice (for error messages).
    pub origin: Vec<usize>,
}

/// How a selected item got its slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Placement {
    /// Placed by a pin at this 1-based position.
    Pinned { position: usize },
    /// Placed by relevance order (MMR off).
    Relevance,
    /// Placed by MMR.
    Mmr {
        lambda: f64,
        normalized_relevance: f64,
        max_similarity: f64,
        mmr_value: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Selected {
    /// Index into the pool.
    pub pool_index: usize,
    pub placement: Placement,
}

/// What the selection should do.
pub(crate) struct SelectionRules<'p> {
    pub k: usize,
    /// (pool index, 1-based position) of pinned items that are in the pool.
    pub pins: &'p [(usize, usize)],
    pub mmr_lambda: Option<f64>,
    pub max_per_category: Option<usize>,
}

/// Dot product with eight independent accumulators, so the loop vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; 8];
    for (x, y) in ca.zip(cb) {
        for lane in 0..8 {
            acc[lane] += x[lane] * y[lane];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The pool's vectors with their inverse norms: cosine(i, j) = dot(v_i, v_j) * inv_i * inv_j.
/// Items without a vector, or with a zero vector, have no entry and are never penalised.
struct UnitVectors<'a> {
    rows: Vec<Option<(&'a [f32], f32)>>,
}

impl<'a> UnitVectors<'a> {
    fn cosine(&self, i: usize, j: usize) -> Option<f32> {
        match (self.rows[i], self.rows[j]) {
            (Some((a, inv_a)), Some((b, inv_b))) => Some(dot(a, b) * inv_a * inv_b),
            _ => None,
        }
    }
}

/// Validates the vectors (one dimension, finite values) and computes their inverse norms.
fn unit_vectors<'a>(pool: &Pool<'a>) -> Result<UnitVectors<'a>> {
    let mut dims = None;
    let mut rows = Vec::with_capacity(pool.vectors.len());
    for (i, v) in pool.vectors.iter().enumerate() {
        let Some(v) = *v else {
            rows.push(None);
            continue;
        };
        let field = || format!("candidates[{}].vector", pool.origin[i]);
        let dims = *dims.get_or_insert(v.len());
        if v.len() != dims {
            return Err(Error::request(
                field(),
                format!(
                    "has {} dimensions but other candidates have {dims}",
                    v.len()
                ),
            ));
        }
        let norm = dot(v, v).sqrt();
        // one pass for both: a NaN or infinite component makes the norm non-finite
        if !norm.is_finite() {
            let message = if v.iter().any(|x| !x.is_finite()) {
                "contains a NaN or infinite value"
            } else {
                "has components too large for f32 arithmetic"
            };
            return Err(Error::request(field(), message));
        }
        rows.push((norm > 0.0).then(|| (v, 1.0 / norm)));
    }
    Ok(UnitVectors { rows })
}

/// A heap entry: an upper bound of a candidate's MMR value. Ordered by bound, then by smaller
/// pool index (earlier = more relevant), so the heap top is the deterministic argmax candidate.
#[derive(Debug, Clone, Copy)]
struct Bound {
    value: f64,
    index: Reverse<usize>,
}

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value
            .total_cmp(&other.value)
            .then(self.index.cmp(&other.index))
    }
}

/// Lazy MMR state over the pool.
struct Mmr<'a> {
    lambda: f64,
    vectors: UnitVectors<'a>,
    rel_norm: Vec<f64>,
    /// Largest cosine (floored at 0) to the placed results this candidate was compared with.
    max_sim: Vec<f32>,
    /// How many entries of `placed` each candidate's `max_sim` covers.
    compared: Vec<usize>,
    /// Placed results that have a vector, in placement order.
    placed: Vec<usize>,
    heap: BinaryHeap<Bound>,
}

impl<'a> Mmr<'a> {
    fn new(pool: &Pool<'a>, lambda: f64, candidates: impl Iterator<Item = usize>) -> Result<Self> {
        let n = pool.ids.len();
        let vectors = unit_vectors(pool)?;
        let (lo, hi) = pool
            .scores
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
                (lo.min(*s), hi.max(*s))
            });
        let rel_norm: Vec<f64> = pool
            .scores
            .iter()
            .map(|s| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 })
            .collect();
        let mut mmr = Mmr {
            lambda,
            vectors,
            rel_norm,
            max_sim: vec![0.0; n],
            compared: vec![0; n],
            placed: Vec::new(),
            heap: BinaryHeap::with_capacity(n),
        };
        for i in candidates {
            let value = mmr.value(i);
            mmr.heap.push(Bound {
                value,
                index: Reverse(i),
            });
        }
        Ok(mmr)
    }

    fn value(&self, i: usize) -> f64 {
        self.lambda * self.rel_norm[i] - (1.0 - self.lambda) * f64::from(self.max_sim[i])
    }

    /// Compares candidate `i` with the results placed since its last update.
    fn refresh(&mut self, i: usize) {
        for &p in &self.placed[self.compared[i]..] {
            if let Some(sim) = self.vectors.cosine(p, i) {
                self.max_sim[i] = self.max_sim[i].max(sim);
            }
        }
        self.compared[i] = self.placed.len();
    }

    /// The free candidate with the largest MMR value (ties: smaller pool index), skipping and
    /// forgetting candidates that are `gone` (placed by a pin, or capped: caps only tighten).
    fn pop_best(&mut self, mut gone: impl FnMut(usize) -> bool) -> Option<(usize, f64)> {
        while let Some(top) = self.heap.pop() {
            let i = top.index.0;
            if gone(i) {
                continue;
            }
            if self.compared[i] == self.placed.len() {
                // up to date and on top: no other bound (and so no true value) is larger
                return Some((i, top.value));
            }
            self.refresh(i);
            let value = self.value(i);
            self.heap.push(Bound {
                value,
                index: Reverse(i),
            });
        }
        None
    }

    fn place(&mut self, i: usize) {
        if self.vectors.rows[i].is_some() {
            self.placed.push(i);
        }
    }
}

/// Picks up to `rules.k` pool items in presentation order.
pub(crate) fn select(pool: &Pool<'_>, rules: &SelectionRules<'_>) -> Result<Vec<Selected>> {
    let n = pool.ids.len();
    let len = rules.k.min(n);
    let mut pin_at: Vec<Option<usize>> = vec![None; len];
    let mut pinned = vec![false; n];
    for &(idx, position) in rules.pins {
        // A pin beyond the list length does not force its item in: it competes normally.
        if position <= len {
            pinned[idx] = true;
            pin_at[position - 1] = Some(idx);
        }
    }

    let mut mmr = match rules.mmr_lambda {
        Some(lambda) if n > 1 => Some(Mmr::new(pool, lambda, (0..n).filter(|i| !pinned[*i]))?),
        _ => None,
    };
    let mut taken = vec![false; n];
    let mut per_category: HashMap<&str, usize> = HashMap::new();
    let capped = |i: usize, per_category: &HashMap<&str, usize>| match (
        rules.max_per_category,
        pool.categories[i],
    ) {
        (Some(cap), Some(cat)) => per_category.get(cat).copied().unwrap_or(0) >= cap,
        _ => false,
    };

    let mut out = Vec::with_capacity(len);
    // Without MMR the pool order is the relevance order: a cursor over it finds the next item.
    let mut cursor = 0;
    for slot in 0..len {
        let pick = if let Some(idx) = pin_at[slot] {
            Some(Selected {
                pool_index: idx,
                placement: Placement::Pinned { position: slot + 1 },
            })
        } else if let Some(state) = &mut mmr {
            state
                .pop_best(|i| taken[i] || capped(i, &per_category))
                .map(|(i, mmr_value)| Selected {
                    pool_index: i,
                    placement: Placement::Mmr {
                        lambda: state.lambda,
                        normalized_relevance: state.rel_norm[i],
                        max_similarity: f64::from(state.max_sim[i]),
                        mmr_value,
                    },
                })
        } else {
            // capped items stay capped, so the cursor never needs to move back
            while cursor < n && (taken[cursor] || pinned[cursor] || capped(cursor, &per_category)) {
                cursor += 1;
            }
            (cursor < n).then_some(Selected {
                pool_index: cursor,
                placement: Placement::Relevance,
            })
        };
        let Some(pick) = pick else {
            // Caps exhausted every free item: the remaining pins close the list in order.
            for &idx in pin_at[slot..].iter().flatten() {
                out.push(Selected {
                    pool_index: idx,
                    placement: Placement::Pinned {
                        position: out.len() + 1,
                    },
                });
            }
            break;
        };
        let i = pick.pool_index;
        taken[i] = true;
        if let Some(cat) = pool.categories[i] {
            *per_category.entry(cat).or_insert(0) += 1;
        }
        if let Some(state) = &mut mmr {
            state.place(i);
        }
        out.push(pick);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (id, score, category, vector)
    type Row<'a> = (&'a str, f64, Option<&'a str>, Option<&'a [f32]>);

    /// A pool from rows already in (score desc, id asc) order.
    fn pool<'a>(items: &'a [Row<'a>]) -> Pool<'a> {
        Pool {
            ids: items.iter().map(|i| i.0).collect(),
            scores: items.iter().map(|i| i.1).collect(),
            categories: items.iter().map(|i| i.2).collect(),
            vectors: items.iter().map(|i| i.3).collect(),
            origin: (0..items.len()).collect(),
        }
    }

    fn check(items: &[Row<'_>], rules: SelectionRules<'_>, expect: &[&str]) {
        let p = pool(items);
        let got: Vec<&str> = select(&p, &rules)
            .unwrap()
            .iter()
            .map(|s| p.ids[s.pool_index])
            .collect();
        assert_eq!(got, expect);
    }

    fn rules(
        k: usize,
        pins: &[(usize, usize)],
        lambda: Option<f64>,
        cap: Option<usize>,
    ) -> SelectionRules<'_> {
        SelectionRules {
            k,
            pins,
            mmr_lambda: lambda,
            max_per_category: cap,
        }
    }

    #[test]
    fn pins_after_exhausted_caps_close_the_list() {
        let items = [
            ("a1", 0.9, Some("a"), None),
            ("a2", 0.8, Some("a"), None),
            ("a3", 0.7, Some("a"), None),
            ("p", 0.1, Some("b"), None),
        ];
        // p is pinned to position 4 but only a1 fits the cap before it: p closes the list
        check(&items, rules(4, &[(3, 4)], None, Some(1)), &["a1", "p"]);
        let p = pool(&items);
        let sel = select(&p, &rules(4, &[(3, 4)], None, Some(1))).unwrap();
        assert_eq!(sel[1].placement, Placement::Pinned { position: 2 });
        // a pin counts towards its category's cap
        check(&items, rules(4, &[(2, 1)], None, Some(1)), &["a3", "p"]);
    }

    #[test]
    fn mmr_ties_go_to_the_earlier_pool_item() {
        let v: &[f32] = &[1.0, 0.0];
        let w: &[f32] = &[0.0, 1.0];
        let items = [
            ("a", 1.0, None, Some(v)),
            ("b", 0.5, None, Some(w)),
            ("c", 0.5, None, Some(w)),
        ];
        check(&items, rules(3, &[], Some(0.5), None), &["a", "b", "c"]);
        // lambda 0: a, then b (tie at 0 with c, earlier wins), then c
        check(&items, rules(3, &[], Some(0.0), None), &["a", "b", "c"]);
    }

    #[test]
    fn single_item_and_empty_pools() {
        check(&[], rules(5, &[], Some(0.5), Some(1)), &[]);
        check(
            &[("x", 0.0, None, None)],
            rules(5, &[], Some(0.5), None),
            &["x"],
        );
    }

    #[test]
    fn cosine_ignores_length_and_zero_or_missing_vectors() {
        let long: &[f32] = &[3.0, 4.0];
        let unit: &[f32] = &[0.6, 0.8];
        let other: &[f32] = &[-0.8, 0.6];
        let zero: &[f32] = &[0.0, 0.0];
        let items = [
            ("a", 1.0, None, Some(long)),
            ("b", 0.9, None, Some(unit)),
            ("c", 0.8, None, Some(other)),
            ("z", 0.5, None, Some(zero)),
            ("n", 0.1, None, None),
        ];
        let p = pool(&items);
        let v = unit_vectors(&p).unwrap();
        assert!((v.cosine(0, 1).unwrap() - 1.0).abs() < 1e-6);
        assert!(v.cosine(0, 2).unwrap().abs() < 1e-6);
        assert_eq!(v.cosine(0, 3), None);
        assert_eq!(v.cosine(0, 4), None);
    }

    #[test]
    fn dot_handles_lengths_that_are_not_a_multiple_of_eight() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![2.0f32; 19];
        assert_eq!(dot(&a, &b), 2.0 * (0..19).sum::<i32>() as f32);
        assert_eq!(dot(&[], &[]), 0.0);
    }
}
