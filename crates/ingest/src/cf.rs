//! Collaborative item vectors from interactions: implicit-feedback ALS (Hu, Koren & Volinsky,
//! "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008), in plain Rust on
//! `ndarray` with a small Cholesky solve per row.
//!
//! Input: per user, (item, count) pairs (count = baskets holding the item). Confidence
//! `c = 1 + alpha · count`, preference 1 for every observed pair and 0 elsewhere. Each half-step
//! solves, for every row u, `(YᵀY + Σ_i (c_ui − 1) y_i y_iᵀ + λI) x_u = Σ_i c_ui y_i` exactly
//! (Cholesky, f64), rows split over `threads` scoped threads. Initial factors come from a
//! SplitMix64 stream of `seed`, and each row's solve is independent of the thread layout, so a
//! run is deterministic for its inputs and parameters.
//!
//! Items bought by fewer than `min_users` users are left out (no vector): their factors would be
//! noise. Which vectors an item gets is the caller's business (see docs/QUALITY.md).

use ndarray::{Array2, ArrayView1, Axis};

/// Per user: (item index, count) pairs sorted by item.
pub type UserRows = Vec<Vec<(u32, f32)>>;

/// Per user (in first-seen order): (item index, number of distinct baskets holding it), sorted
/// by item; plus the item ids by index. Reads `user`, `item`, `basket` columns of a Parquet file
/// (lines with a `quantity` column <= 0 are skipped when `quantity` is given). Lines at or after
/// `until` (same unit as the `time` column) are skipped when both are given.
pub fn basket_counts_from_parquet(
    path: &std::path::Path,
    columns: [&str; 3],
    quantity: Option<&str>,
    time_until: Option<(&str, f64)>,
) -> crate::Result<(UserRows, Vec<String>)> {
    use std::collections::{HashMap, HashSet};

    use crate::source::{ParquetRows, SourceItem, Value};
    let [user_col, item_col, basket_col] = columns;
    let mut wanted = vec![user_col, item_col, basket_col];
    wanted.extend(quantity);
    wanted.extend(time_until.map(|(c, _)| c));
    let key = |v: Option<&Value>| match v {
        Some(Value::Num(n)) => Some(format!("{}", *n as i64)),
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let mut users: HashMap<String, usize> = HashMap::new();
    let mut items: HashMap<String, u32> = HashMap::new();
    let mut item_names = Vec::new();
    let mut seen: Vec<HashSet<(u32, String)>> = Vec::new();
    let mut counts: Vec<HashMap<u32, f32>> = Vec::new();
    for row in ParquetRows::open(path, Some(&wanted))? {
        let SourceItem::Row(row) = row? else { continue };
        if let Some(q) = quantity
            && !matches!(row.get(q), Some(Value::Num(n)) if *n > 0.0)
        {
            continue;
        }
        if let Some((c, until)) = time_until
            && !matches!(row.get(c), Some(Value::Num(t)) if *t < until)
        {
            continue;
        }
        let (Some(u), Some(i), Some(b)) = (
            key(row.get(user_col)),
            key(row.get(item_col)),
            key(row.get(basket_col)),
        ) else {
            continue;
        };
        let next = users.len();
        let u = *users.entry(u).or_insert(next);
        if u == counts.len() {
            counts.push(HashMap::new());
            seen.push(HashSet::new());
        }
        let next = item_names.len() as u32;
        let i = *items.entry(i.clone()).or_insert_with(|| {
            item_names.push(i);
            next
        });
        if seen[u].insert((i, b)) {
            *counts[u].entry(i).or_insert(0.0) += 1.0;
        }
    }
    let by_user = counts
        .into_iter()
        .map(|m| {
            let mut row: Vec<(u32, f32)> = m.into_iter().collect();
            row.sort_by_key(|(i, _)| *i);
            row
        })
        .collect();
    Ok((by_user, item_names))
}

/// The model's item vectors, L2-normalised, keyed by item id.
pub fn item_vectors(model: &AlsModel, item_names: &[String]) -> Vec<(String, Vec<f32>)> {
    model
        .item_ids
        .iter()
        .zip(model.items.rows())
        .filter_map(|(&i, row)| {
            let norm = row.dot(&row).sqrt();
            (norm > 0.0 && norm.is_finite()).then(|| {
                (
                    item_names[i as usize].clone(),
                    row.iter().map(|x| x / norm).collect(),
                )
            })
        })
        .collect()
}

/// Training parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AlsParams {
    pub factors: usize,
    pub iterations: usize,
    pub regularization: f64,
    pub alpha: f64,
    pub min_users: usize,
    pub seed: u64,
    pub threads: usize,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            iterations: 10,
            regularization: 0.1,
            alpha: 10.0,
            min_users: 5,
            seed: 42,
            threads: 2,
        }
    }
}

/// Trained factors: `users[u]` and, for the kept items, `items[j]` with `item_ids[j]` the
/// caller's item index.
#[derive(Debug, Clone)]
pub struct AlsModel {
    pub users: Array2<f32>,
    pub items: Array2<f32>,
    pub item_ids: Vec<u32>,
}

