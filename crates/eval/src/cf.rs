//! The collaborative item vectors the gateway serves, trained for this evaluation's split: implicit
//! ALS ([`redrec_ingest::cf`]) on the training baskets only (every user's, before the cut-off or
//! without their held-out last basket), published as the namespace's `cf_vector` field
//! ([`redrec_ingest::cf_field`]).
//!
//! What the field was trained on is recorded in `{ns}:meta:cf` (split, interaction file, a
//! fingerprint of the training rows and the ALS parameters). A run whose record matches skips
//! training and publication; any other split or data re-trains, and the re-train removes the
//! vectors of items the new training data leaves out, so no vector trained on another split
//! survives.

use std::time::Instant;

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use redrec_core::keys::Namespace;
use redrec_ingest::{
    cf::{AlsModel, AlsParams, UserRows},
    cf_field::{self, CF_FIELD},
};
use serde::Serialize;

use crate::{
    data::Dataset,
    split::{Split, fnv, user_counts},
};

/// When the evaluation trains and publishes `cf_vector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CfMode {
    /// Train and publish unless `{ns}:meta:cf` says the field was trained on this very data.
    Auto,
    /// Always train and publish.
    Retrain,
    /// Leave the field as it is (the served arms then use whatever it holds).
    Off,
}

/// What the collaborative step did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CfStats {
    /// What the field holds now: the record of `{ns}:meta:cf`.
    pub trained_on: String,
    /// False when the record matched and nothing was trained.
    pub trained: bool,
    /// Trained by this run's preparation step (`redrec-eval --cf-only`, before the gateways
    /// started), not by the evaluation process itself.
    #[serde(default)]
    pub prepared: bool,
    pub items_with_vector: usize,
    pub train_secs: f64,
    pub publish_secs: f64,
    /// The field was added to the index by this run (`FT.ALTER`, background indexing).
    pub added_field: bool,
    pub written: u64,
    /// Items that lost a vector from an earlier training.
    pub cleared: u64,
}

/// Per user (indexed like `Dataset::users`): (item, number of training baskets holding it),
/// sorted by item. Only `split.train` enters: target baskets never do.
pub fn training_rows(split: &Split) -> UserRows {
    split
        .train
        .iter()
        .map(|baskets| {
            let mut row: Vec<(u32, f32)> = user_counts(baskets)
                .into_iter()
                .map(|(i, c)| (i, c as f32))
                .collect();
            row.sort_by_key(|(i, _)| *i);
            row
        })
        .collect()
}

/// The record of what a training saw: split, source, a fingerprint of the rows (user, item and
/// count, by name) and the parameters.
pub fn record(
    split: &Split,
    interactions: &str,
    data: &Dataset,
    rows: &UserRows,
    p: &AlsParams,
) -> String {
    // the thread count does not change the factors
    let p = AlsParams { threads: 0, ..*p };
    let mut h: u64 = 0;
    for (u, row) in rows.iter().enumerate() {
        for (i, c) in row {
            let line = format!(
                "{}\u{1f}{}\u{1f}{c}",
                data.users[u], data.items[*i as usize]
            );
            h = fnv(&format!("{h:016x}{line}"));
        }
    }
    format!(
        "split={} interactions={interactions} rows={h:016x} als={}",
        serde_json::to_string(&split.kind).expect("split kind serialises"),
        serde_json::to_string(&p).expect("ALS params serialise")
    )
}

