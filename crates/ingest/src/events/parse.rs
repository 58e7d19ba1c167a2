//! One row of an interaction file to one event: column mapping, per-field checks that name the
//! file, row and column, and the deterministic event id that makes a re-import idempotent.

use redrec_userstate::{Event, EventKind, UserStateStore};
use serde::{Deserialize, Serialize};

use crate::{
    source::{SourceRow, Value},
    validate::Reject,
};

/// Which column holds what. A row needs a user, an item, a timestamp, and a `type` or a
/// positive `quantity` (a purchase: transaction files have no event type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventColumns {
    pub user: String,
    pub item: String,
    pub timestamp: String,
    /// Event type (`view`, `click`, `dwell`, `cart_add`, `purchase`, `skip`).
    pub event_type: String,
    /// Purchased quantity; a row with a quantity and no type is a purchase.
    pub quantity: String,
    /// Optional idempotency key; derived from the row's content when absent.
    pub event_id: String,
    /// Optional basket / order id: part of the derived event id, so the same item bought in two
    /// baskets at the same second stays two events.
    pub basket: String,
    /// Dwell time in ms, for `dwell` rows.
    pub dwell_ms: String,
}

impl Default for EventColumns {
    fn default() -> Self {
        EventColumns {
            user: "user_id".into(),
            item: "item_id".into(),
            timestamp: "timestamp".into(),
            event_type: "type".into(),
            quantity: "quantity".into(),
            event_id: "event_id".into(),
            basket: "basket_id".into(),
            dwell_ms: "dwell_ms".into(),
        }
    }
}

/// A valid row, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent {
    pub event: Event,
    pub at_ms: i64,
    /// Position in the file, to keep the file's order among events of the same millisecond.
    pub row: u64,
}

/// FNV-1a, 64 bit: a stable fingerprint for derived event ids (not a security boundary).
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0x1f]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The event id of a row without one: a hash of user, item, time, type and basket, so the
/// same file imported twice (or resumed) applies each event once.
pub fn derived_event_id(
    user: &str,
    item: &str,
    at_ms: i64,
    kind: EventKind,
    basket: &str,
) -> String {
    format!(
        "imp-{:016x}",
        fnv(&[user, item, &at_ms.to_string(), kind.as_str(), basket])
    )
}

fn id_text(v: Option<&Value>) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Num(n)) if n.fract() == 0.0 && *n >= 0.0 && *n < 9.0e15 => {
            Ok(Some(format!("{}", *n as u64)))
        }
        Some(other) => Err(format!(
            "expected a string or a non-negative integer id, got {}",
            other.kind()
        )),
    }
}

fn number(v: Option<&Value>) -> Result<Option<f64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Num(n)) if n.is_finite() => Ok(Some(*n)),
        Some(Value::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::Str(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| format!("expected a number, got `{s}`")),
        Some(other) => Err(format!("expected a number, got {}", other.kind())),
    }
}

/// Parses and validates one row; every problem is reported with its column.
pub fn parse_row(
    row: &SourceRow,
    cols: &EventColumns,
    store: &UserStateStore,
    file: &str,
) -> Result<ParsedEvent, Vec<Reject>> {
    let mut rejects = Vec::new();
    let mut reject = |field: &str, message: String| {
        rejects.push(Reject {
            file: file.to_owned(),
            row: row.row,
            field: field.to_owned(),
            message,
        })
    };
    let mut required_id = |col: &str| match id_text(row.get(col)) {
        Ok(Some(id)) => Some(id),
        Ok(None) => {
            reject(col, "is required".into());
            None
        }
        Err(m) => {
            reject(col, m);
            None
        }
    };
    let user = required_id(&cols.user);
    let item = required_id(&cols.item);
    let at_ms = match row.get(&cols.timestamp) {
        None | Some(Value::Null) => {
            reject(&cols.timestamp, "is required".into());
            None
        }
        Some(v) => match super::time::to_unix_ms(v) {
            Ok(t) => Some(t),
            Err(m) => {
                reject(&cols.timestamp, m);
                None
            }
        },
    };
    let kind = match id_text(row.get(&cols.event_type)) {
        Ok(Some(t)) => match t.parse::<EventKind>() {
            Ok(k) => Some(k),
            Err(m) => {
                reject(&cols.event_type, m);
                None
            }
        },
        Err(m) => {
            reject(&cols.event_type, m);
            None
        }
        Ok(None) => match number(row.get(&cols.quantity)) {
            Ok(Some(q)) if q > 0.0 => Some(EventKind::Purchase),
            Ok(Some(q)) => {
                reject(
                    &cols.quantity,
                    format!(
                        "is {q}: a row without `{}` is a purchase and needs a quantity > 0 (returns are not imported)",
                        cols.event_type
                    ),
                );
                None
            }
            Ok(None) => {
                reject(
                    &cols.event_type,
                    format!(
                        "is required (or a positive `{}` for a purchase)",
                        cols.quantity
                    ),
                );
                None
            }
            Err(m) => {
                reject(&cols.quantity, m);
                None
            }
        },
    };
    let event_id = match id_text(row.get(&cols.event_id)) {
        Ok(id) => id,
        Err(m) => {
            reject(&cols.event_id, m);
            None
        }
    };
    let basket = match id_text(row.get(&cols.basket)) {
        Ok(b) => b.unwrap_or_default(),
        Err(m) => {
            reject(&cols.basket, m);
            String::new()
        }
    };
    let dwell = match number(row.get(&cols.dwell_ms)) {
        Ok(d) => d,
        Err(m) => {
            reject(&cols.dwell_ms, m);
            None
        }
    };
    let (Some(user), Some(item), Some(at_ms), Some(kind)) = (user, item, at_ms, kind) else {
        return Err(rejects);
    };
    if !rejects.is_empty() {
        return Err(rejects);
    }
    let event_id = event_id.unwrap_or_else(|| derived_event_id(&user, &item, at_ms, kind, &basket));
    let mut event = Event::new(kind, &user, &item)
        .with_event_id(&event_id)
        .at(at_ms);
    if let Some(d) = dwell {
        event = event.with_dwell_ms(d.round() as i64);
    }
    // the feature store's own rules (ids, dwell, time range), mapped back to the columns
    if let Err(e) = store.check(0, &event) {
        let field = match &e {
            redrec_userstate::Error::Invalid { field, .. } => match *field {
                "user_id" => cols.user.as_str(),
                "item_id" => cols.item.as_str(),
                "event_id" => cols.event_id.as_str(),
                "dwell_ms" => cols.dwell_ms.as_str(),
                "at_ms" => cols.timestamp.as_str(),
                "type" => cols.event_type.as_str(),
                other => other,
            },
            _ => "-",
        };
        let message = match e {
            redrec_userstate::Error::Invalid { message, .. } => message,
            other => other.to_string(),
        };
        return Err(vec![Reject {
            file: file.to_owned(),
            row: row.row,
            field: field.to_owned(),
            message,
        }]);
    }
    Ok(ParsedEvent {
        event,
        at_ms,
        row: row.row,
    })
}