impl AlsModel {
    /// The kept item's row, by the caller's item index.
    pub fn item_row(&self, item: u32) -> Option<ArrayView1<'_, f32>> {
        self.item_ids
            .binary_search(&item)
            .ok()
            .map(|j| self.items.row(j))
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_factors(rows: usize, f: usize, seed: u64) -> Array2<f32> {
    let mut s = seed;
    let scale = 0.1 / (f as f32).sqrt();
    Array2::from_shape_fn((rows, f), |_| {
        let u = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
        (u as f32 - 0.5) * 2.0 * scale
    })
}

/// Solves `a x = b` for a symmetric positive definite `a` (n × n, row-major) in place of `b`.
/// Returns false when `a` is not positive definite.
pub fn cholesky_solve(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    // a = L Lᵀ, L stored in the lower triangle of a.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    true
}

/// One half-step: new factors for every row of `rows` given the fixed `other` factors.
fn solve_side(rows: &[Vec<(u32, f32)>], other: &Array2<f32>, p: &AlsParams) -> Array2<f32> {
    let f = other.ncols();
    let gram = other.t().dot(other);
    let threads = p.threads.max(1);
    let chunk = rows.len().div_ceil(threads).max(1);
    let mut out = Array2::<f32>::zeros((rows.len(), f));
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .zip(out.axis_chunks_iter_mut(Axis(0), chunk))
            .map(|(rows, mut out)| {
                let gram = &gram;
                scope.spawn(move || {
                    let mut a = vec![0f64; f * f];
                    let mut b = vec![0f64; f];
                    for (r, row) in rows.iter().enumerate() {
                        for (dst, src) in a.iter_mut().zip(gram.iter()) {
                            *dst = f64::from(*src);
                        }
                        for d in 0..f {
                            a[d * f + d] += p.regularization;
                        }
                        b.iter_mut().for_each(|x| *x = 0.0);
                        for &(j, count) in row {
                            let y = other.row(j as usize);
                            let c = 1.0 + p.alpha * f64::from(count);
                            // Lower triangle only; mirrored below.
                            for d in 0..f {
                                let yd = f64::from(y[d]);
                                b[d] += c * yd;
                                let w = (c - 1.0) * yd;
                                for e in 0..=d {
                                    a[d * f + e] += w * f64::from(y[e]);
                                }
                            }
                        }
                        for d in 0..f {
                            for e in 0..d {
                                a[e * f + d] = a[d * f + e];
                            }
                        }
                        if cholesky_solve(&mut a, &mut b, f) {
                            for d in 0..f {
                                out[[r, d]] = b[d] as f32;
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("ALS worker panicked");
        }
    });
    out
}

/// Trains ALS on `by_user[u] = [(item, count), ...]` with items indexed `0..n_items`.
pub fn train(by_user: &[Vec<(u32, f32)>], n_items: usize, p: &AlsParams) -> AlsModel {
    // Keep items with enough distinct users; re-index them densely.
    let mut users_per_item = vec![0usize; n_items];
    for row in by_user {
        for &(i, _) in row {
            users_per_item[i as usize] += 1;
        }
    }
    let item_ids: Vec<u32> = (0..n_items as u32)
        .filter(|&i| users_per_item[i as usize] >= p.min_users.max(1))
        .collect();
    let mut dense = vec![u32::MAX; n_items];
    for (j, &i) in item_ids.iter().enumerate() {
        dense[i as usize] = j as u32;
    }
    let user_rows: Vec<Vec<(u32, f32)>> = by_user
        .iter()
        .map(|row| {
            row.iter()
                .filter(|(i, _)| dense[*i as usize] != u32::MAX)
                .map(|&(i, c)| (dense[i as usize], c))
                .collect()
        })
        .collect();
    let mut item_rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); item_ids.len()];
    for (u, row) in user_rows.iter().enumerate() {
        for &(j, c) in row {
            item_rows[j as usize].push((u as u32, c));
        }
    }
    let f = p.factors.max(1);
    let mut items = random_factors(item_ids.len(), f, p.seed);
    let mut users = random_factors(user_rows.len(), f, p.seed ^ 0x5555_5555);
    for _ in 0..p.iterations {
        users = solve_side(&user_rows, &items, p);
        items = solve_side(&item_rows, &users, p);
    }
    AlsModel {
        users,
        items,
        item_ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        // [[4, 2], [2, 3]] x = [2, 1] -> x = [0.5, 0]
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        assert!(cholesky_solve(&mut a, &mut b, 2));
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12, "{b:?}");
        let mut not_pd = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky_solve(&mut not_pd, &mut [1.0, 1.0], 2));
    }

    /// Two blocks of users buying two disjoint blocks of items (each user skips a third of
    /// their block): every user's unbought items of their own block score above every item of
    /// the other block; an item with one user gets no vector.
    #[test]
    fn recovers_planted_blocks_deterministically() {
        let mut by_user = Vec::new();
        for u in 0..40u32 {
            let base = if u < 20 { 0 } else { 10 };
            let mut row: Vec<(u32, f32)> = (0..10)
                .filter(|k| (u + k) % 3 != 0)
                .map(|k| (base + k, 1.0 + (k % 2) as f32))
                .collect();
            if u == 0 {
                row.push((20, 1.0)); // item 20: one user only
            }
            by_user.push(row);
        }
        let p = AlsParams {
            factors: 8,
            iterations: 8,
            min_users: 2,
            ..AlsParams::default()
        };
        let m = train(&by_user, 21, &p);
        assert_eq!(m.item_ids.len(), 20);
        assert!(m.item_row(20).is_none());
        for u in 0..40u32 {
            let x = m.users.row(u as usize);
            let score = |i: u32| x.dot(&m.item_row(i).unwrap());
            let (own, other) = if u < 20 {
                (0..10, 10..20)
            } else {
                (10..20, 0..10)
            };
            let worst_own = own
                .filter(|i| (u + i % 10) % 3 == 0)
                .map(score)
                .fold(f32::INFINITY, f32::min);
            let best_other = other.map(score).fold(f32::NEG_INFINITY, f32::max);
            assert!(
                worst_own > best_other,
                "user {u}: {worst_own} <= {best_other}"
            );
        }
        let again = train(&by_user, 21, &AlsParams { threads: 3, ..p });
        assert_eq!(m.items, again.items, "deterministic across thread layouts");
    }
}
