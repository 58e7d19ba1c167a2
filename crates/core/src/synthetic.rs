//! The one synthetic catalog generator, shared by `redrec-ingest seed synthetic`, the bench's own
//! loader and query mix, and the tests: deterministic for a given (items, dims, seed), with
//! clustered unit vectors, Zipf-skewed categories, brands and text words, and log-normal prices.
//!
//! Every item comes from its own RNG stream (seeded from the catalog seed and the item index), so
//! items can be produced in any order, streamed without holding the catalog in memory, and
//! regenerated identically by whoever needs the vectors again (recall ground truth, refresh tests).
//!
//! The shape is the one the benchmark was designed and measured on (60 categories, 12
//! departments, 300 brands, 100 vector clusters, Zipf text words). An earlier ingest-side copy used
//! 50/10/200 with one cluster per category and fixed two-word titles; the bench's numbers stay
//! because its query mix draws category filters over 60 Zipf-ranked categories and text queries
//! over the same word list, and the published benchmark figures were measured on this catalog.
//! With one generator, `redrec-ingest seed synthetic` now loads the catalog the bench queries.
//!
//! Pure computation (no I/O), so it lives in core where both ingest and bench can reach it.

use crate::vector;

pub const CATEGORIES: usize = 60;
pub const DEPARTMENTS: usize = 12;
pub const BRANDS: usize = 300;
/// Vector clusters; each category leans towards 5 of them (products of one aisle look alike, but
/// an aisle is not one point).
pub const CLUSTERS: usize = 100;
/// Words the `text` field is made of (Zipf-distributed), so text queries hit skewed posting lists.
pub const WORDS: &[&str] = &[
    "organic",
    "fresh",
    "crunchy",
    "classic",
    "family",
    "value",
    "premium",
    "light",
    "spicy",
    "sweet",
    "salted",
    "smoked",
    "frozen",
    "bakery",
    "dairy",
    "snack",
    "pasta",
    "sauce",
    "coffee",
    "tea",
    "juice",
    "soda",
    "water",
    "cereal",
    "bread",
    "cheese",
    "yogurt",
    "butter",
    "chicken",
    "beef",
    "pork",
    "fish",
    "rice",
    "beans",
    "soup",
    "cookies",
    "crackers",
    "chips",
    "candy",
    "chocolate",
    "vanilla",
    "strawberry",
    "lemon",
    "garlic",
    "tomato",
    "pepper",
    "onion",
    "apple",
    "banana",
    "orange",
    "shampoo",
    "soap",
    "detergent",
    "paper",
    "towels",
    "vitamins",
    "diapers",
    "wipes",
    "pet",
    "cleaner",
];
/// Per-component noise around a cluster centre for items and for query vectors (queries sit a
/// little further out: they are near the data, not copies of it).
const ITEM_NOISE: f64 = 0.35;
const QUERY_NOISE: f64 = 0.45;
/// Stream ids: item `i` uses stream `i`; these sit far above any item index.
const CENTRES_STREAM: u64 = u64::MAX;
const QUERY_STREAM: u64 = u64::MAX - 1;

/// SplitMix64: tiny, fast, and its output is fixed forever (unlike library RNGs whose algorithms
/// may change between versions), which keeps catalogs and query mixes reproducible. Not for
/// cryptography.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent stream for (seed, stream), e.g. one per item, so items can be generated in
    /// any order and still come out identical.
    pub fn stream(seed: u64, stream: u64) -> Rng {
        let mut r = Rng::new(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn log_normal(&mut self, mu: f64, sigma: f64) -> f64 {
        (mu + sigma * self.normal()).exp()
    }
}

/// Zipf(s) over `0..n`: rank 0 is the most frequent. Sampled by binary search on the CDF.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for rank in 1..=n {
            acc += 1.0 / (rank as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Parameters that fully determine a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticParams {
    pub items: u64,
    pub dims: usize,
    pub seed: u64,
}

/// One generated item, with the default item schema's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticItem {
    pub id: String,
    pub category: String,
    pub department: String,
    pub brand: String,
    pub price: f64,
    pub popularity: f64,
    pub in_stock: bool,
    pub text: String,
    pub vector: Vec<f32>,
}

/// The name of category `i` (what `category` filters match).
pub fn category_name(i: usize) -> String {
    format!("cat{i:02}")
}

/// The generator: item `i` depends only on (params, i).
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub params: SyntheticParams,
    centres: Vec<Vec<f32>>,
    categories: Zipf,
    brands: Zipf,
    words: Zipf,
}

impl Synthetic {
    pub fn new(params: SyntheticParams) -> Synthetic {
        let mut rng = Rng::stream(params.seed, CENTRES_STREAM);
        let centres = (0..CLUSTERS)
            .map(|_| unit_vector(&mut rng, params.dims, None, 0.0))
            .collect();
        Synthetic {
            params,
            centres,
            categories: Zipf::new(CATEGORIES, 1.0),
            brands: Zipf::new(BRANDS, 1.1),
            words: Zipf::new(WORDS.len(), 0.9),
        }
    }

    /// The cluster centres (unit vectors), for tests that check the clustering.
    pub fn centres(&self) -> &[Vec<f32>] {
        &self.centres
    }

