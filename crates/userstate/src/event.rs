//! User events as they arrive (`{"type":"click","user_id":"u1","item_id":"123"}`) and their
//! validation. Events are deserialised loosely (the type is a string, dwell a signed number) so
//! that a bad event in a batch is reported by its index and field, not by a serde position.

use std::{fmt, str::FromStr};

use redrec_core::keys::validate_id;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, UserStateConfig};

/// The event types redrec understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    View,
    Click,
    Dwell,
    CartAdd,
    Purchase,
    Skip,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::View,
        EventKind::Click,
        EventKind::Dwell,
        EventKind::CartAdd,
        EventKind::Purchase,
        EventKind::Skip,
    ];

    /// The wire name (`cart_add`, ...), also used in counter field names.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Click => "click",
            EventKind::Dwell => "dwell",
            EventKind::CartAdd => "cart_add",
            EventKind::Purchase => "purchase",
            EventKind::Skip => "skip",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown event type `{s}`, expected one of view, click, dwell, cart_add, purchase, skip"
                )
            })
    }
}

/// One event as submitted. `event_id` makes retries count once; `dwell_ms` is required for
/// `dwell` events and must not be negative. Ids may be JSON strings or non-negative integers
/// (catalogues with numeric product ids send `"item_id": 123`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// `view`, `click`, `dwell`, `cart_add`, `purchase` or `skip`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// A string, or a non-negative integer.
    #[serde(deserialize_with = "string_or_integer")]
    pub user_id: String,
    /// A string, or a non-negative integer.
    #[serde(deserialize_with = "string_or_integer")]
    pub item_id: String,
    /// Idempotency key: a retried event with the same id counts once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Dwell time for `dwell` events, in milliseconds (not negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dwell_ms: Option<i64>,
    /// The `rec_id` of the served list the item was picked from: clicks, cart adds and
    /// purchases are then attributed to that list (and its experiment variant). User state is
    /// updated the same with or without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rec_id: Option<String>,
    /// The item's 0-based position in that list, as the client showed it (needs `rec_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// When the event happened (unix ms). Not part of the wire format: the gateway applies
    /// events at its own clock; bulk imports set it from the file so decays see the real age.
    #[serde(skip)]
    pub at_ms: Option<i64>,
}

fn string_or_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    match Id::deserialize(d) {
        Ok(Id::Text(s)) => Ok(s),
        Ok(Id::Number(n)) => Ok(n.to_string()),
        Err(_) => Err(serde::de::Error::custom(
            "expected a string or a non-negative integer id",
        )),
    }
}

impl Event {
    pub fn new(kind: EventKind, user_id: &str, item_id: &str) -> Event {
        Event {
            event_type: kind.as_str().to_owned(),
            user_id: user_id.to_owned(),
            item_id: item_id.to_owned(),
            event_id: None,
            dwell_ms: None,
            rec_id: None,
            position: None,
            at_ms: None,
        }
    }

    /// Attributes the event to the served list `rec_id`, where the item was at `position`.
    pub fn from_list(mut self, rec_id: &str, position: Option<i64>) -> Event {
        self.rec_id = Some(rec_id.to_owned());
        self.position = position;
        self
    }

    pub fn with_event_id(mut self, event_id: &str) -> Event {
        self.event_id = Some(event_id.to_owned());
        self
    }

    pub fn with_dwell_ms(mut self, dwell_ms: i64) -> Event {
        self.dwell_ms = Some(dwell_ms);
        self
    }

    /// Applies the event as of `at_ms` (unix ms) instead of the batch's clock.
    pub fn at(mut self, at_ms: i64) -> Event {
        self.at_ms = Some(at_ms);
        self
    }
}

/// A validated event with its weight resolved from the config.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CheckedEvent<'a> {
    pub kind: EventKind,
    pub user_id: &'a str,
    pub item_id: &'a str,
    pub event_id: Option<&'a str>,
    pub weight: f64,
    /// Event time, when it is not the batch's clock.
    pub at_ms: Option<i64>,
}

