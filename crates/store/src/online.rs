//! Online evaluation records: served lists (impressions) under `{ns}:rec:{rec_id}` with a TTL
//! (the attribution window), the feedback each list has had (`{ns}:rec:{rec_id}:fb`), and per
//! experiment variant a counter hash (`{ns}:exp:{name}:{variant}`) plus a HyperLogLog of the
//! distinct items it served. Counters live in Redis so every gateway adds to, and reads, the
//! same figures.
//!
//! Memory is bounded: a list's keys expire with the window, and a variant's keys have a fixed
//! size (a dozen counters, a HyperLogLog of at most 12 KB).

use std::collections::HashMap;

use redis::aio::ConnectionLike;
use redrec_core::keys::Namespace;

use crate::error::{Error, Result};

/// Counter fields of a variant hash: served lists and the items in them.
pub const IMPRESSIONS: &str = "impressions";
pub const ITEMS_SERVED: &str = "items_served";
/// Sum of the 1-based positions of the first click of each clicked list.
pub const FIRST_CLICK_POSITION_SUM: &str = "first_click_position_sum";

/// Counter field of the lists that had at least one feedback event of `kind` (`click_lists`).
pub fn lists_field(kind: &str) -> String {
    format!("{kind}_lists")
}

/// One served list, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedList {
    pub rec_id: String,
    /// When it was served (unix ms).
    pub at_ms: i64,
    /// Which kind of request served it (`recommendations`, `search`, `similar`).
    pub route: String,
    pub user_id: Option<String>,
    pub profile: String,
    /// `(experiment, variant)` when the request was assigned to one.
    pub experiment: Option<(String, String)>,
    /// Item ids in served order.
    pub items: Vec<String>,
    /// Per item, the candidate sources that proposed it, comma-separated.
    pub sources: Vec<String>,
}

/// What attribution needs back of a recorded list.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedList {
    pub at_ms: i64,
    pub user_id: Option<String>,
    pub profile: String,
    pub experiment: Option<(String, String)>,
    pub items: Vec<String>,
}

/// One attributed feedback event: `kind` (`click`, `cart_add`, `purchase`) on the item at
/// `position` (0-based) of list `rec_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackHit {
    pub rec_id: String,
    pub kind: &'static str,
    pub position: usize,
    pub experiment: Option<(String, String)>,
}

/// Records `lists` in one pipeline: each list's hash with `ttl_ms`, and for lists in an
/// experiment the variant's impression counters and distinct-item sketch.
pub async fn record_lists(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    lists: &[ServedList],
    ttl_ms: u64,
) -> Result<()> {
    if lists.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for l in lists {
        let key = ns.rec(&l.rec_id);
        let (experiment, variant) = l
            .experiment
            .as_ref()
            .map(|(e, v)| (e.as_str(), v.as_str()))
            .unwrap_or(("", ""));
        pipe.cmd("HSET")
            .arg(&key)
            .arg("at")
            .arg(l.at_ms)
            .arg("route")
            .arg(&l.route)
            .arg("user")
            .arg(l.user_id.as_deref().unwrap_or(""))
            .arg("profile")
            .arg(&l.profile)
            .arg("experiment")
            .arg(experiment)
            .arg("variant")
            .arg(variant)
            .arg("items")
            .arg(l.items.join(" "))
            .arg("sources")
            .arg(l.sources.join(" "))
            .ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms.max(1)).ignore();
        if let Some((e, v)) = &l.experiment {
            let counters = ns.experiment_counters(e, v);
            pipe.cmd("HINCRBY")
                .arg(&counters)
                .arg(IMPRESSIONS)
                .arg(1)
                .ignore();
            pipe.cmd("HINCRBY")
                .arg(&counters)
                .arg(ITEMS_SERVED)
                .arg(l.items.len())
                .ignore();
            if !l.items.is_empty() {
                pipe.cmd("PFADD")
                    .arg(ns.experiment_items(e, v))
                    .arg(&l.items)
                    .ignore();
            }
        }
    }
    pipe.query_async::<()>(con)
        .await
        .map_err(|e| Error::from_redis("record served lists", &e))
}

