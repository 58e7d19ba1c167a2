//! A small synthetic catalog for gateway tests, loaded into a [`TestSpace`]: the default item
//! schema (index `{ns}:items:v1` behind the alias `{ns}:items`) and items in a few categories
//! whose vectors cluster by category, so "more of category X" is measurable.
//!
//! Shared with the workspace e2e tests (`tests/e2e`) through `#[path]`.

#![allow(dead_code)]

use redrec_core::{
    config::{IndexConfig, RedisConfig},
    schema::{ItemFields, VectorSettings, items_schema},
    vector,
};
use redrec_testkit::TestSpace;

/// Departments and categories of the synthetic catalog, with a product word per category.
pub const CATEGORIES: &[(&str, &str, &str)] = &[
    ("GROCERY", "DAIRY", "milk"),
    ("GROCERY", "BAKERY", "bread"),
    ("PRODUCE", "FRUIT", "apple"),
    ("DRUG GM", "SHAMPOO", "shampoo"),
];

/// One synthetic item.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub department: String,
    pub category: String,
    pub text: String,
    pub price: f64,
    pub popularity: f64,
    pub vector: Vec<f32>,
}

/// Deterministic pseudo-random numbers in [0, 1).
fn unit(seed: u64) -> f32 {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 40) as f32 / (1u64 << 24) as f32
}

/// `per_category` items per category with `dims`-dimensional vectors: category `c` points
/// mostly along axis `c`, plus noise.
pub fn catalog(per_category: usize, dims: usize) -> Vec<Item> {
    assert!(dims >= CATEGORIES.len(), "dims must cover the categories");
    let mut items = Vec::new();
    for (c, (dept, cat, word)) in CATEGORIES.iter().enumerate() {
        for i in 0..per_category {
            let seed = (c * 1000 + i) as u64;
            let mut v: Vec<f32> = (0..dims)
                .map(|d| 0.35 * unit(seed * 97 + d as u64))
                .collect();
            v[c] += 1.0;
            vector::normalize(&mut v).unwrap();
            items.push(Item {
                id: format!("{}-{i}", word),
                department: (*dept).to_owned(),
                category: (*cat).to_owned(),
                text: format!("{word} {cat} item number {i}").to_lowercase(),
                price: 1.0 + (i % 10) as f64,
                popularity: (per_category - i) as f64,
                vector: v,
            });
        }
    }
    items
}

/// Index config of a test space with `dims`-dimensional vectors (HNSW, the default algorithm:
/// at these sizes its results are exact).
pub fn index_config(space: &TestSpace, dims: usize) -> IndexConfig {
    IndexConfig {
        namespace: space.ns.name().to_owned(),
        vector: VectorSettings {
            dims,
            ..VectorSettings::default()
        },
        ..IndexConfig::default()
    }
}

pub fn redis_config() -> RedisConfig {
    RedisConfig {
        url: redrec_testkit::redis_url(),
        pool_size: 8,
        command_timeout_ms: 5000,
        connect_timeout_ms: 1000,
        tls_ca_file: None,
        ..RedisConfig::default()
    }
}

/// A connection with a long response timeout: the shared test Redis can be busy indexing.
pub async fn conn(space: &TestSpace) -> redis::aio::MultiplexedConnection {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(30)));
    space
        .client()
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .expect("async connection to redis under test")
}

/// Creates the index and alias of `space` and writes `items` (hashes under the item prefix).
pub async fn load(space: &TestSpace, cfg: &IndexConfig, items: &[Item]) {
    create_index(space, cfg).await;
    write_items(space, items).await;
    wait_indexed(space, items.len()).await;
}

/// Creates the index `{ns}:items:v1` over the item prefix and points the alias at it. Over keys
/// that already exist, RediSearch indexes them in the background.
pub async fn create_index(space: &TestSpace, cfg: &IndexConfig) {
    let mut con = conn(space).await;
    let fields = ItemFields::default();
    let schema = items_schema(
        &space.ns.index(1),
        &space.ns.item_prefix(),
        &fields,
        &cfg.vector,
    );
    let () = schema
        .ft_create_cmd()
        .query_async(&mut con)
        .await
        .expect("FT.CREATE");
    let () = redis::cmd("FT.ALIASADD")
        .arg(space.ns.alias())
        .arg(space.ns.index(1))
        .query_async(&mut con)
        .await
        .expect("FT.ALIASADD");
}

