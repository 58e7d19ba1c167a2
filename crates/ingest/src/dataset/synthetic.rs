//! The synthetic catalog for benchmarks: deterministic for a given (items, dims, seed), with
//! clustered unit vectors, Zipf-skewed categories and brands and log-normal prices.
//!
//! Every item is generated from its own RNG stream (seeded from the catalog seed and the item
//! index), so items can be produced in any order, streamed without holding the catalog in
//! memory, and regenerated identically by a benchmark that needs the vectors again.

use std::sync::Arc;

use crate::{
    Result,
    load::RowFactory,
    source::{Rows, SourceItem, SourceRow, Value},
};

/// Parameters of the synthetic catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticParams {
    pub items: u64,
    pub dims: usize,
    pub seed: u64,
}

pub const CATEGORIES: usize = 50;
pub const DEPARTMENTS: usize = 10;
pub const BRANDS: usize = 200;
/// Standard deviation of the per-component noise around a cluster centre (before normalising).
const NOISE: f32 = 0.6;

/// SplitMix64: tiny, fast, and its output is fixed forever (unlike library RNGs whose
/// algorithms may change between versions), which keeps the catalog reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Zipf(s) over ranks 0..n by inverse CDF.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }
    pub fn sample(&self, rng: &mut SplitMix) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

/// One generated item.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticItem {
    pub id: String,
    pub category: String,
    pub department: String,
    pub brand: String,
    pub price: f64,
    pub popularity: u64,
    pub in_stock: bool,
    pub text: String,
    pub vector: Vec<f32>,
}

/// The generator.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub params: SyntheticParams,
    centres: Vec<Vec<f32>>,
    categories: Zipf,
    brands: Zipf,
}

const ADJECTIVES: &[&str] = &[
    "fresh", "classic", "organic", "premium", "value", "family", "light", "spicy", "sweet",
    "crunchy", "smoked", "frozen",
];
const NOUNS: &[&str] = &[
    "snack", "pasta", "sauce", "coffee", "tea", "juice", "cereal", "bread", "cheese", "yogurt",
    "soup", "candy", "soap", "shampoo", "battery", "towel",
];

impl Synthetic {
    pub fn new(params: SyntheticParams) -> Synthetic {
        let mut rng = SplitMix::new(params.seed ^ 0xC1A5_7E25);
        // One cluster per category: the vectors of a category sit around its centre.
        let centres = (0..CATEGORIES)
            .map(|_| unit((0..params.dims).map(|_| rng.normal() as f32).collect()))
            .collect();
        Synthetic {
            params,
            centres,
            categories: Zipf::new(CATEGORIES, 1.1),
            brands: Zipf::new(BRANDS, 1.2),
        }
    }

    fn rng(&self, stream: u64, i: u64) -> SplitMix {
        let mut mix = SplitMix::new(self.params.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let base = mix.next_u64();
        SplitMix::new(base ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// Item `i` (0-based), identical on every call.
    pub fn item(&self, i: u64) -> SyntheticItem {
        let mut rng = self.rng(1, i);
        let cat = self.categories.sample(&mut rng);
        let brand = self.brands.sample(&mut rng);
        let centre = &self.centres[cat];
        let vector = unit(
            centre
                .iter()
                .map(|c| c + NOISE * rng.normal() as f32 / (self.params.dims as f32).sqrt() * 4.0)
                .collect(),
        );
        let price = ((2.5 + 0.8 * rng.normal()).exp() * 100.0).round() / 100.0;
        let popularity = (rng.unit().max(1e-6).powf(-1.2) - 1.0).min(1e6) as u64;
        let adj = ADJECTIVES[rng.next_u64() as usize % ADJECTIVES.len()];
        let noun = NOUNS[cat % NOUNS.len()];
        SyntheticItem {
            id: format!("s{i}"),
            category: format!("cat{cat:02}"),
            department: format!("dept{:02}", cat % DEPARTMENTS),
            brand: format!("brand{brand:03}"),
            price: price.max(0.01),
            popularity,
            in_stock: rng.unit() < 0.9,
            text: format!("{adj} {noun} by brand{brand:03} in cat{cat:02}"),
            vector,
        }
    }

    /// A query vector near a Zipf-chosen category centre (deterministic in `j`).
    pub fn query_vector(&self, j: u64) -> Vec<f32> {
        let mut rng = self.rng(2, j);
        let cat = self.categories.sample(&mut rng);
        unit(
            self.centres[cat]
                .iter()
                .map(|c| c + NOISE * rng.normal() as f32 / (self.params.dims as f32).sqrt() * 4.0)
                .collect(),
        )
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        for x in &mut v {
            *x /= n;
        }
    }
    v
}

impl SyntheticItem {
    /// The item as a source row with the default item schema's column names.
    pub fn into_row(self, row: u64) -> SourceRow {
        SourceRow {
            row,
            columns: vec![
                ("id".into(), Value::Str(self.id)),
                ("text".into(), Value::Str(self.text)),
                ("category".into(), Value::Str(self.category)),
                ("department".into(), Value::Str(self.department)),
                ("brand".into(), Value::Str(self.brand)),
                ("price".into(), Value::Num(self.price)),
                ("popularity".into(), Value::Num(self.popularity as f64)),
                (
                    "in_stock".into(),
                    Value::Str(if self.in_stock { "true" } else { "false" }.into()),
                ),
                ("embedding".into(), Value::Vector(self.vector)),
            ],
        }
    }
}

/// The synthetic catalog as a re-openable row source.
pub struct SyntheticRows(pub Arc<Synthetic>);

impl RowFactory for SyntheticRows {
    fn open(&self) -> Result<Rows> {
        let generator = Arc::clone(&self.0);
        Ok(Box::new((0..generator.params.items).map(move |i| {
            Ok(SourceItem::Row(generator.item(i).into_row(i + 1)))
        })))
    }
    fn label(&self) -> String {
        let p = self.0.params;
        format!(
            "synthetic(items={}, dims={}, seed={})",
            p.items, p.dims, p.seed
        )
    }
    fn known_len(&self) -> Option<u64> {
        Some(self.0.params.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_skewed() {
        let p = SyntheticParams {
            items: 2000,
            dims: 16,
            seed: 42,
        };
        let a = Synthetic::new(p);
        let b = Synthetic::new(p);
        assert_eq!(a.item(1234), b.item(1234));
        assert_ne!(a.item(1), a.item(2));
        let other = Synthetic::new(SyntheticParams { seed: 43, ..p });
        assert_ne!(a.item(7).vector, other.item(7).vector);
        let mut counts = vec![0u32; CATEGORIES];
        for i in 0..p.items {
            let it = a.item(i);
            assert_eq!(it.vector.len(), 16);
            let norm: f32 = it.vector.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-4);
            assert!(it.price > 0.0);
            counts[it.category[3..].parse::<usize>().unwrap()] += 1;
        }
        // Zipf: the most common category is far more common than the median one.
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        assert!(
            sorted[CATEGORIES - 1] > 5 * sorted[CATEGORIES / 2].max(1),
            "{counts:?}"
        );
        // Clustered: an item is closer to its own category centre than to another one.
        let it = a.item(5);
        let cat: usize = it.category[3..].parse().unwrap();
        let own = redrec_core::vector::cosine(&it.vector, &a.centres[cat]);
        let other = redrec_core::vector::cosine(&it.vector, &a.centres[(cat + 1) % CATEGORIES]);
        assert!(own > other + 0.2, "own {own} other {other}");
    }
}
