//! Shared fixtures: a store over a fresh test namespace and a few items with known vectors.

use redrec_core::{schema::ItemFields, vector};
use redrec_testkit::TestSpace;
use redrec_userstate::{UserStateConfig, UserStateStore};

/// Start of the injected clock (2026-01-01T00:00:00Z).
pub const T0: i64 = 1_767_225_600_000;

pub const DIMS: usize = 8;

pub struct Fixture {
    pub space: TestSpace,
    pub store: UserStateStore,
}

/// A unit vector along axis `axis`.
pub fn axis(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    v[axis] = 1.0;
    v
}

impl Fixture {
    pub async fn new(label: &str, config: UserStateConfig) -> Fixture {
        let space = TestSpace::new(label);
        let store = UserStateStore::new(space.ns.clone(), ItemFields::default(), config).unwrap();
        let fixture = Fixture { space, store };
        let mut con = fixture.conn().await;
        fixture.store.ensure_loaded(&mut con).await.unwrap();
        fixture
    }

    /// Writes an item hash with the default field names.
    pub async fn item(&self, id: &str, vec: &[f32], category: &str, brand: &str, price: f64) {
        let mut con = self.conn().await;
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

    /// A new connection (its own socket). The response timeout is generous because other
    /// suites share this Redis and may block it for a while (index builds, bulk loads).
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        self.space
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("async connection to redis under test")
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
