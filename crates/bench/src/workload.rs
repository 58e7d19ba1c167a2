//! The query mix, generated deterministically from a seed and the stored catalog, and shared by
//! the raw and gateway targets so both answer exactly the same questions.
//!
//! Mix (by default): 70% vector queries (a third unfiltered, a third with a category TAG filter,
//! a third with a price range), 20% personalised queries (the user's session vector; the raw side
//! also reads the user's feature keys in the same round trip as the gateway does), 10% text
//! queries (the raw side runs BM25 + KNN with a vector standing in for the text's embedding, in
//! one pipeline; the gateway embeds the text itself, so its numbers include the embedder).

use std::ops::Bound;

use redrec_core::{
    filter::Filter,
    synthetic::{CATEGORIES, Rng, Synthetic, WORDS, Zipf, category_name},
};
use serde::Serialize;

use crate::catalog::StoredCatalog;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Vector,
    Personal,
    Text,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Vector, Kind::Personal, Kind::Text];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vector => "vector",
            Kind::Personal => "personal",
            Kind::Text => "text",
        }
    }
}

/// One request of the mix.
#[derive(Debug, Clone)]
pub struct BenchQuery {
    pub kind: Kind,
    /// The KNN vector (for text queries: the stand-in for the text's embedding on the raw side).
    pub vector: Vec<f32>,
    pub user_id: Option<String>,
    pub text: Option<String>,
    pub filter: Filter,
    pub k: usize,
}

/// A synthetic user whose session vector points at a few clusters.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: String,
    pub vector: Vec<f32>,
    /// Items this user interacted with (used to seed their features through the events API).
    pub clicked: Vec<String>,
}

/// Shares of the mix, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mix {
    pub vector: u32,
    pub personal: u32,
    pub text: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            vector: 70,
            personal: 20,
            text: 10,
        }
    }
}

impl Mix {
    pub fn only(kind: Kind) -> Mix {
        let mut m = Mix {
            vector: 0,
            personal: 0,
            text: 0,
        };
        match kind {
            Kind::Vector => m.vector = 100,
            Kind::Personal => m.personal = 100,
            Kind::Text => m.text = 100,
        }
        m
    }

    fn pick(&self, rng: &mut Rng) -> Kind {
        let total = (self.vector + self.personal + self.text).max(1);
        let x = rng.below(total as usize) as u32;
        if x < self.vector {
            Kind::Vector
        } else if x < self.vector + self.personal {
            Kind::Personal
        } else {
            Kind::Text
        }
    }
}

/// Users whose vectors are near the catalog; each "clicked" its five nearest items (by sampling).
pub fn make_users(
    generator: &Synthetic,
    cat: &StoredCatalog,
    count: usize,
    seed: u64,
) -> Vec<BenchUser> {
    let mut rng = Rng::stream(seed, 0xBEEF);
    (0..count)
        .map(|u| {
            let vector = generator.query_vector_with(&mut rng);
            let clicked = (0..5)
                .filter(|_| !cat.is_empty())
                .map(|_| cat.ids[rng.below(cat.len())].clone())
                .collect();
            BenchUser {
                id: format!("bench-user-{u}"),
                vector,
                clicked,
            }
        })
        .collect()
}

/// A filter drawn like real traffic: a third none, a third a category (Zipf), a third a price range.
fn random_filter(rng: &mut Rng, categories: &Zipf, price_quantiles: &[f64]) -> Filter {
    match rng.below(3) {
        0 => Filter::All,
        1 => Filter::tag_any("category", [category_name(categories.sample(rng))]),
        _ => {
            // A band covering 10-40% of the catalog.
            let width = 10 + rng.below(31);
            let lo = rng.below(100 - width);
            price_range(
                price_quantiles,
                lo as f64 / 100.0,
                (lo + width) as f64 / 100.0,
            )
        }
    }
}

/// The price range between two quantiles of the stored prices.
pub fn price_range(price_quantiles: &[f64], lo_q: f64, hi_q: f64) -> Filter {
    Filter::range(
        "price",
        Bound::Included(quantile(price_quantiles, lo_q)),
        Bound::Included(quantile(price_quantiles, hi_q)),
    )
}