/// Writes `items` as hashes under the item prefix (no index needed).
pub async fn write_items(space: &TestSpace, items: &[Item]) {
    let mut con = conn(space).await;
    let fields = ItemFields::default();
    let mut pipe = redis::pipe();
    for it in items {
        pipe.cmd("HSET")
            .arg(space.ns.item(&it.id))
            .arg(&fields.text)
            .arg(&it.text)
            .arg(&fields.department)
            .arg(&it.department)
            .arg(&fields.category)
            .arg(&it.category)
            .arg(&fields.brand)
            .arg("acme")
            .arg(&fields.price)
            .arg(it.price)
            .arg(&fields.popularity)
            .arg(it.popularity)
            .arg(&fields.in_stock)
            .arg("true")
            .arg(&fields.vector)
            .arg(vector::encode(&it.vector))
            .ignore();
    }
    if !items.is_empty() {
        let () = pipe.query_async(&mut con).await.expect("HSET items");
    }
}

/// Waits until the alias reports `n` documents and its initial scan is complete
/// (`percent_indexed` 1: with other tests writing keys at the same time, the scan of the
/// keyspace that `FT.CREATE` starts can still be running after the documents are in).
pub async fn wait_indexed(space: &TestSpace, n: usize) {
    let mut con = conn(space).await;
    for _ in 0..200 {
        let info: Vec<redis::Value> = redis::cmd("FT.INFO")
            .arg(space.ns.alias())
            .query_async(&mut con)
            .await
            .expect("FT.INFO");
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::Int(i) => i.to_string(),
            redis::Value::Double(d) => d.to_string(),
            _ => String::new(),
        };
        let docs = info
            .chunks(2)
            .find(|kv| text(&kv[0]) == "num_docs")
            .and_then(|kv| kv.get(1).map(text))
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0) as usize;
        let built = info
            .chunks(2)
            .find(|kv| text(&kv[0]) == "percent_indexed")
            .and_then(|kv| kv.get(1).map(text))
            .and_then(|t| t.parse::<f64>().ok())
            .is_none_or(|p| p >= 1.0);
        if docs >= n && built {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("index of {} did not reach {n} documents", space.ns.name());
}

/// Product names per (department, category) for catalogs embedded with a real text model.
pub const PRODUCTS: &[(&str, &str, &[&str])] = &[
    (
        "GROCERY",
        "DAIRY",
        &[
            "whole milk gallon",
            "reduced fat milk",
            "cheddar cheese block",
            "greek yogurt",
            "salted butter",
            "cottage cheese",
            "string cheese snack",
            "heavy whipping cream",
        ],
    ),
    (
        "GROCERY",
        "BAKERY",
        &[
            "white sandwich bread",
            "plain bagels",
            "butter croissants",
            "whole wheat bread",
            "blueberry muffins",
            "hamburger buns",
            "sourdough loaf",
            "cinnamon rolls",
        ],
    ),
    (
        "PRODUCE",
        "FRUIT",
        &[
            "bananas",
            "red delicious apples",
            "fresh strawberries",
            "navel oranges",
            "seedless grapes",
            "blueberries pint",
            "ripe pears",
            "lemons",
        ],
    ),
    (
        "PRODUCE",
        "VEGETABLES",
        &[
            "baby carrots",
            "iceberg lettuce",
            "russet potatoes",
            "yellow onions",
            "broccoli crowns",
            "cucumbers",
            "roma tomatoes",
            "green bell peppers",
        ],
    ),
    (
        "DRUG GM",
        "SHAMPOO",
        &[
            "moisturizing shampoo",
            "anti dandruff shampoo",
            "volumizing conditioner",
            "kids tear free shampoo",
            "dry shampoo spray",
            "argan oil shampoo",
            "2 in 1 shampoo conditioner",
            "clarifying shampoo",
        ],
    ),
    (
        "DRUG GM",
        "VITAMINS",
        &[
            "multivitamin tablets",
            "vitamin c gummies",
            "vitamin d3 softgels",
            "fish oil omega 3",
            "calcium with vitamin d",
            "b complex vitamins",
            "zinc lozenges",
            "probiotic capsules",
        ],
    ),
];

/// The [`PRODUCTS`] catalog with vectors from `embedder` (one batch), popularity descending
/// within a category and prices 1..8.
pub fn text_catalog(embedder: &dyn redrec_embedder::Embedder) -> Vec<Item> {
    let mut items = Vec::new();
    for (dept, cat, names) in PRODUCTS {
        for (i, name) in names.iter().enumerate() {
            items.push(Item {
                id: format!("{}-{i}", cat.to_lowercase()),
                department: (*dept).to_owned(),
                category: (*cat).to_owned(),
                text: (*name).to_owned(),
                price: 1.0 + i as f64,
                popularity: (names.len() - i) as f64,
                vector: Vec::new(),
            });
        }
    }
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    let vectors = embedder.embed(&texts).expect("embed the test catalog");
    for (item, v) in items.iter_mut().zip(vectors) {
        item.vector = v;
    }
    items
}
