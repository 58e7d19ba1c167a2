//! Per-user features as the request path sees them: read from Redis by redrec-userstate, decay
//! already applied, handed to the retriever (query vectors, seen set) and the reranker (affinities,
//! price band, cart, recent categories) as plain data.
//!
//! The Redis layout of these features is documented in docs/USER_STATE.md; extend additively.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Running statistics of the prices a user carted or bought.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriceBand {
    pub mean: f64,
    pub std_dev: f64,
    /// Number of observations behind mean and std_dev.
    pub count: u64,
}

/// One recent interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub item_id: String,
    /// Event type name (`click`, `purchase`, ...).
    pub event: String,
    pub category: Option<String>,
    pub at_ms: i64,
}

/// One item of the user's purchase history with its time-decayed purchase count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseFrequency {
    pub item_id: String,
    /// Purchases of this item, each worth `2^(-age / history_half_life)` at the time of reading.
    pub score: f64,
    /// The same sum with ages taken at the user's latest event instead of the time of reading:
    /// how strong a staple the item is, which does not fade while the user is away (so "bought
    /// about weekly" reads the same whenever the user comes back). 0 when unknown.
    #[serde(default)]
    pub count: f64,
}

/// Everything the request path knows about a user. `Default` is the cold-start user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserFeatures {
    pub user_id: String,
    /// False when nothing is stored for this user (cold start).
    pub known: bool,
    /// Normalised EMA of recently interacted item vectors (session scope, expires).
    pub session_vector: Option<Vec<f32>>,
    /// Normalised slow EMA of interacted item vectors (kept long-term).
    pub long_term_vector: Option<Vec<f32>>,
    /// Session vector in the collaborative space (EMA of the items' `cf_vector`); `None` when
    /// the session touched no item that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cf_session_vector: Option<Vec<f32>>,
    /// Long-term vector in the collaborative space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cf_long_term_vector: Option<Vec<f32>>,
    /// Time of the user's latest event (unix ms), `None` for cold start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_ms: Option<i64>,
    /// Category affinity, time-decayed to the moment of reading.
    pub category_affinity: BTreeMap<String, f64>,
    /// Brand affinity, time-decayed to the moment of reading.
    pub brand_affinity: BTreeMap<String, f64>,
    pub price_band: Option<PriceBand>,
    /// Items currently in the cart.
    pub cart: BTreeSet<String>,
    /// Most recent interactions, newest first.
    pub recent: Vec<Interaction>,
    /// Items the user has seen (for seen-exclusion).
    pub seen: BTreeSet<String>,
    /// Event counters by event type.
    pub counters: BTreeMap<String, u64>,
    /// The items the user bought most, by time-decayed purchase count, largest first (at most
    /// `history_read` of them). Empty for users without purchases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purchases: Vec<PurchaseFrequency>,
}

impl UserFeatures {
    /// The largest finite purchase score (0 without purchases): the scale that turns scores
    /// into `(0, 1]` for both the history candidate source and the purchase-frequency feature.
    pub fn top_purchase_score(&self) -> f64 {
        self.purchases
            .iter()
            .map(|p| p.score)
            .filter(|s| s.is_finite())
            .fold(0.0, f64::max)
    }
}
