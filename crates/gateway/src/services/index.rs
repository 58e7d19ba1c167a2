//! The serving index as the gateway sees it: `FT.INFO` of the alias, the facet values of the
//! catalog (cached), and `PING`, through `redrec_store::index`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redrec_core::reply::IndexInfo;
use redrec_store::{Route, index};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// How long facets are cached, and how long computing them may take.
const FACETS_TTL: Duration = Duration::from_secs(300);
const FACETS_TIMEOUT: Duration = Duration::from_secs(10);
/// Most (department, category) groups read.
const FACETS_LIMIT: usize = 10_000;

/// Department -> categories present in the index (cached for five minutes).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Facets {
    pub departments: BTreeMap<String, Vec<String>>,
}

/// `PING`.
pub async fn ping(state: &AppState) -> ApiResult<()> {
    state
        .call("PING", Route::Primary, |mut con| async move {
            index::ping(&mut con).await
        })
        .await
}

/// Each node of a deployment with replicas, Sentinel or a user-state cluster (empty for a
/// single node).
pub async fn nodes(state: &AppState) -> Vec<redrec_store::NodeCheck> {
    if state.redis.is_single_node() {
        return Vec::new();
    }
    state.redis.check_nodes().await
}

/// How far Redis is in loading its data after a restart; `None` when it is not loading or
/// cannot tell.
pub async fn loading_percent(state: &AppState) -> Option<f64> {
    state
        .call("INFO persistence", Route::Primary, |mut con| async move {
            index::loading_percent(&mut con).await
        })
        .await
        .ok()
        .flatten()
}

/// `FT.INFO` of the alias; 404 when it does not exist.
pub async fn serving_index(state: &AppState) -> ApiResult<IndexInfo> {
    let alias = state.ns.alias();
    state
        .call("FT.INFO", Route::Replica, |mut con| {
            let alias = alias.clone();
            async move { index::info(&mut con, &alias).await }
        })
        .await?
        .ok_or(ApiError::NotFound {
            what: "index alias",
            id: alias,
        })
}

/// Attribute name -> type (`TAG`, `TEXT`, `NUMERIC`, `VECTOR`, ...) of a live index.
pub fn field_types(info: &IndexInfo) -> BTreeMap<String, String> {
    info.attributes
        .iter()
        .map(|a| {
            let name = if a.attribute.is_empty() {
                &a.identifier
            } else {
                &a.attribute
            };
            (name.clone(), a.kind.clone())
        })
        .collect()
}

/// The facets, from the cache or computed (the binary warms the cache at startup).
///
/// Single-flight: the cache lock is held while they are computed, so when the cache expires
/// under load one caller runs the aggregation and the others wait for its result instead of
/// each opening a connection and grouping the catalog again.
pub async fn facets(state: &AppState) -> ApiResult<Facets> {
    let mut cache = state.facets.lock().await;
    if let Some((at, facets)) = &*cache
        && at.elapsed() < FACETS_TTL
    {
        return Ok(facets.clone());
    }
    let fields = &state.index_config().fields;
    let alias = state.ns.alias();
    // Grouping the whole catalog takes a few hundred ms on a large index: it is off the hot
    // path (cached), so it runs on its own connection with a generous timeout. A pooled
    // connection answers within `redis.command_timeout_ms` (100 ms by default: on the 92k-item
    // demo catalog every facets call failed that way), and a slow command on it would hold up
    // the requests sharing it.
    let con = state
        .redis
        .dedicated_conn(Route::Replica, FACETS_TIMEOUT)
        .await
        .map_err(ApiError::from)?;
    let rows = state
        .redis
        .call_within("FT.AGGREGATE facets", FACETS_TIMEOUT, async move {
            let mut con = con;
            index::group_values(
                &mut con,
                &alias,
                &[&fields.department, &fields.category],
                FACETS_LIMIT,
                FACETS_TIMEOUT.as_millis() as u64,
            )
            .await
        })
        .await
        .map_err(ApiError::from)?;
    let mut departments: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mut row in rows {
        if let (Some(d), Some(c)) = (row.remove(&fields.department), row.remove(&fields.category))
            && !d.is_empty()
            && !c.is_empty()
        {
            departments.entry(d).or_default().push(c);
        }
    }
    for cats in departments.values_mut() {
        cats.sort();
        cats.dedup();
    }
    let facets = Facets { departments };
    *cache = Some((Instant::now(), facets.clone()));
    Ok(facets)
}
