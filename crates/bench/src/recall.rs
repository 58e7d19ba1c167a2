//! Exact brute-force top-k over the stored catalog and recall@k of a returned list against it.

use std::collections::HashSet;

use crate::catalog::StoredCatalog;

/// The ids of the `k` items most similar to `query` (dot product on unit vectors == cosine)
/// among the rows for which `matches` holds, best first.
pub fn exact_top_k(
    cat: &StoredCatalog,
    query: &[f32],
    k: usize,
    matches: impl Fn(usize) -> bool,
) -> Vec<String> {
    let mut scored: Vec<(f32, usize)> = (0..cat.len())
        .filter(|&i| matches(i))
        .map(|i| (dot(cat.vector(i), query), i))
        .collect();
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .map(|(_, i)| cat.ids[i].clone())
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// |returned ∩ truth| / |truth| (truth already cut to k). An empty truth (nothing matches the
/// filter) is perfect recall when nothing was returned either, and 0 otherwise.
pub fn recall(truth: &[String], returned: &[String]) -> f64 {
    if truth.is_empty() {
        return if returned.is_empty() { 1.0 } else { 0.0 };
    }
    let got: HashSet<&str> = returned.iter().map(String::as_str).collect();
    truth.iter().filter(|t| got.contains(t.as_str())).count() as f64 / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> StoredCatalog {
        // Four 2-d unit vectors at 0°, 30°, 90° and 180°.
        let angles = [0f32, 30.0, 90.0, 180.0];
        StoredCatalog {
            dim: 2,
            ids: ["a", "b", "c", "d"].map(String::from).to_vec(),
            vectors: angles
                .iter()
                .flat_map(|d| [d.to_radians().cos(), d.to_radians().sin()])
                .collect(),
            prices: vec![1.0, 2.0, 3.0, 4.0],
            categories: ["x", "y", "x", "y"].map(String::from).to_vec(),
        }
    }

    #[test]
    fn ranks_by_cosine_within_the_filter() {
        let cat = catalog();
        assert_eq!(exact_top_k(&cat, &[1.0, 0.0], 2, |_| true), ["a", "b"]);
        assert_eq!(
            exact_top_k(&cat, &[1.0, 0.0], 10, |i| cat.categories[i] == "y"),
            ["b", "d"]
        );
        assert_eq!(
            exact_top_k(&cat, &[0.0, 1.0], 1, |i| cat.prices[i] > 3.5),
            ["d"]
        );
        assert!(exact_top_k(&cat, &[1.0, 0.0], 3, |_| false).is_empty());
    }

    #[test]
    fn recall_counts_the_overlap() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            recall(&s(&["a", "b", "c", "d"]), &s(&["b", "a", "z", "y"])),
            0.5
        );
        assert_eq!(recall(&s(&["a"]), &s(&["a", "b"])), 1.0);
        assert_eq!(recall(&s(&[]), &s(&[])), 1.0);
        assert_eq!(recall(&s(&[]), &s(&["a"])), 0.0);
    }
}
