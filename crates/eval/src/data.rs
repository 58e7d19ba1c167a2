//! Interaction files and the in-memory dataset the evaluation works on.
//!
//! Format (docs/QUALITY.md): one row per purchased line, in JSONL, CSV or Parquet, with columns
//! for the user, the item, the time and, optionally, the basket and the quantity. Column names
//! are options (`--user-col` ...). Time follows the interaction import's rules
//! ([`redrec_ingest::events::time`]): a number (Unix seconds, milliseconds, microseconds or
//! nanoseconds, told apart by magnitude unless `--time-unit` says) or an ISO-8601 date /
//! date-time string (UTC without an offset). Rows of one user with the same basket id form one basket; without a basket column, rows
//! with the same timestamp do. Rows with a quantity `<= 0` (returns, voids) are skipped and
//! counted. A row without a user, item or time is an error naming the file, row and column.

use std::{collections::HashMap, path::Path};

use anyhow::{Context, Result, bail};
use redrec_ingest::{
    events::time,
    source::{Format, SourceItem, SourceRow, SourceSpec, Value},
};
use serde::Serialize;

/// Which columns hold what.
#[derive(Debug, Clone)]
pub struct Columns {
    pub user: String,
    pub item: String,
    pub time: String,
    pub basket: Option<String>,
    pub quantity: Option<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            user: "user_id".into(),
            item: "item_id".into(),
            time: "timestamp".into(),
            basket: Some("basket_id".into()),
            quantity: None,
        }
    }
}

pub use redrec_ingest::events::time::TimeUnit;

/// One basket: when it happened and which items it held (sorted, without duplicates).
#[derive(Debug, Clone, PartialEq)]
pub struct Basket {
    pub time: i64,
    pub items: Vec<u32>,
}

/// Users and items interned to dense indexes, each user's baskets in time order.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub users: Vec<String>,
    pub items: Vec<String>,
    pub histories: Vec<Vec<Basket>>,
}

/// Counts from reading an interaction file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadStats {
    pub rows: u64,
    /// Rows with a quantity <= 0.
    pub skipped_quantity: u64,
    pub users: usize,
    pub items: usize,
    pub baskets: usize,
}

/// Builds a [`Dataset`] row by row.
#[derive(Default)]
pub struct DatasetBuilder {
    users: HashMap<String, u32>,
    items: HashMap<String, u32>,
    user_names: Vec<String>,
    item_names: Vec<String>,
    /// Per user: basket key -> (earliest time, items).
    baskets: Vec<HashMap<BasketKey, (i64, Vec<u32>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum BasketKey {
    Id(String),
    Time(i64),
}

impl DatasetBuilder {
    /// Adds one purchased line. `basket` groups lines; without it, lines at the same time do.
    pub fn add(&mut self, user: &str, item: &str, time: i64, basket: Option<&str>) {
        let u = intern(&mut self.users, &mut self.user_names, user);
        if u as usize == self.baskets.len() {
            self.baskets.push(HashMap::new());
        }
        let i = intern(&mut self.items, &mut self.item_names, item);
        let key = basket.map_or(BasketKey::Time(time), |b| BasketKey::Id(b.to_owned()));
        let entry = self.baskets[u as usize]
            .entry(key)
            .or_insert((time, Vec::new()));
        entry.0 = entry.0.min(time);
        entry.1.push(i);
    }

    pub fn build(self) -> Dataset {
        let histories = self
            .baskets
            .into_iter()
            .map(|m| {
                let mut bs: Vec<Basket> = m
                    .into_values()
                    .map(|(time, mut items)| {
                        items.sort_unstable();
                        items.dedup();
                        Basket { time, items }
                    })
                    .collect();
                // Ties in time keep a stable order by content, so runs are reproducible.
                bs.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.items.cmp(&b.items)));
                bs
            })
            .collect();
        Dataset {
            users: self.user_names,
            items: self.item_names,
            histories,
        }
    }
}

fn intern(map: &mut HashMap<String, u32>, names: &mut Vec<String>, key: &str) -> u32 {
    if let Some(&i) = map.get(key) {
        return i;
    }
    let i = names.len() as u32;
    map.insert(key.to_owned(), i);
    names.push(key.to_owned());
    i
}