/// Largest accepted `position` in a served list.
pub const MAX_POSITION: i64 = 9_999;

/// Latest accepted event time (unix ms, year 2100): a larger value is a unit mistake.
pub(crate) const MAX_EVENT_MS: i64 = 4_102_444_800_000;

/// Per-user key suffixes: a user id ending in one of them would name another user's key
/// (`{ns}:user:u1:cart` is both the cart of `u1` and the hash of a user `u1:cart`).
pub const RESERVED_SUFFIXES: [&str; 5] = [":session", ":seen", ":recent", ":cart", ":buys"];

/// Checks a user id: the core id rules, and no reserved per-user key suffix.
pub(crate) fn validate_user_id(id: &str) -> Result<(), String> {
    validate_id(id).map_err(|e| e.to_string())?;
    if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| id.ends_with(*s)) {
        return Err(format!(
            "invalid id `{id}`: must not end in `{suffix}` (reserved for per-user keys)"
        ));
    }
    Ok(())
}

fn invalid(index: usize, field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid {
        index,
        field,
        message: message.into(),
    }
}

/// Validates one event (everything except item existence, which only Redis knows).
pub(crate) fn check_event<'a>(
    index: usize,
    event: &'a Event,
    config: &UserStateConfig,
) -> Result<CheckedEvent<'a>> {
    let kind: EventKind = event
        .event_type
        .parse()
        .map_err(|m: String| invalid(index, "type", m))?;
    validate_user_id(&event.user_id).map_err(|m| invalid(index, "user_id", m))?;
    validate_id(&event.item_id).map_err(|e| invalid(index, "item_id", e.to_string()))?;
    if let Some(id) = &event.event_id {
        validate_id(id).map_err(|e| invalid(index, "event_id", e.to_string()))?;
    }
    if let Some(ms) = event.dwell_ms
        && ms < 0
    {
        return Err(invalid(
            index,
            "dwell_ms",
            format!("is {ms}, expected a non-negative number of milliseconds"),
        ));
    }
    if let Some(id) = &event.rec_id {
        validate_id(id).map_err(|e| invalid(index, "rec_id", e.to_string()))?;
    }
    if let Some(p) = event.position {
        if event.rec_id.is_none() {
            return Err(invalid(
                index,
                "position",
                "is a position in a served list: send it with that list's `rec_id`",
            ));
        }
        if !(0..=MAX_POSITION).contains(&p) {
            return Err(invalid(
                index,
                "position",
                format!("is {p}, expected a 0-based position 0..={MAX_POSITION}"),
            ));
        }
    }
    if let Some(at) = event.at_ms
        && !(0..=MAX_EVENT_MS).contains(&at)
    {
        return Err(invalid(
            index,
            "at_ms",
            format!("is {at}, expected unix milliseconds between 1970 and 2100"),
        ));
    }
    let w = &config.weights;
    let weight = match kind {
        EventKind::View => w.view,
        EventKind::Click => w.click,
        EventKind::CartAdd => w.cart_add,
        EventKind::Purchase => w.purchase,
        EventKind::Skip => w.skip,
        EventKind::Dwell => {
            let ms = event.dwell_ms.ok_or_else(|| {
                invalid(
                    index,
                    "dwell_ms",
                    "is required for `dwell` events (milliseconds, non-negative)",
                )
            })?;
            w.dwell * (ms.min(w.dwell_cap_ms as i64) as f64) / 1000.0
        }
    };
    Ok(CheckedEvent {
        kind,
        user_id: &event.user_id,
        item_id: &event.item_id,
        event_id: event.event_id.as_deref(),
        weight,
        at_ms: event.at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<f64> {
        let e: Event = serde_json::from_str(json).unwrap();
        check_event(3, &e, &UserStateConfig::default()).map(|c| c.weight)
    }

    fn err(json: &str) -> String {
        check(json).unwrap_err().to_string()
    }

    #[test]
    fn resolves_weights() {
        assert_eq!(
            check(r#"{"type":"click","user_id":"u1","item_id":"123"}"#).unwrap(),
            1.0
        );
        assert_eq!(
            check(r#"{"type":"dwell","user_id":"u1","item_id":"1","dwell_ms":5000}"#).unwrap(),
            0.5
        );
        // capped at 60 s
        assert_eq!(
            check(r#"{"type":"dwell","user_id":"u1","item_id":"1","dwell_ms":600000}"#).unwrap(),
            6.0
        );
        assert_eq!(
            check(r#"{"type":"skip","user_id":"u1","item_id":"1"}"#).unwrap(),
            -0.5
        );
    }

    #[test]
    fn names_index_and_field_of_bad_events() {
        let e = err(r#"{"type":"like","user_id":"u1","item_id":"1"}"#);
        assert!(
            e.starts_with("event 3: field `type`: unknown event type `like`"),
            "{e}"
        );
        let e = err(r#"{"type":"dwell","user_id":"u1","item_id":"1","dwell_ms":-5}"#);
        assert!(e.contains("`dwell_ms`: is -5"), "{e}");
        let e = err(r#"{"type":"dwell","user_id":"u1","item_id":"1"}"#);
        assert!(e.contains("`dwell_ms`: is required"), "{e}");
        let e = err(r#"{"type":"view","user_id":"u 1","item_id":"1"}"#);
        assert!(e.contains("`user_id`"), "{e}");
        let e = err(r#"{"type":"view","user_id":"u1:cart","item_id":"1"}"#);
        assert!(e.contains("`user_id`") && e.contains("reserved"), "{e}");
        let e = err(r#"{"type":"view","user_id":"u1","item_id":""}"#);
        assert!(e.contains("`item_id`"), "{e}");
        let e = err(r#"{"type":"view","user_id":"u1","item_id":"1","event_id":"a{b}"}"#);
        assert!(e.contains("`event_id`"), "{e}");
        let e = err(r#"{"type":"click","user_id":"u1","item_id":"1","rec_id":"r 1"}"#);
        assert!(e.contains("`rec_id`"), "{e}");
        let e = err(r#"{"type":"click","user_id":"u1","item_id":"1","position":2}"#);
        assert!(e.contains("`position`") && e.contains("rec_id"), "{e}");
        let e = err(r#"{"type":"click","user_id":"u1","item_id":"1","rec_id":"r1","position":-1}"#);
        assert!(e.contains("`position`: is -1"), "{e}");
        check(r#"{"type":"click","user_id":"u1","item_id":"1","rec_id":"r1","position":3}"#)
            .unwrap();
    }

    #[test]
    fn parses_the_documented_batch() {
        // the batch shown in docs/USER_STATE.md
        let batch: Vec<Event> = serde_json::from_str(
            r#"[{"type":"view","user_id":"u1","item_id":"123"},
                {"type":"dwell","user_id":"u1","item_id":"123","dwell_ms":8000},
                {"type":"cart_add","user_id":"u1","item_id":"456","event_id":"9b2e-0002"},
                {"type":"click","user_id":"u1","item_id":"123","event_id":"9b2e-0001"}]"#,
        )
        .unwrap();
        let config = UserStateConfig::default();
        let weights: Vec<f64> = batch
            .iter()
            .enumerate()
            .map(|(i, e)| check_event(i, e, &config).unwrap().weight)
            .collect();
        assert_eq!(weights, [0.25, 0.8, 3.0, 1.0]);
        assert_eq!(batch[3].event_id.as_deref(), Some("9b2e-0001"));
    }

    #[test]
    fn accepts_integer_ids() {
        let e: Event =
            serde_json::from_str(r#"{"type":"view","user_id":7,"item_id":123}"#).unwrap();
        assert_eq!((e.user_id.as_str(), e.item_id.as_str()), ("7", "123"));
        let err = serde_json::from_str::<Event>(r#"{"type":"view","user_id":"u","item_id":-1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a string or a non-negative integer id"),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_json_fields() {
        let e = serde_json::from_str::<Event>(
            r#"{"type":"view","user_id":"u","item_id":"1","dwel":3}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `dwel`"), "{e}");
    }
}