/// The `q` quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i =
        ((q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[i]
}

pub fn sorted_prices(cat: &StoredCatalog) -> Vec<f64> {
    let mut p = cat.prices.clone();
    p.sort_by(f64::total_cmp);
    p
}

/// `count` queries of the mix, deterministic for a seed.
pub fn make_queries(
    generator: &Synthetic,
    cat: &StoredCatalog,
    users: &[BenchUser],
    mix: Mix,
    count: usize,
    k: usize,
    seed: u64,
) -> Vec<BenchQuery> {
    let mut rng = Rng::stream(seed, 0xC0FFEE);
    let categories = Zipf::new(CATEGORIES, 1.0);
    let words = Zipf::new(WORDS.len(), 0.9);
    let prices = sorted_prices(cat);
    (0..count)
        .map(|_| {
            let mut kind = mix.pick(&mut rng);
            if kind == Kind::Personal && users.is_empty() {
                kind = Kind::Vector;
            }
            let filter = random_filter(&mut rng, &categories, &prices);
            match kind {
                Kind::Vector => BenchQuery {
                    kind,
                    vector: generator.query_vector_with(&mut rng),
                    user_id: None,
                    text: None,
                    filter,
                    k,
                },
                Kind::Personal => {
                    let user = &users[rng.below(users.len())];
                    BenchQuery {
                        kind,
                        vector: user.vector.clone(),
                        user_id: Some(user.id.clone()),
                        text: None,
                        filter,
                        k,
                    }
                }
                Kind::Text => {
                    let text = format!(
                        "{} {}",
                        WORDS[words.sample(&mut rng)],
                        WORDS[words.sample(&mut rng)]
                    );
                    BenchQuery {
                        kind,
                        vector: generator.query_vector_with(&mut rng),
                        user_id: None,
                        text: Some(text),
                        filter,
                        k,
                    }
                }
            }
        })
        .collect()
}

/// Ranks of the selectivity ladder: (label, target share of the catalog, filter).
pub fn selectivity_ladder(cat: &StoredCatalog) -> Vec<(String, f64, Filter)> {
    let prices = sorted_prices(cat);
    let mut rungs: Vec<(String, f64, Filter)> = [0.01, 0.05, 0.25, 0.90]
        .iter()
        .map(|&share| {
            // A band in the middle of the price distribution holding `share` of the items.
            let lo = (1.0 - share) / 2.0;
            (
                format!("{:.0}%", share * 100.0),
                share,
                price_range(&prices, lo, lo + share),
            )
        })
        .collect();
    rungs.push(("none".into(), 1.0, Filter::All));
    rungs
}

/// Whether catalog row `i` passes a ladder filter (price ranges and `All` only).
pub fn ladder_matches(cat: &StoredCatalog, filter: &Filter, i: usize) -> bool {
    match filter {
        Filter::All => true,
        Filter::Range(r) if r.field == "price" => {
            let p = cat.prices[i];
            let lower_ok = match r.lower {
                Bound::Included(x) => p >= x,
                Bound::Excluded(x) => p > x,
                Bound::Unbounded => true,
            };
            let upper_ok = match r.upper {
                Bound::Included(x) => p <= x,
                Bound::Excluded(x) => p < x,
                Bound::Unbounded => true,
            };
            lower_ok && upper_ok
        }
        Filter::Tag(t) if t.field == "category" && !t.negated => {
            t.values.iter().any(|v| *v == cat.categories[i])
        }
        other => panic!("ladder filter {other:?} has no brute-force matcher"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redrec_core::synthetic::SyntheticParams;

    fn catalog(generator: &Synthetic, n: usize) -> StoredCatalog {
        let mut cat = StoredCatalog {
            dim: 8,
            ..Default::default()
        };
        for i in 0..n {
            let it = generator.item(i as u64);
            cat.ids.push(it.id);
            cat.vectors.extend(it.vector);
            cat.prices.push(it.price);
            cat.categories.push(it.category);
        }
        cat
    }

    #[test]
    fn mix_shares_and_determinism() {
        let g = Synthetic::new(SyntheticParams {
            items: 500,
            dims: 8,
            seed: 1,
        });
        let cat = catalog(&g, 500);
        let users = make_users(&g, &cat, 10, 1);
        let qs = make_queries(&g, &cat, &users, Mix::default(), 2000, 10, 5);
        let share = |k: Kind| qs.iter().filter(|q| q.kind == k).count() as f64 / 2000.0;
        assert!((share(Kind::Vector) - 0.7).abs() < 0.05);
        assert!((share(Kind::Personal) - 0.2).abs() < 0.05);
        assert!((share(Kind::Text) - 0.1).abs() < 0.05);
        assert!(
            qs.iter()
                .filter(|q| q.kind == Kind::Text)
                .all(|q| q.text.is_some())
        );
        assert!(
            qs.iter()
                .filter(|q| q.kind == Kind::Personal)
                .all(|q| q.user_id.is_some())
        );
        let again = make_queries(&g, &cat, &users, Mix::default(), 2000, 10, 5);
        assert!(
            qs.iter()
                .zip(&again)
                .all(|(a, b)| a.vector == b.vector && a.filter == b.filter)
        );
    }

    #[test]
    fn ladder_rungs_hit_their_selectivity() {
        let g = Synthetic::new(SyntheticParams {
            items: 20_000,
            dims: 8,
            seed: 2,
        });
        let cat = catalog(&g, 20_000);
        for (label, share, filter) in selectivity_ladder(&cat) {
            let n = (0..cat.len())
                .filter(|&i| ladder_matches(&cat, &filter, i))
                .count();
            let got = n as f64 / cat.len() as f64;
            // Prices are rounded to cents, so ties at the bounds add a little.
            assert!(
                got >= share * 0.9 && got <= share * 1.3 + 0.005,
                "{label}: {got}"
            );
        }
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