/// Trains on the split's training rows and publishes `cf_vector` (see the module docs); returns
/// what it did and, when it trained, the model (the offline ALS arm can reuse it).
pub async fn publish(
    con: &mut MultiplexedConnection,
    ns: &Namespace,
    data: &Dataset,
    split: &Split,
    interactions: &str,
    p: &AlsParams,
    mode: CfMode,
) -> Result<(CfStats, Option<AlsModel>)> {
    let rows = training_rows(split);
    let want = record(split, interactions, data, &rows, p);
    let key = ns.meta("cf");
    let have: Option<String> = redis::cmd("GET").arg(&key).query_async(con).await?;
    let alias = ns.alias();
    let has_field = redrec_ingest::index::live_schema(con, ns, &alias)
        .await?
        .is_some_and(|s| s.fields.iter().any(|f| f.name == CF_FIELD));
    if mode == CfMode::Auto && has_field && have.as_deref() == Some(want.as_str()) {
        return Ok((
            CfStats {
                trained_on: want,
                trained: false,
                prepared: false,
                items_with_vector: 0,
                train_secs: 0.0,
                publish_secs: 0.0,
                added_field: false,
                written: 0,
                cleared: 0,
            },
            None,
        ));
    }
    let t = Instant::now();
    let model = {
        let (rows, n, p) = (rows, data.items.len(), *p);
        tokio::task::spawn_blocking(move || redrec_ingest::cf::train(&rows, n, &p))
            .await
            .context("ALS worker")?
    };
    let train_secs = t.elapsed().as_secs_f64();
    let vectors = redrec_ingest::cf::item_vectors(&model, &data.items);
    let items_with_vector = vectors.len();
    let t = Instant::now();
    // The record goes before the write: a run interrupted half-way must not look finished.
    let _: () = redis::cmd("DEL").arg(&key).query_async(con).await?;
    let report = cf_field::publish(con, ns, vectors, 500, 8)
        .await
        .context("publishing cf_vector")?;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&want)
        .query_async(con)
        .await?;
    Ok((
        CfStats {
            trained_on: want,
            trained: true,
            prepared: false,
            items_with_vector,
            train_secs,
            publish_secs: t.elapsed().as_secs_f64(),
            added_field: report.added_field,
            written: report.written,
            cleared: report.cleared,
        },
        Some(model),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        data::DatasetBuilder,
        split::{SplitKind, split},
    };

    /// Ten users buy `a` and `b` in four baskets before day 100 and `late` (never before) in
    /// their baskets at and after it: whatever the split, training never holds a target basket.
    fn data() -> Dataset {
        let mut b = DatasetBuilder::default();
        for u in 0..10 {
            let user = format!("u{u}");
            for t in [10, 20, 30, 40] {
                b.add(&user, "a", t, None);
                b.add(&user, "b", t, None);
            }
            b.add(&user, "late", 100, None);
            b.add(&user, "a", 100, None);
            b.add(&user, "late", 110 + u, None);
        }
        b.build()
    }

    fn names(d: &Dataset, rows: &UserRows) -> Vec<Vec<(String, f32)>> {
        rows.iter()
            .map(|r| {
                r.iter()
                    .map(|(i, c)| (d.items[*i as usize].clone(), *c))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn cutoff_training_never_sees_the_target_period() {
        let d = data();
        let keep = vec![true; d.items.len()];
        let s = split(&d, &keep, SplitKind::Cutoff { at: 100 }, 3, None, 0);
        assert_eq!(s.cases.len(), 10);
        let rows = training_rows(&s);
        let want = vec![("a".to_owned(), 4.0), ("b".to_owned(), 4.0)];
        assert!(
            names(&d, &rows).iter().all(|r| *r == want),
            "{:?}",
            names(&d, &rows)
        );
        // An item bought only in the target period gets no vector, however often it was bought.
        let late = d.items.iter().position(|i| i == "late").unwrap() as u32;
        let p = AlsParams {
            factors: 4,
            iterations: 3,
            min_users: 1,
            ..AlsParams::default()
        };
        let m = redrec_ingest::cf::train(&rows, d.items.len(), &p);
        assert!(m.item_row(late).is_none());
        assert!(m.item_row(0).is_some());
    }

    #[test]
    fn last_basket_training_leaves_every_last_basket_out() {
        let d = data();
        let keep = vec![true; d.items.len()];
        let s = split(&d, &keep, SplitKind::LastBasket, 3, None, 0);
        let rows = training_rows(&s);
        // the last basket (`late` alone, day 110 + u) is held out; the day-100 basket stays
        let want = vec![
            ("a".to_owned(), 5.0),
            ("b".to_owned(), 4.0),
            ("late".to_owned(), 1.0),
        ];
        let got = names(&d, &rows);
        for r in &got {
            let mut r = r.clone();
            r.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(r, want);
        }
    }

    #[test]
    fn the_record_names_the_split_and_changes_with_the_data() {
        let d = data();
        let keep = vec![true; d.items.len()];
        let p = AlsParams::default();
        let cut = split(&d, &keep, SplitKind::Cutoff { at: 100 }, 3, None, 0);
        let last = split(&d, &keep, SplitKind::LastBasket, 3, None, 0);
        let a = record(&cut, "f.csv", &d, &training_rows(&cut), &p);
        let b = record(&last, "f.csv", &d, &training_rows(&last), &p);
        assert!(a.starts_with(r#"split={"kind":"cutoff","at":100}"#), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, record(&cut, "f.csv", &d, &training_rows(&cut), &p));
        let other = AlsParams { factors: 32, ..p };
        assert_ne!(a, record(&cut, "f.csv", &d, &training_rows(&cut), &other));
    }
}