#[cfg(test)]
mod tests {
    use redrec_core::{keys::Namespace, schema::ItemFields};
    use redrec_userstate::UserStateConfig;

    use super::*;

    fn store() -> UserStateStore {
        UserStateStore::new(
            Namespace::default(),
            ItemFields::default(),
            UserStateConfig::default(),
        )
        .unwrap()
    }

    fn row(cols: &[(&str, Value)]) -> SourceRow {
        SourceRow {
            row: 7,
            columns: cols
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn a_transaction_row_is_a_purchase_with_a_derived_id() {
        let cols = EventColumns {
            user: "household_id".into(),
            item: "product_id".into(),
            timestamp: "transaction_timestamp".into(),
            ..EventColumns::default()
        };
        let r = row(&[
            ("household_id", Value::Num(42.0)),
            ("product_id", Value::Num(1_004_906.0)),
            ("transaction_timestamp", s("2017-01-01 13:05:09")),
            ("quantity", Value::Num(2.0)),
            ("basket_id", s("31198459635")),
        ]);
        let e = parse_row(&r, &cols, &store(), "t.parquet").unwrap();
        assert_eq!(e.event.event_type, "purchase");
        assert_eq!(
            (e.event.user_id.as_str(), e.event.item_id.as_str()),
            ("42", "1004906")
        );
        assert_eq!(e.at_ms, 1_483_275_909_000);
        assert_eq!(e.event.at_ms, Some(e.at_ms));
        let id = e.event.event_id.clone().unwrap();
        assert!(id.starts_with("imp-") && id.len() == 20, "{id}");
        // deterministic, and the basket is part of it
        assert_eq!(
            parse_row(&r, &cols, &store(), "t.parquet")
                .unwrap()
                .event
                .event_id,
            Some(id.clone())
        );
        let other_basket = row(&[
            ("household_id", Value::Num(42.0)),
            ("product_id", Value::Num(1_004_906.0)),
            ("transaction_timestamp", s("2017-01-01 13:05:09")),
            ("quantity", Value::Num(1.0)),
            ("basket_id", s("1")),
        ]);
        assert_ne!(
            parse_row(&other_basket, &cols, &store(), "t")
                .unwrap()
                .event
                .event_id,
            Some(id)
        );
    }

    #[test]
    fn rejects_name_the_column() {
        let cols = EventColumns::default();
        let err = |r: SourceRow| {
            parse_row(&r, &cols, &store(), "e.jsonl")
                .unwrap_err()
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let e = err(row(&[
            ("item_id", s("1")),
            ("timestamp", s("2017-01-01")),
            ("type", s("view")),
        ]));
        assert_eq!(e, "e.jsonl row 7: field `user_id`: is required");
        let e = err(row(&[
            ("user_id", s("u1")),
            ("item_id", s("1")),
            ("timestamp", s("soon")),
            ("type", s("like")),
        ]));
        assert!(e.contains("field `timestamp`: timestamp `soon`"), "{e}");
        assert!(e.contains("field `type`: unknown event type `like`"), "{e}");
        let e = err(row(&[
            ("user_id", s("u1")),
            ("item_id", s("1")),
            ("timestamp", Value::Num(1.5e9)),
            ("quantity", Value::Num(0.0)),
        ]));
        assert!(e.contains("field `quantity`: is 0"), "{e}");
        let e = err(row(&[
            ("user_id", s("u 1")),
            ("item_id", s("1")),
            ("timestamp", Value::Num(1.5e9)),
            ("type", s("click")),
        ]));
        assert!(
            e.starts_with("e.jsonl row 7: field `user_id`: invalid id `u 1`"),
            "{e}"
        );
        let e = err(row(&[
            ("user_id", s("u1")),
            ("item_id", s("1")),
            ("timestamp", Value::Num(1.5e9)),
            ("type", s("dwell")),
        ]));
        assert!(e.contains("field `dwell_ms`: is required"), "{e}");
    }
}
