//! Shared fixtures: a store over a fresh test namespace and a few items with known vectors.

use redrec_core::{schema::ItemFields, vector};
use redrec_features::{FeatureStore, FeaturesConfig};
use redrec_testkit::TestSpace;

/// Start of the injected clock (2026-01-01T00:00:00Z).
pub const T0: i64 = 1_767_225_600_000;

pub const DIMS: usize = 8;

pub struct Fixture {
    pub space: TestSpace,
    pub store: FeatureStore,
}

/// A unit vector along axis `axis`.
pub fn axis(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    v[axis] = 1.0;
    v
}

impl Fixture {
    pub async fn new(label: &str, config: FeaturesConfig) -> Fixture {
        let space = TestSpace::new(label);
        let store = FeatureStore::new(space.ns.clone(), ItemFields::default(), config).unwrap();
        let mut con = space.conn().await;
        store.ensure_loaded(&mut con).await.unwrap();
        Fixture { space, store }
    }

    /// Writes an item hash with the default field names.
    pub async fn item(&self, id: &str, vec: &[f32], category: &str, brand: &str, price: f64) {
        let mut con = self.space.conn().await;
        let _: () = redis::cmd("HSET")
            .arg(self.space.ns.item(id))
            .arg("embedding")
            .arg(vector::encode(vec))
            .arg("category")
            .arg(category)
            .arg("brand")
            .arg(brand)
            .arg("price")
            .arg(price)
            .arg("popularity")
            .arg(0)
            .query_async(&mut con)
            .await
            .unwrap();
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.space.conn().await
    }

    /// Keys of this namespace (to check nothing was written).
    pub async fn keys(&self) -> Vec<String> {
        let mut con = self.conn().await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.space.ns.name()))
            .query_async(&mut con)
            .await
            .unwrap();
        keys.sort();
        keys
    }
}