/// Reads an interaction file into a dataset.
pub fn read_interactions(
    path: &Path,
    format: Option<Format>,
    columns: &Columns,
    unit: TimeUnit,
) -> Result<(Dataset, ReadStats)> {
    let mut spec = SourceSpec::new(path).or_else(|e| match format {
        Some(f) => Ok(SourceSpec {
            path: path.to_path_buf(),
            format: f,
            ids: None,
            dims: None,
            id_column: "id".into(),
            vector_column: "embedding".into(),
        }),
        None => Err(e),
    })?;
    if let Some(f) = format {
        spec.format = f;
    }
    let mut builder = DatasetBuilder::default();
    let mut stats = ReadStats::default();
    let rows = spec
        .open()
        .with_context(|| format!("opening {}", path.display()))?;
    for item in rows {
        let row = match item.with_context(|| format!("reading {}", path.display()))? {
            SourceItem::Row(r) => r,
            SourceItem::Bad(reject) => bail!("{}: {reject:?}", path.display()),
        };
        stats.rows += 1;
        let at = |col: &str| format!("{} row {}: column `{col}`", path.display(), row.row);
        if let Some(q) = &columns.quantity {
            let quantity = number(&row, q).with_context(|| at(q))?;
            if quantity <= 0.0 {
                stats.skipped_quantity += 1;
                continue;
            }
        }
        let user = id(&row, &columns.user).with_context(|| at(&columns.user))?;
        let item_id = id(&row, &columns.item).with_context(|| at(&columns.item))?;
        let time = time(&row, &columns.time, unit).with_context(|| at(&columns.time))?;
        let basket = match &columns.basket {
            Some(b) => Some(id(&row, b).with_context(|| at(b))?),
            None => None,
        };
        builder.add(&user, &item_id, time, basket.as_deref());
    }
    let data = builder.build();
    stats.users = data.users.len();
    stats.items = data.items.len();
    stats.baskets = data.histories.iter().map(Vec::len).sum();
    Ok((data, stats))
}

fn get<'a>(row: &'a SourceRow, col: &str) -> Result<&'a Value> {
    match row.get(col) {
        None => bail!("missing"),
        Some(Value::Null) => bail!("null"),
        Some(v) => Ok(v),
    }
}

fn id(row: &SourceRow, col: &str) -> Result<String> {
    match get(row, col)? {
        Value::Str(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Value::Num(n) if n.fract() == 0.0 && *n >= 0.0 => Ok(format!("{}", *n as u64)),
        v => bail!(
            "expected an id (string or non-negative integer), got {}",
            v.kind()
        ),
    }
}

fn number(row: &SourceRow, col: &str) -> Result<f64> {
    match get(row, col)? {
        Value::Num(n) => Ok(*n),
        Value::Str(s) => s
            .trim()
            .parse()
            .with_context(|| format!("expected a number, got `{s}`")),
        v => bail!("expected a number, got {}", v.kind()),
    }
}

/// Unix seconds of a row's time (the interaction import's rules: numbers by `unit` or
/// magnitude, ISO-8601 dates and date-times, UTC without an offset).
fn time(row: &SourceRow, col: &str, unit: TimeUnit) -> Result<i64> {
    let ms = time::to_unix_ms_in(get(row, col)?, unit).map_err(anyhow::Error::msg)?;
    Ok(ms.div_euclid(1000))
}

/// Unix seconds of a date or date-time (`--cutoff`), by the interaction import's rules.
pub fn parse_datetime(s: &str) -> Result<i64> {
    let ms = time::parse_timestamp_ms(s).map_err(anyhow::Error::msg)?;
    Ok(ms.div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_are_read_in_seconds() {
        assert_eq!(parse_datetime("2017-12-01").unwrap(), 1_512_086_400);
        assert_eq!(
            parse_datetime("2017-12-01T01:02:03Z").unwrap(),
            1_512_086_400 + 3723
        );
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn groups_lines_into_sorted_baskets() {
        let mut b = DatasetBuilder::default();
        b.add("u1", "b", 20, Some("x"));
        b.add("u1", "a", 10, None);
        b.add("u1", "a", 21, Some("x"));
        b.add("u1", "b", 21, Some("x"));
        b.add("u2", "a", 5, None);
        let d = b.build();
        assert_eq!(d.users, ["u1", "u2"]);
        assert_eq!(d.items, ["b", "a"]);
        assert_eq!(
            d.histories[0],
            [
                Basket {
                    time: 10,
                    items: vec![1]
                },
                Basket {
                    time: 20,
                    items: vec![0, 1]
                }
            ]
        );
        assert_eq!(d.histories[1].len(), 1);
    }
}
