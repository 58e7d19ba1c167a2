//! Metrics at k over the evaluated cases, and bootstrap intervals.
//!
//! Per case, with list L (k items), target basket T, its repeat part R (bought before by the
//! user) and explore part E (never bought by the user):
//! - Recall@k = |L ∩ T| / min(|T|, k)
//! - NDCG@k = Σ_{positions p of hits} 1 / log2(p + 2) over the ideal DCG of min(|T|, k) hits
//! - PHR@k = 1 when |L ∩ T| > 0
//! - repeat R@k = |L ∩ R| / min(|R|, k) over cases with R non-empty; explore likewise with E.
//!
//! Figures are means over cases (repeat / explore over the cases where that part is non-empty).
//! Catalog coverage = distinct listed items / catalog items; non-merchandise share = listed
//! slots holding a non-merchandise item / all listed slots. The bootstrap resamples cases with
//! replacement (`resamples` times, a fixed seed) and reports the 2.5th and 97.5th percentiles.

use std::collections::HashSet;

use serde::Serialize;

use crate::split::Case;

/// Per-case figures; `None` when the part is empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaseScores {
    pub recall: f64,
    pub ndcg: f64,
    pub phr: f64,
    pub repeat_recall: Option<f64>,
    pub explore_recall: Option<f64>,
}

fn recall_of(list: &[u32], part: &[u32], k: usize) -> Option<f64> {
    if part.is_empty() {
        return None;
    }
    let hits = list.iter().take(k).filter(|i| part.contains(i)).count();
    Some(hits as f64 / part.len().min(k) as f64)
}

/// Scores one list against one case.
pub fn score(list: &[u32], case: &Case, k: usize) -> CaseScores {
    let list = &list[..list.len().min(k)];
    let hits: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, i)| case.target.contains(i))
        .map(|(p, _)| p)
        .collect();
    let dcg: f64 = hits.iter().map(|&p| 1.0 / ((p + 2) as f64).log2()).sum();
    let ideal: f64 = (0..case.target.len().min(k))
        .map(|p| 1.0 / ((p + 2) as f64).log2())
        .sum();
    CaseScores {
        recall: recall_of(list, &case.target, k).unwrap_or(0.0),
        ndcg: if ideal > 0.0 { dcg / ideal } else { 0.0 },
        phr: if hits.is_empty() { 0.0 } else { 1.0 },
        repeat_recall: recall_of(list, &case.repeat, k),
        explore_recall: recall_of(list, &case.explore, k),
    }
}

/// A mean with its bootstrap 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    /// Cases the mean is over.
    pub n: usize,
}

/// Every figure of one method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub recall: Estimate,
    pub ndcg: Estimate,
    pub phr: Estimate,
    pub repeat_recall: Estimate,
    pub explore_recall: Estimate,
    pub coverage: f64,
    pub non_merch_share: f64,
    /// Cases with no list (the gateway failed for them); they count as empty lists.
    pub failed: usize,
}

const METRICS: usize = 5;

fn values(s: &CaseScores) -> [Option<f64>; METRICS] {
    [
        Some(s.recall),
        Some(s.ndcg),
        Some(s.phr),
        s.repeat_recall,
        s.explore_recall,
    ]
}

/// How figures are computed: the cut-off k, the catalog size for coverage, the bootstrap.
#[derive(Debug, Clone, Copy)]
pub struct Scoring {
    pub k: usize,
    pub catalog_items: usize,
    pub resamples: usize,
    pub seed: u64,
}

