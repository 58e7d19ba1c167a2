//! Settings of the feature store: event weights, EMA rates, decay, TTLs and caps. A plain serde
//! struct with defaults; binaries load it with figment and hand it to [`crate::UserStateStore::new`].

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How much each event type counts. The weight scales the affinity increment, the EMA step of
/// the session and long-term vectors (an event of weight `w` moves them like `|w|` steps of
/// `alpha`) and the item's popularity delta (negative weights add no popularity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventWeights {
    pub view: f64,
    pub click: f64,
    /// Weight per second of dwell; a dwell event weighs `dwell * min(dwell_ms, dwell_cap_ms) / 1000`.
    pub dwell: f64,
    /// Dwell beyond this many milliseconds adds nothing.
    pub dwell_cap_ms: u64,
    pub cart_add: f64,
    pub purchase: f64,
    /// A negative signal: lowers affinities and pushes the vectors away from the item.
    pub skip: f64,
}

impl Default for EventWeights {
    fn default() -> Self {
        EventWeights {
            view: 0.25,
            click: 1.0,
            dwell: 0.1,
            dwell_cap_ms: 60_000,
            cart_add: 3.0,
            purchase: 5.0,
            skip: -0.5,
        }
    }
}

/// When an applied event batch counts as acknowledged (the `202` of `POST /v1/events`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// Once applied in Redis memory: lost if Redis dies before its next append-only fsync.
    #[default]
    Memory,
    /// Once the primary's append-only file is fsynced (`WAITAOF 1 0`): survives a crash of the
    /// Redis process or the machine. Needs `appendonly yes` on the server.
    Aof,
    /// Once at least one replica has it (`WAIT 1`): survives the loss of the primary.
    Replica,
}

/// Settings of the feature store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserStateConfig {
    pub weights: EventWeights,
    /// EMA rate of the session vector per unit of event weight (0 < alpha <= 1).
    pub session_alpha: f64,
    /// EMA rate of the long-term vector per unit of event weight; slower than the session's.
    pub long_term_alpha: f64,
    /// Half-life of category and brand affinities.
    pub affinity_half_life_ms: u64,
    /// Session state (session vector, session counters) expires this long after the last event.
    pub session_ttl_ms: u64,
    /// At most this many items are kept in the seen set (oldest dropped first).
    pub seen_cap: usize,
    /// Items older than this drop out of the seen set; the set itself expires after this idle time.
    pub seen_ttl_ms: u64,
    /// Length of the recent-interactions list.
    pub recent_cap: usize,
    /// The cart expires this long after the last `cart_add`.
    pub cart_ttl_ms: u64,
    /// Largest accepted batch.
    pub max_batch: usize,
    /// How long an `event_id` is remembered for deduplication.
    pub idempotency_ttl_ms: u64,
    /// Half-life of the purchase-history counts (`{ns}:user:{id}:buys`): a purchase this old
    /// counts half as much as one made now.
    pub history_half_life_ms: u64,
    /// Items kept in a user's purchase history (the least-bought are dropped first).
    pub history_cap: usize,
    /// Items of the purchase history read with the user's features (largest counts first).
    pub history_read: usize,
    /// When an applied batch is acknowledged: `memory` (default), `aof` or `replica`.
    pub ack: AckMode,
    /// How long `aof` / `replica` acknowledgement waits before the batch is reported as applied
    /// but not confirmed durable.
    pub ack_timeout_ms: u64,
    /// EMA rate of the session vector in the collaborative space (the items' `cf_vector`,
    /// [`redrec_core::schema::ItemFields::cf_vector`]) per unit of event weight.
    pub cf_session_alpha: f64,
    /// The same for the long-term collaborative vector.
    pub cf_long_term_alpha: f64,
}

impl Default for UserStateConfig {
    fn default() -> Self {
        UserStateConfig {
            weights: EventWeights::default(),
            session_alpha: 0.3,
            long_term_alpha: 0.05,
            affinity_half_life_ms: 7 * 24 * 3600 * 1000,
            session_ttl_ms: 30 * 60 * 1000,
            seen_cap: 500,
            seen_ttl_ms: 7 * 24 * 3600 * 1000,
            recent_cap: 50,
            cart_ttl_ms: 7 * 24 * 3600 * 1000,
            max_batch: 100,
            idempotency_ttl_ms: 24 * 3600 * 1000,
            history_half_life_ms: 90 * 24 * 3600 * 1000,
            history_cap: 300,
            history_read: 100,
            ack: AckMode::Memory,
            ack_timeout_ms: 1_000,
            cf_session_alpha: 0.3,
            cf_long_term_alpha: 0.05,
        }
    }
}

fn check(ok: bool, field: &'static str, message: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field,
            message: message.to_owned(),
        })
    }
}

impl UserStateConfig {
    /// Checks every value is in range; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let w = &self.weights;
        for (field, value) in [
            ("weights.view", w.view),
            ("weights.click", w.click),
            ("weights.dwell", w.dwell),
            ("weights.cart_add", w.cart_add),
            ("weights.purchase", w.purchase),
            ("weights.skip", w.skip),
        ] {
            check(
                value.is_finite() && value.abs() <= 1e6,
                field,
                "expected a finite number with magnitude at most 1e6",
            )?;
        }
        for (field, value) in [
            ("session_alpha", self.session_alpha),
            ("long_term_alpha", self.long_term_alpha),
            ("cf_session_alpha", self.cf_session_alpha),
            ("cf_long_term_alpha", self.cf_long_term_alpha),
        ] {
            check(
                value > 0.0 && value <= 1.0,
                field,
                "expected a number in (0, 1]",
            )?;
        }
        for (field, value) in [
            ("affinity_half_life_ms", self.affinity_half_life_ms),
            ("session_ttl_ms", self.session_ttl_ms),
            ("seen_ttl_ms", self.seen_ttl_ms),
            ("cart_ttl_ms", self.cart_ttl_ms),
            ("idempotency_ttl_ms", self.idempotency_ttl_ms),
            ("history_half_life_ms", self.history_half_life_ms),
            ("ack_timeout_ms", self.ack_timeout_ms),
        ] {
            check(
                value > 0,
                field,
                "expected a positive number of milliseconds",
            )?;
        }
        for (field, value) in [
            ("seen_cap", self.seen_cap),
            ("recent_cap", self.recent_cap),
            ("max_batch", self.max_batch),
            ("history_cap", self.history_cap),
            ("history_read", self.history_read),
        ] {
            check(
                value > 0 && value <= 100_000,
                field,
                "expected a count in 1..=100000",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        UserStateConfig::default().validate().unwrap();
        let c = UserStateConfig {
            session_alpha: 0.0,
            ..UserStateConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("session_alpha"), "{err}");
        let mut c = UserStateConfig::default();
        c.weights.skip = f64::NAN;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("weights.skip"), "{err}");
        let c = UserStateConfig {
            max_batch: 0,
            ..UserStateConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("max_batch"));
    }
}