    /// Item `i` (0-based, id `s{i}`), identical on every call.
    pub fn item(&self, i: u64) -> SyntheticItem {
        let mut rng = Rng::stream(self.params.seed, i);
        let category = self.categories.sample(&mut rng);
        let cluster = (category * 7 + rng.below(5)) % CLUSTERS;
        let vector = unit_vector(
            &mut rng,
            self.params.dims,
            Some(&self.centres[cluster]),
            ITEM_NOISE,
        );
        let brand = self.brands.sample(&mut rng);
        let text = (0..3)
            .map(|_| WORDS[self.words.sample(&mut rng)])
            .collect::<Vec<_>>()
            .join(" ");
        SyntheticItem {
            id: format!("s{i}"),
            category: category_name(category),
            department: format!("dept{:02}", category % DEPARTMENTS),
            brand: format!("brand{brand:03}"),
            price: ((rng.log_normal(1.2, 0.8) * 100.0).round() / 100.0).max(0.01),
            popularity: (1.0 / rng.unit().max(1e-6)).ln().floor(),
            in_stock: rng.unit() < 0.9,
            text,
            vector,
        }
    }

    /// Query vector `j`: a cluster centre plus noise (near the data, not an indexed item),
    /// identical on every call.
    pub fn query_vector(&self, j: u64) -> Vec<f32> {
        self.query_vector_with(&mut Rng::stream(self.params.seed ^ QUERY_STREAM, j))
    }

    /// A query vector drawn from the caller's stream (a query mix draws many from one stream).
    pub fn query_vector_with(&self, rng: &mut Rng) -> Vec<f32> {
        let c = &self.centres[rng.below(CLUSTERS)];
        unit_vector(rng, self.params.dims, Some(c), QUERY_NOISE)
    }
}

/// A unit vector: `center` plus gaussian noise of scale `noise` per component (or pure noise).
pub fn unit_vector(rng: &mut Rng, dims: usize, center: Option<&[f32]>, noise: f64) -> Vec<f32> {
    // Noise scaled by 1/sqrt(dims) keeps an item's cosine to its centre independent of dims.
    let scale = if center.is_some() {
        noise / (dims as f64).sqrt() * 3.0
    } else {
        1.0
    };
    let mut v: Vec<f32> = (0..dims)
        .map(|d| (center.map_or(0.0, |c| f64::from(c[d])) + scale * rng.normal()) as f32)
        .collect();
    if vector::normalize(&mut v).is_err() {
        v[0] = 1.0;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64) -> SyntheticParams {
        SyntheticParams {
            items: 2000,
            dims: 16,
            seed,
        }
    }

    #[test]
    fn items_are_deterministic_and_well_formed() {
        let (a, b) = (Synthetic::new(params(42)), Synthetic::new(params(42)));
        assert_eq!(a.item(1234), b.item(1234));
        assert_eq!(a.query_vector(3), b.query_vector(3));
        assert_ne!(a.item(1), a.item(2));
        assert_ne!(a.query_vector(1), a.query_vector(2));
        let other = Synthetic::new(params(43));
        assert_ne!(a.item(7).vector, other.item(7).vector);
        let it = a.item(17);
        assert_eq!(it.id, "s17");
        assert_eq!(it.text.split(' ').count(), 3);
        for i in 0..200 {
            let it = a.item(i);
            assert_eq!(it.vector.len(), 16);
            let norm: f32 = it.vector.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
            assert!(it.price >= 0.01 && it.popularity >= 0.0);
        }
    }

    #[test]
    fn categories_are_skewed_and_vectors_clustered() {
        let a = Synthetic::new(params(42));
        let mut counts = vec![0u32; CATEGORIES];
        for i in 0..a.params.items {
            counts[a.item(i).category[3..].parse::<usize>().unwrap()] += 1;
        }
        // Zipf: the most common category is far more common than the median one.
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        assert!(
            sorted[CATEGORIES - 1] > 5 * sorted[CATEGORIES / 2].max(1),
            "{counts:?}"
        );
        // Clustered: an item is closer to the nearest of its category's clusters than to a
        // cluster of another category.
        let it = a.item(5);
        let cat: usize = it.category[3..].parse().unwrap();
        let own = (0..5)
            .map(|k| vector::cosine(&it.vector, &a.centres()[(cat * 7 + k) % CLUSTERS]))
            .fold(f32::MIN, f32::max);
        let far = vector::cosine(&it.vector, &a.centres()[(cat * 7 + 50) % CLUSTERS]);
        assert!(own > far + 0.2, "own {own} far {far}");
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::stream(7, 1).next_u64(), Rng::stream(7, 2).next_u64());
    }

    #[test]
    fn zipf_is_skewed_towards_rank_zero() {
        let z = Zipf::new(50, 1.1);
        let mut rng = Rng::new(1);
        let mut counts = [0usize; 50];
        for _ in 0..20_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[49]);
        assert_eq!(counts.iter().sum::<usize>(), 20_000);
    }

    #[test]
    fn unit_and_normal_have_the_expected_moments() {
        let mut rng = Rng::new(3);
        let n = 50_000;
        let units: Vec<f64> = (0..n).map(|_| rng.unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = units.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let normals: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let m = normals.iter().sum::<f64>() / n as f64;
        let var = normals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.02 && (var - 1.0).abs() < 0.03, "{m} {var}");
    }
}