/// The recorded lists of `rec_ids`, `None` for one unknown or past its window.
pub async fn read_lists(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    rec_ids: &[&str],
) -> Result<Vec<Option<RecordedList>>> {
    if rec_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in rec_ids {
        pipe.cmd("HMGET").arg(ns.rec(id)).arg(&[
            "at",
            "user",
            "profile",
            "experiment",
            "variant",
            "items",
        ]);
    }
    let rows: Vec<Vec<Option<String>>> = pipe
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("read served lists", &e))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let at_ms = field(0).parse::<i64>().ok()?;
            let non_empty = |s: String| (!s.is_empty()).then_some(s);
            let experiment = match (non_empty(field(3)), non_empty(field(4))) {
                (Some(e), Some(v)) => Some((e, v)),
                _ => None,
            };
            Some(RecordedList {
                at_ms,
                user_id: non_empty(field(1)),
                profile: field(2),
                experiment,
                items: field(5).split_whitespace().map(str::to_owned).collect(),
            })
        })
        .collect())
}

/// Counts attributed feedback: every hit adds to its variant's `{kind}` counter, and the first
/// hit of each kind on a list also to `{kind}_lists` (and, for a first click, its 1-based
/// position to [`FIRST_CLICK_POSITION_SUM`]). Returns, per hit, whether it was its list's first
/// of its kind. Two round trips; a retried hit never counts its list twice.
pub async fn count_feedback(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    hits: &[FeedbackHit],
    ttl_ms: u64,
) -> Result<Vec<bool>> {
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for h in hits {
        let fb = ns.rec_feedback(&h.rec_id);
        pipe.cmd("HSETNX").arg(&fb).arg(h.kind).arg(h.position);
        pipe.cmd("PEXPIRE").arg(&fb).arg(ttl_ms.max(1)).ignore();
        if let Some((e, v)) = &h.experiment {
            pipe.cmd("HINCRBY")
                .arg(ns.experiment_counters(e, v))
                .arg(h.kind)
                .arg(1)
                .ignore();
        }
    }
    let firsts: Vec<i64> = pipe
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("count feedback", &e))?;
    let firsts: Vec<bool> = firsts.into_iter().map(|n| n == 1).collect();
    let mut pipe = redis::pipe();
    let mut any = false;
    for (h, first) in hits.iter().zip(&firsts) {
        let (true, Some((e, v))) = (*first, &h.experiment) else {
            continue;
        };
        any = true;
        let counters = ns.experiment_counters(e, v);
        pipe.cmd("HINCRBY")
            .arg(&counters)
            .arg(lists_field(h.kind))
            .arg(1)
            .ignore();
        if h.kind == "click" {
            pipe.cmd("HINCRBY")
                .arg(&counters)
                .arg(FIRST_CLICK_POSITION_SUM)
                .arg(h.position + 1)
                .ignore();
        }
    }
    if any {
        pipe.query_async::<()>(con)
            .await
            .map_err(|e| Error::from_redis("count first feedback", &e))?;
    }
    Ok(firsts)
}

/// A variant's counters and its distinct served items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VariantCounters {
    pub counters: HashMap<String, u64>,
    pub distinct_items: u64,
}

impl VariantCounters {
    pub fn get(&self, field: &str) -> u64 {
        self.counters.get(field).copied().unwrap_or(0)
    }
}

/// The counters of each of `variants` of `experiment`, in one round trip.
pub async fn read_counters(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    experiment: &str,
    variants: &[&str],
) -> Result<Vec<VariantCounters>> {
    if variants.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for v in variants {
        pipe.cmd("HGETALL")
            .arg(ns.experiment_counters(experiment, v));
        pipe.cmd("PFCOUNT").arg(ns.experiment_items(experiment, v));
    }
    let replies: Vec<redis::Value> = pipe
        .query_async(con)
        .await
        .map_err(|e| Error::from_redis("read experiment counters", &e))?;
    let mut out = Vec::with_capacity(variants.len());
    for pair in replies.chunks(2) {
        let parse_err =
            |e: redis::ParsingError| Error::from_redis("read experiment counters", &e.into());
        let counters: HashMap<String, u64> =
            redis::from_redis_value_ref(&pair[0]).map_err(parse_err)?;
        let distinct_items: u64 = redis::from_redis_value_ref(&pair[1]).map_err(parse_err)?;
        out.push(VariantCounters {
            counters,
            distinct_items,
        });
    }
    Ok(out)
}

/// Deletes the counters of `variants` of `experiment` (a restarted experiment starts from zero).
pub async fn reset_counters(
    con: &mut impl ConnectionLike,
    ns: &Namespace,
    experiment: &str,
    variants: &[&str],
) -> Result<()> {
    let mut cmd = redis::cmd("DEL");
    for v in variants {
        cmd.arg(ns.experiment_counters(experiment, v))
            .arg(ns.experiment_items(experiment, v));
    }
    if variants.is_empty() {
        return Ok(());
    }
    cmd.query_async::<()>(con)
        .await
        .map_err(|e| Error::from_redis("reset experiment counters", &e))
}