/// Summarises the lists of one method (`lists[c]` for `cases[c]`).
pub fn summarise(
    lists: &[Vec<u32>],
    cases: &[Case],
    scoring: &Scoring,
    non_merch: &dyn Fn(u32) -> bool,
    failed: usize,
) -> Summary {
    let Scoring {
        k,
        catalog_items,
        resamples,
        seed,
    } = *scoring;
    let scores: Vec<[Option<f64>; METRICS]> = lists
        .iter()
        .zip(cases)
        .map(|(l, c)| values(&score(l, c, k)))
        .collect();
    let mean_over = |idx: &mut dyn Iterator<Item = usize>, m: usize| -> (f64, usize) {
        let (mut sum, mut n) = (0.0, 0usize);
        for c in idx {
            if let Some(v) = scores[c][m] {
                sum += v;
                n += 1;
            }
        }
        (if n > 0 { sum / n as f64 } else { 0.0 }, n)
    };
    let n = scores.len();
    let mut samples: Vec<Vec<f64>> = (0..METRICS)
        .map(|_| Vec::with_capacity(resamples))
        .collect();
    let mut rng = redrec_core::synthetic::Rng::new(seed);
    let mut draw = Vec::with_capacity(n);
    for _ in 0..resamples {
        draw.clear();
        for _ in 0..n {
            draw.push(rng.below(n));
        }
        for (m, s) in samples.iter_mut().enumerate() {
            s.push(mean_over(&mut draw.iter().copied(), m).0);
        }
    }
    let mut estimate = |m: usize| {
        let (mean, count) = mean_over(&mut (0..n), m);
        let s = &mut samples[m];
        s.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            if s.is_empty() {
                mean
            } else {
                s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
            }
        };
        Estimate {
            mean,
            lo: pct(0.025),
            hi: pct(0.975),
            n: count,
        }
    };
    let listed: HashSet<u32> = lists.iter().flatten().copied().collect();
    let slots: usize = lists.iter().map(Vec::len).sum();
    let nm = lists.iter().flatten().filter(|&&i| non_merch(i)).count();
    Summary {
        recall: estimate(0),
        ndcg: estimate(1),
        phr: estimate(2),
        repeat_recall: estimate(3),
        explore_recall: estimate(4),
        coverage: listed.len() as f64 / catalog_items.max(1) as f64,
        non_merch_share: nm as f64 / slots.max(1) as f64,
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(target: &[u32], repeat: &[u32]) -> Case {
        Case {
            user: 0,
            time: 0,
            target: target.to_vec(),
            repeat: repeat.to_vec(),
            explore: target
                .iter()
                .copied()
                .filter(|i| !repeat.contains(i))
                .collect(),
        }
    }

    #[test]
    fn scores_a_list_by_hand() {
        // target {1, 2, 3}, repeat {1}; list hits 1 at position 0 and 3 at position 2.
        let s = score(&[1, 9, 3, 8], &case(&[1, 2, 3], &[1]), 4);
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-12);
        let ideal = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!((s.ndcg - (1.0 + 0.5) / ideal).abs() < 1e-12);
        assert_eq!(s.phr, 1.0);
        assert_eq!(s.repeat_recall, Some(1.0));
        assert_eq!(s.explore_recall, Some(0.5));
    }

    #[test]
    fn recall_caps_the_denominator_at_k() {
        let target: Vec<u32> = (0..20).collect();
        let s = score(&[0, 1], &case(&target, &[]), 2);
        assert_eq!(s.recall, 1.0);
        assert_eq!(s.ndcg, 1.0);
        assert_eq!(s.repeat_recall, None);
    }

    #[test]
    fn summary_means_intervals_coverage_and_non_merch() {
        let cases = vec![case(&[1], &[1]), case(&[2], &[])];
        let lists = vec![vec![1, 5], vec![3, 5]];
        let scoring = Scoring {
            k: 2,
            catalog_items: 10,
            resamples: 200,
            seed: 1,
        };
        let s = summarise(&lists, &cases, &scoring, &|i| i == 5, 0);
        assert_eq!(s.recall.mean, 0.5);
        assert!(s.recall.lo <= 0.5 && s.recall.hi >= 0.5);
        assert_eq!((s.recall.lo, s.recall.hi), (0.0, 1.0));
        assert_eq!(s.repeat_recall.mean, 1.0);
        assert_eq!(s.repeat_recall.n, 1);
        assert_eq!(s.explore_recall.mean, 0.0);
        assert!((s.coverage - 0.3).abs() < 1e-12);
        assert_eq!(s.non_merch_share, 0.5);
    }
}
